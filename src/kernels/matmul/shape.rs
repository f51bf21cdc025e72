//! Where matrices sit in their buffers and what one matmul computes.

/// Where a matrix sits in its buffer: first element, row stride, and the strides of the outer
/// and inner batch index (batch z = (z / batch_inner, z % batch_inner)).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Layout {
    pub offset: u32,
    pub ld: u32,
    pub s1: u32,
    pub s2: u32,
}

impl Layout {
    /// A single matrix with row stride `ld`.
    pub fn rows(ld: u32) -> Layout {
        Layout { offset: 0, ld, s1: 0, s2: 0 }
    }

    pub fn at(self, offset: u32) -> Layout {
        Layout { offset, ..self }
    }

    pub fn batched(self, s1: u32, s2: u32) -> Layout {
        Layout { s1, s2, ..self }
    }

    pub(super) fn start(&self, z: u32, batch_inner: u32) -> usize {
        (self.offset + (z / batch_inner) * self.s1 + (z % batch_inner) * self.s2) as usize
    }

    /// One past the last element of `batch` matrices of `rows` x `cols` in this layout
    /// (strides are never negative: the first element is `offset`).
    pub(super) fn end(&self, rows: u32, cols: u32, batch: u32, batch_inner: u32) -> u64 {
        let last_z = batch.max(1) - 1;
        let last_start = self.start(last_z, batch_inner.max(1)) as u64;
        last_start + (rows.max(1) as u64 - 1) * self.ld as u64 + cols as u64
    }

    /// Whether every row and batch start is even, so 16-bit pairs never straddle a u32.
    pub(super) fn even(&self) -> bool {
        self.starts_are_multiples_of(2)
    }

    /// Whether every row and batch start is a multiple of `n` elements.
    pub(super) fn starts_are_multiples_of(&self, n: u32) -> bool {
        [self.offset, self.ld, self.s1, self.s2].iter().all(|x| x.is_multiple_of(n))
    }
}

/// The problem: sizes, transposes and scale.
#[derive(Clone, Copy, Debug)]
pub struct MatmulShape {
    pub m: u32,
    pub n: u32,
    pub k: u32,
    pub batch: u32,
    pub batch_inner: u32,
    pub trans_a: bool,
    pub trans_b: bool,
    pub alpha: f32,
}

impl MatmulShape {
    pub fn new(m: u32, n: u32, k: u32) -> MatmulShape {
        MatmulShape { m, n, k, batch: 1, batch_inner: 1, trans_a: false, trans_b: false, alpha: 1.0 }
    }
    pub fn trans(self, trans_a: bool, trans_b: bool) -> MatmulShape {
        MatmulShape { trans_a, trans_b, ..self }
    }
    pub fn batch(self, batch: u32, batch_inner: u32) -> MatmulShape {
        MatmulShape { batch, batch_inner, ..self }
    }
    pub fn alpha(self, alpha: f32) -> MatmulShape {
        MatmulShape { alpha, ..self }
    }
    pub fn flops(&self) -> f64 {
        2.0 * self.m as f64 * self.n as f64 * self.k as f64 * self.batch as f64
    }
}
