//! AdamW on the GPU against its CPU reference in every precision mode, and the paper's point
//! in one test: updates below half an ulp vanish under round-to-nearest and survive SR.

mod common;

use common::*;
use srgpt::kernels::adamw::*;
use srgpt::precision::{Precision, Store};

struct GpuState {
    param: wgpu::Buffer,
    grad: wgpu::Buffer,
    m: wgpu::Buffer,
    v: wgpu::Buffer,
    master: Option<wgpu::Buffer>,
    stats: wgpu::Buffer,
}

impl GpuState {
    fn new(p: Precision, param: &[f32], grad: &[f32], m: &[f32], v: &[f32], sum_sq: f32) -> GpuState {
        GpuState {
            param: upload(p.param_store(), param),
            grad: upload(p.grad_store(), grad),
            m: upload(p.state_store(), m),
            v: upload(p.state_store(), v),
            master: p.has_master().then(|| upload(Store::F32, param)),
            stats: upload(Store::F32, &[0.0, sum_sq, 0.0, 0.0]),
        }
    }
    fn dispatch(&self, p: Precision, n: u32, n_decay: u32) -> srgpt::gpu::Dispatch {
        let bufs =
            AdamwBuffers { param: &self.param, grad: &self.grad, m: &self.m, v: &self.v, master: self.master.as_ref(), stats: &self.stats };
        adamw_update(gpu(), p, &bufs, n, n_decay).unwrap()
    }
}

fn ulp(x: f32) -> f32 {
    (f32::from_bits(x.abs().to_bits() + 1) - x.abs()).max(f32::MIN_POSITIVE)
}

#[test]
fn one_step_matches_reference_in_every_mode() {
    let n = 4096usize;
    let n_decay = 3000;
    let cfg = AdamwConfig::default();
    let (lr, step, seed) = (3e-3f32, 4u32, 99u32);
    for p in Precision::ALL {
        let param = rounded(p.param_store(), &random_values(n, 1, 0.5));
        let grad = rounded(p.grad_store(), &random_values(n, 2, 0.1));
        let m = rounded(p.state_store(), &random_values(n, 3, 0.05));
        let v = rounded(p.state_store(), &random_values(n, 4, 0.01).iter().map(|x| x.abs()).collect::<Vec<_>>());
        // a norm above 1, so clipping is exercised
        let sum_sq = grad.iter().map(|g| g * g).sum::<f32>() * 4.0;

        let mut want = AdamwState { param: param.clone(), m: m.clone(), v: v.clone(), master: p.has_master().then(|| param.clone()) };
        adamw_update_cpu(p, &mut want, &grad, sum_sq, &cfg, n_decay, AdamwStep { lr, step, seed });

        let state = GpuState::new(p, &param, &grad, &m, &v, sum_sq);
        let d = state.dispatch(p, n as u32, n_decay as u32);
        d.set_params(&gpu().queue, &adamw_params(&cfg, n as u32, n_decay as u32, AdamwStep { lr, step, seed }));
        run(&[d]);
        let got_param = download(&state.param, p.param_store(), n);
        let got_m = download(&state.m, p.state_store(), n);
        let got_v = download(&state.v, p.state_store(), n);
        match p {
            Precision::Fp32 => {
                // f32 everywhere: within one ulp of the reference
                for (what, got, want) in [("param", &got_param, &want.param), ("m", &got_m, &want.m), ("v", &got_v, &want.v)] {
                    for i in 0..n {
                        assert!((got[i] - want[i]).abs() <= ulp(want[i]), "{p} {what}[{i}]: {} vs {}", got[i], want[i]);
                    }
                }
            }
            _ => {
                // 16-bit writes (RTN, or SR from the same PCG bits): bit-exact
                assert_eq!(got_param, want.param, "{p} param");
                if p.state_store() == Store::F32 {
                    // mixed: f32 Adam state, within one ulp like fp32
                    for (what, got, want) in [("m", &got_m, &want.m), ("v", &got_v, &want.v)] {
                        for i in 0..n {
                            assert!((got[i] - want[i]).abs() <= ulp(want[i]), "{p} {what}[{i}]: {} vs {}", got[i], want[i]);
                        }
                    }
                } else {
                    assert_eq!(got_m, want.m, "{p} m");
                    assert_eq!(got_v, want.v, "{p} v");
                }
                if let Some(master) = &state.master {
                    let got = download(master, Store::F32, n);
                    let want = want.master.as_ref().unwrap();
                    for i in 0..n {
                        assert!((got[i] - want[i]).abs() <= ulp(want[i]), "master[{i}]");
                    }
                }
            }
        }
        assert!(got_param != param, "{p}: the step changed the weights");
    }
}

/// Two elements computed by hand in f64, independently of the crate's reference: gradients
/// of global norm 2 (so clipping at 1 halves them), then PyTorch's AdamW order: decay
/// p <- p (1 - lr wd), moments, bias corrections at t = step + 1, p <- p - lr m^/(sqrt(v^) + eps).
#[test]
fn one_step_matches_the_formula_worked_by_hand() {
    let (lr, wd, step) = (1e-2f64, 0.1f64, 2u32);
    let (b1, b2, eps) = (0.9f64, 0.95f64, 1e-8f64);
    let param = [0.5f64, -0.25];
    let grad = [1.2f64, 1.6]; // norm 2
    let (m0, v0) = ([0.01f64, -0.02], [0.001f64, 0.002]);
    let clip = 1.0 / (2.0 + 1e-6);
    let t = step as i32 + 1;
    let mut want = Vec::new();
    for i in 0..2 {
        let g = grad[i] * clip;
        let m = b1 * m0[i] + (1.0 - b1) * g;
        let v = b2 * v0[i] + (1.0 - b2) * g * g;
        let (m_hat, v_hat) = (m / (1.0 - b1.powi(t)), v / (1.0 - b2.powi(t)));
        want.push((param[i] * (1.0 - lr * wd) - lr * m_hat / (v_hat.sqrt() + eps), m, v));
    }
    let f = |x: &[f64]| x.iter().map(|&v| v as f32).collect::<Vec<f32>>();
    let p = Precision::Fp32;
    let state = GpuState::new(p, &f(&param), &f(&grad), &f(&m0), &f(&v0), 4.0);
    let cfg = AdamwConfig { weight_decay: wd as f32, ..Default::default() };
    let d = state.dispatch(p, 2, 2);
    d.set_params(&gpu().queue, &adamw_params(&cfg, 2, 2, AdamwStep { lr: lr as f32, step, seed: 0 }));
    run(&[d]);
    let (got_p, got_m, got_v) =
        (download(&state.param, Store::F32, 2), download(&state.m, Store::F32, 2), download(&state.v, Store::F32, 2));
    for i in 0..2 {
        let (wp, wm, wv) = want[i];
        assert!((got_p[i] as f64 - wp).abs() <= 1e-6 * wp.abs(), "param[{i}]: {} vs {wp}", got_p[i]);
        assert!((got_m[i] as f64 - wm).abs() <= 1e-6 * wm.abs(), "m[{i}]: {} vs {wm}", got_m[i]);
        assert!((got_v[i] as f64 - wv).abs() <= 1e-6 * wv.abs(), "v[{i}]: {} vs {wv}", got_v[i]);
    }
    // the step is as large as it should be: clipped gradients, not raw ones
    assert!((got_p[0] as f64 - param[0]).abs() > 1e-3);
}

/// The paper's point in one test: a weight of 1.5 in bf16 (spacing 2^-7), pushed down by an
/// AdamW step of a tenth of half that spacing, 1000 times.
#[test]
fn updates_below_half_an_ulp_vanish_with_rtn_and_survive_with_sr() {
    let n = 4096usize;
    let steps = 1000u32;
    let lr = 0.1 * (1.0 / 256.0); // a tenth of half an ulp at 1.5
    let cfg = AdamwConfig { weight_decay: 0.0, max_norm: 0.0, ..Default::default() };
    let mut finals = Vec::new();
    for p in [Precision::Fp32, Precision::Bf16, Precision::Bf16Sr] {
        let state = GpuState::new(p, &vec![1.5; n], &vec![1.0; n], &vec![0.0; n], &vec![0.0; n], 0.0);
        let d = state.dispatch(p, n as u32, 0);
        for step in 0..steps {
            d.set_params(&gpu().queue, &adamw_params(&cfg, n as u32, 0, AdamwStep { lr, step, seed: 7 }));
            gpu().run(&[&d]).unwrap();
        }
        gpu().wait().unwrap();
        let w = download(&state.param, p.param_store(), n);
        finals.push(w.iter().map(|&x| x as f64).sum::<f64>() / n as f64);
        if p == Precision::Bf16 {
            assert!(w.iter().all(|&x| x == 1.5), "RTN: every update is rounded away");
        }
    }
    let expected = steps as f64 * lr as f64; // Adam's step is lr with a constant gradient
    let (fp32_moved, sr_moved) = (1.5 - finals[0], 1.5 - finals[2]);
    assert!((fp32_moved - expected).abs() < 0.01 * expected, "fp32 moved {fp32_moved}, expected {expected}");
    assert!((sr_moved - expected).abs() < 0.02 * expected, "SR moved {sr_moved}, expected {expected}");
    assert_eq!(finals[1], 1.5);
}
