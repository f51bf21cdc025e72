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
