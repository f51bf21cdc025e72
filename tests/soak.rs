//! A long run allocates nothing after warm-up: no GPU buffer is created, no buffer, bind
//! group, command buffer or query set is left alive, and resident memory stays flat over
//! 4,900 steps (sampled every 700, its slope bounded). In a test binary of its own, so no
//! other test's allocations show in this process's memory.

use srgpt::data::Corpus;
use srgpt::model::config::{ModelConfig, TrainConfig};
use srgpt::precision::Precision;
use srgpt::train::{TrainSpec, Trainer};

/// Resident memory in KiB; the test fails where it cannot be read (a check that reads 0
/// would pass whatever happened).
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status is readable");
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .expect("VmRSS in /proc/self/status")
}

#[test]
fn a_long_run_allocates_nothing_after_warm_up() {
    // a device of its own: the other tests of this binary allocate on the shared one
    let gpu = &srgpt::gpu::Gpu::new(None).unwrap();
    let c = Corpus::from_bytes(
        "test",
        "It is a truth universally acknowledged, that a single man in possession of a good fortune. ".repeat(30).as_bytes(),
    )
    .unwrap();
    let spec = TrainSpec {
        preset: "micro".into(),
        model: ModelConfig { n_layer: 1, n_head: 2, d: 16, ctx: 16, vocab: c.vocab_size() },
        train: TrainConfig { batch: 4, lr: 1e-2, warmup: 3, steps: 5200, grad_accum: 1 },
        precisions: vec![Precision::Fp32, Precision::Bf16Sr],
        seed: 11,
        eval_every: 500,
        eval_batches: 2,
        measure_fidelity: true,
    };
    let mut t = Trainer::new(gpu, c, spec).unwrap();
    while t.step < 300 {
        t.step(gpu).unwrap();
    }
    let counts = gpu.resource_counts();
    assert!(counts.alive.is_some(), "wgpu reports the resources alive on a native instance");
    // (step, KiB) every 700 steps from warm-up on
    let mut samples = vec![(t.step, rss_kib())];
    while !t.finished() {
        t.step(gpu).unwrap();
        if t.step.is_multiple_of(700) {
            samples.push((t.step, rss_kib()));
        }
    }
    t.flush(gpu).unwrap();
    samples.push((t.step, rss_kib()));
    let after = gpu.resource_counts();
    assert_eq!(after, counts, "GPU resources were created or left alive after warm-up");
    // least-squares slope of resident memory against steps: a leak of 100 bytes a step would
    // show as 0.1 KiB per step over these 4,900 steps; allocator noise is far below it
    let n = samples.len() as f64;
    let (mx, my) = (samples.iter().map(|s| s.0 as f64).sum::<f64>() / n, samples.iter().map(|s| s.1 as f64).sum::<f64>() / n);
    let cov: f64 = samples.iter().map(|s| (s.0 as f64 - mx) * (s.1 as f64 - my)).sum();
    let var: f64 = samples.iter().map(|s| (s.0 as f64 - mx).powi(2)).sum();
    let bytes_per_step = 1024.0 * cov / var;
    eprintln!("resident memory (step, KiB): {samples:?}; slope {bytes_per_step:.1} bytes per step");
    assert!(bytes_per_step < 100.0, "resident memory grows {bytes_per_step:.0} bytes per step: {samples:?}");
    let (first, last) = (samples[0].1, samples[samples.len() - 1].1);
    assert!(last < first + 4 * 1024, "resident memory grew from {first} KiB to {last} KiB over 4900 steps");
    assert!(t.runs.iter().all(|r| r.val_loss.is_some_and(f32::is_finite)));
}
