//! The srgpt binary end to end: bad input fails with a message and its exit code, a run
//! writes its files, and an interrupted run resumed with --resume repeats the losses.

use std::path::Path;
use std::process::{Command, Output};

fn srgpt(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_srgpt")).args(args).output().expect("run srgpt")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn tmp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("srgpt-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

const MICRO: &[&str] = &[
    "train",
    "--headless",
    "--n-layer",
    "1",
    "--n-head",
    "2",
    "--d",
    "16",
    "--ctx",
    "16",
    "--batch",
    "4",
    "--eval-every",
    "4",
    "--eval-batches",
    "2",
];

#[test]
fn bad_input_is_refused_with_a_message_and_exit_code_2() {
    let dir = tmp("bad");
    let empty = dir.join("empty.txt");
    std::fs::write(&empty, "").unwrap();
    let short = dir.join("short.txt");
    std::fs::write(&short, "abcdefghij".repeat(5)).unwrap();
    let garbage = dir.join("garbage.safetensors");
    std::fs::write(&garbage, b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}").unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["train", "--headless", "--corpus", "/no/such/file"], "cannot read corpus"),
        (vec!["train", "--headless", "--corpus", empty.to_str().unwrap()], "is empty"),
        (vec!["train", "--headless", "--corpus", short.to_str().unwrap()], "too short"),
        (vec!["train", "--headless", "--preset", "huge"], "invalid value 'huge' for '--preset"),
        (vec!["train", "--headless", "--d", "60", "--n-head", "7"], "divisible"),
        (vec!["train", "--headless", "--d", "0"], "--d"),
        (vec!["train", "--headless", "--ctx", "33"], "even"),
        (vec!["train", "--headless", "--steps", "0"], "--steps"),
        (vec!["train", "--headless", "--precision", "fp8"], "invalid value 'fp8' for '--precision"),
        (
            vec!["train", "--headless", "--batch", "100000", "--d", "512", "--n-head", "8", "--ctx", "512"],
            "max_storage_buffer_binding_size",
        ),
        (vec!["train", "--headless", "--no-such-flag"], "unexpected argument"),
        (vec!["train", "--headless", "--batch", "4", "--grad-accum", "3"], "--grad-accum 3 must divide --batch 4"),
        (vec!["train", "--headless", "--grad-accum", "0"], "--grad-accum"),
        (vec!["plan", "--batch", "6", "--grad-accum", "4"], "--grad-accum 4 must divide --batch 6"),
        (vec!["plan", "--vocab", "70000"], "--vocab"),
        (vec!["sample", "--checkpoint", "/no/such.safetensors"], "cannot read checkpoint"),
        (vec!["sample", "--checkpoint", garbage.to_str().unwrap()], "not usable"),
    ];
    for (args, message) in cases {
        let out = srgpt(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(message), "{args:?}: expected '{message}' in: {}", stderr(&out));
        assert!(!stderr(&out).contains("panicked"), "{args:?} panicked");
    }
}

#[test]
fn info_json_names_the_chosen_adapter() {
    let out = srgpt(&["info", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in ["name", "backend", "device_type", "features", "limits"] {
        assert!(doc["adapter"].get(key).is_some(), "adapter.{key} missing: {doc}");
    }
    let missing = srgpt(&["info", "--adapter", "no-such-adapter-anywhere"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(stderr(&missing).contains("no adapter matches"));
}

/// What is kept for the next launch, and `srgpt info` saying so: a run in an empty cache folder
/// writes the tuning cache and, where the backend has one (Vulkan), the pipeline cache — its
/// SHA-256 first, then the driver's data; a damaged pipeline cache is set aside with a note,
/// the run goes on, and the file is written whole again.
#[test]
fn a_run_keeps_its_caches_and_a_damaged_pipeline_cache_is_set_aside() {
    let cache = tmp("caches");
    let run = |out: &Path| {
        Command::new(env!("CARGO_BIN_EXE_srgpt"))
            .args(MICRO)
            .args(["--steps", "4", "--precision", "fp32", "--out"])
            .arg(out)
            .env("SRGPT_CACHE_DIR", &cache)
            .output()
            .unwrap()
    };
    let first = run(&cache.join("run1"));
    assert!(first.status.success(), "{}", stderr(&first));
    let info = Command::new(env!("CARGO_BIN_EXE_srgpt")).args(["info", "--json"]).env("SRGPT_CACHE_DIR", &cache).output().unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    let caches = &doc["caches"];
    let tuning = Path::new(caches["tuning"]["path"].as_str().expect("the tuning cache's file"));
    assert!(tuning.starts_with(&cache) && tuning.is_file(), "{caches}");
    assert!(caches["tuning"]["choices"].as_u64().unwrap() > 0, "{caches}");
    if caches["pipelines"]["offered"] != true {
        eprintln!("skipped the pipeline cache half: this adapter's backend has none");
        std::fs::remove_dir_all(&cache).ok();
        return;
    }
    let pipelines = std::path::PathBuf::from(caches["pipelines"]["path"].as_str().expect("the pipeline cache's file"));
    let whole = |bytes: &[u8]| {
        use sha2::Digest;
        bytes.len() > 32 && sha2::Sha256::digest(&bytes[32..]).as_slice() == &bytes[..32]
    };
    let bytes = std::fs::read(&pipelines).expect("the pipeline cache is written by a run");
    assert!(whole(&bytes), "the file starts with the SHA-256 of the rest");
    assert_eq!(caches["pipelines"]["bytes"].as_u64(), Some(bytes.len() as u64), "{caches}");
    let mut damaged = bytes.clone();
    let last = damaged.len() - 1;
    damaged[last] ^= 0xff;
    std::fs::write(&pipelines, &damaged).unwrap();
    let second = run(&cache.join("run2"));
    assert!(second.status.success(), "a damaged pipeline cache does not stop a run: {}", stderr(&second));
    assert!(stderr(&second).contains("ignoring the pipeline cache"), "{}", stderr(&second));
    assert!(whole(&std::fs::read(&pipelines).unwrap()), "the file is written whole again");
    std::fs::remove_dir_all(&cache).ok();
}

/// `--adapter` picks by what `srgpt info` prints: a part of the name, the backend or the
/// device type; GL and unknown backends are refused by name.
#[test]
fn adapters_are_chosen_by_what_info_prints() {
    let info = srgpt(&["info", "--json"]);
    let doc: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    let chosen = &doc["adapter"];
    let name = chosen["name"].as_str().unwrap();
    for pick in [chosen["backend"].as_str().unwrap(), chosen["device_type"].as_str().unwrap(), &name[..name.len().min(6)]] {
        let out = srgpt(&["info", "--json", "--adapter", pick]);
        assert!(out.status.success(), "--adapter {pick}: {}", stderr(&out));
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(doc["adapter"]["name"], chosen["name"], "--adapter {pick}");
    }
    let gl = srgpt(&["info", "--adapter", "gl"]);
    assert_eq!(gl.status.code(), Some(2));
    assert!(stderr(&gl).contains("--adapter gl: srgpt does not compute on wgpu's GL backend"), "{}", stderr(&gl));
    for (value, says) in [("foo", "unknown backend 'foo' (vulkan, metal, dx12, gl)"), ("gl", "does not compute on wgpu's GL backend")] {
        let out = Command::new(env!("CARGO_BIN_EXE_srgpt")).arg("info").env("WGPU_BACKEND", value).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "WGPU_BACKEND={value}");
        assert!(stderr(&out).contains(says), "WGPU_BACKEND={value}: {}", stderr(&out));
    }
    let vulkan = Command::new(env!("CARGO_BIN_EXE_srgpt")).args(["info"]).env("WGPU_BACKEND", "vulkan").output().unwrap();
    assert!(vulkan.status.success() || chosen["backend"] != "vulkan");
    assert!(!String::from_utf8_lossy(&srgpt(&["info"]).stdout).contains("(gl,"), "GL adapters are not listed");
}

fn metrics(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn an_interrupted_run_resumed_from_its_checkpoints_repeats_the_losses() {
    let (whole, parts) = (tmp("whole"), tmp("parts"));
    let run = |extra: &[&str], out: &Path| {
        let mut args = MICRO.to_vec();
        args.extend_from_slice(&["--steps", "12", "--precision", "fp32,bf16-sr", "--out", out.to_str().unwrap()]);
        args.extend_from_slice(extra);
        let o = srgpt(&args);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    };
    run(&[], &whole);
    run(&["--stop-at", "6"], &parts);
    let resume = format!("{},{}", parts.join("fp32.safetensors").display(), parts.join("bf16-sr.safetensors").display());
    let o = srgpt(&["train", "--headless", "--resume", &resume]);
    assert!(o.status.success(), "resume: {}", stderr(&o));

    // everything but the timings must agree, losses bit for bit
    let losses = |dir: &Path| -> Vec<serde_json::Value> {
        metrics(dir)
            .into_iter()
            .map(|mut l| {
                let o = l.as_object_mut().unwrap();
                o.remove("elapsed_s");
                o.remove("tokens_per_s");
                o.remove("gpu_s");
                l
            })
            .collect()
    };
    assert_eq!(losses(&whole), losses(&parts));
    let summary: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(parts.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["steps"], 12);
    for r in summary["runs"].as_array().unwrap() {
        for key in ["precision", "final_train_loss", "final_val_loss", "state_bytes_per_param", "tokens_per_s", "wall_s"] {
            assert!(r.get(key).is_some(), "summary run lacks {key}");
        }
    }
}

#[test]
fn a_diverging_run_is_stopped_and_named_with_exit_code_3() {
    let dir = tmp("diverge");
    let mut args = MICRO.to_vec();
    args.extend_from_slice(&[
        "--steps",
        "8",
        "--warmup",
        "0",
        "--lr",
        "1e30",
        "--precision",
        "fp32,bf16-sr",
        "--out",
        dir.to_str().unwrap(),
    ]);
    let out = srgpt(&args);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("run fp32 diverged at step") && err.contains("run bf16-sr diverged at step"), "{err}");
    let summary: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    assert!(summary["runs"].as_array().unwrap().iter().all(|r| r["status"] == "diverged"));
}

#[test]
fn no_adapter_at_all_says_how_to_get_one_with_exit_code_1() {
    // the Vulkan loader with no driver, and no other backend
    for args in [&["info"][..], &["train", "--headless", "--steps", "1"][..]] {
        let out = Command::new(env!("CARGO_BIN_EXE_srgpt"))
            .args(args)
            .env("WGPU_BACKEND", "vulkan")
            .env("VK_ICD_FILENAMES", "/nonexistent/icd.json")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("mesa-vulkan-drivers"), "{args:?}: {}", stderr(&out));
        assert!(!stderr(&out).contains("panicked"));
    }
}

#[test]
fn shader_prints_the_assembled_wgsl_of_a_variant() {
    let out = srgpt(&["shader", "layernorm_forward", "--define", "ACT=bf16", "--define", "ROW_THREADS=4"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    // the helpers a kernel calls by generated or included names are all there, defined
    for helper in ["fn layernorm_forward", "fn row_sum", "fn inp_get2", "fn out_set2", "fn pcg3d"] {
        assert!(text.contains(helper), "no '{helper}' in the printed source");
    }
    assert!(!text.contains("{{") && !text.contains("#include") && !text.contains("#if"), "unassembled source");
    assert!(naga::front::wgsl::parse_str(&text).is_ok(), "the printed source is not WGSL");
    let listed = srgpt(&["shader", "matmul", "--list", "--define", "A=bf16"]);
    let names = String::from_utf8(listed.stdout).unwrap();
    assert!(names.lines().count() > 1 && names.lines().all(|l| l.starts_with("matmul.wgsl:") && l.contains("A=bf16")), "{names}");
    for (args, message) in
        [(&["shader", "nope"][..], "no shader or entry point 'nope'"), (&["shader", "gelu", "--define", "X=1"][..], "no variant")]
    {
        let o = srgpt(args);
        assert_eq!(o.status.code(), Some(2));
        assert!(stderr(&o).contains(message), "{}", stderr(&o));
    }
}

/// Shakespeare is built in, byte for byte the corpus README's results were measured on, and
/// trains by name from the CLI (the page's query string: tests/dashboard.rs).
#[test]
fn shakespeare_is_built_in() {
    let c = srgpt::data::Corpus::load("shakespeare").unwrap();
    assert_eq!(c.sha256, "1e4f4c9b4a7010d27d177eea410a36fb5923c05398445cb5fda9020fe6da2d81");
    assert_eq!((c.train.len() + c.val.len(), c.vocab_size()), (4_850_308, 83));
    let dir = tmp("shakespeare");
    let out = srgpt(
        &["train", "--headless", "--corpus", "shakespeare", "--n-layer", "1", "--d", "16", "--n-head", "2", "--ctx", "16"]
            .into_iter()
            .chain(["--batch", "2", "--steps", "2", "--precision", "bf16-sr", "--out", dir.to_str().unwrap()])
            .collect::<Vec<_>>(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let summary: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    assert!(summary.to_string().contains("shakespeare"), "the summary names the corpus: {summary}");
    std::fs::remove_dir_all(dir).ok();
}

/// A build without the dashboard (`cargo build --no-default-features`) is the whole command
/// line: `train` without --headless says why it trains headless, and `view` and the
/// dashboard's flags are refused, never ignored.
#[cfg(not(feature = "ui"))]
#[test]
fn without_the_ui_feature_train_is_headless_and_view_is_refused() {
    let dir = tmp("headless-build");
    let mut args: Vec<&str> = MICRO.iter().copied().filter(|a| *a != "--headless").collect();
    let out_dir = dir.join("run");
    args.extend(["--steps", "2", "--precision", "bf16-sr", "--out", out_dir.to_str().unwrap()]);
    let out = Command::new(env!("CARGO_BIN_EXE_srgpt")).args(&args).env("DISPLAY", ":99").output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("built without the dashboard (cargo feature `ui`): training headless"), "{}", stderr(&out));
    assert!(out_dir.join("summary.json").exists());
    let view = srgpt(&["view", out_dir.to_str().unwrap()]);
    assert_eq!(view.status.code(), Some(2));
    assert!(stderr(&view).contains("built without the dashboard"), "{}", stderr(&view));
    let shot = srgpt(&["train", "--screenshot", "x.png", "--steps", "2"]);
    assert_eq!(shot.status.code(), Some(2));
    assert!(stderr(&shot).contains("--screenshot works only in the dashboard"), "{}", stderr(&shot));
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn plan_gives_each_modes_memory_and_what_does_not_fit_without_gpu_work() {
    let out = srgpt(&["plan", "--preset", "gpt2", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let n = plan["parameters"].as_u64().unwrap();
    assert_eq!(n, 124_439_808, "GPT-2 124M with its 50,257-token tied head and 1024 positions");
    let modes = plan["modes"].as_array().unwrap();
    let names: Vec<&str> = modes.iter().map(|m| m["precision"].as_str().unwrap()).collect();
    assert_eq!(names, ["fp32", "bf16", "bf16-sr"]);
    for m in modes {
        let state_bytes = ["parameters", "master", "compensation", "gradients", "optimizer_state"]
            .iter()
            .map(|k| m["memory"][k].as_u64().unwrap())
            .sum::<u64>();
        let per_param = if m["precision"] == "fp32" { 16 } else { 8 };
        // the embedding's rows padded to 50,304 as llm.c pads them: 47 rows of 768 more in
        // every buffer of the block, none of them parameters
        let padding = (50304 - 50257) * 768;
        assert_eq!(state_bytes, per_param * (n + padding), "{}: training state", m["precision"]);
        // the head's logits a chunk of 640 rows at a time (8 * 1024 rows would be 1.6 GB)
        assert_eq!(m["logits_bytes"].as_u64().unwrap(), 640 * 50304 * 4, "a chunk of the logits of batch 8, ctx 1024 in f32");
        // in a browser, by WebGPU's defaults: a buffer of at most 256 MiB (fp32's weights are
        // 475 MiB; bf16's 237 MiB fit), a binding of at most 128 MiB (batch 8's attention
        // scores are 192 MiB a layer)
        let browser: Vec<&str> =
            m["over_limit"].as_array().unwrap().last().unwrap().as_array().unwrap().iter().map(|b| b.as_str().unwrap()).collect();
        assert!(browser.iter().any(|b| b.starts_with("'att'")), "{browser:?}");
        assert_eq!(browser.iter().any(|b| b.starts_with("'parameters'")), m["precision"] == "fp32", "{browser:?}");
    }
    // micro-batches divide the activations, not the training state
    let split: serde_json::Value =
        serde_json::from_slice(&srgpt(&["plan", "--preset", "gpt2", "--grad-accum", "8", "--json"]).stdout).unwrap();
    let (whole, eighth) = (&plan["modes"][0]["memory"], &split["modes"][0]["memory"]);
    assert_eq!(whole["parameters"], eighth["parameters"]);
    assert!(eighth["activations"].as_u64().unwrap() * 7 < whole["activations"].as_u64().unwrap());
    let text = String::from_utf8(srgpt(&["plan", "--preset", "tiny"]).stdout).unwrap();
    assert!(text.contains("fits") && text.contains("B/param"), "{text}");
}
