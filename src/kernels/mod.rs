//! One Rust file per WGSL family in `shaders/`: each builds the family's dispatches and holds
//! the CPU reference its tests compare against.

pub mod adamw;
pub mod attention;
pub mod convert;
pub mod cross_entropy;
pub mod embedding;
pub mod gelu;
pub mod layernorm;
pub mod matmul;
pub mod reduce;
pub mod softmax;

use anyhow::Result;

use crate::gpu::timing::time_dispatches;
use crate::gpu::{Gpu, ShaderSpec};
use crate::precision::Store;

/// Threads per row in the row kernels (softmax, cross-entropy, LayerNorm): measured once per
/// adapter on a LayerNorm of a typical size and cached on disk with the matmul tiles (see
/// [`crate::gpu::tune`]). Where nothing is measured (a browser, SRGPT_TUNE=0) or the
/// measurement fails: 1 on CPU adapters, where barriers are dear, 32 on GPUs. The choice can
/// change the last bits of a row's sums, so it is kept: runs on one machine stay
/// bit-reproducible.
pub fn row_threads(gpu: &Gpu) -> u32 {
    *gpu.row_threads.get_or_init(|| {
        let rule = if gpu.report.device_type == "cpu" { 1 } else { 32 };
        if !gpu.tuning.lock().unwrap().enabled {
            return rule;
        }
        const KEY: &str = "row threads";
        if let Some(&[threads]) = gpu.tuning.lock().unwrap().get(KEY) {
            if ROW_THREAD_CHOICES.contains(&threads) {
                return threads;
            }
        }
        let chosen = measure_row_threads(gpu, rule).unwrap_or(rule);
        gpu.tuning.lock().unwrap().insert(KEY.into(), vec![chosen]);
        chosen
    })
}

/// Threads per row that the row kernels support (powers of two dividing their 64-thread
/// workgroup).
pub const ROW_THREAD_CHOICES: [u32; 5] = [1, 4, 8, 32, 64];

/// The fastest choice on a LayerNorm forward of 4096 rows of 256 bf16 values (the rule's
/// choice must be beaten by 5%).
fn measure_row_threads(gpu: &Gpu, rule: u32) -> Result<u32> {
    let (rows, c) = (4096u32, 256u32);
    let act = Store::Bf16;
    let inp = gpu.storage_buffer("row threads inp", act.buffer_bytes((rows * c) as usize))?;
    let out = gpu.storage_buffer("row threads out", act.buffer_bytes((rows * c) as usize))?;
    let params = gpu.storage_buffer("row threads params", (2 * c * 4) as u64)?;
    let (mean, rstd) = (gpu.storage_buffer("row threads mean", rows as u64 * 4)?, gpu.storage_buffer("row threads rstd", rows as u64 * 4)?);
    let stats = layernorm::LayerNormStats { mean: &mean, rstd: &rstd };
    let mut best = (f64::INFINITY, rule);
    for threads in ROW_THREAD_CHOICES {
        let d = layernorm::layernorm_forward_with(
            gpu,
            threads,
            TensorRef::new(&out, act),
            &stats,
            TensorRef::new(&inp, act),
            TensorRef::new(&params, Store::F32),
            TensorRef::new(&params, Store::F32).at(c),
            rows,
            c,
        )?;
        let fastest = time_dispatches(gpu, &[&d], 4)?.into_iter().fold(f64::INFINITY, f64::min);
        let score = if threads == rule { fastest * 0.95 } else { fastest };
        if score < best.0 {
            best = (score, threads);
        }
    }
    Ok(best.1)
}

/// A tensor inside a GPU buffer: its storage type and its first element.
#[derive(Clone, Copy)]
pub struct TensorRef<'a> {
    pub buffer: &'a wgpu::Buffer,
    pub store: Store,
    /// offset in elements
    pub offset: u32,
}

impl<'a> TensorRef<'a> {
    pub fn new(buffer: &'a wgpu::Buffer, store: Store) -> TensorRef<'a> {
        TensorRef { buffer, store, offset: 0 }
    }

    pub fn at(self, offset: u32) -> TensorRef<'a> {
        TensorRef { offset, ..self }
    }

    /// Read-only storage name for defines (bf16 and bf16-SR read alike).
    fn read_name(&self) -> &'static str {
        self.store.for_reading().wgsl_name()
    }
}

/// Packs u32/f32 uniform fields (f32 given by `f32::to_bits`) into bytes.
pub(crate) fn uniform_bytes(fields: &[u32]) -> Vec<u8> {
    let mut words = fields.to_vec();
    words.resize(fields.len().next_multiple_of(4), 0);
    bytemuck::cast_slice(&words).to_vec()
}

/// Threads needed for `n` elements two per thread, as 64-wide workgroups.
pub(crate) fn pair_groups(n: usize) -> u32 {
    (n.div_ceil(2)).div_ceil(64) as u32
}

/// Every shader variant srgpt can build, for validation without a GPU.
pub fn all_variants() -> Vec<ShaderSpec> {
    let mut v = Vec::new();
    v.extend(matmul::variants());
    v.extend(softmax::variants());
    v.extend(cross_entropy::variants());
    v.extend(convert::variants());
    v.extend(reduce::variants());
    v.extend(adamw::variants());
    v.extend(layernorm::variants());
    v.extend(gelu::variants());
    v.extend(embedding::variants());
    v
}

pub(crate) const ALL_STORES: [Store; 4] = [Store::F32, Store::Bf16, Store::Bf16Sr, Store::F16];
