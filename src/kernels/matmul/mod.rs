//! matmul (shaders/matmul.wgsl): batched C = alpha * op(A) . op(B) (+ bias) (+ residual), or
//! C += alpha * op(A) . op(B) for gradients; inputs f32/bf16/f16, accumulation in f32, output
//! rounded to C's storage. And the linear layer built on it: `matmul_forward` /
//! `matmul_backward` as in llm.c.
//!
//!   inp (BT, C) act, weight (OC, C) param, bias (OC) param, out (BT, OC) act
//!   backward: dout (BT, OC) f32, dinp (BT, C) f32 (+=), dweight (OC, C) grad (+=),
//!   dbias (OC) grad (+=)

use anyhow::{bail, Result};

mod cpu;
mod shape;
mod tile;

pub use cpu::*;
pub use shape::*;
pub use tile::*;

use super::{reduce, window, TensorRef};

crate::uniform! {
    /// `Params` of shaders/matmul.wgsl.
    pub struct MatmulParams {
        m: u32, n: u32, k: u32, batch_inner: u32,
        a_off: u32, lda: u32, a_s1: u32, a_s2: u32,
        b_off: u32, ldb: u32, b_s1: u32, b_s2: u32,
        c_off: u32, ldc: u32, c_s1: u32, c_s2: u32,
        bias_off: u32, res_off: u32, alpha: f32, key_step: u32,
        key_tensor: u32, total: u32, _pad0: u32, _pad1: u32,
    }
}
use crate::gpu::timing::time_dispatches;
use crate::gpu::{Dispatch, Gpu, ShaderSpec};
use crate::precision::Store;

/// One operand or result: a buffer, its storage, its layout.
#[derive(Clone, Copy)]
pub struct Mat<'a> {
    pub buffer: &'a wgpu::Buffer,
    pub store: Store,
    pub layout: Layout,
}

impl<'a> Mat<'a> {
    pub fn new(t: TensorRef<'a>, layout: Layout) -> Mat<'a> {
        Mat { buffer: t.buffer, store: t.store, layout: layout.at(t.offset + layout.offset) }
    }
}

/// The operands of one matmul dispatch.
pub struct Matmul<'a> {
    pub shape: MatmulShape,
    pub a: Mat<'a>,
    pub b: Mat<'a>,
    pub c: Mat<'a>,
    pub bias: Option<TensorRef<'a>>,
    /// Added in the epilogue; laid out like `c` (same strides) from its own offset.
    pub residual: Option<TensorRef<'a>>,
    /// With GELU fused into the epilogue: this tensor (laid out like `c`) gets the
    /// pre-activation, `c` gets gelu of it.
    pub gelu_pre: Option<TensorRef<'a>>,
    /// SR key (step, tensor ^ seed) when `c` is stored bf16 with SR.
    pub key: [u32; 2],
    /// c += the product instead of c = it: how a backward writes a gradient.
    pub accumulate: bool,
}

impl<'a> Matmul<'a> {
    pub fn new(shape: MatmulShape, a: Mat<'a>, b: Mat<'a>, c: Mat<'a>) -> Matmul<'a> {
        Matmul { shape, a, b, c, bias: None, residual: None, gelu_pre: None, key: [0, 0], accumulate: false }
    }

    /// The dispatch with the fastest tile for this shape on this adapter, as measured and
    /// cached (problems of at least [`TUNE_MIN_FLOPS`]); otherwise [`Tile::for_shape`]. A shape
    /// never measured is measured now, or in the background (see [`crate::gpu::tune`]: the
    /// tile for the shape until then). The tile never changes the results: every output sums
    /// its k terms in the same order whatever the tile.
    pub fn dispatch(&self, gpu: &Gpu) -> Result<Dispatch> {
        let fallback = Tile::for_shape(self.shape.m, self.shape.n);
        if !self.is_tiled() || self.shape.flops() < TUNE_MIN_FLOPS {
            return self.dispatch_with(gpu, fallback);
        }
        let key = self.tuning_key();
        let (known, enabled, background) = {
            let tuning = gpu.tuning.lock().unwrap();
            (tuning.get(&key).and_then(|p| Tile::from_params(p, gpu)), tuning.enabled, tuning.background)
        };
        let tile = match known {
            Some(tile) => tile,
            None if !enabled => fallback,
            None if background => {
                gpu.tuning.lock().unwrap().defer(key, fallback.params(), self.measurement(fallback));
                fallback
            }
            None => {
                let best = self.measure_tiles(gpu, fallback)?;
                gpu.tuning.lock().unwrap().insert(key, best.params());
                best
            }
        };
        self.dispatch_with(gpu, tile)
    }

    /// `measure_tiles` of this problem, to run later: it holds the operands' buffers (the
    /// live ones: between steps every buffer a matmul writes, an activation or a gradient,
    /// is rewritten or cleared before it is read again).
    #[cfg(not(target_arch = "wasm32"))]
    fn measurement(&self, fallback: Tile) -> crate::gpu::tune::Measurement {
        let owned = |m: &Mat| (m.buffer.clone(), m.store, m.layout);
        let owned_tensor = |t: Option<TensorRef>| t.map(|t| (t.buffer.clone(), t.store, t.offset));
        let (a, b, c) = (owned(&self.a), owned(&self.b), owned(&self.c));
        let (bias, residual, gelu_pre) = (owned_tensor(self.bias), owned_tensor(self.residual), owned_tensor(self.gelu_pre));
        let (shape, key, accumulate) = (self.shape, self.key, self.accumulate);
        Box::new(move |gpu: &Gpu| {
            fn mat((buffer, store, layout): &(wgpu::Buffer, Store, Layout)) -> Mat<'_> {
                Mat { buffer, store: *store, layout: *layout }
            }
            fn tensor(t: &Option<(wgpu::Buffer, Store, u32)>) -> Option<TensorRef<'_>> {
                t.as_ref().map(|(buffer, store, offset)| TensorRef { buffer, store: *store, offset: *offset })
            }
            let problem = Matmul {
                shape,
                a: mat(&a),
                b: mat(&b),
                c: mat(&c),
                bias: tensor(&bias),
                residual: tensor(&residual),
                gelu_pre: tensor(&gelu_pre),
                key,
                accumulate,
            };
            Ok(problem.measure_tiles(gpu, fallback)?.params())
        })
    }

    /// A browser measures nothing (and its buffers cannot move between threads).
    #[cfg(target_arch = "wasm32")]
    fn measurement(&self, fallback: Tile) -> crate::gpu::tune::Measurement {
        Box::new(move |_: &Gpu| Ok(fallback.params()))
    }

    /// The fastest of the adapter's tuning candidates on this problem (never called in a
    /// browser, where nothing is measured). Their pipelines are created side by side, which
    /// uses every core on drivers that compile at creation; each is timed over two runs and
    /// the two fastest over three more, and the fastest single run counts, which resists a
    /// noisy machine. A candidate must beat the heuristic's tile by 5%.
    fn measure_tiles(&self, gpu: &Gpu, fallback: Tile) -> Result<Tile> {
        gpu.tuning.lock().unwrap().announce_measuring();
        let tiles = Tile::tuning_candidates(gpu);
        let dispatches: Vec<Dispatch> = std::thread::scope(|scope| {
            let compiling: Vec<_> = tiles.iter().map(|&t| scope.spawn(move || self.dispatch_with(gpu, t))).collect();
            compiling.into_iter().map(|h| h.join().expect("a tile compile thread panicked")).collect::<Result<_>>()
        })?;
        // the fastest of `reps` runs of candidate i, the heuristic's tile given its 5%
        let score = |i: usize, reps: u32| -> Result<f64> {
            let fastest = time_dispatches(gpu, &[&dispatches[i]], reps)?.into_iter().fold(f64::INFINITY, f64::min);
            Ok(if tiles[i] == fallback { fastest * 0.95 } else { fastest })
        };
        let mut timed: Vec<(f64, usize)> = (0..tiles.len()).map(|i| Ok((score(i, 2)?, i))).collect::<Result<_>>()?;
        timed.sort_by(|a, b| a.0.total_cmp(&b.0));
        for entry in timed.iter_mut().take(2) {
            entry.0 = entry.0.min(score(entry.1, 3)?);
        }
        Ok(timed.iter().min_by(|a, b| a.0.total_cmp(&b.0)).map_or(fallback, |&(_, i)| tiles[i]))
    }

    /// Whether a and b can be staged four elements to a load: a quad never straddles a row's
    /// end when rows start at multiples of 4 and the contiguous dimension (k, or m / n when
    /// transposed) is one too.
    fn quads(&self) -> (bool, bool) {
        let s = &self.shape;
        let quads = |layout: &Layout, contiguous: u32| layout.starts_are_multiples_of(4) && contiguous.is_multiple_of(4);
        (quads(&self.a.layout, if s.trans_a { s.m } else { s.k }), quads(&self.b.layout, if s.trans_b { s.k } else { s.n }))
    }

    /// Whether the register-blocked kernel serves this problem (else the flat one does).
    fn is_tiled(&self) -> bool {
        !self.c.store.is_packed() || (self.c.layout.even() && self.shape.n.is_multiple_of(2))
    }

    /// What a measurement depends on: storage types, transposes, epilogue, pairing, shape.
    fn tuning_key(&self) -> String {
        let s = &self.shape;
        let quads = self.quads();
        format!(
            "matmul a={} b={} c={} t={}{} bias={} res={} gelu={} acc={} pairs={}{}{} quads={}{} {}x{}x{}x{}",
            self.a.store.for_reading().wgsl_name(),
            self.b.store.for_reading().wgsl_name(),
            self.c.store.wgsl_name(),
            s.trans_a as u8,
            s.trans_b as u8,
            self.bias.is_some() as u8,
            self.residual.is_some() as u8,
            self.gelu_pre.is_some() as u8,
            self.accumulate as u8,
            self.a.layout.even() as u8,
            self.b.layout.even() as u8,
            self.c.layout.even() as u8,
            quads.0 as u8,
            quads.1 as u8,
            s.m,
            s.n,
            s.k,
            s.batch
        )
    }

    /// The uniform block: sizes, each operand's layout, the epilogue's offsets, the SR key.
    fn params(&self, total: u32) -> MatmulParams {
        let (s, c) = (&self.shape, &self.c.layout);
        let (a, b) = (&self.a.layout, &self.b.layout);
        MatmulParams {
            m: s.m,
            n: s.n,
            k: s.k,
            batch_inner: s.batch_inner,
            a_off: a.offset,
            lda: a.ld,
            a_s1: a.s1,
            a_s2: a.s2,
            b_off: b.offset,
            ldb: b.ld,
            b_s1: b.s1,
            b_s2: b.s2,
            c_off: c.offset,
            ldc: c.ld,
            c_s1: c.s1,
            c_s2: c.s2,
            bias_off: self.bias.map_or(0, |t| t.offset),
            res_off: self.residual.map_or(0, |t| t.offset),
            alpha: s.alpha,
            key_step: self.key[0],
            key_tensor: self.key[1],
            total,
            ..Default::default()
        }
    }

    pub fn dispatch_with(&self, gpu: &Gpu, tile: Tile) -> Result<Dispatch> {
        let s = &self.shape;
        if s.m == 0 || s.n == 0 || s.k == 0 || s.batch == 0 || s.batch_inner == 0 {
            bail!("matmul with an empty dimension: {s:?}");
        }
        let c = &self.c.layout;
        // A packed C is written in whole u32 pairs: the tiled kernel needs every row to start
        // even and hold an even count, the flat kernel a contiguous C.
        let tiled = self.is_tiled();
        let contiguous_c =
            c.ld == s.n && (s.batch_inner == 1 || c.s2 == s.m * s.n) && (s.batch == s.batch_inner || c.s1 == s.batch_inner * s.m * s.n);
        let total = s.batch as u64 * s.m as u64 * s.n as u64;
        // an odd total is fine when C runs to the end of its buffer: the last pair's second
        // half is then padding
        let tail_is_padding = (c.offset as u64 + total) * 2 + 2 >= self.c.buffer.size();
        if !tiled && !(contiguous_c && c.offset.is_multiple_of(2) && (total.is_multiple_of(2) || tail_is_padding)) {
            bail!("a 16-bit matmul output needs even rows or a contiguous even-sized layout: {s:?}, c {c:?}");
        }
        let pair_a = !self.a.store.is_packed() || self.a.layout.even();
        let pair_b = !self.b.store.is_packed() || self.b.layout.even();
        let pair_c = c.even() && s.n.is_multiple_of(2);
        // only the shared-memory kernel stages operands, so only it loads quads
        let staged = tiled && tile.shared_k > 0;
        let (quad_a, quad_b) = self.quads();
        let (quad_a, quad_b) = (staged && quad_a, staged && quad_b);
        if self.gelu_pre.is_some() && !(tiled && pair_c && self.gelu_pre.is_some_and(|p| p.store == self.c.store)) {
            bail!("a GELU epilogue needs even rows and a pre-activation stored like the output: {s:?}");
        }
        if self.accumulate && (self.gelu_pre.is_some() || self.bias.is_some() || self.residual.is_some()) {
            bail!("an accumulating matmul (a gradient) takes no bias, residual or GELU epilogue: {s:?}");
        }
        if !tile.fits(&gpu.limits) {
            bail!("matmul tile {} exceeds this adapter's workgroup limits", tile.name());
        }
        let spec = MatmulVariant {
            tile,
            tiled,
            a: self.a.store,
            b: self.b.store,
            c: self.c.store,
            trans_a: s.trans_a,
            trans_b: s.trans_b,
            pair_a: tiled && pair_a,
            pair_b: tiled && pair_b,
            pair_c: if tiled { pair_c } else { self.c.store.is_packed() },
            quad_a,
            quad_b,
            bias: self.bias.map(|b| b.store),
            residual: self.residual.map(|r| r.store),
            gelu: self.gelu_pre.is_some(),
            accumulate: self.accumulate,
        }
        .spec();

        let mut params = self.params(total as u32);
        // each operand bound whole, or in the window that holds it (a weight of a large
        // parameter block), its offset then counted from the window's start
        let (a_rows, a_cols) = if s.trans_a { (s.k, s.m) } else { (s.m, s.k) };
        let (b_rows, b_cols) = if s.trans_b { (s.n, s.k) } else { (s.k, s.n) };
        let extent = |l: &Layout, rows, cols| (l.offset as u64, l.end(rows, cols, s.batch, s.batch_inner));
        let (a_first, a_end) = extent(&self.a.layout, a_rows, a_cols);
        let (b_first, b_end) = extent(&self.b.layout, b_rows, b_cols);
        let (c_first, c_end) = extent(c, s.m, s.n);
        let (a_bound, a_shift) = window(gpu, self.a.buffer, self.a.store, a_first, a_end)?;
        let (b_bound, b_shift) = window(gpu, self.b.buffer, self.b.store, b_first, b_end)?;
        let (c_bound, c_shift) = window(gpu, self.c.buffer, self.c.store, c_first, c_end)?;
        (params.a_off, params.b_off, params.c_off) = (params.a_off - a_shift, params.b_off - b_shift, params.c_off - c_shift);
        // an operand loaded in quads is read only through its quad view (binding 7 or 8)
        let mut bindings = vec![(if quad_a { 7 } else { 0 }, a_bound), (if quad_b { 8 } else { 1 }, b_bound), (2, c_bound)];
        if let Some(bias) = self.bias {
            let (bound, shift) = window(gpu, bias.buffer, bias.store, bias.offset as u64, bias.offset as u64 + s.n as u64)?;
            params.bias_off -= shift;
            bindings.push((3, bound));
        }
        // the residual and the pre-activation are laid out like c, from their own offsets
        let like_c = |t: TensorRef<'a>| window(gpu, t.buffer, t.store, t.offset as u64, t.offset as u64 + (c_end - c_first));
        if let Some(res) = self.residual {
            let (bound, shift) = like_c(res)?;
            params.res_off -= shift;
            bindings.push((4, bound));
        }
        if let Some(pre) = self.gelu_pre {
            if pre.offset != c.offset {
                bail!("the GELU pre-activation must sit at the output's offset in its own buffer");
            }
            let (bound, shift) = like_c(pre)?;
            if shift != c_shift {
                bail!("the GELU pre-activation's buffer must be bound like the output's");
            }
            bindings.push((6, bound));
        }
        let workgroups = if tiled {
            [s.n.div_ceil(tile.wg_x * tile.tn2 * 2), s.m.div_ceil(tile.wg_y * tile.tm), s.batch]
        } else {
            gpu.grid((total.div_ceil(2)).div_ceil(64) as u32)
        };
        gpu.dispatch_bound("matmul", &spec, &bindings, 5, &params, workgroups)
    }
}

/// Everything that selects a compiled matmul: the kernel and its tile, each operand's
/// storage, the transposes, how operands are loaded, the epilogue. `dispatch_with` and
/// `variants()` both describe their variants with it, so the translation test checks what
/// runs.
#[derive(Clone, Copy, Debug)]
pub struct MatmulVariant {
    pub tile: Tile,
    /// a register-blocked kernel (`tile.entry()`), else `matmul_flat` (a packed output of
    /// odd shape)
    pub tiled: bool,
    pub a: Store,
    pub b: Store,
    pub c: Store,
    pub trans_a: bool,
    pub trans_b: bool,
    /// operands loaded and C stored two elements at a time
    pub pair_a: bool,
    pub pair_b: bool,
    pub pair_c: bool,
    /// operands staged four elements to a load (the shared-memory kernel)
    pub quad_a: bool,
    pub quad_b: bool,
    /// the storage of the bias and the residual added in the epilogue, when there are any
    pub bias: Option<Store>,
    pub residual: Option<Store>,
    pub gelu: bool,
    pub accumulate: bool,
}

impl MatmulVariant {
    /// A plain product of `store` operands into `store` by `tile`: no transposes, pairs or
    /// epilogue, to be adjusted field by field.
    pub fn plain(tile: Tile, store: Store) -> MatmulVariant {
        MatmulVariant {
            tile,
            tiled: true,
            a: store,
            b: store,
            c: store,
            trans_a: false,
            trans_b: false,
            pair_a: false,
            pair_b: false,
            pair_c: store.is_packed(),
            quad_a: false,
            quad_b: false,
            bias: None,
            residual: None,
            gelu: false,
            accumulate: false,
        }
    }

    pub fn spec(&self) -> ShaderSpec {
        let read = |s: Option<Store>| s.map_or("f32", |s| s.for_reading().wgsl_name());
        let tile = self.tile;
        ShaderSpec::new("matmul.wgsl", if self.tiled { tile.entry() } else { "matmul_flat" })
            .define("A", self.a.for_reading().wgsl_name())
            .define("B", self.b.for_reading().wgsl_name())
            .define("C", self.c.wgsl_name())
            .flag("TRANS_A", self.trans_a)
            .flag("TRANS_B", self.trans_b)
            .flag("PAIR_A", self.pair_a)
            .flag("PAIR_B", self.pair_b)
            .flag("PAIR_C", self.pair_c)
            .flag("HAS_BIAS", self.bias.is_some())
            .flag("HAS_RESIDUAL", self.residual.is_some())
            .flag("GELU", self.gelu)
            .flag("ACCUMULATE", self.accumulate)
            .flag("QUAD_A", self.quad_a)
            .flag("QUAD_B", self.quad_b)
            .define("BIAS", read(self.bias))
            .define("RES", read(self.residual))
            .flag("SUBGROUP_TILE", tile.subgroup)
            .subgroups(tile.subgroup)
            .shape_define("WG_X", tile.wg_x)
            .shape_define("WG_Y", tile.wg_y)
            .shape_define("TM", tile.tm)
            .shape_define("TN2", tile.tn2)
            .shape_define("TM_TN2", tile.tm * tile.tn2)
            .shape_define("SHARED_K", tile.shared_k)
            .shape_define("BM_BK", (tile.wg_y * tile.tm * tile.shared_k).max(1))
            .shape_define("BK_BN", (tile.shared_k * tile.wg_x * tile.tn2 * 2).max(1))
    }
}

/// A linear layer's weight (OC, C) and bias (OC), if it has one: the parameters, or their
/// gradients.
#[derive(Clone, Copy)]
pub struct Linear<'a> {
    pub weight: TensorRef<'a>,
    pub bias: Option<TensorRef<'a>>,
}

impl<'a> Linear<'a> {
    pub fn new(weight: TensorRef<'a>, bias: TensorRef<'a>) -> Linear<'a> {
        Linear { weight, bias: Some(bias) }
    }

    pub fn without_bias(weight: TensorRef<'a>) -> Linear<'a> {
        Linear { weight, bias: None }
    }
}

/// A linear layer's sizes: BT rows, C input channels, OC output channels.
#[derive(Clone, Copy, Debug)]
pub struct LinearShape {
    pub bt: u32,
    pub c: u32,
    pub oc: u32,
}

/// out (BT, OC) = inp (BT, C) . weight (OC, C)^T + bias (OC)
pub fn matmul_forward(gpu: &Gpu, out: TensorRef, inp: TensorRef, layer: Linear, s: LinearShape) -> Result<Dispatch> {
    linear(out, inp, layer, s).dispatch(gpu)
}

/// out (BT, OC) = residual (BT, OC) + inp (BT, C) . weight (OC, C)^T + bias (OC): a linear
/// layer that ends a residual branch.
pub fn matmul_residual_forward(
    gpu: &Gpu,
    out: TensorRef,
    residual: TensorRef,
    inp: TensorRef,
    layer: Linear,
    s: LinearShape,
) -> Result<Dispatch> {
    let mut mm = linear(out, inp, layer, s);
    mm.residual = Some(residual);
    mm.dispatch(gpu)
}

/// pre (BT, OC) = inp . weight^T + bias, out (BT, OC) = gelu(pre): a linear layer and the GELU
/// after it in one dispatch (the MLP's first half).
pub fn matmul_gelu_forward(gpu: &Gpu, out: TensorRef, pre: TensorRef, inp: TensorRef, layer: Linear, s: LinearShape) -> Result<Dispatch> {
    let mut mm = linear(out, inp, layer, s);
    mm.gelu_pre = Some(pre);
    mm.dispatch(gpu)
}

/// The matmul of a linear layer's forward: out (BT, OC) = inp (BT, C) . weight (OC, C)^T + bias.
fn linear<'a>(out: TensorRef<'a>, inp: TensorRef<'a>, layer: Linear<'a>, s: LinearShape) -> Matmul<'a> {
    let shape = MatmulShape::new(s.bt, s.oc, s.c).trans(false, true);
    let mut mm =
        Matmul::new(shape, Mat::new(inp, Layout::rows(s.c)), Mat::new(layer.weight, Layout::rows(s.c)), Mat::new(out, Layout::rows(s.oc)));
    mm.bias = layer.bias;
    mm
}

/// dinp (BT, C) += dout (BT, OC) . weight (OC, C); dweight (OC, C) += dout^T . inp (BT, C);
/// dbias (OC) += column sums of dout.
pub fn matmul_backward(
    gpu: &Gpu,
    dinp: TensorRef,
    dlayer: Linear,
    dout: TensorRef,
    inp: TensorRef,
    weight: TensorRef,
    s: LinearShape,
) -> Result<Vec<Dispatch>> {
    let mut dinp_mm = Matmul::new(
        MatmulShape::new(s.bt, s.c, s.oc),
        Mat::new(dout, Layout::rows(s.oc)),
        Mat::new(weight, Layout::rows(s.c)),
        Mat::new(dinp, Layout::rows(s.c)),
    );
    let mut dweight_mm = Matmul::new(
        MatmulShape::new(s.oc, s.c, s.bt).trans(true, false),
        Mat::new(dout, Layout::rows(s.oc)),
        Mat::new(inp, Layout::rows(s.c)),
        Mat::new(dlayer.weight, Layout::rows(s.c)),
    );
    dinp_mm.accumulate = true;
    dweight_mm.accumulate = true;
    let mut out = vec![dinp_mm.dispatch(gpu)?, dweight_mm.dispatch(gpu)?];
    if let Some(dbias) = dlayer.bias {
        out.push(reduce::column_sum(gpu, dbias, dout, s.bt, s.oc)?);
    }
    Ok(out)
}

/// Every matmul variant the model can ask for, in kind: each kernel with every storage and
/// transpose, plain, with every epilogue and paired loads, and accumulating; and every tile
/// candidate on the model's commonest problem.
pub fn variants() -> Vec<ShaderSpec> {
    let mut out = Vec::new();
    for (tile, tiled) in [(Tile::SMALL, true), (Tile::SHARED_LARGE, true), (Tile::subgroup(32, 8, 2), true), (Tile::SMALL, false)] {
        for store in Store::ALL {
            for (trans_a, trans_b) in [(false, false), (false, true), (true, false), (true, true)] {
                // plain; with every epilogue and paired loads; accumulating (a gradient)
                for (extras, accumulate) in [(false, false), (true, false), (false, true)] {
                    let staged = tiled && tile.shared_k > 0;
                    let v = MatmulVariant {
                        tiled,
                        trans_a,
                        trans_b,
                        pair_a: extras,
                        pair_b: extras,
                        pair_c: extras || store.is_packed(),
                        quad_a: extras && staged,
                        quad_b: extras && staged,
                        bias: extras.then_some(store),
                        residual: extras.then_some(store),
                        gelu: extras && tiled,
                        accumulate,
                        ..MatmulVariant::plain(tile, store)
                    };
                    out.push(v.spec());
                }
            }
        }
    }
    for tile in Tile::CANDIDATES.into_iter().chain(Tile::SUBGROUP_SHAPES.map(|(tm, tn2)| Tile::subgroup(32, tm, tn2))) {
        let v = MatmulVariant {
            c: Store::F32,
            trans_b: true,
            pair_a: true,
            pair_b: true,
            pair_c: true,
            ..MatmulVariant::plain(tile, Store::Bf16)
        };
        out.push(v.spec());
    }
    out
}
