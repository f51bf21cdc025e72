//! A long run allocates nothing after warm-up: no GPU buffer is created and resident memory
//! stays flat over 4,900 steps. In a test binary of its own, so no other test's allocations
//! show in this process's memory.

use srgpt::data::Corpus;
use srgpt::model::config::{ModelConfig, TrainConfig};
use srgpt::precision::Precision;
use srgpt::train::{TrainSpec, Trainer};

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok()).unwrap_or(0)
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
        train: TrainConfig { batch: 4, lr: 1e-2, warmup: 3, steps: 5200 },
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
    let (counts, rss) = (gpu.resource_counts(), rss_kib());
    while !t.finished() {
        t.step(gpu).unwrap();
    }
    t.flush(gpu).unwrap();
    let (after, rss_after) = (gpu.resource_counts(), rss_kib());
    assert_eq!(after, counts, "GPU buffers were created after warm-up");
    assert!(rss_after < rss + 16 * 1024, "resident memory grew from {rss} KiB to {rss_after} KiB over 4900 steps");
    assert!(t.runs.iter().all(|r| r.val_loss.is_some_and(f32::is_finite)));
}
