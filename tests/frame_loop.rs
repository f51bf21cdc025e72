//! The path the browser takes, run here: a trainer advanced once per "frame" without ever
//! waiting for the GPU gives the same losses as one that waits, and the tiny preset trains
//! within WebGPU's default limits and without optional features (no shader-f16, as on
//! Chromium's software adapter).

mod common;

use std::collections::BTreeMap;

use common::*;
use srgpt::data::Corpus;
use srgpt::gpu::{choose_adapter, list_adapters, new_instance, Gpu};
use srgpt::model::config::{preset, ModelConfig, TrainConfig};
use srgpt::precision::Precision;
use srgpt::train::checkpoint;
use srgpt::train::output::CheckpointPolicy;
use srgpt::train::session::{Driving, Event, KeepSnapshot, SavedSession, Session, SessionOptions};
use srgpt::train::{Metric, RunStatus, TrainSpec, Trainer};

fn corpus() -> Corpus {
    let text = "she sells sea shells by the sea shore; the shells she sells are sea shells. ".repeat(40);
    Corpus::from_bytes("test", text.as_bytes()).unwrap()
}

fn spec(corpus: &Corpus, steps: u32) -> TrainSpec {
    TrainSpec {
        preset: "micro".into(),
        model: ModelConfig { n_layer: 2, n_head: 2, d: 32, ctx: 16, vocab: corpus.vocab_size() },
        train: TrainConfig { batch: 8, lr: 1e-2, warmup: 5, steps, grad_accum: 1 },
        precisions: vec![Precision::Fp32, Precision::Bf16Sr],
        seed: 5,
        eval_every: 10,
        eval_batches: 3,
        measure_fidelity: true,
    }
}

/// (run, step) -> (train loss bits, val loss bits), whichever lines carried them.
fn by_step(lines: &[Metric]) -> BTreeMap<(String, u32), (Option<u32>, Option<u32>)> {
    let mut map: BTreeMap<(String, u32), (Option<u32>, Option<u32>)> = BTreeMap::new();
    for l in lines {
        let e = map.entry((l.run.clone(), l.step)).or_default();
        if let Some(t) = l.train_loss {
            assert!(e.0.replace(t.to_bits()).is_none(), "two train losses for {} step {}", l.run, l.step);
        }
        if let Some(v) = l.val_loss {
            assert!(e.1.replace(v.to_bits()).is_none(), "two val losses for {} step {}", l.run, l.step);
        }
    }
    map
}

#[test]
fn advancing_without_waiting_gives_the_losses_of_waiting_steps() {
    let c = corpus();
    let steps = 25;
    let mut waiting = Trainer::new(gpu(), c.clone(), spec(&c, steps)).unwrap();
    let mut expected = Vec::new();
    while !waiting.finished() {
        expected.extend(waiting.step(gpu()).unwrap());
    }
    let mut framed = Trainer::new(gpu(), c.clone(), spec(&c, steps)).unwrap();
    let mut got = Vec::new();
    let mut frames = 0;
    while !(framed.finished() && framed.idle()) {
        got.extend(framed.advance(gpu()).unwrap());
        frames += 1;
        assert!(frames < 100_000, "the frame loop never finished");
    }
    got.extend(framed.advance(gpu()).unwrap());
    assert!(framed.runs.iter().all(|r| r.status == RunStatus::Done));
    let (expected, got) = (by_step(&expected), by_step(&got));
    assert_eq!(expected.len(), 2 * (steps as usize + 1), "a line per run for step 0..=steps");
    assert_eq!(got, expected, "the same train and val losses, bit for bit");
}

#[test]
fn the_tiny_preset_trains_in_a_frame_loop_within_webgpu_default_limits() {
    let adapter = choose_adapter(list_adapters(&new_instance()).unwrap(), None).unwrap();
    let gpu = Gpu::from_adapter_with(&adapter, wgpu::Features::empty(), wgpu::Limits::default()).unwrap();
    let corpus = Corpus::load("builtin").unwrap();
    let p = preset("tiny").unwrap();
    let spec = TrainSpec {
        preset: "tiny".into(),
        model: ModelConfig::from_preset(&p, corpus.vocab_size()),
        train: TrainConfig { steps: 12, ..p.train },
        precisions: Precision::ALL.to_vec(),
        seed: 1,
        eval_every: 6,
        eval_batches: 2,
        measure_fidelity: true,
    };
    let (mut session, started) = Session::start(
        &gpu,
        corpus,
        spec,
        SessionOptions { out_dir: None, sample_every: 6, checkpoints: CheckpointPolicy::DEFAULT, keep: None },
        Driving::FrameLoop,
    )
    .unwrap();
    assert!(matches!(started, Event::Started { .. }));
    let (mut train_lines, mut val_lines, mut samples) = (0, 0, Vec::new());
    let mut frames = 0;
    while !session.is_done() {
        for event in session.tick(&gpu).unwrap() {
            match event {
                Event::Metrics(lines) => {
                    train_lines += lines.iter().filter(|l| l.train_loss.is_some()).count();
                    val_lines += lines.iter().filter(|l| l.val_loss.is_some()).count();
                }
                Event::Sample { run, text, .. } => samples.push((run, text)),
                Event::Error(e) => panic!("{e}"),
                _ => {}
            }
        }
        frames += 1;
        assert!(frames < 200_000, "the session never finished");
    }
    gpu.check_errors("the tiny preset within WebGPU's default limits").unwrap();
    let runs = Precision::ALL.len();
    assert_eq!(train_lines, runs * 12, "a train line per run and step");
    assert_eq!(val_lines, runs * 3, "evaluations at steps 0, 6 and 12");
    assert!(session.trainer.runs.iter().all(|r| r.status == RunStatus::Done));
    // samples begin at steps 1, 6 and 12; each run's are written in turn
    assert!(samples.len() >= 4, "samples from every run: {samples:?}");
    assert!(samples.iter().all(|(_, text)| text.len() >= 120), "120 bytes each");
}

/// Runs a frame-loop session to its end, returning every metric line it handed out.
fn run_session(mut session: Session) -> Vec<Metric> {
    let mut lines = Vec::new();
    let mut frames = 0;
    while !session.is_done() {
        for event in session.tick(gpu()).unwrap() {
            if let Event::Metrics(l) = event {
                lines.extend(l);
            }
        }
        frames += 1;
        assert!(frames < 1_000_000, "the session never finished");
    }
    lines
}

/// What a browser tab does: a frame-loop session keeps snapshots as it trains (here every 5
/// steps); the tab closes; a new session continues from the newest snapshot's files, and
/// every loss from there on equals the uninterrupted run's, bit for bit.
#[test]
fn a_session_continued_from_its_kept_snapshot_repeats_the_uninterrupted_losses() {
    let c = corpus();
    let steps = 14;
    let options =
        |keep| SessionOptions { out_dir: None, sample_every: 0, checkpoints: CheckpointPolicy { every_steps: 5, every: None }, keep };
    let (whole, _) = Session::start(gpu(), c.clone(), spec(&c, steps), options(None), Driving::FrameLoop).unwrap();
    let want = by_step(&run_session(whole));

    let kept = std::sync::Arc::new(std::sync::Mutex::new(Vec::<SavedSession>::new()));
    let sink = kept.clone();
    let keep: KeepSnapshot = std::sync::Arc::new(move |saved| sink.lock().unwrap().push(saved.expect("a snapshot")));
    let (mut first, _) = Session::start(gpu(), c.clone(), spec(&c, steps), options(Some(keep)), Driving::FrameLoop).unwrap();
    let mut frames = 0;
    while kept.lock().unwrap().iter().all(|s| s.step < 10) {
        first.tick(gpu()).unwrap();
        frames += 1;
        assert!(frames < 1_000_000, "no snapshot at step 10");
    }
    assert!(first.trainer.step < steps, "the tab closes before the end");
    drop(first);
    let saved = kept.lock().unwrap().iter().max_by_key(|s| s.step).cloned().unwrap();
    let names: Vec<&str> = saved.files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["fp32.safetensors", "bf16-sr.safetensors", "metrics.jsonl"]);
    let checkpoints: Vec<_> =
        saved.files.iter().filter(|(n, _)| n.ends_with(".safetensors")).map(|(_, b)| checkpoint::decode(b).unwrap()).collect();
    assert!(checkpoints.iter().all(|c| c.state.step == saved.step));
    let log = srgpt::train::parse_metrics(&String::from_utf8_lossy(&saved.files[2].1), "metrics.jsonl").unwrap();
    assert_eq!(log.iter().map(|l| l.step).max(), Some(saved.step), "the snapshot has every line up to its step");

    let (second, _) = Session::resume(gpu(), c.clone(), checkpoints, log, options(None), Driving::FrameLoop).unwrap();
    let got = by_step(&run_session(second));
    assert_eq!(got, want, "the continued session's curves (restored and new) equal the uninterrupted run's");
}
