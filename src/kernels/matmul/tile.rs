//! The kernel candidates (tiles), which the adapter can run, and the choice among them by
//! measurement, kept in the adapter's tuning cache.

use crate::gpu::Gpu;

/// Problems smaller than this (in FLOPs) take the heuristic tile without measuring.
pub const TUNE_MIN_FLOPS: f64 = 8e6;

/// Shape of the tiled kernels: a workgroup of wg_x * wg_y threads, each owning tm rows and
/// tn2 column pairs, covers a (wg_y*tm) x (wg_x*tn2*2) tile of C. How the threads get their
/// operands:
/// - `shared_k` = 0, not `subgroup`: straight from storage (`matmul_tiled`, register-blocked);
/// - `shared_k` > 0: the workgroup first stages shared_k-deep blocks of both operands in
///   workgroup memory (`matmul_shared`), four elements to a load where the layout allows;
/// - `subgroup`: the workgroup is one subgroup (wg_x = the adapter's fixed subgroup size,
///   wg_y = 1) whose lanes share op(a) through subgroup shuffles (`matmul_subgroup`).
///
/// Every shape gives the same bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Tile {
    pub wg_x: u32,
    pub wg_y: u32,
    pub tm: u32,
    pub tn2: u32,
    pub shared_k: u32,
    pub subgroup: bool,
}

impl Tile {
    /// Within WebGPU's default limits (64 invocations, no workgroup memory). The large tile
    /// is the fastest on lavapipe for big problems (13.4 GFLOP/s bf16 at 1024³, 2026-11-29);
    /// the small one wastes less on the narrow per-head matmuls of attention.
    pub const LARGE: Tile = Tile { wg_x: 8, wg_y: 8, tm: 8, tn2: 4, shared_k: 0, subgroup: false };
    pub const SMALL: Tile = Tile { wg_x: 8, wg_y: 8, tm: 4, tn2: 2, shared_k: 0, subgroup: false };
    /// 64x64 outputs from 256 threads and 8 KiB of workgroup memory: WebGPU's default limits
    /// (256 invocations, 16 KiB), the usual shape of a GPU matmul.
    pub const SHARED_LARGE: Tile = Tile { wg_x: 16, wg_y: 16, tm: 4, tn2: 2, shared_k: 16, subgroup: false };
    /// 32x32 outputs from 64 threads and 4 KiB: more workgroups for narrow problems.
    pub const SHARED_SMALL: Tile = Tile { wg_x: 8, wg_y: 8, tm: 4, tn2: 2, shared_k: 16, subgroup: false };

    /// The default tile for an (m, n) output.
    pub fn for_shape(m: u32, n: u32) -> Tile {
        let large_tiles = m.div_ceil(64) * n.div_ceil(64);
        // a large tile only pays when it is mostly full and there are tiles for every core
        if m >= 64 && n >= 64 && large_tiles >= 4 {
            Tile::LARGE
        } else {
            Tile::SMALL
        }
    }
    /// The register-blocked and shared-memory shapes; [`Tile::candidates`] adds the
    /// subgroup ones where the adapter allows.
    pub const CANDIDATES: [Tile; 5] = [
        Tile::LARGE,
        Tile::SMALL,
        Tile { wg_x: 8, wg_y: 4, tm: 4, tn2: 4, shared_k: 0, subgroup: false },
        Tile::SHARED_LARGE,
        Tile::SHARED_SMALL,
    ];

    /// A one-subgroup tile: `size` lanes (the adapter's fixed subgroup size) side by side,
    /// each owning tm rows and tn2 column pairs.
    pub fn subgroup(size: u32, tm: u32, tn2: u32) -> Tile {
        Tile { wg_x: size, wg_y: 1, tm, tn2, shared_k: 0, subgroup: true }
    }

    /// Every tile this adapter can run: the [`Tile::CANDIDATES`] its limits allow, and, where
    /// it has subgroups of one fixed, even size, the [`Tile::SUBGROUP_SHAPES`].
    pub fn candidates(gpu: &Gpu) -> Vec<Tile> {
        let mut out: Vec<Tile> = Tile::CANDIDATES.into_iter().filter(|t| t.fits(&gpu.limits)).collect();
        if let Some(size) = gpu.fixed_subgroup_size().filter(|s| *s >= 4 && s.is_multiple_of(2)) {
            let tiles = Tile::SUBGROUP_SHAPES.map(|(tm, tn2)| Tile::subgroup(size, tm, tn2));
            out.extend(tiles.into_iter().filter(|t| t.fits(&gpu.limits)));
        }
        out
    }

    /// (tm, tn2) of the one-subgroup tiles. On lavapipe (subgroups of 8) each of them beat
    /// the best register-blocked tile on some shape of `srgpt bench matmul --all-tiles`
    /// (2026-11-29); a 4x2 tile never did.
    pub const SUBGROUP_SHAPES: [(u32, u32); 3] = [(8, 2), (8, 4), (16, 2)];

    /// The tiles timed when a shape is tuned: [`Tile::candidates`], pruned on CPU adapters,
    /// where timing a tile that never wins only lengthens the first run. There the
    /// shared-memory tiles measured 4-5x slower than the best other tile on every shape of
    /// `srgpt bench matmul --all-tiles`, and where the subgroup tiles run, the two smaller
    /// register-blocked tiles won 4 of 80 shapes tuned in three runs (lavapipe,
    /// 2026-11-29): they are skipped.
    pub fn tuning_candidates(gpu: &Gpu) -> Vec<Tile> {
        let all = Tile::candidates(gpu);
        if gpu.report.device_type != "cpu" {
            return all;
        }
        let has_subgroup_tiles = all.iter().any(|t| t.subgroup);
        all.into_iter().filter(|t| t.shared_k == 0 && (t.subgroup || *t == Tile::LARGE || !has_subgroup_tiles)).collect()
    }

    /// Bytes of workgroup memory the tile stages (f32 blocks of both operands).
    pub fn workgroup_bytes(&self) -> u32 {
        4 * self.shared_k * (self.wg_y * self.tm + self.wg_x * self.tn2 * 2)
    }

    /// Whether the adapter's limits allow this tile.
    pub fn fits(&self, limits: &wgpu::Limits) -> bool {
        self.wg_x * self.wg_y <= limits.max_compute_invocations_per_workgroup
            && self.wg_x <= limits.max_compute_workgroup_size_x
            && self.wg_y <= limits.max_compute_workgroup_size_y
            && self.workgroup_bytes() <= limits.max_compute_workgroup_storage_size
    }

    /// The kernel that runs this tile.
    pub(super) fn entry(&self) -> &'static str {
        if self.subgroup {
            "matmul_subgroup"
        } else if self.shared_k > 0 {
            "matmul_shared"
        } else {
            "matmul_tiled"
        }
    }

    pub fn params(&self) -> Vec<u32> {
        vec![self.wg_x, self.wg_y, self.tm, self.tn2, self.shared_k, self.subgroup as u32]
    }

    /// A cached choice, if it is still one this adapter can run.
    pub(super) fn from_params(p: &[u32], gpu: &Gpu) -> Option<Tile> {
        let tile = match *p {
            [wg_x, wg_y, tm, tn2, shared_k, subgroup] => Tile { wg_x, wg_y, tm, tn2, shared_k, subgroup: subgroup == 1 },
            _ => return None,
        };
        Tile::candidates(gpu).contains(&tile).then_some(tile)
    }

    pub fn name(&self) -> String {
        let staged = if self.subgroup {
            ", one subgroup".to_string()
        } else if self.shared_k > 0 {
            format!(", shared k {}", self.shared_k)
        } else {
            String::new()
        };
        format!("{}x{} threads, {}x{} per thread{staged}", self.wg_x, self.wg_y, self.tm, self.tn2 * 2)
    }
}
