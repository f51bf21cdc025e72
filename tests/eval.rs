//! `srgpt eval`: a checkpoint's loss on consecutive windows equals the CPU reference model's
//! on the same windows; bits per byte is that loss over the bytes the tokens decode to; the
//! whole-text split cuts floor(len / (ctx + 1)) windows; a partial last batch scores as
//! one-window batches do; an export scores as its checkpoint; and a model is never scored
//! under another tokenizer.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use srgpt::data::Corpus;
use srgpt::model::cpu::gpt_forward_cpu;
use srgpt::model::params::ParamLayout;

fn srgpt(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_srgpt")).args(args).env("SRGPT_TUNE", "0").output().unwrap()
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("srgpt-eval-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn eval(args: &[&str]) -> serde_json::Value {
    let out = srgpt(&[&["eval"], args].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A 3-step fp32 tiny run on Shakespeare.
fn trained(run: &Path) {
    let out = srgpt(&[
        "train",
        "--headless",
        "--corpus",
        "shakespeare",
        "--preset",
        "tiny",
        "--batch",
        "4",
        "--steps",
        "3",
        "--eval-every",
        "3",
        "--eval-batches",
        "1",
        "--precision",
        "fp32",
        "--out",
        run.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn eval_scores_consecutive_windows_as_the_reference_model_does() {
    let run = tmp("run");
    trained(&run);
    let ckpt_path = run.join("fp32.safetensors");
    let ckpt_arg = ckpt_path.to_str().unwrap();
    let got = eval(&[ckpt_arg, "--corpus", "shakespeare", "--batch", "4", "--batches", "2"]);
    assert_eq!((got["windows"].as_u64(), got["tokens"].as_u64(), got["bytes"].as_u64()), (Some(8), Some(512), Some(512)));
    assert_eq!((got["split"].as_str(), got["tokenizer"].as_str(), got["precision"].as_str()), (Some("val"), Some("byte"), Some("fp32")));
    let loss = got["loss"].as_f64().unwrap();
    // byte tokens are one byte each: bits per byte is the loss in bits
    assert!((got["bits_per_byte"].as_f64().unwrap() - loss / std::f64::consts::LN_2).abs() < 1e-9);

    // the CPU reference on the same eight windows: val tokens 65k..65k+65, each predicting its last 64
    let ckpt = srgpt::train::checkpoint::load(&ckpt_path).unwrap();
    let cfg = ckpt.state.model;
    let layout = ParamLayout::new(&cfg);
    let weights = srgpt::export::kept_weights(&ckpt);
    let params = weights.store.decode(&weights.bytes, layout.total);
    let val = Corpus::load("shakespeare").unwrap().val.to_vec();
    let t = cfg.ctx as usize;
    let (mut inputs, mut targets) = (Vec::new(), Vec::new());
    for w in 0..8 {
        inputs.extend_from_slice(&val[w * (t + 1)..w * (t + 1) + t]);
        targets.extend_from_slice(&val[w * (t + 1) + 1..(w + 1) * (t + 1)]);
    }
    let reference = gpt_forward_cpu(&cfg, &layout, &params, &inputs, &targets, 8).loss as f64;
    assert!((loss - reference).abs() <= 1e-5 * reference, "eval {loss}, CPU reference {reference}");

    // a partial last batch (8 windows in batches of 3: 3, 3, 2) scores as batches of one do
    let threes = eval(&[ckpt_arg, "--corpus", "shakespeare", "--batch", "3", "--batches", "3"]);
    assert_eq!(threes["windows"].as_u64(), Some(9));
    let nine_ones = eval(&[ckpt_arg, "--corpus", "shakespeare", "--batch", "1", "--batches", "9"]);
    let (a, b) = (threes["loss"].as_f64().unwrap(), nine_ones["loss"].as_f64().unwrap());
    assert!((a - b).abs() <= 1e-6 * b, "batches of 3: {a}, of 1: {b}");

    // the export scores as the checkpoint (fp32 weights both ways)
    let export = tmp("export");
    let exported = srgpt(&["export", ckpt_arg, "--out", export.to_str().unwrap()]);
    assert!(exported.status.success());
    let from_export = eval(&[export.to_str().unwrap(), "--corpus", "shakespeare", "--batch", "4", "--batches", "2"]);
    assert_eq!(from_export["loss"], got["loss"], "the export's loss is the checkpoint's");

    // the whole text: a file of 1000 bytes holds floor(1000 / 65) = 15 windows
    let text = tmp("text").with_extension("txt");
    let body: Vec<u8> = Corpus::text_of("shakespeare").unwrap()[..1000].to_vec();
    std::fs::write(&text, &body).unwrap();
    let all = eval(&[ckpt_arg, "--corpus", text.to_str().unwrap(), "--split", "all"]);
    assert_eq!((all["windows"].as_u64(), all["tokens"].as_u64()), (Some(15), Some(15 * 64)));

    // refused: another tokenizer, a byte the model never saw, a file that is no model
    let refused = |args: &[&str], says: &str| {
        let out = srgpt(&[&["eval"], args].concat());
        assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stderr).contains(says), "expected {says:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    refused(&[ckpt_arg, "--corpus", "shakespeare", "--tokenizer", "gpt2"], "was trained with the byte tokenizer");
    std::fs::write(&text, "naïve".repeat(100)).unwrap();
    refused(&[ckpt_arg, "--corpus", text.to_str().unwrap()], "which is not in the vocabulary");
    refused(&[text.to_str().unwrap(), "--corpus", "shakespeare"], "not a safetensors file");
    std::fs::remove_file(&text).ok();
    for p in [&run, &export] {
        std::fs::remove_dir_all(p).ok();
    }
}

/// A Hugging Face GPT-2 folder as `transformers`' `save_pretrained` and the hub keep one, built
/// here from Hugging Face's description (not srgpt's export): config.json (GPT2Config's
/// fields), model.safetensors (GPT2LMHeadModel's `transformer.`-prefixed names, or with
/// `hub_names` GPT2Model's bare ones as the hub's `gpt2` has them; Conv1D weights (in, out); no
/// lm_head, tied to wte) and GPT-2's vocab.json and merges.txt. Returns the weights in srgpt's
/// layout (linear weights (out, in)), for the CPU reference.
fn hf_gpt2_folder(dir: &Path, cfg: &srgpt::model::config::ModelConfig, hub_names: bool, activation: &str) -> Vec<f32> {
    use safetensors::tensor::{Dtype, TensorView};
    std::fs::create_dir_all(dir).unwrap();
    let config = serde_json::json!({
        "model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "vocab_size": cfg.vocab,
        "n_positions": cfg.ctx, "n_embd": cfg.d, "n_layer": cfg.n_layer, "n_head": cfg.n_head,
        "activation_function": activation, "layer_norm_epsilon": 1e-5, "resid_pdrop": 0.1,
        "embd_pdrop": 0.1, "attn_pdrop": 0.1, "initializer_range": 0.02, "bos_token_id": 50256,
        "eos_token_id": 50256, "torch_dtype": "float32", "transformers_version": "4.57.0",
    });
    std::fs::write(dir.join("config.json"), serde_json::to_string_pretty(&config).unwrap()).unwrap();
    let layout = ParamLayout::new(cfg);
    let mut state = 0x5eed_u64;
    let mut uniform = move || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    let mut params = vec![0.0f32; layout.total];
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for t in &layout.tensors {
        // LayerNorm gains near 1, everything else small
        let gain = t.name.ends_with("ln_1.weight") || t.name.ends_with("ln_2.weight") || t.name == "ln_f.weight";
        let values: Vec<f32> = (0..t.len).map(|_| if gain { 1.0 + 0.2 * uniform() } else { 0.08 * uniform() }).collect();
        params[t.offset..t.offset + t.len].copy_from_slice(&values);
        let hf_name = if t.name == "wte" || t.name == "wpe" { format!("{}.weight", t.name) } else { t.name.clone() };
        let name = if hub_names { hf_name } else { format!("transformer.{hf_name}") };
        // GPT-2's Conv1D keeps a linear layer's weight as (in, out)
        let (shape, data) = if t.shape.len() == 2 && t.name.starts_with("h.") {
            let (rows, cols) = (t.shape[0], t.shape[1]);
            let transposed: Vec<f32> = (0..rows * cols).map(|k| values[(k % rows) * cols + k / rows]).collect();
            (vec![cols, rows], transposed)
        } else {
            (t.shape.clone(), values)
        };
        tensors.push((name, shape, data.iter().flat_map(|x| x.to_le_bytes()).collect()));
    }
    let views: Vec<(String, TensorView)> =
        tensors.iter().map(|(n, s, d)| (n.clone(), TensorView::new(Dtype::F32, s.clone(), d).unwrap())).collect();
    let meta = std::collections::HashMap::from([("format".to_string(), "pt".to_string())]);
    std::fs::write(dir.join("model.safetensors"), safetensors::serialize(views, Some(meta)).unwrap()).unwrap();
    // GPT-2's tokenizer files as the hub keeps them
    let json = serde_json::from_str::<serde_json::Value>(&srgpt::data::Tokenizer::gpt2().json_text()).unwrap();
    std::fs::write(dir.join("vocab.json"), serde_json::to_string(&json["model"]["vocab"]).unwrap()).unwrap();
    let merges: Vec<&str> = json["model"]["merges"].as_array().unwrap().iter().map(|m| m.as_str().unwrap()).collect();
    std::fs::write(dir.join("merges.txt"), format!("#version: 0.2\n{}\n", merges.join("\n"))).unwrap();
    params
}

#[test]
fn a_hugging_face_gpt2_folder_is_scored_and_trained_from() {
    use srgpt::data::Tokenizer;
    let cfg = srgpt::model::config::ModelConfig { n_layer: 2, n_head: 2, d: 64, ctx: 64, vocab: 50257 };
    let folder = tmp("hf-gpt2");
    let params = hf_gpt2_folder(&folder, &cfg, false, "gelu_new");
    let f = folder.to_str().unwrap();
    let got = eval(&[f, "--corpus", "shakespeare", "--batch", "2", "--batches", "2"]);
    assert_eq!((got["tokenizer"].as_str(), got["windows"].as_u64()), (Some("gpt2"), Some(4)));
    // the CPU reference on the same four windows of GPT-2 tokens of the validation text
    let val = Corpus::load_for("shakespeare", &Tokenizer::gpt2()).unwrap().val.to_vec();
    let t = cfg.ctx as usize;
    let (mut inputs, mut targets) = (Vec::new(), Vec::new());
    for w in 0..4 {
        inputs.extend_from_slice(&val[w * (t + 1)..w * (t + 1) + t]);
        targets.extend_from_slice(&val[w * (t + 1) + 1..(w + 1) * (t + 1)]);
    }
    let reference = gpt_forward_cpu(&cfg, &ParamLayout::new(&cfg), &params, &inputs, &targets, 4).loss as f64;
    let loss = got["loss"].as_f64().unwrap();
    assert!((loss - reference).abs() <= 1e-5 * reference, "eval {loss}, CPU reference {reference}");
    // and GPT-2's forward in numpy, written from Hugging Face's names and layout
    if let Some(numpy) =
        python_loss("tests/gpt2_numpy.py", "numpy", &folder, &["--ids", &json(&inputs), "--targets", &json(&targets), "--batch", "4"])
    {
        assert!((loss - numpy).abs() <= 1e-5 * numpy, "eval {loss}, numpy GPT-2 {numpy}");
    }

    // the hub's own names (GPT2Model's, no prefix) and a tokenizer.json instead of vocab.json
    // and merges.txt: the same model
    let hub = tmp("hf-gpt2-hub");
    hf_gpt2_folder(&hub, &cfg, true, "gelu_new");
    for file in ["vocab.json", "merges.txt"] {
        std::fs::remove_file(hub.join(file)).unwrap();
    }
    std::fs::write(hub.join("tokenizer.json"), Tokenizer::gpt2().json_text()).unwrap();
    let from_hub = eval(&[hub.to_str().unwrap(), "--corpus", "shakespeare", "--batch", "2", "--batches", "2"]);
    assert_eq!(from_hub["loss"], got["loss"]);

    // train --init starts from it, at its context or a shorter one (its first positions)
    let run = tmp("hf-gpt2-run");
    let out = srgpt(&[
        "train",
        "--headless",
        "--init",
        f,
        "--corpus",
        "shakespeare",
        "--tokenizer",
        "gpt2",
        "--ctx",
        "32",
        "--batch",
        "2",
        "--steps",
        "2",
        "--eval-every",
        "0",
        "--eval-batches",
        "1",
        "--precision",
        "bf16-sr",
        "--out",
        run.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let ckpt = srgpt::train::checkpoint::load(&run.join("bf16-sr.safetensors")).unwrap();
    assert_eq!((ckpt.state.model.ctx, ckpt.state.model.vocab, ckpt.tokenizer.name()), (32, 50257, "gpt2"));

    // refused by name: what srgpt's model is not, a tensor of the wrong shape, a corpus of
    // another tokenizer
    let refused = |args: &[&str], says: &str| {
        let out = srgpt(args);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: expected {says:?} in {err}");
    };
    let relu = tmp("hf-gpt2-relu");
    hf_gpt2_folder(&relu, &cfg, false, "relu");
    refused(&["eval", relu.to_str().unwrap(), "--corpus", "shakespeare"], "activation_function relu");
    let narrow = tmp("hf-gpt2-shape");
    hf_gpt2_folder(&narrow, &cfg, false, "gelu_new");
    let mut config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(narrow.join("config.json")).unwrap()).unwrap();
    config["n_layer"] = 3.into();
    std::fs::write(narrow.join("config.json"), config.to_string()).unwrap();
    refused(&["eval", narrow.to_str().unwrap(), "--corpus", "shakespeare"], "config.json says 3 layers, the weights hold 2");
    config["n_layer"] = 2.into();
    config["n_head"] = 5.into();
    std::fs::write(narrow.join("config.json"), config.to_string()).unwrap();
    refused(&["eval", narrow.to_str().unwrap(), "--corpus", "shakespeare"], "--n-head 5 does not divide --d 64");
    // a weight stored (out, in) where GPT-2's Conv1D keeps (in, out)
    config["n_head"] = 2.into();
    std::fs::write(narrow.join("config.json"), config.to_string()).unwrap();
    let bytes = std::fs::read(narrow.join("model.safetensors")).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let views: Vec<(String, safetensors::tensor::TensorView)> = file
        .tensors()
        .into_iter()
        .map(|(name, v)| {
            let mut shape = v.shape().to_vec();
            if name == "transformer.h.1.mlp.c_fc.weight" {
                shape.reverse();
            }
            let view = safetensors::tensor::TensorView::new(v.dtype(), shape, v.data()).unwrap();
            (name, view)
        })
        .collect();
    std::fs::write(narrow.join("model.safetensors"), safetensors::serialize(views, None).unwrap()).unwrap();
    refused(
        &["eval", narrow.to_str().unwrap(), "--corpus", "shakespeare"],
        "tensor transformer.h.1.mlp.c_fc.weight is [256, 64], expected [64, 256]",
    );
    let byte_run = tmp("hf-gpt2-byte");
    let init = ["train", "--headless", "--init", f, "--corpus", "shakespeare", "--tokenizer", "byte", "--out", byte_run.to_str().unwrap()];
    refused(&init, "its vocabulary");
    for p in [&folder, &hub, &run, &relu, &narrow] {
        std::fs::remove_dir_all(p).ok();
    }
}

fn json(ids: &[u32]) -> String {
    serde_json::to_string(ids).unwrap()
}

/// The `loss <value>` a Python check prints, or None (said) where python3 lacks `module`; in
/// CI numpy must be there.
fn python_loss(script: &str, module: &str, folder: &Path, args: &[&str]) -> Option<f64> {
    let has = Command::new("python3").args(["-c", &format!("import {module}")]).output();
    if !has.is_ok_and(|o| o.status.success()) {
        assert!(module != "numpy" || std::env::var_os("SRGPT_CI").is_none(), "CI needs python3 with numpy");
        eprintln!("SKIPPED {script}: python3 with {module} is not installed");
        return None;
    }
    let out = Command::new("python3").arg(Path::new(env!("CARGO_MANIFEST_DIR")).join(script)).arg(folder).args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{script} failed: {stdout}{}", String::from_utf8_lossy(&out.stderr));
    Some(stdout.trim().strip_prefix("loss ").and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("{script}: {stdout}")))
}

/// Where torch and transformers are installed: a GPT2LMHeadModel that transformers made and
/// saved with `save_pretrained`, scored by `srgpt eval` as transformers scores it.
#[test]
fn srgpt_eval_of_a_model_transformers_saved_is_transformers_loss() {
    use srgpt::data::Tokenizer;
    let folder = tmp("hf-saved");
    std::fs::create_dir_all(&folder).unwrap();
    let json_tokenizer: serde_json::Value = serde_json::from_str(&Tokenizer::gpt2().json_text()).unwrap();
    std::fs::write(folder.join("vocab.json"), serde_json::to_string(&json_tokenizer["model"]["vocab"]).unwrap()).unwrap();
    let merges: Vec<&str> = json_tokenizer["model"]["merges"].as_array().unwrap().iter().map(|m| m.as_str().unwrap()).collect();
    std::fs::write(folder.join("merges.txt"), format!("#version: 0.2\n{}\n", merges.join("\n"))).unwrap();
    // srgpt eval's windows: consecutive, from the first validation token
    let val = Corpus::load_for("shakespeare", &Tokenizer::gpt2()).unwrap().val.to_vec();
    let windows: Vec<Vec<u32>> = (0..4).map(|w| val[w * 65..(w + 1) * 65].to_vec()).collect();
    let Some(transformers) = python_loss(
        "tests/hf_pretrained_check.py",
        "torch, transformers",
        &folder,
        &["--windows", &serde_json::to_string(&windows).unwrap()],
    ) else {
        std::fs::remove_dir_all(&folder).ok();
        return;
    };
    let got = eval(&[folder.to_str().unwrap(), "--corpus", "shakespeare", "--batch", "2", "--batches", "2"]);
    let loss = got["loss"].as_f64().unwrap();
    assert!((loss - transformers).abs() <= 1e-4 * transformers, "srgpt eval {loss}, transformers {transformers}");
    std::fs::remove_dir_all(&folder).ok();
}
