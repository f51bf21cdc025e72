//! The dashboard's logic through egui's test harness (egui_kittest), training for real on the
//! GPU adapter: Start starts runs and the plot receives points, Pause holds the step count,
//! bad input shows an error in the window; plus a real window under Xvfb that saves a
//! screenshot with a drawn loss curve.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::which;
use eframe::egui;
use egui_kittest::kittest::Queryable;
use egui_kittest::Harness;
use srgpt::gpu::Gpu;
use srgpt::ui::native::ThreadDriver;
use srgpt::ui::{App, Settings};

fn micro_settings() -> Settings {
    let mut s = Settings::from_preset("tiny");
    (s.model.n_layer, s.model.n_head, s.model.d, s.model.ctx, s.train.batch) = (1, 2, 16, 16, 4);
    (s.train.steps, s.train.warmup, s.eval_every, s.eval_batches, s.sample_every) = (400, 5, 10, 1, 0);
    s.modes = [true, false, false, true, false];
    s
}

fn harness(settings: Settings) -> Harness<'static, App> {
    let gpu = Arc::new(Gpu::new(None).expect("a GPU adapter"));
    let driver = ThreadDriver::new(gpu, egui::Context::default());
    let app = App::new(settings, "test".into(), Some(Box::new(driver)));
    Harness::builder().with_size(egui::vec2(1200.0, 800.0)).build_ui_state(|ui, app: &mut App| app.show(ui), app)
}

/// Steps the UI until `done` holds (or fails after `secs`).
fn step_until(h: &mut Harness<'static, App>, secs: u64, what: &str, done: impl Fn(&App) -> bool) {
    let start = Instant::now();
    while !done(h.state()) {
        assert!(start.elapsed() < Duration::from_secs(secs), "timed out waiting for {what}");
        h.step();
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn steps_done(app: &App) -> usize {
    app.runs.iter().map(|r| r.train.len()).max().unwrap_or(0)
}

#[test]
fn start_pause_resume_stop() {
    let mut h = harness(micro_settings());
    h.step();
    h.get_by_label("Start").click();
    h.step();
    assert!(h.state().running(), "Start starts a session");
    step_until(&mut h, 120, "points on the plot", |a| steps_done(a) >= 3 && a.runs.iter().all(|r| !r.val.is_empty()));
    assert_eq!(h.state().runs.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), vec!["fp32", "bf16-sr"]);

    h.get_by_label("Pause").click();
    h.step();
    std::thread::sleep(Duration::from_millis(500));
    h.step();
    let paused_at = steps_done(h.state());
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(50));
        h.step();
    }
    assert_eq!(steps_done(h.state()), paused_at, "Pause holds the step count");
    assert_eq!(h.query_all_by_label("paused").count(), 2, "the run table says paused for both runs");
    // the table's val bpb: under the byte tokenizer a token is a byte, so bits per byte is the
    // val loss over ln 2
    for r in &h.state().runs {
        let (val, bpb) = (r.val.last().unwrap()[3], r.val_bpb.last().unwrap()[3]);
        assert!((bpb - val / std::f64::consts::LN_2).abs() < 1e-5 * bpb, "{}: val {val}, bpb {bpb}", r.name);
        assert!(h.query_all_by_label(&format!("{bpb:.4}")).count() > 0, "{}: the table shows val bpb {bpb:.4}", r.name);
    }
    assert!(h.query_by_label("val bpb").is_some(), "the table's val bpb column");

    h.get_by_label("Resume").click();
    step_until(&mut h, 60, "steps after Resume", |a| steps_done(a) > paused_at + 2);

    h.get_by_label("Stop").click();
    step_until(&mut h, 60, "the session to stop", |a| !a.running() && a.done);
    assert!(h.state().runs.iter().all(|r| r.status == "stopped"), "{:?}", h.state().runs.iter().map(|r| &r.status).collect::<Vec<_>>());
}

#[test]
fn bad_input_is_shown_in_the_window() {
    let mut s = micro_settings();
    s.corpus = "/no/such/corpus.txt".into();
    let mut h = harness(s);
    h.step();
    h.get_by_label("Start").click();
    h.step();
    h.step();
    assert!(!h.state().running());
    assert!(h.query_by_label_contains("cannot read corpus").is_some(), "error shown: {:?}", h.state().error);

    h.state_mut().settings.corpus = "builtin".into();
    h.state_mut().settings.model.n_head = 3;
    h.get_by_label("Start").click();
    h.step();
    assert!(h.query_by_label_contains("divisible").is_some(), "error shown: {:?}", h.state().error);

    let dir = std::env::temp_dir().join(format!("srgpt-view-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("metrics.jsonl"),
        "{\"run\":\"fp32\",\"step\":1,\"tokens\":64,\"elapsed_s\":0.1,\"lr\":0.001,\"train_loss\":3.5,\"tokens_per_s\":640}\nnot json\n",
    )
    .unwrap();
    h.state_mut().view_path = dir.display().to_string();
    h.get_by_label("Open").click();
    h.step();
    assert!(h.query_by_label_contains("line 2").is_some(), "a corrupt metrics file is named: {:?}", h.state().error);
    std::fs::write(
        dir.join("metrics.jsonl"),
        "{\"run\":\"bf16\",\"step\":1,\"tokens\":64,\"elapsed_s\":0.1,\"lr\":0.001,\"train_loss\":3.5,\"tokens_per_s\":640}\n",
    )
    .unwrap();
    h.get_by_label("Open").click();
    h.step();
    assert_eq!(h.state().runs.len(), 1);
    assert_eq!(h.state().runs[0].train.len(), 1);
    std::fs::remove_dir_all(&dir).ok();
}

/// An X server of its own for a window test, on display `:first..first+8` (by process id, so
/// two tests of this file, given different `first`, never share one): the server and the
/// display's name. None when Xvfb is not installed (the caller skips), which fails when
/// SRGPT_CI is set (as in CI).
fn xvfb(first: u32, screen: &str) -> Option<(std::process::Child, String)> {
    let required = std::env::var_os("SRGPT_CI").is_some();
    let Ok(xvfb) = which("Xvfb") else {
        assert!(!required, "Xvfb is required for this test (apt-get install xvfb)");
        eprintln!("skipped: Xvfb is not installed");
        return None;
    };
    let display = format!(":{}", first + std::process::id() % 9);
    let server = std::process::Command::new(xvfb).args([&display, "-screen", "0", screen]).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(800));
    Some((server, display))
}

/// A real window: under Xvfb, `srgpt train --exit-when-done --screenshot` saves a PNG with
/// the loss curves drawn in the modes' colours. Skipped when Xvfb is not installed, unless
/// SRGPT_CI is set (as in CI).
#[test]
fn a_real_window_saves_a_screenshot_with_curves() {
    let Some((mut server, display)) = xvfb(90, "1400x900x24") else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("srgpt-window-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let shot = dir.join("shot.png");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_srgpt"))
        .args(["train", "--preset", "tiny", "--steps", "30", "--eval-every", "10", "--exit-when-done", "--out"])
        .arg(&dir)
        .arg("--screenshot")
        .arg(&shot)
        .env("DISPLAY", &display)
        .output()
        .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    assert!(out.status.success(), "srgpt failed: {}", String::from_utf8_lossy(&out.stderr));
    let img = image::open(&shot).expect("a PNG screenshot").to_rgba8();
    assert!(img.width() >= 800 && img.height() >= 600);
    let status: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("shot.png.json")).expect("the status beside the screenshot")).unwrap();
    let modes: Vec<&str> = status["modes"].as_array().unwrap().iter().map(|m| m.as_str().unwrap()).collect();
    assert_eq!(modes, ["fp32", "bf16", "bf16-sr"], "the dashboard's default modes");
    for mode in &modes {
        let run = status["runs"].as_array().unwrap().iter().find(|r| r["precision"] == *mode).unwrap_or_else(|| panic!("{mode}: no run"));
        assert_eq!(run["step"], 30, "{mode}: its final step");
        assert!(run["val_loss"].as_f64().is_some_and(f64::is_finite), "{mode}: a finite val loss ({})", run["val_loss"]);
    }
    let rect: Vec<u32> = status["loss_plot_px"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap().round() as u32).collect();
    plotted_in_every_colour(&img, &modes, [rect[0], rect[1], rect[2], rect[3]]);
    std::fs::remove_dir_all(&dir).ok();
}

/// Ctrl-C in the dashboard's terminal closes the window as its close button does, and closing
/// stops the runs and writes their checkpoints: under Xvfb, a long two-mode run gets SIGINT
/// once both modes have trained a few steps; the process exits 130 with each mode's checkpoint
/// at a step it reached and summary.json saying `stopped`, and `--resume` takes the folder.
/// Skipped without Xvfb, unless SRGPT_CI is set.
#[test]
fn ctrl_c_closes_the_window_and_the_runs_are_kept() {
    // displays of its own: the screenshot test may run beside it
    let Some((mut server, display)) = xvfb(80, "1200x800x24") else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("srgpt-window-close-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_srgpt"))
        .args(["train", "--n-layer", "1", "--n-head", "2", "--d", "16", "--ctx", "16", "--batch", "4"])
        .args(["--steps", "100000", "--eval-every", "1000", "--precision", "fp32,bf16-sr", "--out"])
        .arg(&dir)
        .env("DISPLAY", &display)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let trained = |mode: &str| {
        std::fs::read_to_string(dir.join("metrics.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(&format!("\"run\":\"{mode}\"")) && l.contains("train_loss"))
            .count()
    };
    while trained("fp32") < 3 || trained("bf16-sr") < 3 {
        assert!(child.try_wait().unwrap().is_none(), "the dashboard ended before it was stopped");
        assert!(started.elapsed() < Duration::from_secs(300), "the dashboard trained too slowly to be stopped");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(status.code(), Some(130), "exit 130 after Ctrl-C: {stderr}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).expect("summary.json")).unwrap();
    let mut kept_at = 0;
    for mode in ["fp32", "bf16-sr"] {
        let run = summary["runs"].as_array().unwrap().iter().find(|r| r["precision"] == mode).unwrap_or_else(|| panic!("{mode}: no run"));
        assert_eq!(run["status"], "stopped", "{mode}: {run}");
        let checkpoint = srgpt::train::checkpoint::load(&dir.join(format!("{mode}.safetensors"))).expect("a checkpoint per mode");
        assert!(checkpoint.state.step >= 3, "{mode}: the checkpoint is at step {}, after the steps it trained", checkpoint.state.step);
        assert_eq!(run["steps_completed"], checkpoint.state.step, "{mode}: the summary and the checkpoint agree");
        kept_at = kept_at.max(checkpoint.state.step);
    }
    let resumed = std::process::Command::new(env!("CARGO_BIN_EXE_srgpt"))
        .args(["train", "--headless", "--resume"])
        .arg(&dir)
        .args(["--steps", &(kept_at + 2).to_string()])
        .output()
        .unwrap();
    assert!(resumed.status.success(), "the kept runs resume: {}", String::from_utf8_lossy(&resumed.stderr));
    std::fs::remove_dir_all(&dir).ok();
}

/// Each mode's line inside the loss plot's frame `[x0, y0, x1, y1]` (the legend is outside
/// it), spanning most of the plot's width on its own: its validation dots (a few per run)
/// cover a few dozen columns, its line all of them, and an earlier mode's line, drawn wider,
/// shows as a border around the later ones where they coincide.
fn plotted_in_every_colour(img: &image::RgbaImage, modes: &[&str], [x0, y0, x1, y1]: [u32; 4]) {
    assert!(x1 > x0 + 200 && y1 > y0 + 100 && x1 <= img.width() && y1 <= img.height(), "loss plot at {x0},{y0}-{x1},{y1}");
    let near = |p: &image::Rgba<u8>, c: egui::Color32| (0..3).all(|i| (p.0[i] as i32 - c.to_array()[i] as i32).abs() <= 12);
    for mode in modes {
        let color = srgpt::ui::mode_color(mode);
        let held = (x0..x1).filter(|&x| (y0..y1).any(|y| near(img.get_pixel(x, y), color))).count();
        let span = held as f64 / (x1 - x0) as f64;
        assert!(span >= 0.7, "{mode}: its line spans only {:.0}% of the loss plot's width", span * 100.0);
    }
}

/// `srgptStatus()` in the browser returns this JSON: the adapter, the latest step, and each
/// run's step and latest losses (null before the first evaluation).
#[test]
fn the_status_a_page_reads_has_every_runs_latest_losses() {
    let mut app = App::new(Settings::from_preset("tiny"), "test adapter (vulkan, software)".into(), None);
    let line = |run: &str, step: u32, train: Option<f32>, val: Option<f32>| srgpt::train::Metric {
        run: run.into(),
        step,
        tokens: step as u64 * 64,
        elapsed_s: step as f64,
        lr: 1e-3,
        train_loss: train,
        val_loss: val,
        tokens_per_s: 100.0,
        gpu_s: step as f64 / 2.0,
        update_ratio: train.map(|_| 0.75),
        val_bits_per_byte: None,
        lost_fraction: train.map(|_| 0.5),
    };
    let empty = app.status_json();
    assert_eq!(empty["step"], 0);
    assert_eq!(empty["runs"].as_array().unwrap().len(), 0);
    app.absorb(&[
        line("fp32", 0, None, Some(4.5)),
        line("bf16-sr", 0, None, Some(4.5)),
        line("fp32", 1, Some(4.25), None),
        line("bf16-sr", 1, Some(4.0), None),
        line("fp32", 2, Some(3.5), None),
    ]);
    let status = app.status_json();
    assert_eq!(status["adapter"], "test adapter (vulkan, software)");
    assert_eq!(status["corpus"], "builtin");
    assert_eq!(status["step"], 2);
    let runs = status["runs"].as_array().unwrap();
    assert_eq!(runs[0]["precision"], "fp32");
    assert_eq!(runs[0]["step"], 2);
    assert_eq!(runs[0]["train_loss"], 3.5);
    assert_eq!(runs[0]["val_loss"], 4.5);
    assert_eq!(runs[1]["precision"], "bf16-sr");
    assert_eq!(runs[1]["step"], 1);
    assert_eq!(runs[1]["train_loss"], 4.0);
    assert_eq!((runs[1]["update_ratio"].as_f64(), runs[1]["lost_fraction"].as_f64()), (Some(0.75), Some(0.5)), "the update's fidelity");
    app.absorb(&[line("mixed", 0, None, None)]);
    assert!(app.status_json()["runs"][2]["train_loss"].is_null());
}

/// The browser page takes its settings from its query string.
#[test]
fn page_settings_come_from_the_query_string() {
    let (s, start) = Settings::from_query("").unwrap();
    assert_eq!((s.preset.as_str(), s.corpus.as_str(), start.autostart, start.continue_saved), ("tiny", "builtin", true, false));
    let (s, start) = Settings::from_query("?preset=small&steps=24&autostart=0&continue=1&modes=fp32,bf16-sr&save_every=10").unwrap();
    assert_eq!((s.preset.as_str(), s.train.steps, start.autostart, start.continue_saved), ("small", 24, false, true));
    assert_eq!((s.modes, s.checkpoints.every_steps), ([true, false, false, true, false], 10));
    assert!(Settings::from_query("?modes=fp8").unwrap_err().contains("unknown mode 'fp8'"));
    assert!(Settings::from_query("?steps=many").unwrap_err().contains("steps=many"));
    assert!(Settings::from_query("?preset=huge").is_err());
    assert!(Settings::from_query("?colour=red").unwrap_err().contains("unknown page parameter 'colour'"));
    let (s, _) = Settings::from_query("?corpus=shakespeare").unwrap();
    assert_eq!(s.corpus().unwrap().sha256, srgpt::data::Corpus::load("shakespeare").unwrap().sha256);
    assert!(Settings::from_query("?corpus=/etc/passwd").unwrap_err().contains("builtin or shakespeare"));
    // the tokenizer, before or after the preset (which must not reset it)
    for query in ["?tokenizer=gpt2&preset=small", "?preset=small&tokenizer=gpt2"] {
        let (s, _) = Settings::from_query(query).unwrap();
        assert_eq!(s.corpus().unwrap().tokenizer, srgpt::data::Tokenizer::gpt2(), "{query}");
        assert_eq!(s.to_spec().unwrap().1.model.vocab, 50257, "{query}");
    }
    // steps, batch and ctx, before or after the preset (which must not reset them)
    for query in ["?steps=8&batch=2&ctx=32&preset=small", "?preset=small&steps=8&batch=2&ctx=32"] {
        let (s, _) = Settings::from_query(query).unwrap();
        assert_eq!((s.preset.as_str(), s.train.steps, s.train.batch, s.model.ctx), ("small", 8, 2, 32), "{query}");
        assert_eq!(s.model.d, srgpt::model::config::preset("small").unwrap().d, "{query}: the rest is the preset's");
    }
    assert!(Settings::from_query("?batch=0").unwrap_err().contains("batch=0: the batch must hold 1 to"));
    assert!(Settings::from_query("?ctx=33").unwrap_err().contains("ctx=33: the context must be an even length"));
    assert!(Settings::from_query("?ctx=big").unwrap_err().contains("ctx=big: not a whole number"));
    assert!(Settings::from_query("?tokenizer=bpe")
        .unwrap_err()
        .contains("tokenizer=bpe: a page takes byte, gpt2 or the address of a tokenizer.json"));
    // a tokenizer.json's address: the page fetches it before it starts
    for (query, url) in [
        ("?tokenizer=tok.json&preset=small", "tok.json"),
        ("?tokenizer=https://example.org/t.json?download=1", "https://example.org/t.json?download=1"),
    ] {
        let (s, start) = Settings::from_query(query).unwrap();
        assert_eq!((start.tokenizer_url.as_deref(), s.tokenizer), (Some(url), None), "{query}");
    }
}

/// A tokenizer.json the page read (picked or fetched) tokenizes the corpus as the same file
/// does natively, names itself by where it came from, and a bad one is refused by that name.
#[test]
fn a_tokenizer_json_read_already_tokenizes_as_the_file_does() {
    use srgpt::data::{Corpus, TokenizerChoice};
    let dir = std::env::temp_dir().join(format!("srgpt-page-tokenizer-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let text = "to be or not to be, that is the question\n".repeat(40);
    let corpus_file = dir.join("verses.txt");
    std::fs::write(&corpus_file, &text).unwrap();
    let json = srgpt::data::hf_tokenizer::train_bpe(&[corpus_file.display().to_string()], 300).unwrap();
    let tokenizer_file = dir.join("tokenizer.json");
    std::fs::write(&tokenizer_file, &json).unwrap();
    let read = TokenizerChoice::Json { name: "tok.json".into(), text: json.as_str().into() };
    assert_eq!(read.to_string(), "tok.json");
    let native = Corpus::from_text("verses", text.as_bytes(), &TokenizerChoice::File(tokenizer_file)).unwrap();
    let page = Corpus::from_text("verses", text.as_bytes(), &read).unwrap();
    assert_eq!((page.tokenizer.name(), page.train.to_vec()), ("hf", native.train.to_vec()));
    assert!(page.train.len() < text.len() * 9 / 10 / 2, "BPE merges the text's repeats: {} tokens", page.train.len());
    let bad = TokenizerChoice::Json { name: "broken.json".into(), text: "{\"model\": 3}".into() };
    let err = Corpus::from_text("verses", text.as_bytes(), &bad).unwrap_err().to_string();
    assert!(err.starts_with("tokenizer broken.json: "), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `srgpt view DIR` on a sweep's folder (Open in the dashboard): the sweep's table is shown,
/// a row per mode and learning rate, instead of curves.
#[test]
fn a_sweep_folder_opens_as_its_plot_and_table() {
    let mut h = Harness::builder()
        .with_size(egui::vec2(1200.0, 800.0))
        .build_ui_state(|ui, app: &mut App| app.show(ui), App::new(Settings::from_preset("tiny"), "test".into(), None));
    let dir = std::env::temp_dir().join(format!("srgpt-view-sweep-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cell = |mode: &str, lr: f32, mean: f64| {
        serde_json::json!({ "precision": mode, "lr": lr, "seeds": 2, "final_val_mean": mean, "final_val_std": 0.01,
            "update_ratio": 0.9, "lost_fraction": 0.3, "steps_to_target_mean": 150.0, "reached_target": 2, "speedup_vs_fp32_mean": 1.1 })
    };
    let cells = vec![cell("fp32", 3e-4, 2.61), cell("fp32", 3e-3, 2.17), cell("bf16", 3e-4, 2.73), cell("bf16", 3e-3, 2.21)];
    std::fs::write(dir.join("sweep.json"), serde_json::json!({ "cells": cells }).to_string()).unwrap();
    h.state_mut().view_path = dir.display().to_string();
    h.step();
    h.get_by_label("Open").click();
    h.step();
    h.step();
    assert_eq!(h.state().sweep.as_ref().map(Vec::len), Some(4), "error: {:?}", h.state().error);
    assert!(h.query_by_label_contains("final validation loss against the peak learning rate").is_some());
    assert!(h.query_by_label("2.7300").is_some(), "bf16's mean at 3e-4 is in the table");
    std::fs::remove_dir_all(&dir).ok();
}

/// The native file dialogs' answers, delivered as a dialog would (no desktop portal needed):
/// the corpus, the output folder, a run to view, checkpoints to continue and an export folder
/// each land where typing the path would put them. (Only this test delivers answers.)
#[test]
fn file_dialog_answers_fill_the_dashboard() {
    use srgpt::ui::dialogs::{deliver, Picked};
    let dir = std::env::temp_dir().join(format!("srgpt-dialogs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let corpus = dir.join("verses.txt");
    std::fs::write(&corpus, "to be or not to be, that is the question\n".repeat(40)).unwrap();
    let run = dir.join("run");
    let trained = std::process::Command::new(env!("CARGO_BIN_EXE_srgpt"))
        .args(["train", "--headless", "--n-layer", "1", "--n-head", "2", "--d", "16", "--ctx", "16", "--batch", "2", "--steps", "2"])
        .args(["--eval-every", "2", "--eval-batches", "1", "--precision", "bf16-sr", "--corpus"])
        .arg(&corpus)
        .arg("--out")
        .arg(&run)
        .output()
        .unwrap();
    assert!(trained.status.success(), "{}", String::from_utf8_lossy(&trained.stderr));

    let mut h = harness(micro_settings());
    h.step();
    assert!(h.query_by_label("Export a checkpoint…").is_some() && h.query_by_label("Folder…").is_some(), "the dialog buttons");
    deliver(Picked::Corpus(corpus.clone()));
    deliver(Picked::OutDir(dir.join("out")));
    h.step();
    assert_eq!(h.state().settings.corpus, corpus.display().to_string());
    assert_eq!(h.state().settings.out_dir, dir.join("out").display().to_string());
    // a tokenizer.json picked with the tokenizer's `…` tokenizes the corpus
    let bpe = dir.join("tokenizer.json");
    let made = std::process::Command::new(env!("CARGO_BIN_EXE_srgpt"))
        .args(["tokenizer", "train", "--vocab", "300", "--out"])
        .arg(&bpe)
        .arg(&corpus)
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    deliver(Picked::Tokenizer(bpe.clone()));
    h.step();
    assert_eq!(h.state().settings.tokenizer, Some(srgpt::data::TokenizerChoice::File(bpe.clone())));
    let picked = h.state().settings.corpus().unwrap();
    assert_eq!((picked.tokenizer.name(), picked.tokenizer), ("hf", srgpt::data::Tokenizer::from_file(&bpe).unwrap()));

    deliver(Picked::View(run.clone()));
    h.step();
    assert_eq!(h.state().runs.len(), 1, "the run picked is viewed: {:?}", h.state().error);

    let exported = dir.join("bf16-sr-hf");
    deliver(Picked::Export { checkpoint: run.join("bf16-sr.safetensors"), to: exported.clone() });
    h.step();
    assert!(exported.join("config.json").exists() && exported.join("model.safetensors").exists(), "{:?}", h.state().error);
    assert!(h.state().notice.as_deref().is_some_and(|n| n.contains("exported")));

    deliver(Picked::Checkpoints(vec![dir.join("missing.safetensors")]));
    h.step();
    assert!(h.state().error.as_deref().is_some_and(|e| e.contains("cannot read")), "{:?}", h.state().error);
    std::fs::remove_dir_all(&dir).ok();
}

/// One training driver: Start in the dashboard (its worker thread, small submissions
/// interleaved with frames) and `srgpt train --headless` with the same settings write the
/// same metrics.jsonl, line for line, timings aside.
#[test]
fn the_dashboard_and_the_command_line_write_the_same_metrics() {
    let root = std::env::temp_dir().join(format!("srgpt-one-driver-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let (window, headless) = (root.join("dashboard"), root.join("headless"));
    let mut s = micro_settings();
    (s.train.steps, s.eval_every, s.eval_batches) = (12, 5, 2);
    (s.out_dir, s.write_files) = (window.display().to_string(), true);
    let mut h = harness(s.clone());
    h.step();
    h.get_by_label("Start").click();
    step_until(&mut h, 600, "the dashboard's run to finish", |a| a.done && !a.running());
    let numbers = [
        ("--n-layer", s.model.n_layer.to_string()),
        ("--n-head", s.model.n_head.to_string()),
        ("--d", s.model.d.to_string()),
        ("--ctx", s.model.ctx.to_string()),
        ("--batch", s.train.batch.to_string()),
        ("--steps", s.train.steps.to_string()),
        ("--warmup", s.train.warmup.to_string()),
        ("--lr", s.train.lr.to_string()),
        ("--eval-every", s.eval_every.to_string()),
        ("--eval-batches", s.eval_batches.to_string()),
        ("--seed", s.seed.to_string()),
    ];
    let mut cli = std::process::Command::new(env!("CARGO_BIN_EXE_srgpt"));
    cli.args(["train", "--headless", "--preset", &s.preset, "--corpus", &s.corpus, "--precision", "fp32,bf16-sr"]);
    for (flag, value) in &numbers {
        cli.args([*flag, value.as_str()]);
    }
    let out = cli.arg("--out").arg(&headless).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines = |dir: &std::path::Path| -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
        text.lines()
            .map(|l| {
                let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                for timing in ["elapsed_s", "tokens_per_s", "gpu_s"] {
                    v.as_object_mut().unwrap().remove(timing);
                }
                v
            })
            .collect()
    };
    let (from_window, from_cli) = (lines(&window), lines(&headless));
    assert!(from_window.len() >= 2 * 12, "a line per step and mode: {from_window:?}");
    assert_eq!(from_window, from_cli);
    std::fs::remove_dir_all(&root).unwrap();
}
