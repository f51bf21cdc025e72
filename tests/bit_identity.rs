//! Neither a tuned choice nor a missing optional feature changes a bit: softmax,
//! cross-entropy and LayerNorm (forward and backward, every storage type) give identical bits
//! with every row reduction the adapter allows (threads per row, one subgroup per row); a tiny
//! training run gives the same losses, in every mode, with each choice forced as with the built-in rule
//! (SRGPT_TUNE=0's), and on the same adapter opened without subgroups and timestamp queries.
//! A tuning cache from another srgpt or driver is ignored. A test binary of its own: it swaps
//! the device's tuning cache, which no other test may see.

mod common;

use common::*;
use srgpt::gpu::tune::TuneCache;
use srgpt::kernels::cross_entropy::{cross_entropy_forward_backward, Logits};
use srgpt::kernels::layernorm::{layernorm_backward, layernorm_forward, LayerNormAffine, LayerNormSaved, LayerNormShape};
use srgpt::kernels::softmax::{softmax_backward, softmax_forward, SoftmaxShape};
use srgpt::kernels::{row_reduction, Block, RowReduction, ROW_REDUCTION_KEY};
use srgpt::precision::{Precision, Store};

/// Held by each test for its whole length: the tests swap the one device's tuning cache.
static DEVICE_CACHE: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Makes every row kernel use `choice` until the next call.
fn force(choice: RowReduction) {
    let cache = TuneCache::fixed(&gpu().report, &[(ROW_REDUCTION_KEY, vec![choice.threads, choice.subgroup as u32])]);
    *gpu().tuning.lock().unwrap() = cache;
    assert_eq!(row_reduction(gpu()), choice, "the forced choice is the one used");
}

/// Every output of the row kernels, as bits, named.
fn row_kernel_outputs() -> Vec<(String, Vec<u32>)> {
    let mut out = Vec::new();
    let bits = |v: Vec<f32>| v.into_iter().map(f32::to_bits).collect::<Vec<u32>>();
    let f = Store::F32;
    // rows longer than the 64 slots of the canonical order, and not a multiple of them
    let (rows, len) = (21usize, 150usize);
    for store in Store::ALL {
        for (inp_store, causal_t) in [(Store::F32, 0u32), (Store::F32, 7), (Store::Bf16, 0)] {
            let shape = SoftmaxShape { rows: rows as u32, len: len as u32, scale: 0.7, causal_t };
            let x = rounded(inp_store, &random_values(rows * len, 61, 4.0));
            let (gx, gy) = (upload(inp_store, &x), zeros(store, rows * len));
            run(&[softmax_forward(gpu(), tref(&gy, store), tref(&gx, inp_store), &shape).unwrap()]);
            let probs = download(&gy, store, rows * len);
            let gg = upload(f, &random_values(rows * len, 62, 1.0));
            run(&[softmax_backward(gpu(), tref(&gg, f), tref(&gy, store), &shape).unwrap()]);
            let what = format!("softmax {inp_store:?} -> {store:?}, causal {causal_t}");
            out.push((format!("{what}: probabilities"), bits(probs)));
            out.push((format!("{what}: backward"), bits(download(&gg, f, rows * len))));
        }
    }
    // rows padded past the vocabulary, as a large vocabulary's are
    let (vocab, padded) = (150usize, 160usize);
    let targets: Vec<u32> = (0..rows).map(|r| ((r * 11 + 5) % vocab) as u32).collect();
    let gl = upload(f, &random_values(rows * padded, 63, 6.0));
    let gt = gpu().buffer_from("targets", bytemuck::cast_slice(&targets)).unwrap();
    let gloss = zeros(f, rows);
    let after = Logits::ToGradient { scale: 0.05 };
    run(&[cross_entropy_forward_backward(gpu(), &gl, &gt, &gloss, 0, rows as u32, vocab as u32, padded as u32, after).unwrap()]);
    out.push(("cross-entropy losses".into(), bits(download(&gloss, f, rows))));
    out.push(("cross-entropy dlogits".into(), bits(download(&gl, f, rows * padded))));
    let (n, c) = (rows, 160usize);
    let shape = LayerNormShape { n: n as u32, c: c as u32 };
    for act in Store::ALL {
        let inp = rounded(act, &random_values(n * c, 64, 2.0));
        let params = rounded(act, &random_values(2 * c, 65, 1.0).iter().map(|x| 1.0 + x).collect::<Vec<_>>());
        let (gi, gp, go, gm, gr) = (upload(act, &inp), upload(act, &params), zeros(act, n * c), zeros(f, n), zeros(f, n));
        let saved = LayerNormSaved { inp: tref(&gi, act), mean: &gm, rstd: &gr };
        let affine = LayerNormAffine { block: Block::new(&gp, act), weight: 0, bias: c as u32 };
        run(&[layernorm_forward(gpu(), tref(&go, act), &saved, affine, shape).unwrap()]);
        out.push((format!("layernorm {act:?} out"), bits(download(&go, act, n * c))));
        out.push((format!("layernorm {act:?} mean"), bits(download(&gm, f, n))));
        out.push((format!("layernorm {act:?} rstd"), bits(download(&gr, f, n))));
        let (gdo, gdi, gdp) = (upload(f, &random_values(n * c, 66, 1.0)), upload(f, &random_values(n * c, 67, 1.0)), zeros(act, 2 * c));
        let daffine = LayerNormAffine { block: Block::new(&gdp, act), weight: 0, bias: c as u32 };
        run(&layernorm_backward(gpu(), &gdi, daffine, &gdo, &saved, affine, shape).unwrap());
        out.push((format!("layernorm {act:?} dinp"), bits(download(&gdi, f, n * c))));
        out.push((format!("layernorm {act:?} dweight, dbias"), bits(download(&gdp, act, 2 * c))));
    }
    out
}

#[test]
fn every_row_reduction_gives_identical_bits() {
    let _alone = DEVICE_CACHE.lock().unwrap_or_else(|e| e.into_inner());
    let choices = RowReduction::choices(gpu());
    eprintln!("row reductions on {}: {choices:?}", gpu().report.summary());
    assert!(choices.len() >= 5, "at least the five thread counts");
    // the subgroup path is compared wherever the adapter runs subgroups of one size: lavapipe
    // (8 lanes) and SwiftShader (4), the drivers CI runs on, must take part
    let name = gpu().report.name.to_lowercase();
    let known = [("llvmpipe", 8), ("swiftshader", 4)].into_iter().find(|(driver, _)| name.contains(driver));
    if let Some((driver, size)) = known {
        assert_eq!(gpu().fixed_subgroup_size(), Some(size), "{driver} runs subgroups of {size}");
    }
    if let Some(size) = gpu().fixed_subgroup_size().filter(|s| 64 % s == 0) {
        assert!(choices.contains(&RowReduction { threads: size, subgroup: true }), "one subgroup per row is among {choices:?}");
    }
    force(choices[0]);
    let want = row_kernel_outputs();
    for &choice in &choices[1..] {
        force(choice);
        for ((what, got), (_, expected)) in row_kernel_outputs().iter().zip(&want) {
            if let Some(i) = (0..got.len()).find(|&i| got[i] != expected[i]) {
                panic!(
                    "{what}: element {i} is {} with {choice:?}, {} with {:?}",
                    f32::from_bits(got[i]),
                    f32::from_bits(expected[i]),
                    choices[0]
                );
            }
        }
    }
}

/// (run, step, train loss bits, val loss bits) of a 6-step tiny run of the modes `precisions`.
fn tiny_losses_in(gpu: &srgpt::gpu::Gpu, precisions: Vec<srgpt::precision::Precision>) -> Vec<(String, u32, Option<u32>, Option<u32>)> {
    tiny_run(gpu, precisions, |_, _| {})
}

type Losses = Vec<(String, u32, Option<u32>, Option<u32>)>;

/// `tiny_losses_in`, calling `between(trainer, step)` before each step.
fn tiny_run(
    gpu: &srgpt::gpu::Gpu,
    precisions: Vec<srgpt::precision::Precision>,
    mut between: impl FnMut(&mut srgpt::train::Trainer, u32),
) -> Losses {
    use srgpt::data::Corpus;
    use srgpt::model::config::{ModelConfig, TrainConfig};
    use srgpt::train::{TrainSpec, Trainer};
    let corpus = Corpus::load("builtin").unwrap();
    let spec = TrainSpec {
        preset: "tiny".into(),
        model: ModelConfig { n_layer: 2, n_head: 4, d: 64, ctx: 64, vocab: corpus.vocab_size() },
        train: TrainConfig { batch: 4, lr: 3e-3, warmup: 5, steps: 6, grad_accum: 1 },
        precisions,
        seed: 1,
        eval_every: 3,
        eval_batches: 1,
        measure_fidelity: true,
    };
    let mut t = Trainer::new(gpu, corpus, spec).unwrap();
    let mut lines = Vec::new();
    while !t.finished() {
        let step = t.step;
        between(&mut t, step);
        lines.extend(t.step(gpu).unwrap());
    }
    lines.extend(t.flush(gpu).unwrap());
    lines.iter().map(|l| (l.run.clone(), l.step, l.train_loss.map(f32::to_bits), l.val_loss.map(f32::to_bits))).collect()
}

#[test]
fn a_tiny_run_has_the_same_losses_with_every_row_reduction() {
    let _alone = DEVICE_CACHE.lock().unwrap_or_else(|e| e.into_inner());
    // SRGPT_TUNE=0: nothing measured, nothing cached, the built-in rule
    *gpu().tuning.lock().unwrap() = TuneCache::fixed(&gpu().report, &[]);
    let rule = row_reduction(gpu());
    let want = tiny_losses_in(gpu(), Precision::ALL.to_vec());
    assert_eq!(want.iter().filter(|l| l.2.is_some()).count(), 30, "six train losses per mode");
    for choice in RowReduction::choices(gpu()).into_iter().filter(|&c| c != rule) {
        force(choice);
        assert_eq!(tiny_losses_in(gpu(), Precision::ALL.to_vec()), want, "losses with {choice:?} differ from the rule's {rule:?}");
    }
}

/// Every matmul tile the tuner can pick, forced on every tuned matmul of a tiny run (f32 and
/// bf16 operands: fp32 and bf16-sr), gives the built-in choices' losses bit for bit; so does
/// a run whose choices change between steps, forced tiles swapped mid-run and the background
/// tuner taking up what it measures as the run goes.
#[test]
fn a_tiny_run_has_the_same_losses_with_every_matmul_tile_and_when_choices_change_midway() {
    use srgpt::kernels::matmul::Tile;
    let _alone = DEVICE_CACHE.lock().unwrap_or_else(|e| e.into_inner());
    let modes = vec![Precision::Fp32, Precision::Bf16Sr];
    *gpu().tuning.lock().unwrap() = TuneCache::fixed(&gpu().report, &[]);
    let want = tiny_losses_in(gpu(), modes.clone());
    let tiles = Tile::candidates(gpu());
    assert!(tiles.len() >= 5, "{} candidate tiles", tiles.len());
    let forced = |tile: &Tile| TuneCache::forcing(&gpu().report, "matmul ", tile.params());
    for tile in &tiles {
        *gpu().tuning.lock().unwrap() = forced(tile);
        assert_eq!(tiny_losses_in(gpu(), modes.clone()), want, "losses with every matmul on tile {}", tile.name());
    }
    // one tile for the first three steps, another from step 3 on
    let (first, then) = (&tiles[0], &tiles[tiles.len() - 1]);
    *gpu().tuning.lock().unwrap() = forced(first);
    let switched = tiny_run(gpu(), modes.clone(), |t, step| {
        if step == 3 {
            *gpu().tuning.lock().unwrap() = forced(then);
            t.rebuild_dispatches(gpu()).unwrap();
        }
    });
    assert_eq!(switched, want, "tile {} switched to {} at step 3", first.name(), then.name());
    // the background tuner, free to measure at every step boundary
    if std::env::var("SRGPT_TUNE").as_deref() == Ok("0") {
        eprintln!("skipped the background tuner: SRGPT_TUNE=0 turns measuring off");
        return;
    }
    *gpu().tuning.lock().unwrap() = TuneCache::in_dir(None, &gpu().report);
    let mut measured_midway = 0;
    let tuned = tiny_run(gpu(), modes.clone(), |t, step| {
        t.tuning_share = f64::INFINITY;
        if step > 0 && step < 5 {
            measured_midway = gpu().tuning.lock().unwrap().len();
        }
    });
    assert!(measured_midway > 0, "the background tuner measured choices between steps");
    assert_eq!(tuned, want, "losses while the background tuner takes up its choices");
}

/// The tuning cache file is trusted only by the adapter, driver and srgpt version that wrote
/// it: another version's file (or a damaged one) is ignored, never used.
#[test]
fn a_tuning_cache_from_another_srgpt_or_driver_is_ignored() {
    if std::env::var("SRGPT_TUNE").as_deref() == Ok("0") {
        eprintln!("skipped: SRGPT_TUNE=0 turns the cache file off");
        return;
    }
    let dir = std::env::temp_dir().join(format!("srgpt-tune-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let report = &gpu().report;
    TuneCache::in_dir(Some(dir.clone()), report).insert("row reduction".into(), vec![8, 0]);
    assert_eq!(TuneCache::in_dir(Some(dir.clone()), report).get("row reduction"), Some(&[8, 0][..]), "its own file is used");
    let file = std::fs::read_dir(&dir).unwrap().next().unwrap().unwrap().path();
    let text = std::fs::read_to_string(&file).unwrap();
    let version = format!("\"srgpt\": \"{}\"", env!("CARGO_PKG_VERSION"));
    assert!(text.contains(&version), "the file names srgpt's version: {text}");
    for (what, changed) in [
        ("another srgpt", text.replace(&version, "\"srgpt\": \"0.0.1-other\"")),
        (
            "another driver",
            text.replace(
                &format!(
                    "\"driver\": {}",
                    serde_json::to_string(&format!("{} {} {}", report.backend, report.driver, report.driver_info)).unwrap()
                ),
                "\"driver\": \"other 1.0\"",
            ),
        ),
        ("a damaged file", text[..text.len() / 2].to_string()),
    ] {
        assert_ne!(changed, text, "{what}: the test changed the file");
        std::fs::write(&file, &changed).unwrap();
        assert!(TuneCache::in_dir(Some(dir.clone()), report).is_empty(), "{what}: the file must be ignored");
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// Every optional feature off on the same adapter (no subgroups, no timestamp queries, and
/// WebGPU's default limits, as in a browser): the same losses bit for bit, and `srgpt info`
/// says which paths the adapter takes.
#[test]
fn a_run_without_optional_features_has_the_same_losses() {
    use srgpt::gpu::{choose_adapter, list_adapters, new_instance, Gpu};
    let _alone = DEVICE_CACHE.lock().unwrap_or_else(|e| e.into_inner());
    *gpu().tuning.lock().unwrap() = TuneCache::fixed(&gpu().report, &[]);
    let want = tiny_losses_in(gpu(), Precision::ALL.to_vec());
    let adapter = choose_adapter(list_adapters(&new_instance()).unwrap(), None).unwrap();
    let bare = Gpu::from_adapter_with(&adapter, wgpu::Features::empty(), wgpu::Limits::default()).unwrap();
    *bare.tuning.lock().unwrap() = TuneCache::fixed(&bare.report, &[]);
    assert!(bare.fixed_subgroup_size().is_none() && !bare.features.contains(wgpu::Features::TIMESTAMP_QUERY));
    assert_eq!(tiny_losses_in(&bare, Precision::ALL.to_vec()), want, "losses without subgroups and timestamp queries differ");

    let info = std::process::Command::new(env!("CARGO_BIN_EXE_srgpt")).arg("info").output().unwrap();
    let text = String::from_utf8_lossy(&info.stdout);
    assert!(info.status.success());
    let line =
        |start: &str| text.lines().find(|l| l.trim_start().starts_with(start)).unwrap_or_else(|| panic!("no '{start}' line in:\n{text}"));
    let has = |f: &str| gpu().report.features.iter().any(|x| x == f);
    assert_eq!(
        line("subgroups:").contains("on, size"),
        gpu().fixed_subgroup_size().is_some() || (has("subgroup") && gpu().report.subgroup_min_size == gpu().report.subgroup_max_size)
    );
    assert_eq!(line("timestamp queries:").contains(": on:"), has("timestamp_query"));
}

/// A device whose bindings hold 320 KiB: the tiny model's activations fit, its f32 weights,
/// gradients and Adam state (440 KB each) do not, so every kernel binds those blocks in
/// windows and AdamW, the gradient norm and the clearing of the gradients run in pieces —
/// with the same losses bit for bit, in every mode.
#[test]
fn a_run_whose_blocks_are_larger_than_a_binding_has_the_same_losses() {
    use srgpt::gpu::{choose_adapter, list_adapters, new_instance, Gpu};
    use srgpt::kernels::block_pieces;
    let _alone = DEVICE_CACHE.lock().unwrap_or_else(|e| e.into_inner());
    *gpu().tuning.lock().unwrap() = TuneCache::fixed(&gpu().report, &[]);
    let want = tiny_losses_in(gpu(), Precision::ALL.to_vec());
    let adapter = choose_adapter(list_adapters(&new_instance()).unwrap(), None).unwrap();
    let limits = wgpu::Limits { max_storage_buffer_binding_size: 320 << 10, ..adapter.limits() };
    let narrow = Gpu::from_adapter_with(&adapter, adapter.features() & srgpt::gpu::OPTIONAL_FEATURES, limits).unwrap();
    *narrow.tuning.lock().unwrap() = TuneCache::fixed(&narrow.report, &[]);
    let n = 110_000; // about the tiny model's parameters on the builtin corpus
    assert!(block_pieces(&narrow.limits, n).len() > 1, "the update runs in pieces");
    assert_eq!(tiny_losses_in(&narrow, Precision::ALL.to_vec()), want, "losses with windowed blocks differ");
}
