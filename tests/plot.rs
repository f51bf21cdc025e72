//! `srgpt plot` with no display and no fonts: a synthetic run's metrics become a PNG of the
//! stated size whose loss, gap and fidelity panels each show every mode's line across the panel, and whose
//! learning-rate panel shows the schedule. Needs no GPU.

use std::process::Command;

use image::RgbImage;
use srgpt::train::curves::mode_rgb;
use srgpt::train::Metric;

const MODES: [&str; 4] = ["fp32", "bf16", "bf16-sr", "bf16-kahan"];

/// 200 steps of four modes whose losses, gaps and fidelities differ: what a real run writes.
fn metrics() -> String {
    let mut out = String::new();
    for step in 0..=200u32 {
        for (i, mode) in MODES.iter().enumerate() {
            let base = 4.0 * (-(step as f32) / 60.0).exp() + 2.0;
            let lr = 3e-3 * (step as f32 / 200.0).min(1.0);
            let line = |train: Option<f32>, val: Option<f32>, fidelity: Option<(f32, f32)>| Metric {
                run: mode.to_string(),
                step,
                tokens: step as u64 * 2048,
                elapsed_s: step as f64 * 0.1,
                lr,
                train_loss: train,
                val_loss: val,
                tokens_per_s: 20000.0,
                gpu_s: step as f64 * 0.08,
                update_ratio: fidelity.map(|f| f.0),
                val_bits_per_byte: None,
                lost_fraction: fidelity.map(|f| f.1),
            };
            let gap = 0.01 * i as f32 * step as f32 / 200.0;
            if step > 0 {
                let fidelity = (1.0 - 0.1 * i as f32, 0.15 * i as f32 + 0.02);
                out += &serde_json::to_string(&line(Some(base + gap), None, Some(fidelity))).unwrap();
                out.push('\n');
            }
            if step % 20 == 0 {
                out += &serde_json::to_string(&line(None, Some(base + gap + 0.05), None)).unwrap();
                out.push('\n');
            }
        }
    }
    out
}

/// The share of the rectangle (x0, y0, w, h)'s columns that hold a pixel of exactly `rgb`: a
/// mode's line spans most of its panel on its own, where its dots, error bars or legend
/// swatch would span a few columns.
fn columns(img: &RgbImage, rgb: [u8; 3], (x0, y0, w, h): (u32, u32, u32, u32)) -> f64 {
    let held = (x0..x0 + w).filter(|&x| (y0..y0 + h).any(|y| img.get_pixel(x, y).0 == rgb)).count();
    held as f64 / w as f64
}

/// Pixels of exactly `rgb` in the rectangle (x0, y0, w, h).
fn count(img: &RgbImage, rgb: [u8; 3], (x0, y0, w, h): (u32, u32, u32, u32)) -> usize {
    (y0..y0 + h).flat_map(|y| (x0..x0 + w).map(move |x| (x, y))).filter(|&(x, y)| img.get_pixel(x, y).0 == rgb).count()
}

#[test]
fn plot_draws_every_mode_in_every_panel_without_a_display_or_fonts() {
    let dir = std::env::temp_dir().join(format!("srgpt-plot-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("metrics.jsonl"), metrics()).unwrap();
    let out = dir.join("picture.png");
    let status = Command::new(env!("CARGO_BIN_EXE_srgpt"))
        .args(["plot", dir.to_str().unwrap(), "-o", out.to_str().unwrap()])
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .env("FONTCONFIG_FILE", "/nonexistent")
        .env("FONTCONFIG_PATH", "/nonexistent")
        .status()
        .unwrap();
    assert!(status.success());
    let img = image::open(&out).unwrap().to_rgb8();
    assert_eq!(img.dimensions(), srgpt::plot::SIZE);
    let (w, h) = (img.width() / 2, img.height() / 2);
    // each mode's line spans most of each panel's width on its own, coincident lines
    // included (the synthetic modes' losses lie within 0.02 of each other). Left out: the
    // loss panel's legend at its right edge; the fidelity panel's lower part, where the lost
    // fractions' dots (one per step, a row of them as wide as the line) lie, below the
    // update ratios' lines (0.7 to 1.0)
    let panels = [("loss", (0, 0, w * 3 / 4, h)), ("gap to fp32", (w, 0, w, h)), ("fidelity", (0, h, w, h * 2 / 5))];
    for (panel, rect) in panels {
        for mode in MODES {
            let share = columns(&img, mode_rgb(mode), rect);
            assert!(share >= 0.7, "{panel} panel: {mode}'s line spans only {:.0}% of the panel's width", share * 100.0);
        }
    }
    assert!(count(&img, [0, 0, 0], (w, h, w, h)) >= 500, "the learning-rate panel draws the schedule");
    // the titles are drawn with the bundled font: dark pixels in the loss panel's title band
    let title_ink =
        (0..40).flat_map(|y| (0..w).map(move |x| (x, y))).filter(|&(x, y)| img.get_pixel(x, y).0.iter().all(|&c| c < 128)).count();
    assert!(title_ink >= 100, "the title is drawn ({title_ink} dark pixels)");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn plot_refuses_what_is_not_a_run() {
    let dir = std::env::temp_dir().join(format!("srgpt-plot-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let srgpt = |args: &[&str]| Command::new(env!("CARGO_BIN_EXE_srgpt")).args(args).output().unwrap();
    let missing = srgpt(&["plot", dir.join("nothing").to_str().unwrap()]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot read"));
    std::fs::write(dir.join("metrics.jsonl"), "not json\n").unwrap();
    let bad = srgpt(&["plot", dir.to_str().unwrap()]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("line 1: not a metrics line"));
    assert!(!dir.join("curves.png").exists(), "nothing is written for a bad input");
    std::fs::remove_dir_all(&dir).ok();
}
