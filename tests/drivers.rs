//! A second Vulkan driver: the same 50-step tiny run of every mode on lavapipe (Mesa) and on
//! SwiftShader (the Vulkan driver Debian's chromium package ships), selected with
//! VK_ICD_FILENAMES. Every sum has one order on both (matmul tiles, row reductions, fixed
//! workgroup trees), and rounding and PCG bits are exact (tests/rounding.rs runs on both in
//! CI), so what remains is each driver's exp, log, tanh and inverseSqrt, which Vulkan allows to
//! differ by a few ulps, and whether it fuses a multiply and an add. Those differences of
//! ~1e-7 relative grow over training; the bound below is what 50 steps leave, measured, with
//! room. Skipped when either driver is missing, unless SRGPT_CI is set.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

const LAVAPIPE: &str = "/usr/share/vulkan/icd.d/lvp_icd.json";
const SWIFTSHADER: &str = "/usr/lib/chromium/vk_swiftshader_icd.json";

fn train(icd: &str, out: &Path) -> Vec<(String, u64, f64)> {
    let status = Command::new(env!("CARGO_BIN_EXE_srgpt"))
        .args(["train", "--headless", "--preset", "tiny", "--steps", "50", "--eval-every", "25", "--seed", "1", "--precision"])
        .arg("fp32,mixed,bf16,bf16-sr,bf16-kahan")
        .arg("--out")
        .arg(out)
        .env("VK_ICD_FILENAMES", icd)
        // nothing to measure: no tuned choice changes a bit (tests/bit_identity.rs)
        .env("SRGPT_TUNE", "0")
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "training on {icd} failed");
    common::logged_losses(out)
        .iter()
        .filter_map(|l| Some((l["run"].as_str()?.to_string(), l["step"].as_u64()?, l["train_loss"].as_f64()?)))
        .collect()
}

#[test]
fn lavapipe_and_swiftshader_train_to_the_same_losses() {
    let missing: Vec<&str> = [LAVAPIPE, SWIFTSHADER].into_iter().filter(|p| !Path::new(p).exists()).collect();
    if !missing.is_empty() {
        assert!(std::env::var_os("SRGPT_CI").is_none(), "CI needs both Vulkan drivers: {missing:?} missing");
        eprintln!("skipped: {missing:?} not installed (apt-get install mesa-vulkan-drivers chromium)");
        return;
    }
    let dir = |name: &str| -> PathBuf { std::env::temp_dir().join(format!("srgpt-drivers-{name}-{}", std::process::id())) };
    let (a, b) = (train(LAVAPIPE, &dir("lavapipe")), train(SWIFTSHADER, &dir("swiftshader")));
    assert_eq!(a.len(), 250, "50 train losses of each of 5 modes");
    assert_eq!(a.iter().map(|l| (&l.0, l.1)).collect::<Vec<_>>(), b.iter().map(|l| (&l.0, l.1)).collect::<Vec<_>>());
    let mut worst = (0.0f64, String::new());
    for ((mode, step, x), (_, _, y)) in a.iter().zip(&b) {
        if *step == 1 {
            // the first step sees identical weights: only the transcendentals differ
            assert!((x - y).abs() <= 1e-5 * x.abs(), "{mode} step 1: {x} on lavapipe, {y} on SwiftShader");
        }
        let gap = (x - y).abs() / x.abs();
        if gap > worst.0 {
            worst = (gap, format!("{mode} step {step}: {x} vs {y}"));
        }
    }
    eprintln!("largest relative gap between the drivers: {:.2e} ({})", worst.0, worst.1);
    assert!(worst.0 <= 2e-3, "the drivers' losses differ by {:.2e} relative ({})", worst.0, worst.1);
    for name in ["lavapipe", "swiftshader"] {
        std::fs::remove_dir_all(dir(name)).ok();
    }
}
