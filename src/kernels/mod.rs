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
pub mod zero;

use anyhow::Result;

use crate::gpu::timing::time_dispatches;
use crate::gpu::{Bound, Gpu, ShaderSpec, Uniform};
use crate::precision::Store;

/// How the row kernels (softmax, cross-entropy, LayerNorm) reduce a row: `threads` threads
/// share it and combine through workgroup memory and barriers, or, with `subgroup`, the
/// row's threads are one subgroup of the adapter and combine with subgroup operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RowReduction {
    pub threads: u32,
    pub subgroup: bool,
}

impl RowReduction {
    /// The defines a row kernel takes from the choice.
    pub fn apply(self, spec: ShaderSpec) -> ShaderSpec {
        spec.define("ROW_THREADS", self.threads).flag("ROW_SUBGROUP", self.subgroup).subgroups(self.subgroup)
    }

    /// What the adapter can run: 1, 4, 8, 32 or 64 threads per row, and one subgroup per row
    /// where it has subgroups of one fixed size that divides the 64-thread workgroup.
    pub fn choices(gpu: &Gpu) -> Vec<RowReduction> {
        let mut out: Vec<RowReduction> = ROW_THREAD_CHOICES.iter().map(|&threads| RowReduction { threads, subgroup: false }).collect();
        if let Some(size) = gpu.fixed_subgroup_size().filter(|s| (2..=64).contains(s) && 64 % s == 0) {
            out.push(RowReduction { threads: size, subgroup: true });
        }
        out
    }
}

/// Threads per row that the barrier reductions support (powers of two dividing the row
/// kernels' 64-thread workgroup).
pub const ROW_THREAD_CHOICES: [u32; 5] = [1, 4, 8, 32, 64];

/// The tuning cache's entry for the row reduction: `[threads, subgroup (0 or 1)]`.
pub const ROW_REDUCTION_KEY: &str = "row reduction";

/// The row reduction of this adapter: measured once on a LayerNorm of a typical size (now, or
/// in the background: the rule's choice until then) and kept with the matmul tiles in the
/// adapter's tuning cache (see [`crate::gpu::tune`]). Where
/// nothing is measured (a browser, SRGPT_TUNE=0) or the measurement fails: 1 thread per row
/// on CPU adapters, where barriers are dear; elsewhere one subgroup per row where the adapter
/// allows it, else 32 threads. The choice never changes a bit: every choice sums a row in one
/// canonical order (shaders/lib/rows.wgsl).
pub fn row_reduction(gpu: &Gpu) -> RowReduction {
    let choices = RowReduction::choices(gpu);
    let rule = if gpu.report.device_type == "cpu" {
        RowReduction { threads: 1, subgroup: false }
    } else {
        choices.iter().copied().find(|c| c.subgroup).unwrap_or(RowReduction { threads: 32, subgroup: false })
    };
    if let Some(&[threads, subgroup]) = gpu.tuning.lock().unwrap().get(ROW_REDUCTION_KEY) {
        let known = RowReduction { threads, subgroup: subgroup == 1 };
        if choices.contains(&known) {
            return known;
        }
    }
    let (enabled, background) = {
        let tuning = gpu.tuning.lock().unwrap();
        (tuning.enabled, tuning.background)
    };
    if !enabled {
        return rule;
    }
    if background {
        let measure = move |gpu: &Gpu| {
            let chosen = measure_row_reduction(gpu, &RowReduction::choices(gpu), rule).unwrap_or(rule);
            Ok(vec![chosen.threads, chosen.subgroup as u32])
        };
        gpu.tuning.lock().unwrap().defer(ROW_REDUCTION_KEY.into(), vec![rule.threads, rule.subgroup as u32], Box::new(measure));
        return rule;
    }
    let chosen = measure_row_reduction(gpu, &choices, rule).unwrap_or(rule);
    gpu.tuning.lock().unwrap().insert(ROW_REDUCTION_KEY.into(), vec![chosen.threads, chosen.subgroup as u32]);
    chosen
}

/// The fastest choice on a LayerNorm forward of 4096 rows of 256 bf16 values (the rule's
/// choice must be beaten by 5%).
fn measure_row_reduction(gpu: &Gpu, choices: &[RowReduction], rule: RowReduction) -> Result<RowReduction> {
    gpu.tuning.lock().unwrap().announce_measuring();
    let (rows, c) = (4096u32, 256u32);
    let act = Store::Bf16;
    let inp = gpu.storage_buffer("row reduction inp", act.buffer_bytes((rows * c) as usize))?;
    let out = gpu.storage_buffer("row reduction out", act.buffer_bytes((rows * c) as usize))?;
    let params = gpu.storage_buffer("row reduction params", (2 * c * 4) as u64)?;
    let mean = gpu.storage_buffer("row reduction mean", rows as u64 * 4)?;
    let rstd = gpu.storage_buffer("row reduction rstd", rows as u64 * 4)?;
    let saved = layernorm::LayerNormSaved { inp: TensorRef::new(&inp, act), mean: &mean, rstd: &rstd };
    let affine = layernorm::LayerNormAffine { block: Block::new(&params, Store::F32), weight: 0, bias: c };
    let mut best = (f64::INFINITY, rule);
    for &choice in choices {
        let shape = layernorm::LayerNormShape { n: rows, c };
        let d = layernorm::layernorm_forward_with(gpu, choice, TensorRef::new(&out, act), &saved, affine, shape)?;
        let fastest = time_dispatches(gpu, &[&d], 4)?.into_iter().fold(f64::INFINITY, f64::min);
        let score = if choice == rule { fastest * 0.95 } else { fastest };
        if score < best.0 {
            best = (score, choice);
        }
    }
    Ok(best.1)
}

/// Row-kernel variants for validation: every barrier choice, and one subgroup per row.
pub(crate) fn row_variants(spec: ShaderSpec) -> Vec<ShaderSpec> {
    let mut out: Vec<ShaderSpec> =
        ROW_THREAD_CHOICES.iter().map(|&threads| RowReduction { threads, subgroup: false }.apply(spec.clone())).collect();
    out.push(RowReduction { threads: 32, subgroup: true }.apply(spec));
    out
}

/// A block of tensors in one buffer and one storage type: the model's parameters, or their
/// gradients. A kernel that reads or writes several tensors of a block binds it once and
/// addresses each tensor by its offset, so it takes the block and the offsets (never a buffer
/// per tensor, which it would ignore).
#[derive(Clone, Copy)]
pub struct Block<'a> {
    pub buffer: &'a wgpu::Buffer,
    pub store: Store,
}

impl<'a> Block<'a> {
    pub fn new(buffer: &'a wgpu::Buffer, store: Store) -> Block<'a> {
        Block { buffer, store }
    }

    /// The tensor of the block that starts at element `offset`.
    pub fn at(self, offset: u32) -> TensorRef<'a> {
        TensorRef { buffer: self.buffer, store: self.store, offset }
    }
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

/// What a kernel binds of the buffer holding elements [first, end) of a tensor in `store`:
/// the whole buffer where the adapter lets one binding span it (every buffer but the large
/// blocks of big models), else the window from `first` (rounded down to the adapter's
/// offset alignment) to `end`. Returns the binding and the element the window starts at,
/// to subtract from the offsets the kernel is given. Offsets relative to a window address
/// the same elements, so a windowed kernel computes the same bits.
pub(crate) fn window<'a>(gpu: &Gpu, buffer: &'a wgpu::Buffer, store: Store, first: u64, end: u64) -> Result<(Bound<'a>, u32)> {
    if buffer.size() <= gpu.binding_limit() {
        return Ok((Bound::whole(buffer), 0));
    }
    window_over(gpu, buffer, store, first, end)
}

/// The window of `buffer` over elements [first, end), always (see [`window`]).
fn window_over<'a>(gpu: &Gpu, buffer: &'a wgpu::Buffer, store: Store, first: u64, end: u64) -> Result<(Bound<'a>, u32)> {
    let limit = gpu.binding_limit();
    // 16-bit elements are packed in pairs: a window starts at a word, on an even element
    let element_bytes = if store.is_packed() { 2 } else { 4 };
    let align = gpu.limits.min_storage_buffer_offset_alignment as u64;
    let start = (first * element_bytes / align * align).min(buffer.size());
    // whole 16-byte units, for the views that load four elements at a time
    let stop = store.buffer_bytes(end as usize).max(start + 4).next_multiple_of(16).min(buffer.size());
    let size = stop - start;
    if size > limit {
        anyhow::bail!(
            "a kernel must bind {size} bytes of one tensor (elements {first}..{end}), over this adapter's max_storage_buffer_binding_size of {limit} bytes"
        );
    }
    let bound = Bound { buffer, start, size: std::num::NonZeroU64::new(size) };
    Ok((bound, (start / element_bytes) as u32))
}

/// Elements [first, first + len) of a block: one dispatch of a kernel that runs over the whole
/// block (AdamW, the gradient norm, clearing the gradients).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockPiece {
    pub first: u32,
    pub len: u32,
}

/// Elements per piece are a multiple of this: of AdamW's 1024 per workgroup and the gradient
/// norm's partial sums (`reduce::SUMSQ_CHUNK`), so a piece boundary never splits either, and
/// a window at a piece's first element is aligned for every storage.
pub const PIECE_QUANTUM: u32 = 4096;

/// How a kernel over all `n` elements of a block is dispatched on an adapter with `limits`:
/// in one piece where one binding can hold the block at 4 bytes an element (its widest
/// storage), else in pieces that can, each a multiple of [`PIECE_QUANTUM`] but the last.
pub fn block_pieces(limits: &wgpu::Limits, n: u32) -> Vec<BlockPiece> {
    let limit = crate::gpu::binding_limit(limits);
    if n as u64 * 4 <= limit {
        return vec![BlockPiece { first: 0, len: n }];
    }
    let per_piece = ((limit / 4) as u32 / PIECE_QUANTUM * PIECE_QUANTUM).max(PIECE_QUANTUM);
    (0..n).step_by(per_piece as usize).map(|first| BlockPiece { first, len: per_piece.min(n - first) }).collect()
}

/// What a piece's dispatch binds of a block buffer of `store`: the whole buffer when the
/// block is one piece, else the window from the piece's first element, which the kernel's
/// `#tensor ... from=` counts from.
pub(crate) fn bind_piece<'a>(gpu: &Gpu, buffer: &'a wgpu::Buffer, store: Store, piece: BlockPiece, pieces: usize) -> Result<Bound<'a>> {
    if pieces == 1 {
        return Ok(Bound::whole(buffer));
    }
    let (bound, start) = window_over(gpu, buffer, store, piece.first as u64, (piece.first + piece.len) as u64)?;
    if start != piece.first {
        anyhow::bail!("a piece of a block must start on the adapter's offset alignment (element {})", piece.first);
    }
    Ok(bound)
}

/// Refuses an odd count or offset for a kernel that works on pairs of elements: 16-bit
/// tensors are packed two to a u32, and a pair must not straddle two words.
pub(crate) fn check_pairs(kernel: &str, what: &str, count: u32, offsets: &[u32]) -> Result<()> {
    if !count.is_multiple_of(2) || offsets.iter().any(|o| o % 2 != 0) {
        anyhow::bail!("{kernel} needs an even {what} and even offsets ({what} {count}, offsets {offsets:?})");
    }
    Ok(())
}

/// Threads needed for `n` elements two per thread, as 64-wide workgroups.
pub(crate) fn pair_groups(n: usize) -> u32 {
    (n.div_ceil(2)).div_ceil(64) as u32
}

/// A shader family's uniform block as Rust declares it: a variant of the family's shader,
/// the Rust type's name, its size and its fields.
pub type UniformMirror = (ShaderSpec, &'static str, usize, &'static [(&'static str, usize, &'static str)]);

/// Every shader family's uniform block, for the test that compares each with its WGSL
/// `struct Params` through naga.
pub fn uniform_mirrors() -> Vec<UniformMirror> {
    fn of<P: Uniform>(spec: ShaderSpec) -> UniformMirror {
        (spec, std::any::type_name::<P>(), std::mem::size_of::<P>(), P::FIELDS)
    }
    let first = |variants: Vec<ShaderSpec>| variants.into_iter().next().expect("a family has variants");
    vec![
        of::<matmul::MatmulParams>(first(matmul::variants())),
        of::<softmax::SoftmaxParams>(first(softmax::variants())),
        of::<cross_entropy::CrossEntropyParams>(first(cross_entropy::variants())),
        of::<convert::ConvertParams>(first(convert::variants())),
        of::<reduce::ReduceParams>(first(reduce::variants())),
        of::<adamw::AdamwParams>(first(adamw::variants())),
        of::<layernorm::LayerNormParams>(first(layernorm::variants())),
        of::<gelu::GeluParams>(first(gelu::variants())),
        of::<embedding::EmbeddingParams>(first(embedding::variants())),
        of::<zero::ZeroParams>(first(zero::variants())),
    ]
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
    v.extend(zero::variants());
    v
}
