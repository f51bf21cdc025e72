//! `srgpt export` and `train --init`: a trained micro checkpoint (f32 and bf16) exported for
//! Hugging Face has GPT-2's names, Conv1D's (in, out) layout, its dtype and a matching
//! config.json; the CPU reference model reading the exported files reproduces srgpt's loss;
//! exported weights come back through `train --init` to the checkpoint's very loss; the
//! tokenizer is srgpt's byte vocabulary; and Python's transformers, where installed, loads the
//! folder and computes the same loss.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use safetensors::SafeTensors;
use srgpt::data::{val_batches, Corpus};
use srgpt::model::cpu::gpt_forward_cpu;
use srgpt::model::params::ParamLayout;
use srgpt::precision::Store;
use srgpt::train::checkpoint;

fn srgpt(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_srgpt")).args(args).output().unwrap()
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("srgpt-export-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

const SEED: &str = "3";

/// A 6-step micro run of fp32 and bf16-sr (one validation batch, evaluated at the end).
fn trained(dir: &Path) {
    let out = srgpt(&[
        "train",
        "--headless",
        "--n-layer",
        "2",
        "--n-head",
        "2",
        "--d",
        "32",
        "--ctx",
        "16",
        "--batch",
        "4",
        "--steps",
        "6",
        "--eval-every",
        "6",
        "--eval-batches",
        "1",
        "--seed",
        SEED,
        "--precision",
        "fp32,bf16-sr",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// The last val loss a run logged.
fn last_val_loss(dir: &Path, mode: &str) -> f32 {
    common::logged_losses(dir).iter().rev().find(|l| l["run"] == mode && l["val_loss"].is_number()).unwrap()["val_loss"].as_f64().unwrap()
        as f32
}

/// The first val loss (step 0) a run logged.
fn first_val_loss(dir: &Path, mode: &str) -> f32 {
    common::logged_losses(dir).iter().find(|l| l["run"] == mode && l["val_loss"].is_number()).unwrap()["val_loss"].as_f64().unwrap() as f32
}

#[test]
fn hf_export_has_gpt2_names_layouts_and_srgpt_loss() {
    let run = tmp("run");
    trained(&run);
    for (mode, dtype, torch_dtype, tolerance) in [("fp32", "F32", "float32", 1e-4f32), ("bf16-sr", "BF16", "bfloat16", 1e-2)] {
        let ckpt = checkpoint::load(&run.join(format!("{mode}.safetensors"))).unwrap();
        let out = tmp(&format!("hf-{mode}"));
        let done =
            srgpt(&["export", run.join(format!("{mode}.safetensors")).to_str().unwrap(), "--format", "hf", "--out", out.to_str().unwrap()]);
        assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));

        let config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
        let cfg = ckpt.state.model;
        for (key, want) in [
            ("model_type", serde_json::json!("gpt2")),
            ("vocab_size", serde_json::json!(cfg.vocab)),
            ("n_positions", serde_json::json!(cfg.ctx)),
            ("n_embd", serde_json::json!(cfg.d)),
            ("n_layer", serde_json::json!(cfg.n_layer)),
            ("n_head", serde_json::json!(cfg.n_head)),
            ("activation_function", serde_json::json!("gelu_new")),
            ("layer_norm_epsilon", serde_json::json!(1e-5)),
            ("tie_word_embeddings", serde_json::json!(true)),
            ("resid_pdrop", serde_json::json!(0.0)),
            ("torch_dtype", serde_json::json!(torch_dtype)),
        ] {
            assert_eq!(config[key], want, "{mode}: config.json {key}");
        }

        let bytes = std::fs::read(out.join("model.safetensors")).unwrap();
        let file = SafeTensors::deserialize(&bytes).unwrap();
        let (d, v, t) = (cfg.d as usize, cfg.vocab as usize, cfg.ctx as usize);
        let mut expected: Vec<(String, Vec<usize>)> =
            vec![("transformer.wte.weight".into(), vec![v, d]), ("transformer.wpe.weight".into(), vec![t, d])];
        for i in 0..cfg.n_layer {
            let h = format!("transformer.h.{i}");
            expected.extend([
                (format!("{h}.ln_1.weight"), vec![d]),
                (format!("{h}.ln_1.bias"), vec![d]),
                (format!("{h}.attn.c_attn.weight"), vec![d, 3 * d]),
                (format!("{h}.attn.c_attn.bias"), vec![3 * d]),
                (format!("{h}.attn.c_proj.weight"), vec![d, d]),
                (format!("{h}.attn.c_proj.bias"), vec![d]),
                (format!("{h}.ln_2.weight"), vec![d]),
                (format!("{h}.ln_2.bias"), vec![d]),
                (format!("{h}.mlp.c_fc.weight"), vec![d, 4 * d]),
                (format!("{h}.mlp.c_fc.bias"), vec![4 * d]),
                (format!("{h}.mlp.c_proj.weight"), vec![4 * d, d]),
                (format!("{h}.mlp.c_proj.bias"), vec![d]),
            ]);
        }
        expected.extend([("transformer.ln_f.weight".into(), vec![d]), ("transformer.ln_f.bias".into(), vec![d])]);
        let mut names: Vec<String> = file.names().into_iter().map(str::to_string).collect();
        names.sort();
        let mut want_names: Vec<String> = expected.iter().map(|e| e.0.clone()).collect();
        want_names.sort();
        assert_eq!(names, want_names, "{mode}: exactly GPT-2's tensors (lm_head is tied to wte)");
        for (name, shape) in &expected {
            let view = file.tensor(name).unwrap();
            assert_eq!(view.shape(), shape.as_slice(), "{mode}: {name}");
            assert_eq!(format!("{:?}", view.dtype()), dtype, "{mode}: {name} keeps the checkpoint's dtype");
        }

        // every element of every tensor: the embeddings, LayerNorms and biases as srgpt keeps
        // them, and each linear layer's (out, in) weight transposed into Conv1D's (in, out)
        let store = if dtype == "F32" { Store::F32 } else { Store::Bf16 };
        let layout = ParamLayout::new(&cfg);
        let kept = srgpt::export::kept_weights(&ckpt);
        let ours = kept.store.decode(&kept.bytes, layout.total);
        for tensor in &layout.tensors {
            let hf_name = match tensor.name.as_str() {
                "wte" | "wpe" => format!("transformer.{}.weight", tensor.name),
                name => format!("transformer.{name}"),
            };
            let theirs = store.decode(file.tensor(&hf_name).unwrap().data(), tensor.len);
            let ours = &ours[tensor.offset..tensor.offset + tensor.len];
            let linear = tensor.name.starts_with("h.") && tensor.shape.len() == 2;
            for (k, &value) in ours.iter().enumerate() {
                // (shapes, (in, out) for the linear layers, are checked above)
                let at = if linear {
                    let (o, i, outputs) = (k / tensor.shape[1], k % tensor.shape[1], tensor.shape[0]);
                    i * outputs + o
                } else {
                    k
                };
                assert_eq!(theirs[at].to_bits(), value.to_bits(), "{mode}: {hf_name} element {at} (srgpt's element {k})");
            }
        }

        // the CPU reference model on the exported tensors, on the run's validation batch
        let corpus = Corpus::load(&ckpt.state.corpus).unwrap();
        let (cfg_back, tokenizer_back, weights) = srgpt::export::load_init(&out).unwrap();
        assert_eq!((cfg_back, &tokenizer_back), (cfg, &ckpt.tokenizer));
        let batch = &val_batches(&corpus, ckpt.state.train.batch, cfg.ctx, ckpt.state.seed, 1)[0];
        let cpu = gpt_forward_cpu(&cfg, &layout, &weights, &batch.inputs, &batch.targets, ckpt.state.train.batch as usize).loss;
        let gpu = last_val_loss(&run, mode);
        assert!((cpu - gpu).abs() <= tolerance, "{mode}: loss {cpu} from the exported files, {gpu} in srgpt");
        numpy_check(&out, batch, ckpt.state.train.batch as usize, cpu, gpu, mode, tolerance);

        // the tokenizer: srgpt's ids for every byte of the vocabulary
        let tokenizer: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("tokenizer.json")).unwrap()).unwrap();
        let ids = tokenizer["model"]["vocab"].as_object().unwrap();
        assert_eq!(ids.len(), ckpt.tokenizer.byte_vocab().len());
        for (id, &b) in ckpt.tokenizer.byte_vocab().iter().enumerate() {
            assert_eq!(ids[&srgpt::export::byte_char(b).to_string()], id, "byte {b}");
        }
        assert!(!ids.contains_key(tokenizer["model"]["unk_token"].as_str().unwrap()), "an unknown byte is an error, not a token");
        assert_eq!(tokenizer["model"]["merges"], serde_json::json!([]));
        python_check(&out, &run, mode, tolerance);
        std::fs::remove_dir_all(out).ok();
    }
    std::fs::remove_dir_all(run).ok();
}

/// tests/gpt2_numpy.py: GPT-2's forward in numpy, written from Hugging Face's names and layout
/// rather than srgpt's code, reads the exported folder and must give the loss srgpt's CPU model
/// gives on the same weights (both in float, one in f64: within 1e-5) and the GPU's within the
/// mode's tolerance. A mapping mistake that srgpt's export and its reader make the same way
/// cancels in srgpt's own check and not in this one. Needs python3 with numpy (CI installs it).
fn numpy_check(folder: &Path, batch: &srgpt::data::Batch, rows: usize, cpu: f32, gpu: f32, mode: &str, tolerance: f32) {
    let has = Command::new("python3").args(["-c", "import numpy"]).output();
    if !has.is_ok_and(|o| o.status.success()) {
        assert!(std::env::var_os("SRGPT_CI").is_none(), "CI needs python3 with numpy (pip install numpy) for the export check");
        eprintln!("skipped the numpy GPT-2 check: python3 with numpy is not installed (pip install numpy)");
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/gpt2_numpy.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(folder)
        .args(["--ids", &serde_json::to_string(&batch.inputs).unwrap()])
        .args(["--targets", &serde_json::to_string(&batch.targets).unwrap()])
        .args(["--batch", &rows.to_string()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{mode}: tests/gpt2_numpy.py failed: {stdout}{}", String::from_utf8_lossy(&out.stderr));
    let numpy: f32 = stdout.trim().strip_prefix("loss ").and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("{mode}: {stdout}"));
    eprintln!("{mode}: numpy GPT-2 loss {numpy}, srgpt CPU {cpu}, GPU {gpu}");
    assert!((numpy - cpu).abs() <= 1e-5, "{mode}: numpy GPT-2 gives {numpy} on the exported files, srgpt's CPU model {cpu}");
    assert!((numpy - gpu).abs() <= tolerance, "{mode}: numpy GPT-2 gives {numpy} on the exported files, srgpt's GPU {gpu}");
}

/// examples/check_hf_export.py, where Python has torch and transformers: the folder loads
/// with no missing or unexpected weights, the tokenizer gives srgpt's ids, and the loss on
/// the run's validation batch is srgpt's.
fn python_check(folder: &Path, run: &Path, mode: &str, tolerance: f32) {
    let has = Command::new("python3").args(["-c", "import torch, transformers"]).output();
    if !has.is_ok_and(|o| o.status.success()) {
        eprintln!("skipped the transformers check: python3 with torch and transformers is not installed");
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/check_hf_export.py");
    let ckpt = checkpoint::load(&run.join(format!("{mode}.safetensors"))).unwrap();
    let corpus = Corpus::load(&ckpt.state.corpus).unwrap();
    let batch = &val_batches(&corpus, ckpt.state.train.batch, ckpt.state.model.ctx, ckpt.state.seed, 1)[0];
    let text: Vec<u8> = corpus.decode(&batch.inputs);
    let ids = serde_json::to_string(&batch.inputs).unwrap();
    let targets = serde_json::to_string(&batch.targets).unwrap();
    let out = Command::new("python3")
        .arg(script)
        .arg(folder)
        .args(["--ids", &ids, "--targets", &targets, "--loss", &last_val_loss(run, mode).to_string()])
        .args(["--tolerance", &tolerance.to_string(), "--batch"])
        .arg(ckpt.state.train.batch.to_string())
        .arg("--text-hex")
        .arg(text.iter().map(|b| format!("{b:02x}")).collect::<String>())
        .output()
        .unwrap();
    assert!(out.status.success(), "{mode}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}

#[test]
fn exported_weights_come_back_with_train_init() {
    let run = tmp("init-run");
    trained(&run);
    for format in ["hf", "nanogpt"] {
        let out = tmp(&format!("init-{format}"));
        let done =
            srgpt(&["export", run.join("bf16-sr.safetensors").to_str().unwrap(), "--format", format, "--out", out.to_str().unwrap()]);
        assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
        let again = tmp(&format!("again-{format}"));
        let trained_again = srgpt(&[
            "train",
            "--headless",
            "--init",
            out.to_str().unwrap(),
            "--batch",
            "4",
            "--steps",
            "2",
            "--eval-every",
            "2",
            "--eval-batches",
            "1",
            "--seed",
            SEED,
            "--precision",
            "bf16-sr",
            "--out",
            again.to_str().unwrap(),
        ]);
        assert!(trained_again.status.success(), "{format}: {}", String::from_utf8_lossy(&trained_again.stderr));
        // the same weights, the same validation batch, the same kernels: the same bits
        assert_eq!(
            first_val_loss(&again, "bf16-sr").to_bits(),
            last_val_loss(&run, "bf16-sr").to_bits(),
            "{format}: the first loss from the exported weights is the checkpoint's"
        );
        std::fs::remove_dir_all(again).ok();
        // a model flag that contradicts the weights, and another corpus, are refused
        let wrong = srgpt(&["train", "--headless", "--init", out.to_str().unwrap(), "--d", "64", "--out", tmp("wrong").to_str().unwrap()]);
        assert_eq!(wrong.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&wrong.stderr).contains("--d 64 contradicts the weights"));
        let preset =
            srgpt(&["train", "--headless", "--init", out.to_str().unwrap(), "--preset", "small", "--out", tmp("preset").to_str().unwrap()]);
        assert_eq!(preset.status.code(), Some(2), "a preset's model is never silently replaced by the weights'");
        assert!(String::from_utf8_lossy(&preset.stderr).contains("--preset small's model contradicts"));
        let other = srgpt(&[
            "train",
            "--headless",
            "--init",
            out.to_str().unwrap(),
            "--corpus",
            "shakespeare",
            "--out",
            tmp("other").to_str().unwrap(),
        ]);
        assert_eq!(other.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&other.stderr).contains("is not the corpus"), "{}", String::from_utf8_lossy(&other.stderr));
        std::fs::remove_dir_all(out).ok();
    }
    let taken = srgpt(&["export", run.join("fp32.safetensors").to_str().unwrap(), "--out", run.to_str().unwrap()]);
    assert_eq!(taken.status.code(), Some(2), "exporting into a folder that holds files is refused");
    std::fs::remove_dir_all(run).ok();
}

/// examples/bf16_sr_ddp.py, the path to multi-GPU training, on an export (where Python has
/// torch and transformers): one process runs three bf16 steps with stochastic rounding; then
/// two data-parallel processes (gloo, on the CPU) with each optimizer, the example's own AdamW
/// and torchao's (skipped with a note where torchao is missing), must end with bit-identical
/// weights on both ranks (the example compares their SHA-256 and exits 1 if they differ).
#[test]
fn the_multi_gpu_example_trains_an_export_and_its_replicas_stay_identical() {
    let has = |modules: &str| Command::new("python3").args(["-c", &format!("import {modules}")]).output().is_ok_and(|o| o.status.success());
    if !has("torch, transformers") {
        eprintln!("skipped: python3 with torch and transformers is not installed (pip install torch transformers)");
        return;
    }
    let run = tmp("ddp-run");
    trained(&run);
    let out = tmp("ddp-hf");
    assert!(srgpt(&["export", run.join("bf16-sr.safetensors").to_str().unwrap(), "--out", out.to_str().unwrap()]).status.success());
    let corpus = run.join("corpus.txt");
    std::fs::write(&corpus, Corpus::load("builtin").unwrap().bytes()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/bf16_sr_ddp.py");
    let done = Command::new("python3").arg(&script).arg(&out).arg("--corpus").arg(&corpus).args(["--steps", "3"]).output().unwrap();
    assert!(
        done.status.success() && String::from_utf8_lossy(&done.stdout).contains("step 3 loss"),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let mut optimizers = vec!["own"];
    if has("torchao") {
        optimizers.push("torchao");
    } else {
        eprintln!("skipped the data-parallel run with torchao's AdamW: torchao is not installed (pip install torchao)");
    }
    for optimizer in optimizers {
        let ranks = Command::new("python3")
            .args(["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"])
            .arg(&script)
            .arg(&out)
            .arg("--corpus")
            .arg(&corpus)
            .args(["--steps", "3", "--batch", "2", "--optimizer", optimizer])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&ranks.stdout);
        assert!(
            ranks.status.success() && stdout.contains("replicas identical: 2 ranks"),
            "--optimizer {optimizer}: the two ranks' weights must be bit-identical\n{stdout}{}",
            String::from_utf8_lossy(&ranks.stderr)
        );
    }
    for dir in [run, out.clone(), PathBuf::from(format!("{}-out", out.display()))] {
        std::fs::remove_dir_all(dir).ok();
    }
}
