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

use crate::gpu::ShaderSpec;
use crate::precision::Store;

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
