//! A second Vulkan driver: the same 12-step run of every mode (the tiny model at batch 8, on
//! the built-in Shakespeare, which no edit of srgpt's sources changes) on
//! lavapipe (Mesa) and on SwiftShader (the Vulkan driver Debian's chromium package ships),
//! selected with VK_ICD_FILENAMES. Every sum has one order on both (matmul tiles, row
//! reductions, fixed workgroup trees), and rounding and PCG bits are exact (tests/rounding.rs
//! runs on both in CI), so what remains is each driver's exp, log, tanh and inverseSqrt, which
//! Vulkan allows to differ by a few ulps, and whether it fuses a multiply and an add. Those
//! differences of ~1e-7 relative grow over training, so each mode's steps are held to an
//! envelope (below) that starts at the forward's 1e-5; a backward or optimizer bug on one
//! driver shows at once as a gap far outside it. The run stops at 12 steps because training
//! this small model at batch 8 turns chaotic soon after: from step 20 to 30 the drivers'
//! losses part by up to 7e-2 in every mode, fp32 included, and where that begins moves with
//! the data and the drivers' versions, so no per-step bound past it could both hold and catch
//! a bug. Skipped when either driver is missing,
//! unless SRGPT_CI is set.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

const LAVAPIPE: &str = "/usr/share/vulkan/icd.d/lvp_icd.json";
const SWIFTSHADER: &str = "/usr/lib/chromium/vk_swiftshader_icd.json";
const MODES: &str = "fp32,mixed,bf16,bf16-sr,bf16-kahan";

/// (mode, step, train loss, val loss where evaluated) of every logged line, and the adapter
/// the run reported.
type Losses = Vec<(String, u64, Option<f64>, Option<f64>)>;

fn train(icd: &str, out: &Path) -> (Losses, String) {
    let status = Command::new(env!("CARGO_BIN_EXE_srgpt"))
        .args(["train", "--headless", "--corpus", "shakespeare", "--preset", "tiny", "--batch", "8", "--steps", "12"])
        .args(["--eval-every", "6", "--seed", "1"])
        .args(["--precision", MODES])
        .arg("--out")
        .arg(out)
        .env("VK_ICD_FILENAMES", icd)
        // nothing to measure: no tuned choice changes a bit (tests/bit_identity.rs)
        .env("SRGPT_TUNE", "0")
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "training on {icd} failed");
    let summary: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let adapter = summary["adapter"]["name"].as_str().unwrap().to_string();
    let losses = common::logged_losses(out)
        .iter()
        .map(|l| (l["run"].as_str().unwrap().to_string(), l["step"].as_u64().unwrap(), l["train_loss"].as_f64(), l["val_loss"].as_f64()))
        .collect();
    (losses, adapter)
}

/// The largest relative gap allowed between the drivers' losses of a mode at a step. The val
/// loss at step 0 is the forward alone: 1e-5 (measured 0). Measured on 2026-12-02 over these
/// 12 steps (each driver repeats its run bit for bit): fp32 at most 9.5e-8, the 16-bit modes
/// at most 8e-6, their round-to-nearest steps tipping a bf16 value the other way now and
/// then; on srgpt's own sources instead of Shakespeare, 3e-5. (By step 20 Shakespeare's
/// validation loss parts by 6e-4: the chaos above begins.) So fp32 is held to 1e-5
/// throughout and the 16-bit modes to 1e-4 after step 0: a wrong gradient or update on one
/// driver moves the loss by far more within its first steps.
fn envelope(mode: &str, step: u64) -> f64 {
    match (mode, step) {
        ("fp32", _) | (_, 0) => 1e-5,
        _ => 1e-4,
    }
}

#[test]
fn lavapipe_and_swiftshader_train_to_the_same_losses() {
    let missing: Vec<&str> = [LAVAPIPE, SWIFTSHADER].into_iter().filter(|p| !Path::new(p).exists()).collect();
    if !missing.is_empty() {
        assert!(std::env::var_os("SRGPT_CI").is_none(), "CI needs both Vulkan drivers: {missing:?} missing");
        eprintln!("SKIPPED lavapipe_and_swiftshader_train_to_the_same_losses: {missing:?} not installed (apt-get install mesa-vulkan-drivers chromium)");
        return;
    }
    let dir = |name: &str| -> PathBuf { std::env::temp_dir().join(format!("srgpt-drivers-{name}-{}", std::process::id())) };
    let ((a, adapter_a), (b, adapter_b)) = (train(LAVAPIPE, &dir("lavapipe")), train(SWIFTSHADER, &dir("swiftshader")));
    assert!(adapter_a.contains("llvmpipe"), "the first run used {adapter_a}, not lavapipe");
    assert!(adapter_b.contains("SwiftShader"), "the second run used {adapter_b}, not SwiftShader");
    assert_eq!(a.iter().filter(|l| l.2.is_some()).count(), 60, "12 train losses of each of 5 modes");
    assert_eq!(a.iter().filter(|l| l.3.is_some()).count(), 15, "val losses at steps 0, 6 and 12 of each mode");
    assert_eq!(a.iter().map(|l| (&l.0, l.1)).collect::<Vec<_>>(), b.iter().map(|l| (&l.0, l.1)).collect::<Vec<_>>());
    let mut worst = (0.0f64, String::new());
    for ((mode, step, train_a, val_a), (_, _, train_b, val_b)) in a.iter().zip(&b) {
        for (what, x, y) in [("train", train_a, train_b), ("val", val_a, val_b)] {
            let (Some(x), Some(y)) = (x, y) else {
                assert_eq!(x.is_some(), y.is_some(), "{mode} step {step}: a {what} loss on one driver only");
                continue;
            };
            let gap = (x - y).abs() / x.abs();
            assert!(
                gap <= envelope(mode, *step),
                "{mode} step {step}: {what} loss {x} on lavapipe, {y} on SwiftShader ({gap:.2e} relative, allowed {:.2e})",
                envelope(mode, *step)
            );
            if gap / envelope(mode, *step) > worst.0 {
                worst = (gap / envelope(mode, *step), format!("{mode} step {step} {what}: {gap:.2e} relative"));
            }
        }
    }
    eprintln!("closest to the envelope: {} ({:.0}% of it)", worst.1, 100.0 * worst.0);
    for name in ["lavapipe", "swiftshader"] {
        std::fs::remove_dir_all(dir(name)).ok();
    }
}
