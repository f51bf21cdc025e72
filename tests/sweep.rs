//! `srgpt sweep` on a micro model: it completes, writes sweep.json / sweep.md / sweep.png with
//! every mode at every learning rate, and when killed in the middle and run again it skips
//! the finished configurations and resumes the interrupted one from its checkpoints.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use srgpt::train::curves::mode_rgb;

fn sweep_args(out: &Path) -> Vec<String> {
    let mut a: Vec<String> =
        ["sweep", "--precision", "fp32,bf16,bf16-sr", "--lr", "3e-4,3e-3", "--seeds", "1,2", "--steps", "60"].map(String::from).to_vec();
    a.extend(
        ["--n-layer", "1", "--n-head", "2", "--d", "16", "--ctx", "16", "--batch", "4", "--eval-every", "20", "--ckpt-every", "5", "--out"]
            .map(String::from),
    );
    a.push(out.display().to_string());
    a
}

fn sweep() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_srgpt"));
    cmd.env_remove("DISPLAY").env_remove("WAYLAND_DISPLAY");
    cmd
}

fn config(out: &Path, lr: &str, seed: u32) -> PathBuf {
    out.join(format!("lr{lr}_seed{seed}"))
}

#[test]
fn a_killed_sweep_skips_what_finished_and_resumes_the_rest() {
    let out = std::env::temp_dir().join(format!("srgpt-sweep-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let first = config(&out, "3e-4", 1);
    let second = config(&out, "3e-4", 2);

    // the sweep in its own process group, killed (SIGKILL, with its run) once the first
    // configuration is finished and the second holds checkpoints
    use std::os::unix::process::CommandExt;
    let mut child = sweep().args(sweep_args(&out)).process_group(0).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let started = Instant::now();
    // every mode's checkpoint: the kill may then land anywhere, even between the writes of a
    // later set, and the sweep must resume (each step's files together)
    let has_checkpoints = |dir: &Path| ["fp32", "bf16", "bf16-sr"].iter().all(|m| dir.join(format!("{m}.safetensors")).exists());
    while !(first.join("summary.json").exists() && has_checkpoints(&second)) {
        assert!(child.try_wait().unwrap().is_none(), "the sweep ended before it could be killed");
        assert!(started.elapsed() < Duration::from_secs(600), "the sweep took too long to reach its second configuration");
        std::thread::sleep(Duration::from_millis(20));
    }
    // the whole group: the sweep and the run it started
    assert!(Command::new("kill").args(["-KILL", "--", &format!("-{}", child.id())]).status().unwrap().success());
    child.wait().unwrap();
    let finished_metrics = std::fs::read(first.join("metrics.jsonl")).unwrap();
    assert!(!config(&out, "3e-3", 2).exists(), "killed before the last configuration");

    let again = sweep().args(sweep_args(&out)).output().unwrap();
    let log = String::from_utf8_lossy(&again.stderr);
    assert!(again.status.success(), "the second sweep failed:\n{log}");
    assert!(log.contains("lr 3e-4 seed 1: finished already, skipped"), "{log}");
    assert!(log.contains("lr 3e-4 seed 2: resuming"), "the interrupted configuration resumes from its checkpoints:\n{log}");
    assert_eq!(std::fs::read(first.join("metrics.jsonl")).unwrap(), finished_metrics, "a finished configuration is not trained again");

    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("sweep.json")).unwrap()).unwrap();
    let cells = doc["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 6, "three modes at two learning rates");
    for c in cells {
        assert_eq!(c["seeds"], 2, "{c}");
        assert!(c["final_val_mean"].as_f64().is_some_and(f64::is_finite), "{c}");
        assert!(c["final_val_std"].as_f64().is_some_and(|s| s >= 0.0), "{c}");
        assert!(c["update_ratio"].as_f64().is_some(), "{c}");
    }
    let md = std::fs::read_to_string(out.join("sweep.md")).unwrap();
    assert!(md.lines().filter(|l| l.starts_with("| fp32") || l.starts_with("| bf16")).count() == 6, "{md}");
    for c in cells {
        let gap = c["gap_to_fp32_mean"].as_f64().unwrap_or_else(|| panic!("{c}: no gap to fp32"));
        if c["precision"] == "fp32" {
            assert_eq!(gap, 0.0, "{c}");
        }
        assert!(c["gap_to_fp32_std"].as_f64().is_some_and(|s| s >= 0.0), "{c}");
    }
    // each panel (final val loss above, minus fp32's below): each mode's line spans most of
    // the panel's width on its own, between the two swept rates (lines drawn from the first
    // rate to the last cover ~75% of the picture's width; a legend swatch or error-bar caps,
    // a few dozen columns)
    let png = image::open(out.join("sweep.png")).unwrap().to_rgb8();
    assert_eq!(png.dimensions(), srgpt::plot::SWEEP_SIZE);
    let (w, h) = png.dimensions();
    for (panel, rows) in [("final val loss", 0..h / 2), ("minus fp32's", h / 2..h)] {
        for mode in ["fp32", "bf16", "bf16-sr"] {
            let held = (0..w).filter(|&x| rows.clone().any(|y| png.get_pixel(x, y).0 == mode_rgb(mode))).count();
            assert!(held as f64 >= 0.6 * w as f64, "sweep.png, {panel} panel: {mode}'s line spans only {held} of {w} columns");
        }
    }

    // once more: nothing left to train
    let third = sweep().args(sweep_args(&out)).output().unwrap();
    assert!(third.status.success());
    assert_eq!(String::from_utf8_lossy(&third.stderr).matches("finished already, skipped").count(), 4);
    std::fs::remove_dir_all(&out).ok();
}
