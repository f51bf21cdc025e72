//! Helpers shared by the GPU tests: one device per test binary, uploads, downloads, data.
#![allow(dead_code)]

use std::sync::OnceLock;

use srgpt::gpu::Gpu;
use srgpt::kernels::TensorRef;
use srgpt::precision::Store;

/// The adapter the tests run on (lavapipe in CI), opened once per test binary.
pub fn gpu() -> &'static Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(|| {
        let gpu = Gpu::new(None).expect("these tests need a GPU adapter (in CI: Mesa lavapipe)");
        eprintln!("testing on {}", gpu.report.summary());
        gpu
    })
}

/// A buffer holding `values` in `store` (16-bit values rounded to nearest on the CPU).
pub fn upload(store: Store, values: &[f32]) -> wgpu::Buffer {
    gpu().buffer_from("test", &store.encode(values)).unwrap()
}

pub fn zeros(store: Store, n: usize) -> wgpu::Buffer {
    gpu().storage_buffer("test", store.buffer_bytes(n)).unwrap()
}

pub fn download(buffer: &wgpu::Buffer, store: Store, n: usize) -> Vec<f32> {
    let bytes = gpu().read_bytes(buffer, 0, store.buffer_bytes(n)).unwrap();
    store.decode(&bytes, n)
}

pub fn tref(buffer: &wgpu::Buffer, store: Store) -> TensorRef<'_> {
    TensorRef::new(buffer, store)
}

/// Runs dispatches and waits.
pub fn run(dispatches: &[srgpt::gpu::Dispatch]) {
    let refs: Vec<_> = dispatches.iter().collect();
    gpu().run(&refs).unwrap();
    gpu().wait().unwrap();
    gpu().check_errors("test").unwrap();
}

/// Deterministic uniform values in [-scale, scale).
pub fn random_values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let unit = (state >> 40) as f32 / (1u64 << 24) as f32;
            (2.0 * unit - 1.0) * scale
        })
        .collect()
}

/// Values as the GPU sees them after storing with round-to-nearest.
pub fn rounded(store: Store, values: &[f32]) -> Vec<f32> {
    values.iter().map(|&x| store.round_rtn(x)).collect()
}

/// Asserts |got - want| <= abs + rel * |want| elementwise, naming the worst element.
pub fn assert_close(what: &str, got: &[f32], want: &[f32], abs: f32, rel: f32) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let mut worst: Option<(usize, f32)> = None;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        if g.is_nan() || w.is_nan() {
            assert_eq!(g.is_nan(), w.is_nan(), "{what}: element {i}: got {g}, want {w}");
            continue;
        }
        let excess = (g - w).abs() - (abs + rel * w.abs());
        if excess > 0.0 && worst.is_none_or(|(_, e)| excess > e) {
            worst = Some((i, excess));
        }
    }
    if let Some((i, _)) = worst {
        panic!("{what}: element {i}: got {}, want {} (tolerance {abs} + {rel}*|want|)", got[i], want[i]);
    }
}

/// The program `name` on PATH.
pub fn which(name: &str) -> Result<std::path::PathBuf, ()> {
    std::env::var_os("PATH").and_then(|p| std::env::split_paths(&p).map(|d| d.join(name)).find(|p| p.is_file())).ok_or(())
}

/// A run folder's metrics.jsonl without the timings, which differ between runs.
pub fn logged_losses(dir: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            let o = v.as_object_mut().unwrap();
            o.remove("elapsed_s");
            o.remove("tokens_per_s");
            o.remove("gpu_s");
            v
        })
        .collect()
}
