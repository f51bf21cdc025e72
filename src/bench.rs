//! `srgpt bench matmul`: GFLOP/s of the matmul kernel for each input storage type, at square
//! sizes and at the model's own shapes, beside a CPU sgemm measured in the same run.

use std::time::Instant;

use anyhow::Result;
use serde::Serialize;

use crate::gpu::timing::{median, time_dispatches};
use crate::gpu::Gpu;
use crate::kernels::matmul::{Layout, Mat, Matmul, MatmulShape, Tile};
use crate::kernels::TensorRef;
use crate::precision::Store;

#[derive(Clone, Debug, Serialize)]
pub struct MatmulRow {
    pub dtype: String,
    pub m: u32,
    pub n: u32,
    pub k: u32,
    pub gflops: f64,
    pub tile: String,
    pub cpu_sgemm_gflops: f64,
    pub what: String,
}

/// (what, m, n, k): square problems and a linear layer's shapes (out = inp . W^T).
pub fn default_shapes(bt: u32, d: u32, vocab: u32) -> Vec<(String, u32, u32, u32)> {
    let mut shapes: Vec<(String, u32, u32, u32)> = [256, 512, 1024]
        .iter()
        .map(|&s| (format!("{s}³"), s, s, s))
        .collect();
    shapes.push(("qkv".into(), bt, 3 * d, d));
    shapes.push(("mlp up".into(), bt, 4 * d, d));
    shapes.push(("mlp down".into(), bt, d, 4 * d));
    shapes.push(("logits".into(), bt, vocab, d));
    shapes
}

/// Times `out (m,n) = a (m,k) . b (n,k)^T` for each storage type and tile; keeps the best tile.
pub fn bench_matmul(
    gpu: &Gpu,
    shapes: &[(String, u32, u32, u32)],
    reps: u32,
    progress: &mut dyn FnMut(&MatmulRow),
) -> Result<Vec<MatmulRow>> {
    let mut rows = Vec::new();
    for (what, m, n, k) in shapes {
        let (m, n, k) = (*m, *n, *k);
        let a_host: Vec<f32> = (0..m * k).map(|i| ((i % 17) as f32 - 8.0) / 8.0).collect();
        let b_host: Vec<f32> = (0..n * k).map(|i| ((i % 13) as f32 - 6.0) / 6.0).collect();
        let cpu = cpu_sgemm_gflops(&a_host, &b_host, m as usize, n as usize, k as usize);
        for store in [Store::F32, Store::Bf16, Store::F16] {
            let a = gpu.buffer_from("bench a", &store.encode(&a_host))?;
            let b = gpu.buffer_from("bench b", &store.encode(&b_host))?;
            let c = gpu.storage_buffer("bench c", Store::F32.buffer_bytes((m * n) as usize))?;
            let shape = MatmulShape::new(m, n, k).trans(false, true);
            let mm = Matmul::new(
                shape,
                Mat::new(TensorRef::new(&a, store), Layout::rows(k)),
                Mat::new(TensorRef::new(&b, store), Layout::rows(k)),
                Mat::new(TensorRef::new(&c, Store::F32), Layout::rows(n)),
            );
            let mut best: Option<(f64, Tile)> = None;
            for tile in Tile::CANDIDATES {
                let d = mm.dispatch_with(gpu, tile)?;
                let seconds = median(&time_dispatches(gpu, &[&d], reps)?);
                let gflops = shape.flops() / seconds / 1e9;
                if best.is_none_or(|(g, _)| gflops > g) {
                    best = Some((gflops, tile));
                }
            }
            let (gflops, tile) = best.expect("at least one tile");
            let row = MatmulRow {
                dtype: store.wgsl_name().into(),
                m,
                n,
                k,
                gflops,
                tile: tile.name(),
                cpu_sgemm_gflops: cpu,
                what: what.clone(),
            };
            progress(&row);
            rows.push(row);
        }
    }
    Ok(rows)
}

/// GFLOP/s of the `matrixmultiply` crate's sgemm on the same problem (median of 3).
fn cpu_sgemm_gflops(a: &[f32], b: &[f32], m: usize, n: usize, k: usize) -> f64 {
    let mut c = vec![0.0f32; m * n];
    let mut times = Vec::new();
    for _ in 0..3 {
        let start = Instant::now();
        // b is (n, k) row-major; read as its transpose (k, n) through strides
        unsafe {
            matrixmultiply::sgemm(
                m,
                k,
                n,
                1.0,
                a.as_ptr(),
                k as isize,
                1,
                b.as_ptr(),
                1,
                k as isize,
                0.0,
                c.as_mut_ptr(),
                n as isize,
                1,
            );
        }
        times.push(start.elapsed().as_secs_f64());
    }
    2.0 * (m * n * k) as f64 / median(&times) / 1e9
}
