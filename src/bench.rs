//! `srgpt bench matmul`: GFLOP/s of the matmul kernel for each input storage type, at square
//! sizes and at the model's own shapes, beside a CPU sgemm measured in the same run; and
//! `srgpt bench train`: step time, throughput, utilisation, memory and a per-kernel profile.

use web_time::Instant;

use anyhow::Result;
use serde::Serialize;

use crate::data::{train_batch, Corpus};
use crate::gpu::timing::{median, time_dispatches, Timestamps};
use crate::gpu::Gpu;
use crate::kernels::matmul::{Layout, Mat, Matmul, MatmulShape, Tile};
use crate::kernels::TensorRef;
use crate::model::config::ModelConfig;
use crate::model::gpt::{GptGpu, MemoryBytes, StepTiming};
use crate::model::params::ParamLayout;
use crate::precision::Precision;
use crate::precision::Store;

#[derive(Clone, Debug, Serialize)]
pub struct MatmulRow {
    pub dtype: String,
    pub m: u32,
    pub n: u32,
    pub k: u32,
    pub gflops: f64,
    pub tile: String,
    pub cpu_sgemm_gflops: f64,
    pub what: String,
}

/// (what, m, n, k): square problems and a linear layer's shapes (out = inp . W^T).
pub fn default_shapes(bt: u32, d: u32, vocab: u32) -> Vec<(String, u32, u32, u32)> {
    let mut shapes: Vec<(String, u32, u32, u32)> = [256, 512, 1024].iter().map(|&s| (format!("{s}³"), s, s, s)).collect();
    shapes.push(("qkv".into(), bt, 3 * d, d));
    shapes.push(("mlp up".into(), bt, 4 * d, d));
    shapes.push(("mlp down".into(), bt, d, 4 * d));
    shapes.push(("logits".into(), bt, vocab, d));
    shapes
}

/// Times `out (m,n) = a (m,k) . b (n,k)^T` for each storage type and tile; keeps the best
/// tile's row, or with `all_tiles` every tile's.
pub fn bench_matmul(
    gpu: &Gpu,
    shapes: &[(String, u32, u32, u32)],
    reps: u32,
    all_tiles: bool,
    progress: &mut dyn FnMut(&MatmulRow),
) -> Result<Vec<MatmulRow>> {
    let mut rows = Vec::new();
    for (what, m, n, k) in shapes {
        let (m, n, k) = (*m, *n, *k);
        let a_host: Vec<f32> = (0..m * k).map(|i| ((i % 17) as f32 - 8.0) / 8.0).collect();
        let b_host: Vec<f32> = (0..n * k).map(|i| ((i % 13) as f32 - 6.0) / 6.0).collect();
        let cpu = cpu_sgemm_gflops(&a_host, &b_host, m as usize, n as usize, k as usize);
        for store in [Store::F32, Store::Bf16, Store::F16] {
            let a = gpu.buffer_from("bench a", &store.encode(&a_host))?;
            let b = gpu.buffer_from("bench b", &store.encode(&b_host))?;
            let c = gpu.storage_buffer("bench c", Store::F32.buffer_bytes((m * n) as usize))?;
            let shape = MatmulShape::new(m, n, k).trans(false, true);
            let mm = Matmul::new(
                shape,
                Mat::new(TensorRef::new(&a, store), Layout::rows(k)),
                Mat::new(TensorRef::new(&b, store), Layout::rows(k)),
                Mat::new(TensorRef::new(&c, Store::F32), Layout::rows(n)),
            );
            let row = |gflops: f64, tile: Tile| MatmulRow {
                dtype: store.wgsl_name().into(),
                m,
                n,
                k,
                gflops,
                tile: tile.name(),
                cpu_sgemm_gflops: cpu,
                what: what.clone(),
            };
            let mut best: Option<(f64, Tile)> = None;
            for tile in Tile::candidates(gpu) {
                let d = mm.dispatch_with(gpu, tile)?;
                let seconds = median(&time_dispatches(gpu, &[&d], reps)?);
                let gflops = shape.flops() / seconds / 1e9;
                if all_tiles {
                    progress(&row(gflops, tile));
                    rows.push(row(gflops, tile));
                }
                if best.is_none_or(|(g, _)| gflops > g) {
                    best = Some((gflops, tile));
                }
            }
            if !all_tiles {
                let (gflops, tile) = best.expect("at least one tile");
                progress(&row(gflops, tile));
                rows.push(row(gflops, tile));
            }
        }
    }
    Ok(rows)
}

/// GFLOP/s of the `matrixmultiply` crate's sgemm on the same problem (median of 3).
fn cpu_sgemm_gflops(a: &[f32], b: &[f32], m: usize, n: usize, k: usize) -> f64 {
    let mut c = vec![0.0f32; m * n];
    let mut times = Vec::new();
    for _ in 0..3 {
        let start = Instant::now();
        // b is (n, k) row-major; read as its transpose (k, n) through strides
        unsafe {
            matrixmultiply::sgemm(m, k, n, 1.0, a.as_ptr(), k as isize, 1, b.as_ptr(), 1, k as isize, 0.0, c.as_mut_ptr(), n as isize, 1);
        }
        times.push(start.elapsed().as_secs_f64());
    }
    2.0 * (m * n * k) as f64 / median(&times) / 1e9
}

/// One mode's figures from `srgpt bench train`.
#[derive(Clone, Debug, Serialize)]
pub struct TrainRow {
    pub precision: String,
    pub step_ms: f64,
    pub tokens_per_s: f64,
    pub model_gflops: f64,
    pub utilisation: f64,
    pub memory_bytes: MemoryBytes,
    pub state_bytes_per_param: f64,
    pub first_step_s: f64,
    /// compute dispatches in a step (each is a pass over its workgroups and, on CPU adapters,
    /// a start and join of the driver's threads)
    pub dispatches: usize,
    /// kernel family -> milliseconds per step, with --profile
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub profile: Vec<(String, f64)>,
    /// the slowest dispatches (family, variant, workgroups) -> milliseconds, with --profile
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub slowest: Vec<(String, f64)>,
    /// kernel family -> dispatches per step, with --profile (in the order of `profile`)
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub profile_dispatches: Vec<(String, usize)>,
}

/// Model FLOPs per token: 6 N (forward and backward of every weight, N all parameters) plus
/// 12 n_layer d T for attention scores and their use (forward and backward).
pub fn model_flops_per_token(cfg: &ModelConfig) -> f64 {
    6.0 * cfg.num_params() as f64 + 12.0 * cfg.n_layer as f64 * cfg.d as f64 * cfg.ctx as f64
}

/// What `bench_train` measures: the model, its batch, the modes, the timed steps, and
/// whether to profile every kernel.
pub struct TrainBenchPlan {
    pub cfg: ModelConfig,
    pub batch: u32,
    pub precisions: Vec<Precision>,
    pub steps: u32,
    pub profile: bool,
}

/// Times training steps of each mode on one fixed batch: two warm-up steps each (the first
/// timed from the start: on kernel choices that need no measuring), every kernel measurement
/// those put off, then
/// `steps` rounds in which every mode takes one step in turn, so that a shared machine's
/// slow spells fall on all modes alike; the median of each mode's steps counts. `launched`
/// is when the process started (for the first mode's first step). Utilisation is left for
/// the caller, who knows the adapter's best matmul. The first mode is also measured without
/// the update-fidelity measurement (a row named `<mode> no-fidelity`), in the same rounds,
/// so the measurement's cost is a ratio of one run.
pub fn bench_train(gpu: &Gpu, corpus: &Corpus, plan: &TrainBenchPlan, launched: Instant) -> Result<Vec<TrainRow>> {
    let TrainBenchPlan { cfg, batch, ref precisions, steps, profile } = *plan;
    let layout = ParamLayout::new(&cfg);
    let init: Vec<f32> = layout.init(1).iter().map(|&x| Store::Bf16.round_rtn(x)).collect();
    let data = train_batch(corpus, batch, cfg.ctx, 1, 0);
    let step_once = |model: &GptGpu, s: u32, timing: StepTiming| -> Result<()> {
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        model.record_step(gpu, &mut encoder, 1e-4, s, 1, timing);
        gpu.queue.submit([encoder.finish()]);
        gpu.wait()
    };

    let mut models = Vec::new();
    let mut names = Vec::new();
    let mut first_step_s = Vec::new();
    let without_fidelity = precisions.first().map(|&p| (p, false));
    for (i, (p, fidelity)) in precisions.iter().map(|&p| (p, true)).chain(without_fidelity).enumerate() {
        let start = if i == 0 { launched } else { Instant::now() };
        let model = if fidelity { GptGpu::new(gpu, cfg, batch, p, &init)? } else { GptGpu::without_fidelity(gpu, cfg, batch, p, &init)? };
        names.push(if fidelity { p.name().to_string() } else { format!("{} no-fidelity", p.name()) });
        model.upload_batch(gpu, &data);
        step_once(&model, 0, StepTiming::Off)?;
        first_step_s.push(start.elapsed().as_secs_f64());
        step_once(&model, 1, StepTiming::Off)?;
        models.push(model);
    }
    // the measurements the first steps put off, all of them now: the steps timed run on the
    // adapter's measured choices
    let mut changed = false;
    while let Some(better) = gpu.measure_deferred()? {
        changed |= better;
    }
    if changed {
        for model in &mut models {
            model.rebuild_dispatches(gpu)?;
        }
    }
    // every pipeline is compiled now: kept for the next launch, as a training run keeps them
    gpu.keep_pipelines();

    let queries = Timestamps::new(gpu, "bench", 1);
    let mut times = vec![Vec::new(); models.len()];
    for s in 0..steps.max(1) {
        for (model, times) in models.iter().zip(&mut times) {
            let t0 = Instant::now();
            match &queries {
                Some(q) => {
                    step_once(model, 2 + s, StepTiming::Pass(&q.set))?;
                    times.push(q.read_intervals(gpu)?[0]);
                }
                None => {
                    step_once(model, 2 + s, StepTiming::Off)?;
                    times.push(t0.elapsed().as_secs_f64());
                }
            }
        }
    }

    let mut rows = Vec::new();
    for (((model, times), first_step_s), name) in models.iter().zip(&times).zip(first_step_s).zip(names) {
        let step_s = median(times);
        let tokens = (batch * cfg.ctx) as f64;
        let model_gflops = model_flops_per_token(&cfg) * tokens / step_s / 1e9;
        let (families, slowest, profile_dispatches) = if profile && gpu.features.contains(wgpu::Features::TIMESTAMP_QUERY) {
            profile_step(gpu, model, steps, |s, timing| step_once(model, s, timing))?
        } else {
            (Vec::new(), Vec::new(), Vec::new())
        };
        rows.push(TrainRow {
            precision: name,
            step_ms: step_s * 1e3,
            tokens_per_s: tokens / step_s,
            model_gflops,
            utilisation: 0.0,
            memory_bytes: model.memory,
            state_bytes_per_param: model.state_bytes_per_param(),
            first_step_s,
            dispatches: model.step_dispatches().len(),
            profile: families,
            slowest,
            profile_dispatches,
        });
    }
    Ok(rows)
}

/// Kernel family -> milliseconds per step, the slowest dispatches, and each family's
/// dispatches per step, from timestamp queries around every dispatch of `steps` steps.
#[allow(clippy::type_complexity)]
fn profile_step(
    gpu: &Gpu,
    model: &GptGpu,
    steps: u32,
    step_once: impl Fn(u32, StepTiming) -> Result<()>,
) -> Result<(Vec<(String, f64)>, Vec<(String, f64)>, Vec<(String, usize)>)> {
    let names: Vec<&str> = model.step_dispatches().iter().map(|d| d.name).collect();
    let queries = Timestamps::new(gpu, "bench profile", names.len() as u32)
        .ok_or_else(|| anyhow::anyhow!("--profile needs timestamp queries, which this adapter lacks"))?;
    let mut totals = vec![0.0; names.len()];
    for s in 0..steps.max(1) {
        step_once(100 + s, StepTiming::PerDispatch(&queries.set))?;
        for (t, x) in totals.iter_mut().zip(queries.read_intervals(gpu)?) {
            *t += x / steps.max(1) as f64;
        }
    }
    let mut slowest: Vec<(String, f64)> =
        model.step_dispatches().iter().zip(&totals).map(|(d, t)| (format!("{}: {}", d.name, d.detail), t * 1e3)).collect();
    slowest.sort_by(|a, b| b.1.total_cmp(&a.1));
    slowest.truncate(12);
    let mut families: Vec<(String, f64, usize)> = Vec::new();
    for (name, t) in names.iter().zip(totals) {
        match families.iter_mut().find(|(n, _, _)| n == name) {
            Some(entry) => (entry.1, entry.2) = (entry.1 + t * 1e3, entry.2 + 1),
            None => families.push((name.to_string(), t * 1e3, 1)),
        }
    }
    families.sort_by(|a, b| b.1.total_cmp(&a.1));
    let counts = families.iter().map(|(n, _, c)| (n.clone(), *c)).collect();
    Ok((families.into_iter().map(|(n, t, _)| (n, t)).collect(), slowest, counts))
}
