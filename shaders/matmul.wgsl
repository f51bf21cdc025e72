// Batched matmul with f32 accumulation:  c[z] = alpha * op(a[z]) . op(b[z]) (+ bias) (+ res[z]),
// or with ACCUMULATE  c[z] += alpha * op(a[z]) . op(b[z])  (gradients: every backward adds)
//   op(a) (M,K): a stored (M,K) row stride lda, or (K,M) when TRANS_A     storage {{A}}
//   op(b) (K,N): b stored (K,N) row stride ldb, or (N,K) when TRANS_B     storage {{B}}
//   c (M,N) row stride ldc                                                 storage {{C}}
//   bias (N) when HAS_BIAS                                                 storage {{BIAS}}
//   res (M,N), laid out like c, added in the epilogue when HAS_RESIDUAL   storage {{RES}}
//   pre (M,N), laid out like c, when GELU: pre gets the sum, c gets gelu(sum) storage {{C}}
//   a4, b4: a and b read four elements to a load, in their place when QUAD_A / QUAD_B
// Batch index z splits as (z / batch_inner, z % batch_inner) with one stride each, so attention
// reads heads straight out of the fused qkv tensor. A linear layer is out = inp.W^T + b
// (TRANS_B), its input gradient dout.W (plain), its weight gradient dout^T.inp (TRANS_A).
#include "lib/round.wgsl"

#tensor a 0 read {{A}}
#tensor b 1 read {{B}}
#tensor c 2 read_write {{C}}
#if HAS_BIAS
#tensor bias 3 read {{BIAS}}
#endif
#if HAS_RESIDUAL
#tensor res 4 read {{RES}}
#endif
#if GELU
#include "lib/gelu.wgsl"
#tensor pre 6 read_write {{C}}
#endif
#if QUAD_A
#tensor4 a4 7 {{A}}
#endif
#if QUAD_B
#tensor4 b4 8 {{B}}
#endif
#if SUBGROUP_TILE
#include "lib/subgroups.wgsl"
#endif

struct Params {
    m: u32, n: u32, k: u32, batch_inner: u32,
    a_off: u32, lda: u32, a_s1: u32, a_s2: u32,
    b_off: u32, ldb: u32, b_s1: u32, b_s2: u32,
    c_off: u32, ldc: u32, c_s1: u32, c_s2: u32,
    bias_off: u32, res_off: u32, alpha: f32, key_step: u32,
    key_tensor: u32, total: u32, _pad0: u32, _pad1: u32,
}
@group(0) @binding(5) var<uniform> p: Params;

fn batch_offset(z: u32, off: u32, s1: u32, s2: u32) -> u32 {
    return off + (z / p.batch_inner) * s1 + (z % p.batch_inner) * s2;
}

// op(a)(m, k) and op(a)(m, k + 1)
fn load_a2(base: u32, m: u32, k: u32) -> vec2<f32> {
#if TRANS_A
    let i = base + k * p.lda + m;
    return vec2<f32>(a_get(i), a_get(i + p.lda));
#else
#if PAIR_A
    return a_get2(base + m * p.lda + k);
#else
    let i = base + m * p.lda + k;
    return vec2<f32>(a_get(i), a_get(i + 1u));
#endif
#endif
}

fn load_a1(base: u32, m: u32, k: u32) -> f32 {
#if TRANS_A
    return a_get(base + k * p.lda + m);
#else
    return a_get(base + m * p.lda + k);
#endif
}

// op(b)(k, n), op(b)(k, n + 1)
fn load_b2(base: u32, k: u32, n: u32) -> vec2<f32> {
#if TRANS_B
    let i = base + n * p.ldb + k;
    return vec2<f32>(b_get(i), b_get(i + p.ldb));
#else
#if PAIR_B
    return b_get2(base + k * p.ldb + n);
#else
    let i = base + k * p.ldb + n;
    return vec2<f32>(b_get(i), b_get(i + 1u));
#endif
#endif
}

fn load_b1(base: u32, k: u32, n: u32) -> f32 {
#if TRANS_B
    return b_get(base + n * p.ldb + k);
#else
    return b_get(base + k * p.ldb + n);
#endif
}

// (op(b)(k, n), op(b)(k, n + 1), op(b)(k + 1, n), op(b)(k + 1, n + 1))
fn load_b4(base: u32, k: u32, n: u32) -> vec4<f32> {
#if TRANS_B
    let i = base + n * p.ldb + k;
#if PAIR_B
    let col0 = b_get2(i);
    let col1 = b_get2(i + p.ldb);
    return vec4<f32>(col0.x, col1.x, col0.y, col1.y);
#else
    return vec4<f32>(b_get(i), b_get(i + p.ldb), b_get(i + 1u), b_get(i + p.ldb + 1u));
#endif
#else
    return vec4<f32>(load_b2(base, k, n), load_b2(base, k + 1u, n));
#endif
}

// The multiply-add of every tiled kernel, written once: two k terms into a pair of outputs,
// acc + (a.x * b.xy + a.y * b.zw), and an odd last term. Every tile the tuner may pick adds
// the same terms in this order, so its choice never changes a bit of the result.
fn mac_pair(acc: vec2<f32>, a: vec2<f32>, b: vec4<f32>) -> vec2<f32> { return acc + (a.x * b.xy + a.y * b.zw); }
fn mac_last(acc: vec2<f32>, a: f32, b: vec2<f32>) -> vec2<f32> { return acc + a * b; }

// alpha * acc + bias + residual for output (m, n) and (m, n + 1) of batch z
fn epilogue(acc: vec2<f32>, res_base: u32, m: u32, n: u32) -> vec2<f32> {
    var v = acc * p.alpha;
#if HAS_BIAS
    v += vec2<f32>(bias_get(p.bias_off + n), bias_get(p.bias_off + min(n + 1u, p.n - 1u)));
#endif
#if HAS_RESIDUAL
    let ri = res_base + m * p.ldc + n;
    v += vec2<f32>(res_get(ri), res_get(min(ri + 1u, ri + p.n - 1u - n)));
#endif
    return v;
}

const WG_X: u32 = {{WG_X}}u;
const WG_Y: u32 = {{WG_Y}}u;
const TM: u32 = {{TM}}u;
const TN2: u32 = {{TN2}}u;  // column pairs per thread

// alpha, bias, residual and GELU applied to a thread's accumulators, then written out: rows
// row0 + i*WG_Y, column pairs col0 + j*2*WG_X (outputs past the edge are skipped)
fn write_outputs(z: u32, row0: u32, col0: u32, acc: ptr<function, array<vec2<f32>, {{TM_TN2}}>>) {
    let c_base = batch_offset(z, p.c_off, p.c_s1, p.c_s2);
    let res_base = batch_offset(z, p.res_off, p.c_s1, p.c_s2);
    let key = vec2<u32>(p.key_step, p.key_tensor);
    for (var i = 0u; i < TM; i++) {
        let m = row0 + i * WG_Y;
        if (m >= p.m) { break; }
        for (var j = 0u; j < TN2; j++) {
            let n = col0 + j * 2u * WG_X;
            if (n >= p.n) { break; }
            let ci = c_base + m * p.ldc + n;
#if GELU
            // the pre-activation is kept for the backward; c gets the activation
            let v_pre = epilogue((*acc)[i * TN2 + j], res_base, m, n);
            pre_set2(ci, v_pre, key);
            let v = gelu(v_pre);
#else
            var v = epilogue((*acc)[i * TN2 + j], res_base, m, n);
#endif
#if ACCUMULATE
#if PAIR_C
            v += c_get2(ci);
#else
            v += vec2<f32>(c_get(ci), c_get(min(ci + 1u, ci + p.n - 1u - n)));
#endif
#endif
#if PAIR_C
            c_set2(ci, v, key);
#else
            c_set(ci, v.x);
            if (n + 1u < p.n) { c_set(ci + 1u, v.y); }
#endif
        }
    }
}

// Register-blocked: each thread owns TM rows (strided by WG_Y) and TN2 column pairs (strided by
// 2*WG_X) and reads its operands straight from storage, two k at a time. No workgroup memory:
// on CPU adapters (lavapipe) that is the fastest shape, and it needs no barriers.
@compute @workgroup_size(WG_X, WG_Y, 1)
fn matmul_tiled(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let z = wg.z;
    let a_base = batch_offset(z, p.a_off, p.a_s1, p.a_s2);
    let b_base = batch_offset(z, p.b_off, p.b_s1, p.b_s2);
    let row0 = wg.y * WG_Y * TM + lid.y;
    let col0 = wg.x * WG_X * TN2 * 2u + 2u * lid.x;
    let last_col = (p.n - 1u) & ~1u;

    var rows: array<u32, TM>;
    for (var i = 0u; i < TM; i++) { rows[i] = min(row0 + i * WG_Y, p.m - 1u); }
    var cols: array<u32, TN2>;
    for (var j = 0u; j < TN2; j++) { cols[j] = min(col0 + j * 2u * WG_X, last_col); }

    var acc: array<vec2<f32>, {{TM_TN2}}>;
    for (var i = 0u; i < TM * TN2; i++) { acc[i] = vec2<f32>(0.0); }

    var k = 0u;
    for (; k + 1u < p.k; k += 2u) {
        var av: array<vec2<f32>, TM>;
        for (var i = 0u; i < TM; i++) { av[i] = load_a2(a_base, rows[i], k); }
        for (var j = 0u; j < TN2; j++) {
            let bv = load_b4(b_base, k, cols[j]);
            for (var i = 0u; i < TM; i++) {
                acc[i * TN2 + j] = mac_pair(acc[i * TN2 + j], av[i], bv);
            }
        }
    }
    if (k < p.k) {
        for (var j = 0u; j < TN2; j++) {
            let bv = load_b2(b_base, k, cols[j]);
            for (var i = 0u; i < TM; i++) {
                acc[i * TN2 + j] = mac_last(acc[i * TN2 + j], load_a1(a_base, rows[i], k), bv);
            }
        }
    }

    write_outputs(z, row0, col0, &acc);
}

#if SHARED_K
const BM: u32 = WG_Y * TM;        // rows of C per workgroup
const BN: u32 = WG_X * TN2 * 2u;  // columns of C per workgroup
const BK: u32 = {{SHARED_K}}u;    // k per shared tile (even)
var<workgroup> a_tile: array<f32, {{BM_BK}}>;  // op(a) (BM rows, BK k), stored [k][m]
var<workgroup> b_tile: array<f32, {{BK_BN}}>;  // op(b) (BK k, BN columns), stored [k][n]

// Shared-memory tiled: the workgroup stages a BM x BK block of op(a) and a BK x BN block of
// op(b) in workgroup memory (each element read from storage once per workgroup, by
// neighbouring threads at neighbouring addresses), then every thread accumulates its TM x
// 2*TN2 outputs from there, exactly as matmul_tiled does (same pairs of k, same order), so
// both give the same bits. The usual shape on GPUs; barriers make it dear on CPU adapters.
@compute @workgroup_size(WG_X, WG_Y, 1)
fn matmul_shared(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
                 @builtin(local_invocation_index) t: u32) {
    let z = wg.z;
    let a_base = batch_offset(z, p.a_off, p.a_s1, p.a_s2);
    let b_base = batch_offset(z, p.b_off, p.b_s1, p.b_s2);
    let tile_row = wg.y * BM;
    let tile_col = wg.x * BN;
    let row0 = tile_row + lid.y;
    let col0 = tile_col + 2u * lid.x;
    let threads = WG_X * WG_Y;

    var acc: array<vec2<f32>, {{TM_TN2}}>;
    for (var i = 0u; i < TM * TN2; i++) { acc[i] = vec2<f32>(0.0); }

    for (var k0 = 0u; k0 < p.k; k0 += BK) {
        // stage the blocks, consecutive threads walking the contiguous dimension of storage;
        // rows and columns past the edge repeat the last one, k past the end reads as zero
#if QUAD_A
        // four neighbours along storage's contiguous dimension per load (the Rust side checks
        // that quads never straddle a row's end); quads past the edge read as zero
        for (var e = t; e < BM * BK / 4u; e += threads) {
#if TRANS_A
            let mm = (e % (BM / 4u)) * 4u;
            let kk = e / (BM / 4u);
            let k = k0 + kk;
            let m = tile_row + mm;
            let quad = select(vec4<f32>(0.0), a4_get4(a_base + min(k, p.k - 1u) * p.lda + min(m, p.m - 4u)), k < p.k && m < p.m);
            for (var q = 0u; q < 4u; q++) { a_tile[kk * BM + mm + q] = quad[q]; }
#else
            let mm = e / (BK / 4u);
            let kk = (e % (BK / 4u)) * 4u;
            let k = k0 + kk;
            let quad = select(vec4<f32>(0.0), a4_get4(a_base + min(tile_row + mm, p.m - 1u) * p.lda + min(k, p.k - 4u)), k < p.k);
            for (var q = 0u; q < 4u; q++) { a_tile[(kk + q) * BM + mm] = quad[q]; }
#endif
        }
#else
        for (var e = t; e < BM * BK; e += threads) {
#if TRANS_A
            let mm = e % BM;
            let kk = e / BM;
#else
            let mm = e / BK;
            let kk = e % BK;
#endif
            let k = k0 + kk;
            a_tile[kk * BM + mm] = select(0.0, load_a1(a_base, min(tile_row + mm, p.m - 1u), min(k, p.k - 1u)), k < p.k);
        }
#endif
#if QUAD_B
        for (var e = t; e < BK * BN / 4u; e += threads) {
#if TRANS_B
            let nn = e / (BK / 4u);
            let kk = (e % (BK / 4u)) * 4u;
            let k = k0 + kk;
            let quad = select(vec4<f32>(0.0), b4_get4(b_base + min(tile_col + nn, p.n - 1u) * p.ldb + min(k, p.k - 4u)), k < p.k);
            for (var q = 0u; q < 4u; q++) { b_tile[(kk + q) * BN + nn] = quad[q]; }
#else
            let nn = (e % (BN / 4u)) * 4u;
            let kk = e / (BN / 4u);
            let k = k0 + kk;
            let n = tile_col + nn;
            let quad = select(vec4<f32>(0.0), b4_get4(b_base + min(k, p.k - 1u) * p.ldb + min(n, p.n - 4u)), k < p.k && n < p.n);
            for (var q = 0u; q < 4u; q++) { b_tile[kk * BN + nn + q] = quad[q]; }
#endif
        }
#else
        for (var e = t; e < BK * BN; e += threads) {
#if TRANS_B
            let nn = e / BK;
            let kk = e % BK;
#else
            let nn = e % BN;
            let kk = e / BN;
#endif
            let k = k0 + kk;
            b_tile[kk * BN + nn] = select(0.0, load_b1(b_base, min(k, p.k - 1u), min(tile_col + nn, p.n - 1u)), k < p.k);
        }
#endif
        workgroupBarrier();
        let k_here = min(BK, p.k - k0);
        var kk = 0u;
        for (; kk + 1u < k_here; kk += 2u) {
            var av: array<vec2<f32>, TM>;
            for (var i = 0u; i < TM; i++) {
                let m = lid.y + i * WG_Y;
                av[i] = vec2<f32>(a_tile[kk * BM + m], a_tile[(kk + 1u) * BM + m]);
            }
            for (var j = 0u; j < TN2; j++) {
                let n = 2u * lid.x + j * 2u * WG_X;
                let bv = vec4<f32>(b_tile[kk * BN + n], b_tile[kk * BN + n + 1u], b_tile[(kk + 1u) * BN + n], b_tile[(kk + 1u) * BN + n + 1u]);
                for (var i = 0u; i < TM; i++) {
                    acc[i * TN2 + j] = mac_pair(acc[i * TN2 + j], av[i], bv);
                }
            }
        }
        if (kk < k_here) {
            for (var j = 0u; j < TN2; j++) {
                let n = 2u * lid.x + j * 2u * WG_X;
                let bv = vec2<f32>(b_tile[kk * BN + n], b_tile[kk * BN + n + 1u]);
                for (var i = 0u; i < TM; i++) {
                    acc[i * TN2 + j] = mac_last(acc[i * TN2 + j], a_tile[kk * BM + lid.y + i * WG_Y], bv);
                }
            }
        }
        workgroupBarrier();
    }
    write_outputs(z, row0, col0, &acc);
}
#endif

#if SUBGROUP_TILE
// Subgroup-shared: a workgroup is one subgroup of WG_X lanes (the adapter's fixed subgroup
// size) owning TM consecutive rows and TN2 column pairs per lane (strided by 2*WG_X). For
// each 2*WG_X-deep block of k, lane l reads the pair op(a)(row, k0 + 2l), op(a)(row, k0 + 2l
// + 1) of every row, and the lanes pass those pairs round with subgroupShuffle instead of
// each reading them all from storage; b is read straight from storage as in matmul_tiled.
// No workgroup memory and no barriers. Same pairs of k in the same order as matmul_tiled, so
// the same bits.
@compute @workgroup_size(WG_X, 1, 1)
fn matmul_subgroup(@builtin(workgroup_id) wg: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32) {
    let z = wg.z;
    let a_base = batch_offset(z, p.a_off, p.a_s1, p.a_s2);
    let b_base = batch_offset(z, p.b_off, p.b_s1, p.b_s2);
    let row0 = wg.y * TM;
    let col0 = wg.x * WG_X * TN2 * 2u + 2u * lane;
    let last_col = (p.n - 1u) & ~1u;

    var rows: array<u32, TM>;
    for (var i = 0u; i < TM; i++) { rows[i] = min(row0 + i, p.m - 1u); }
    var cols: array<u32, TN2>;
    for (var j = 0u; j < TN2; j++) { cols[j] = min(col0 + j * 2u * WG_X, last_col); }

    var acc: array<vec2<f32>, {{TM_TN2}}>;
    for (var i = 0u; i < TM * TN2; i++) { acc[i] = vec2<f32>(0.0); }

    for (var k0 = 0u; k0 < p.k; k0 += 2u * WG_X) {
        // op(a)(rows[i], k_first) and the k after it (zero past the end)
        var a_lane: array<vec2<f32>, TM>;
        let k_first = min(k0 + 2u * lane, p.k - 1u);
        if (k_first + 1u < p.k) {
            for (var i = 0u; i < TM; i++) { a_lane[i] = load_a2(a_base, rows[i], k_first); }
        } else {
            for (var i = 0u; i < TM; i++) { a_lane[i] = vec2<f32>(load_a1(a_base, rows[i], k_first), 0.0); }
        }
        let k_here = min(2u * WG_X, p.k - k0);
        var kk = 0u;
        for (; kk + 1u < k_here; kk += 2u) {
            var av: array<vec2<f32>, TM>;
            for (var i = 0u; i < TM; i++) { av[i] = subgroupShuffle(a_lane[i], kk / 2u); }
            for (var j = 0u; j < TN2; j++) {
                let bv = load_b4(b_base, k0 + kk, cols[j]);
                for (var i = 0u; i < TM; i++) {
                    acc[i * TN2 + j] = mac_pair(acc[i * TN2 + j], av[i], bv);
                }
            }
        }
        if (kk < k_here) {
            var a_last: array<f32, TM>;
            for (var i = 0u; i < TM; i++) { a_last[i] = subgroupShuffle(a_lane[i], kk / 2u).x; }
            for (var j = 0u; j < TN2; j++) {
                let bv = load_b2(b_base, k0 + kk, cols[j]);
                for (var i = 0u; i < TM; i++) {
                    acc[i * TN2 + j] = mac_last(acc[i * TN2 + j], a_last[i], bv);
                }
            }
        }
    }
    write_outputs(z, row0, col0, &acc);
}
#endif

// Any shape and alignment: each thread computes the two outputs at flat indices 2t and 2t+1 of
// the batch in (z, m, n) order, so a packed c needs no pair to straddle two threads. Packed c
// must then be contiguous (ldc = n, strides m*n); f32 c may be strided.
@compute @workgroup_size(64)
fn matmul_flat(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let first = 2u * (gid.x + gid.y * nwg.x * 64u);
    if (first >= p.total) { return; }
    var out: vec2<f32>;
    var out_index: vec2<u32>;
    for (var e = 0u; e < 2u; e++) {
        let flat = min(first + e, p.total - 1u);
        let z = flat / (p.m * p.n);
        let m = (flat % (p.m * p.n)) / p.n;
        let n = flat % p.n;
        let a_base = batch_offset(z, p.a_off, p.a_s1, p.a_s2);
        let b_base = batch_offset(z, p.b_off, p.b_s1, p.b_s2);
        var acc = 0.0;
        for (var k = 0u; k < p.k; k++) {
            acc += load_a1(a_base, m, k) * load_b1(b_base, k, n);
        }
        var v = acc * p.alpha;
#if HAS_BIAS
        v += bias_get(p.bias_off + n);
#endif
#if HAS_RESIDUAL
        v += res_get(batch_offset(z, p.res_off, p.c_s1, p.c_s2) + m * p.ldc + n);
#endif
        out_index[e] = batch_offset(z, p.c_off, p.c_s1, p.c_s2) + m * p.ldc + n;
#if ACCUMULATE
        v += c_get(out_index[e]);
#endif
        out[e] = v;
    }
#if PAIR_C
    c_set2(out_index.x, out, vec2<u32>(p.key_step, p.key_tensor));
#else
    c_set(out_index.x, out.x);
    if (first + 1u < p.total) { c_set(out_index.y, out.y); }
#endif
}
