//! Hostile files never panic: checkpoints (truncated, corrupted, lying metadata, huge declared
//! sizes), corpora and metrics files give errors naming what is wrong. Property tests mutate
//! a valid checkpoint; the fixed cases below are kept as regression tests. Needs no GPU.

use proptest::prelude::*;
use srgpt::data::Corpus;
use srgpt::model::config::{ModelConfig, TrainConfig};
use srgpt::model::params::ParamLayout;
use srgpt::model::params::RawState;
use srgpt::precision::Precision;
use srgpt::train::checkpoint::{decode, encode, RunState};

fn valid(precision: Precision) -> Vec<u8> {
    let model = ModelConfig { n_layer: 1, n_head: 2, d: 8, ctx: 4, vocab: 5 };
    let n = ParamLayout::new(&model).total;
    let state = RunState {
        precision: precision.name().into(),
        preset: "micro".into(),
        model,
        train: TrainConfig { batch: 2, lr: 1e-3, warmup: 1, steps: 10, grad_accum: 1 },
        step: 3,
        seed: 1,
        tokens: 24,
        elapsed_s: 0.5,
        corpus: "test".into(),
        eval_every: 5,
        eval_batches: 1,
    };
    let values: Vec<f32> = (0..n).map(|i| i as f32 * 1e-3).collect();
    let raw = RawState {
        params: precision.param_store().encode(&values),
        m: precision.state_store().encode(&values),
        v: precision.state_store().encode(&values),
        extra: precision.extra().map(|e| e.store().encode(&values)),
    };
    encode(&state, precision, &srgpt::data::Tokenizer::Byte(b"abcde".to_vec()), &raw).unwrap()
}

#[test]
fn a_valid_checkpoint_decodes() {
    for p in Precision::ALL {
        let c = decode(&valid(p)).unwrap();
        assert_eq!((c.precision, c.state.step, c.tokenizer.byte_vocab()), (p, 3, &b"abcde"[..]));
    }
}

fn header_and_rest(bytes: &[u8]) -> (serde_json::Value, Vec<u8>) {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    (serde_json::from_slice(&bytes[8..8 + n]).unwrap(), bytes[8 + n..].to_vec())
}

fn rebuild(header: &serde_json::Value, rest: &[u8]) -> Vec<u8> {
    let h = serde_json::to_vec(header).unwrap();
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend(h);
    out.extend_from_slice(rest);
    out
}

#[test]
fn malformed_checkpoints_are_errors_that_say_what_is_wrong() {
    let good = valid(Precision::Bf16Sr);
    let (header, rest) = header_and_rest(&good);
    let mut cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", Vec::new(), "not a safetensors file"),
        ("truncated header length", good[..5].to_vec(), "not a safetensors file"),
        ("truncated data", good[..good.len() - 7].to_vec(), "not fully covered"),
        ("huge header length", [u64::MAX.to_le_bytes().to_vec(), good[8..].to_vec()].concat(), "not a safetensors file"),
        ("header length past the end", [(good.len() as u64).to_le_bytes().to_vec(), good[8..].to_vec()].concat(), "not a safetensors file"),
    ];
    let mut lie = |what: &'static str, f: &dyn Fn(&mut serde_json::Value), expect: &'static str| {
        let mut h = header.clone();
        f(&mut h);
        cases.push((what, rebuild(&h, &rest), expect));
    };
    lie(
        "no metadata",
        &|h| {
            h.as_object_mut().unwrap().remove("__metadata__");
        },
        "no metadata",
    );
    lie("wrong format", &|h| h["__metadata__"]["format"] = "other".into(), "unknown format");
    lie("run metadata not JSON", &|h| h["__metadata__"]["run"] = "{".into(), "bad run metadata");
    lie(
        "unknown precision",
        &|h| {
            let mut run: serde_json::Value = serde_json::from_str(h["__metadata__"]["run"].as_str().unwrap()).unwrap();
            run["precision"] = "fp8".into();
            h["__metadata__"]["run"] = run.to_string().into();
        },
        "unknown precision",
    );
    lie(
        "huge model",
        &|h| {
            let mut run: serde_json::Value = serde_json::from_str(h["__metadata__"]["run"].as_str().unwrap()).unwrap();
            run["model"]["d"] = 65536.into();
            run["model"]["n_layer"] = 1024.into();
            run["model"]["n_head"] = 2.into();
            h["__metadata__"]["run"] = run.to_string().into();
        },
        "implies",
    );
    lie("vocabulary disagrees", &|h| h["__metadata__"]["vocab"] = "[1,2,3]".into(), "vocabulary");
    lie(
        "step past the end",
        &|h| {
            let mut run: serde_json::Value = serde_json::from_str(h["__metadata__"]["run"].as_str().unwrap()).unwrap();
            run["step"] = 99.into();
            h["__metadata__"]["run"] = run.to_string().into();
        },
        "past the run's total",
    );
    lie("wrong dtype", &|h| h["wte"]["dtype"] = "F16".into(), "wte");
    lie("wrong shape", &|h| h["wpe"]["shape"] = serde_json::json!([8, 4]), "wpe");
    lie(
        "missing tensor",
        &|h| {
            h.as_object_mut().unwrap().remove("ln_f.bias");
        },
        "ln_f",
    );
    lie("offsets past the end", &|h| h["wte"]["data_offsets"] = serde_json::json!([0, 1u64 << 40]), "invalid offset for tensor `wte`");
    for (what, bytes, expect) in cases {
        match decode(&bytes) {
            Ok(_) => panic!("{what}: accepted"),
            Err(e) => assert!(e.contains(expect), "{what}: '{e}' does not mention '{expect}'"),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn mutated_checkpoints_never_panic(flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8), cut in any::<prop::sample::Index>(), truncate in any::<bool>()) {
        let mut bytes = valid(Precision::Mixed);
        for (at, value) in flips {
            let i = at.index(bytes.len());
            bytes[i] ^= value | 1;
        }
        if truncate {
            bytes.truncate(cut.index(bytes.len()));
        }
        let _ = decode(&bytes);
    }

    #[test]
    fn any_corpus_bytes_load_or_fail_cleanly(bytes in prop::collection::vec(any::<u8>(), 0..400), ctx in 1u32..64) {
        match Corpus::from_bytes("fuzz", &bytes) {
            Ok(c) => {
                prop_assert!(!bytes.is_empty());
                prop_assert_eq!(c.train.len() + c.val.len(), bytes.len());
                let _ = c.check_context(ctx);
            }
            Err(e) => prop_assert!(bytes.is_empty() && e.to_string().contains("empty")),
        }
    }

    #[test]
    fn any_metrics_text_reads_or_fails_with_a_line_number(lines in prop::collection::vec("[ -~]{0,40}", 0..6)) {
        let dir = std::env::temp_dir().join(format!("srgpt-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("m{}.jsonl", lines.len()));
        std::fs::write(&path, lines.join("\n")).unwrap();
        if let Err(e) = srgpt::train::read_metrics(&path) {
            prop_assert!(e.to_string().contains("line"), "{}", e);
        }
    }
}
