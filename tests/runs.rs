//! Runs are never lost in ordinary use: Ctrl-C stops a run with checkpoints and a summary,
//! and `--resume` then finishes it with the losses of an uninterrupted run; a folder holding
//! a run is never reused by another; resuming a finished run changes nothing; every flag's
//! bad value is refused by name; the progress line reports the step its losses belong to.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::logged_losses;

fn srgpt() -> Command {
    Command::new(env!("CARGO_BIN_EXE_srgpt"))
}

fn run(args: &[&str]) -> Output {
    srgpt().args(args).output().expect("run srgpt")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("srgpt-runs-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// A micro model: a step takes milliseconds, so a few hundred steps take seconds.
fn micro(steps: u32, out: &Path) -> Vec<String> {
    let mut a: Vec<String> =
        ["train", "--headless", "--n-layer", "1", "--n-head", "2", "--d", "16", "--ctx", "16", "--batch", "4"].map(String::from).to_vec();
    a.extend(["--eval-every", "10", "--eval-batches", "2", "--seed", "3", "--precision", "fp32,bf16-sr"].map(String::from));
    a.extend(["--steps".to_string(), steps.to_string(), "--out".to_string(), out.display().to_string()]);
    a
}

fn summary(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap()
}

/// Every file of a folder with its bytes.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap()))
        .collect();
    files.sort();
    files
}

/// The highest step in a run folder's metrics so far.
fn logged_step(dir: &Path) -> u64 {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["step"].as_u64())
        .max()
        .unwrap_or(0)
}

fn signal(pid: u32, name: &str) {
    assert!(Command::new("kill").args([&format!("-{name}"), &pid.to_string()]).status().unwrap().success());
}

/// Starts a run and sends it `sig` once it has logged step 5.
fn interrupt(args: &[String], dir: &Path, sig: &str) -> Output {
    let child = srgpt().args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let started = Instant::now();
    while logged_step(dir) < 5 {
        assert!(started.elapsed() < Duration::from_secs(120), "the run never reached step 5");
        std::thread::sleep(Duration::from_millis(20));
    }
    signal(child.id(), sig);
    child.wait_with_output().unwrap()
}

/// A run stopped by `sig` (exit `code`): every run "stopped" at one step in summary.json, a
/// checkpoint of that step per mode, the command that continues it; resumed, it ends with the
/// losses of an uninterrupted run bit for bit.
fn stops_and_resumes_exactly(sig: &str, code: i32) {
    let (whole, parts) = (tmp(&format!("whole-{sig}")), tmp(&format!("parts-{sig}")));
    let o = srgpt().args(micro(1000, &whole)).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));

    let o = interrupt(&micro(1000, &parts), &parts, sig);
    assert_eq!(o.status.code(), Some(code), "{}", stderr(&o));
    let s = summary(&parts);
    let stopped_at = s["runs"][0]["steps_completed"].as_u64().unwrap();
    assert!(stopped_at > 0 && stopped_at < 1000, "stopped at {stopped_at}: the signal missed the run");
    for r in s["runs"].as_array().unwrap() {
        assert_eq!(r["status"], "stopped", "{s}");
        assert_eq!(r["steps_completed"].as_u64(), Some(stopped_at));
        let ckpt = srgpt::train::checkpoint::load(&parts.join(format!("{}.safetensors", r["precision"].as_str().unwrap()))).unwrap();
        assert_eq!(ckpt.state.step as u64, stopped_at, "the checkpoint is of the step the run stopped at");
    }
    assert!(stderr(&o).contains("srgpt train --headless --resume"), "how to continue: {}", stderr(&o));

    let resume = format!("{},{}", parts.join("fp32.safetensors").display(), parts.join("bf16-sr.safetensors").display());
    let o = run(&["train", "--headless", "--resume", &resume]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(logged_losses(&parts), logged_losses(&whole), "the resumed run's losses differ from the uninterrupted run's");
    assert!(summary(&parts)["runs"].as_array().unwrap().iter().all(|r| r["status"] == "done" && r["steps_completed"] == 1000));
    std::fs::remove_dir_all(whole).ok();
    std::fs::remove_dir_all(parts).ok();
}

#[test]
fn ctrl_c_stops_with_checkpoints_and_resume_finishes_with_the_uninterrupted_losses() {
    stops_and_resumes_exactly("INT", 130);
}

#[test]
fn sigterm_stops_the_same_way_with_exit_code_143() {
    stops_and_resumes_exactly("TERM", 143);
}

#[test]
fn a_second_ctrl_c_exits_at_once_and_the_checkpoints_on_disk_still_load() {
    let dir = tmp("twice");
    let mut args = micro(100_000, &dir);
    args.extend(["--ckpt-every", "1"].map(String::from));
    let child = srgpt().args(&args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let started = Instant::now();
    while logged_step(&dir) < 5 {
        assert!(started.elapsed() < Duration::from_secs(120), "the run never reached step 5");
        std::thread::sleep(Duration::from_millis(20));
    }
    signal(child.id(), "INT");
    signal(child.id(), "INT");
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    for mode in ["fp32", "bf16-sr"] {
        let path = dir.join(format!("{mode}.safetensors"));
        let ckpt = srgpt::train::checkpoint::load(&path).unwrap_or_else(|e| panic!("{mode}: {e}"));
        assert!(ckpt.state.step >= 1);
    }
    std::fs::remove_dir_all(dir).ok();
}

/// A graceful stop that would never end (its checkpoint write held by the test hook, as a
/// write to a hung disk would be): the second signal ends the process at once, and the
/// half-written file never takes a checkpoint's name.
#[test]
fn a_second_signal_ends_a_graceful_stop_that_hangs() {
    for (first, second, code) in [("INT", "INT", 130), ("TERM", "INT", 130), ("INT", "TERM", 143)] {
        let dir = tmp(&format!("hung-{first}-{second}"));
        let mut args = micro(100_000, &dir);
        // no checkpoint before the stop: the stop's is the first write of fp32.safetensors
        args.extend(["--ckpt-every", "0", "--ckpt-minutes", "0"].map(String::from));
        let child = srgpt()
            .args(&args)
            .env("SRGPT_TEST_PAUSE_WRITE", "fp32.safetensors:1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let started = Instant::now();
        while logged_step(&dir) < 5 {
            assert!(started.elapsed() < Duration::from_secs(120), "the run never reached step 5");
            std::thread::sleep(Duration::from_millis(20));
        }
        signal(child.id(), first);
        let paused = dir.join(".fp32.safetensors.tmp.paused");
        while !paused.exists() {
            assert!(started.elapsed() < Duration::from_secs(120), "the graceful stop never began its checkpoint");
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut child = child;
        let signalled = Instant::now();
        signal(child.id(), second);
        while child.try_wait().unwrap().is_none() {
            if signalled.elapsed() > Duration::from_secs(15) {
                child.kill().ok();
                panic!("{first} then {second}: still running 15 s after the second signal");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let o = child.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(code), "{first} then {second}: {}", stderr(&o));
        assert!(stderr(&o).contains("again: exiting at once"), "{}", stderr(&o));
        assert!(!dir.join("fp32.safetensors").exists(), "a half-written checkpoint took the checkpoint's name");
        std::fs::remove_dir_all(dir).ok();
    }
}

#[test]
fn a_folder_that_holds_a_run_is_refused_and_left_byte_for_byte() {
    let dir = tmp("reused");
    let o = srgpt().args(micro(6, &dir)).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let before = snapshot(&dir);
    let mut again = micro(2, &dir);
    let modes = again.iter().position(|a| a == "fp32,bf16-sr").unwrap();
    again[modes] = "fp32".into();
    let o = srgpt().args(&again).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("holds an earlier run") && err.contains("--resume") && err.contains("--out"), "{err}");
    assert_eq!(snapshot(&dir), before, "the earlier run's files changed");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn resuming_a_finished_run_twice_changes_nothing() {
    let dir = tmp("finished");
    let o = srgpt().args(micro(6, &dir)).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let before = snapshot(&dir);
    for _ in 0..2 {
        let o = run(&["train", "--headless", "--resume", dir.to_str().unwrap()]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(stderr(&o).contains("already at step 6 of 6"), "{}", stderr(&o));
        assert_eq!(snapshot(&dir), before, "resuming a finished run changed its folder");
    }
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn resuming_some_runs_updates_their_entries_and_keeps_the_others() {
    let dir = tmp("some");
    let mut args = micro(12, &dir);
    args.extend(["--stop-at", "5"].map(String::from));
    let o = srgpt().args(&args).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let s = summary(&dir);
    assert!(s["runs"].as_array().unwrap().iter().all(|r| r["status"] == "stopped" && r["steps_completed"] == 5), "{s}");
    // the last evaluation was at step 0: no final val loss, the last one named with its step
    assert!(s["runs"][0]["final_val_loss"].is_null() && s["runs"][0]["last_val_loss_step"] == 0, "{s}");
    let o = run(&["train", "--headless", "--resume", dir.join("bf16-sr.safetensors").to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let after = summary(&dir);
    assert_eq!(after["runs"][0], s["runs"][0], "the run not resumed keeps its entry");
    assert_eq!(after["runs"][1]["status"], "done");
    assert_eq!(after["runs"][1]["steps_completed"], 12);
    assert!(after["runs"][1]["final_val_loss"].as_f64().is_some_and(f64::is_finite));
    // metrics: fp32 stays at step 5, bf16-sr runs on to 12 without going back
    let steps = |run: &str| logged_losses(&dir).iter().filter(|l| l["run"] == run).map(|l| l["step"].as_u64().unwrap()).collect::<Vec<_>>();
    assert_eq!(steps("fp32").last(), Some(&5));
    let bf16 = steps("bf16-sr");
    assert!(bf16.windows(2).all(|w| w[0] <= w[1]) && bf16.last() == Some(&12), "{bf16:?}");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn summary_holds_the_whole_configuration() {
    let dir = tmp("summary");
    let o = srgpt().args(micro(4, &dir)).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let s = summary(&dir);
    for key in [
        "srgpt_version",
        "adapter",
        "preset",
        "n_layer",
        "n_head",
        "d",
        "ctx",
        "vocab",
        "batch",
        "lr",
        "warmup",
        "steps",
        "seed",
        "corpus",
        "corpus_sha256",
        "tokenizer",
        "val_bytes_per_token",
    ] {
        assert!(!s[key].is_null(), "summary.json lacks {key}: {s}");
    }
    assert_eq!((s["d"].as_u64(), s["batch"].as_u64(), s["seed"].as_u64(), s["steps"].as_u64()), (Some(16), Some(4), Some(3), Some(4)));
    assert_eq!(s["corpus"], "builtin");
    assert_eq!(s["corpus_sha256"].as_str().unwrap().len(), 64);
    // byte tokens are one byte each: bits per byte is the loss in bits
    assert_eq!((s["tokenizer"].as_str(), s["val_bytes_per_token"].as_f64()), (Some("byte"), Some(1.0)));
    for r in s["runs"].as_array().unwrap() {
        assert_eq!(r["status"], "done");
        assert_eq!(r["steps_completed"], 4);
        assert!(r["final_val_loss"].as_f64().is_some() && r["final_train_loss"].as_f64().is_some(), "{r}");
        let (loss, bpb) = (r["final_val_loss"].as_f64().unwrap(), r["last_val_bits_per_byte"].as_f64().unwrap());
        assert!((bpb - loss / std::f64::consts::LN_2).abs() < 1e-6, "{r}");
    }
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn without_out_a_run_gets_a_dated_folder() {
    let cwd = tmp("dated");
    std::fs::create_dir_all(&cwd).unwrap();
    let mut args = micro(2, Path::new("unused"));
    args.truncate(args.len() - 2);
    let o = srgpt().args(&args).current_dir(&cwd).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let runs: Vec<String> = std::fs::read_dir(cwd.join("runs")).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
    assert_eq!(runs.len(), 1);
    let name = runs[0].as_bytes();
    // 2026-11-30_14-05-12
    let shape = name.len() == 19
        && name.iter().enumerate().all(|(i, &c)| match i {
            4 | 7 | 13 | 16 => c == b'-',
            10 => c == b'_',
            _ => c.is_ascii_digit(),
        });
    assert!(shape, "runs/{} is not runs/<date>_<time>", runs[0]);
    std::fs::remove_dir_all(cwd).ok();
}

#[test]
fn the_progress_line_reports_each_loss_with_its_own_step() {
    let dir = tmp("progress");
    let o = srgpt().args(micro(12, &dir)).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    let last = err.lines().rfind(|l| l.starts_with("step ")).expect("a progress line");
    assert!(last.starts_with("step 12/12 "), "{last}");
    let lines = logged_losses(&dir);
    for mode in ["fp32", "bf16-sr"] {
        let at = |step: u64, key: &str| {
            lines.iter().find(|l| l["run"] == mode && l["step"] == step && !l[key].is_null()).map(|l| l[key].as_f64().unwrap())
        };
        let train = at(12, "train_loss").unwrap();
        let val = at(12, "val_loss").unwrap();
        let want = format!("{mode} {train:.3} (val {val:.3} @12)");
        assert!(last.contains(&want), "expected '{want}' in: {last}");
    }
    // off a terminal: a line every few seconds, not one per step
    assert!(err.lines().filter(|l| l.starts_with("step ")).count() <= 3, "{err}");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn every_numeric_flag_refuses_bad_values_by_name_with_exit_code_2() {
    let dir = tmp("flags");
    let o = srgpt().args(micro(4, &dir)).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let ckpt = dir.join("fp32.safetensors");
    let ckpt = ckpt.to_str().unwrap();
    let train = |flag: &str, value: &str| vec!["train".to_string(), "--headless".into(), flag.into(), value.into()];
    let sample = |flag: &str, value: &str| vec!["sample".to_string(), "--checkpoint".into(), ckpt.into(), flag.into(), value.into()];
    let mut cases: Vec<(Vec<String>, &str)> = Vec::new();
    for (flag, bad) in [
        ("--steps", "0"),
        ("--steps", "-1"),
        ("--steps", "99999999999"),
        ("--lr", "-1"),
        ("--lr", "nan"),
        ("--lr", "inf"),
        ("--lr", "0"),
        ("--warmup", "-1"),
        ("--warmup", "601"),
        ("--stop-at", "0"),
        ("--stop-at", "601"),
        ("--eval-batches", "0"),
        ("--eval-every", "-3"),
        ("--batch", "0"),
        ("--d", "0"),
        ("--n-layer", "0"),
        ("--n-head", "-2"),
        ("--ctx", "100000"),
        ("--seed", "-1"),
        ("--ckpt-every", "-1"),
        ("--ckpt-minutes", "nan"),
    ] {
        cases.push((train(flag, bad), flag));
    }
    for (flag, bad) in
        [("--tokens", "18446744073709551615"), ("--tokens", "0"), ("--temperature", "nan"), ("--temperature", "-1"), ("--top-k", "-1")]
    {
        cases.push((sample(flag, bad), flag));
    }
    for (flag, bad) in [("--steps", "0"), ("--reps", "-1")] {
        let what = if flag == "--steps" { "train" } else { "matmul" };
        cases.push((vec!["bench".into(), what.into(), flag.into(), bad.into()], flag));
    }
    for (args, flag) in &cases {
        let o = srgpt().args(args).output().unwrap();
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(flag), "{args:?}: the message does not name {flag}: {err}");
        assert!(!err.contains("panicked") && !err.contains("ModelConfig"), "{args:?}: {err}");
    }
    // `--flag -1` and `--flag=-1` are the same mistake with the same message
    let spaced = run(&["sample", "--checkpoint", ckpt, "--temperature", "-1"]);
    let joined = run(&["sample", "--checkpoint", ckpt, "--temperature=-1"]);
    assert_eq!(stderr(&spaced), stderr(&joined));
    let err = stderr(&run(&["train", "--headless", "--n-head", "3", "--d", "64"]));
    assert!(err.contains("--n-head 3 does not divide --d 64"), "{err}");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn flags_that_would_do_nothing_or_contradict_the_checkpoint_are_refused() {
    let dir = tmp("contradict");
    let o = srgpt().args(micro(4, &dir)).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let before = snapshot(&dir);
    let fp32 = dir.join("fp32.safetensors").display().to_string();
    let resume = |extra: &[&str]| {
        let mut a = vec!["train", "--headless", "--resume", fp32.as_str()];
        a.extend_from_slice(extra);
        a.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let cases: Vec<(Vec<String>, &str)> = vec![
        (resume(&["--preset", "small"]), "--preset small contradicts the checkpoint's preset tiny"),
        (resume(&["--d", "32"]), "--d 32 contradicts the checkpoint's d 16"),
        (resume(&["--n-layer", "2"]), "--n-layer 2 contradicts"),
        (resume(&["--n-head", "4"]), "--n-head 4 contradicts"),
        (resume(&["--ctx", "32"]), "--ctx 32 contradicts"),
        (resume(&["--batch", "8"]), "--batch 8 contradicts"),
        (resume(&["--seed", "9"]), "--seed 9 contradicts the checkpoint's seed 3"),
        (resume(&["--precision", "bf16"]), "--precision bf16 contradicts"),
        (vec!["train".into(), "--headless".into(), "--resume".into(), format!("{fp32},{fp32}")], "twice"),
        (resume(&["--steps", "2"]), "below the checkpoint's step 4"),
        (resume(&["--steps", "8", "--stop-at", "3"]), "--stop-at 3 is not after the checkpoint's step 4"),
        (["train", "--headless", "--screenshot", "x.png"].map(String::from).to_vec(), "--screenshot works only in the dashboard"),
        (["train", "--headless", "--exit-when-done"].map(String::from).to_vec(), "--exit-when-done works only in the dashboard"),
        (["train", "--headless", "--sample-every", "5"].map(String::from).to_vec(), "--sample-every works only in the dashboard"),
        (resume(&["--screenshot", "x.png"]), "--screenshot works only in the dashboard"),
        (["train", "--headless", "--precision", "fp32,fp32"].map(String::from).to_vec(), "listed twice"),
    ];
    for (args, message) in cases {
        let o = srgpt().args(&args).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(message), "{args:?}: expected '{message}' in: {}", stderr(&o));
    }
    assert_eq!(snapshot(&dir), before, "a refused resume changed the folder");
    // what may change on resume is accepted, and said
    let o = run(&["train", "--headless", "--resume", &fp32, "--steps", "6", "--lr", "0.001", "--seed", "3", "--d", "16"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("--steps changes on resume: 4 -> 6") && err.contains("--lr changes on resume: 0.003 -> 0.001"), "{err}");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn sample_streams_its_text_as_it_is_generated() {
    let dir = tmp("sample");
    let o = srgpt().args(micro(4, &dir)).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let ckpt = dir.join("fp32.safetensors");
    let mut child = srgpt()
        .args(["sample", "--tokens", "1000000", "--prompt", "fn", "--checkpoint"])
        .arg(&ckpt)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // the first bytes arrive long before a million are generated
    let mut first = [0u8; 12];
    std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut first).unwrap();
    assert_eq!(&first[..2], b"fn");
    child.kill().unwrap();
    child.wait().unwrap();
    std::fs::remove_dir_all(dir).ok();
}

/// `--ckpt-minutes`: with no step schedule, checkpoints come by wall time alone (here every
/// 0.3 s of a run of several seconds), each logged with its step.
#[test]
fn checkpoints_come_by_wall_time_with_ckpt_minutes() {
    let dir = tmp("minutes");
    let mut args = micro(1000, &dir);
    args.extend(["--ckpt-every", "0", "--ckpt-minutes", "0.005"].map(String::from));
    let started = Instant::now();
    let o = srgpt().args(&args).output().unwrap();
    let took = started.elapsed().as_secs_f64();
    assert!(o.status.success(), "{}", stderr(&o));
    let steps: Vec<u64> = stderr(&o)
        .lines()
        .filter(|l| l.contains("checkpoint: ") && l.contains("fp32.safetensors"))
        .filter_map(|l| l.rsplit_once("(step ").and_then(|(_, s)| s.trim_end_matches(')').parse().ok()))
        .collect();
    let timed = steps.iter().filter(|&&s| s < 1000).count();
    // one every 0.3 s: at least a third of what the run's length allows, however the
    // machine's speed varies within it
    assert!(timed as f64 >= (took / 0.3 / 3.0).floor().max(1.0), "{timed} timed checkpoints in {took:.1} s: {steps:?}");
    assert_eq!(steps.last(), Some(&1000), "and the last at the end");
    std::fs::remove_dir_all(dir).ok();
}
