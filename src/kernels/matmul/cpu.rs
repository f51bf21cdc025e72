//! The CPU references the matmul tests compare against (f64 accumulation).

use super::{Layout, LinearShape, MatmulShape};

/// CPU reference of one matmul on f32 data with the same layouts, accumulating in f64.
pub fn matmul_cpu(
    s: &MatmulShape,
    a: (&[f32], Layout),
    b: (&[f32], Layout),
    bias: Option<(&[f32], usize)>,
    residual: Option<(&[f32], usize)>,
    c: (&mut [f32], Layout),
) {
    let (a, la) = a;
    let (b, lb) = b;
    let (c, lc) = c;
    for z in 0..s.batch {
        let (a0, b0, c0) = (la.start(z, s.batch_inner), lb.start(z, s.batch_inner), lc.start(z, s.batch_inner));
        let r0 = residual.map(|(_, off)| off + lc.start(z, s.batch_inner) - lc.offset as usize);
        for m in 0..s.m as usize {
            for n in 0..s.n as usize {
                let mut acc = 0.0f64;
                for k in 0..s.k as usize {
                    let av = if s.trans_a { a[a0 + k * la.ld as usize + m] } else { a[a0 + m * la.ld as usize + k] };
                    let bv = if s.trans_b { b[b0 + n * lb.ld as usize + k] } else { b[b0 + k * lb.ld as usize + n] };
                    acc += av as f64 * bv as f64;
                }
                let mut v = acc * s.alpha as f64;
                if let Some((bias, off)) = bias {
                    v += bias[off + n] as f64;
                }
                if let (Some((res, _)), Some(r0)) = (residual, r0) {
                    v += res[r0 + m * lc.ld as usize + n] as f64;
                }
                c[c0 + m * lc.ld as usize + n] = v as f32;
            }
        }
    }
}

/// CPU reference of `matmul_forward`.
pub fn matmul_forward_cpu(out: &mut [f32], inp: &[f32], weight: &[f32], bias: Option<&[f32]>, s: LinearShape) {
    let shape = MatmulShape::new(s.bt, s.oc, s.c).trans(false, true);
    matmul_cpu(&shape, (inp, Layout::rows(s.c)), (weight, Layout::rows(s.c)), bias.map(|b| (b, 0)), None, (out, Layout::rows(s.oc)));
}

/// CPU reference of `matmul_backward`: dinp, dweight and dbias are accumulated (+=).
pub fn matmul_backward_cpu(
    dinp: &mut [f32],
    dweight: &mut [f32],
    dbias: Option<&mut [f32]>,
    dout: &[f32],
    inp: &[f32],
    weight: &[f32],
    s: LinearShape,
) {
    let (bt, c, oc) = (s.bt as usize, s.c as usize, s.oc as usize);
    for r in 0..bt {
        for o in 0..oc {
            let d = dout[r * oc + o];
            for i in 0..c {
                dinp[r * c + i] += d * weight[o * c + i];
            }
        }
    }
    for o in 0..oc {
        for i in 0..c {
            let acc: f64 = (0..bt).map(|r| dout[r * oc + o] as f64 * inp[r * c + i] as f64).sum();
            dweight[o * c + i] += acc as f32;
        }
    }
    if let Some(dbias) = dbias {
        for o in 0..oc {
            dbias[o] += (0..bt).map(|r| dout[r * oc + o] as f64).sum::<f64>() as f32;
        }
    }
}
