//! f32 <-> bf16/f16 conversion on the GPU: round-to-nearest bit-for-bit against the `half`
//! crate, stochastic rounding checked statistically and against the CPU PCG reference.

mod common;

use common::*;
use half::{bf16, f16};
use srgpt::kernels::convert::convert;
use srgpt::precision::Store;
use srgpt::precision::{bf16_bits_sr, random_bits};

/// Raw 16-bit words of a packed buffer.
fn download_bits(buffer: &wgpu::Buffer, n: usize) -> Vec<u16> {
    let bytes = gpu().read_bytes(buffer, 0, Store::Bf16.buffer_bytes(n)).unwrap();
    bytemuck::cast_slice::<u8, u16>(&bytes)[..n].to_vec()
}

fn convert_f32_to(store: Store, values: &[f32], key: [u32; 2]) -> Vec<u16> {
    let src = upload(Store::F32, values);
    let dst = zeros(store, values.len());
    run(&[convert(gpu(), tref(&dst, store), tref(&src, Store::F32), values.len() as u32, key).unwrap()]);
    download_bits(&dst, values.len())
}

/// Ties, subnormals, signed zeros, infinities, NaNs, overflow, and random bit patterns.
fn sweep() -> Vec<f32> {
    let mut v: Vec<f32> = vec![
        0.0,
        -0.0,
        1.0,
        -1.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        -f32::NAN,
        f32::from_bits(0x7fc0_0001),
        f32::from_bits(0x7f80_0001),
        f32::from_bits(0xffa0_0000),
        f32::MAX,
        f32::MIN,
        f32::MIN_POSITIVE,
        1e-40,
        -1e-40,
        f32::from_bits(1),
        f32::from_bits(0x8000_0001),
        // bf16 ties: halfway between neighbours, even below and odd below
        1.0 + 1.0 / 256.0,
        1.0 + 3.0 / 256.0,
        -(1.0 + 1.0 / 256.0),
        3.0e38,
        3.4e38,
        // f16: max, the tie to Inf, overflow, subnormals and their ties, underflow
        65504.0,
        65519.0,
        65520.0,
        70000.0,
        6.0e-8,
        5.96e-8,
        2.98e-8,
        2.9802322e-8,
        8.94e-8,
        1.0e-9,
        6.1e-5,
        6.097e-5,
        1.0 + 1.0 / 2048.0,
        1.0 + 3.0 / 2048.0,
    ];
    let mut state = 0x1234_5678_9abc_def0u64;
    for i in 0..20_000 {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let bits = (state >> 32) as u32;
        // half random bit patterns, half values near the f16 range
        v.push(if i % 2 == 0 { f32::from_bits(bits) } else { f32::from_bits((bits & 0x807f_ffff) | ((100 + (bits >> 27)) << 23)) });
    }
    if v.len() % 2 == 1 {
        v.push(0.5);
    }
    v
}

#[test]
fn bf16_round_to_nearest_matches_half_bit_for_bit() {
    let values = sweep();
    let got = convert_f32_to(Store::Bf16, &values, [0, 0]);
    for (i, (&x, &g)) in values.iter().zip(&got).enumerate() {
        assert_eq!(g, bf16::from_f32(x).to_bits(), "element {i}: {x:e} ({:#010x})", x.to_bits());
    }
}

#[test]
fn f16_round_to_nearest_matches_half_bit_for_bit() {
    let values = sweep();
    let got = convert_f32_to(Store::F16, &values, [0, 0]);
    for (i, (&x, &g)) in values.iter().zip(&got).enumerate() {
        assert_eq!(g, f16::from_f32(x).to_bits(), "element {i}: {x:e} ({:#010x})", x.to_bits());
    }
}

#[test]
fn bf16_and_f16_widen_to_f32_exactly() {
    let values = sweep();
    for store in [Store::Bf16, Store::F16] {
        let stored = rounded(store, &values);
        let src = upload(store, &values);
        let dst = zeros(Store::F32, values.len());
        run(&[convert(gpu(), tref(&dst, Store::F32), tref(&src, store), values.len() as u32, [0, 0]).unwrap()]);
        let got = download(&dst, Store::F32, values.len());
        for (i, (g, w)) in got.iter().zip(&stored).enumerate() {
            assert!(g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()), "{store:?} element {i}: {g} vs {w}");
        }
    }
}

#[test]
fn stochastic_rounding_is_unbiased_where_rtn_is_not() {
    let n = 1_000_000;
    let ulp = 1.0f64 / 128.0; // bf16 spacing in [1, 2)
    let p_up = 0.3;
    let x = (1.0 + p_up * ulp) as f32;
    let values = vec![x; n];
    let sigma = ulp * (p_up * (1.0 - p_up) / n as f64).sqrt();

    let sr = convert_f32_to(Store::Bf16Sr, &values, [5, 42]);
    let sr_mean = sr.iter().map(|&b| bf16::from_bits(b).to_f64()).sum::<f64>() / n as f64;
    assert!((sr_mean - x as f64).abs() < 4.0 * sigma, "SR mean {sr_mean} vs {x} (4 sigma = {})", 4.0 * sigma);
    assert!(sr.iter().all(|&b| b == 0x3f80 || b == 0x3f81), "SR lands on one of the two neighbours");

    let rtn = convert_f32_to(Store::Bf16, &values, [5, 42]);
    let rtn_mean = rtn.iter().map(|&b| bf16::from_bits(b).to_f64()).sum::<f64>() / n as f64;
    assert!((rtn_mean - x as f64).abs() > 100.0 * sigma, "RTN is biased: mean {rtn_mean}");
}

#[test]
fn stochastic_rounding_bits_are_a_pure_function_of_seed_step_and_index() {
    let values: Vec<f32> = random_values(50_000, 3, 10.0);
    let a = convert_f32_to(Store::Bf16Sr, &values, [9, 1234]);
    let again = convert_f32_to(Store::Bf16Sr, &values, [9, 1234]);
    assert_eq!(a, again, "same (seed, step) gives identical bits");
    let next_step = convert_f32_to(Store::Bf16Sr, &values, [10, 1234]);
    let other_seed = convert_f32_to(Store::Bf16Sr, &values, [9, 1235]);
    for other in [&next_step, &other_seed] {
        let differing = a.iter().zip(other.iter()).filter(|(x, y)| x != y).count();
        // each element rounds the other way with probability 2p(1-p), about 1/3 on average
        assert!(differing > values.len() / 5, "only {differing} of {} differ", values.len());
    }
    for (i, (&x, &g)) in values.iter().zip(&a).enumerate() {
        assert_eq!(g, bf16_bits_sr(x, random_bits(i as u32, [9, 1234])), "element {i} matches the CPU PCG reference");
    }
}

#[test]
fn stochastic_rounding_passes_inf_and_nan_through() {
    let values = [f32::INFINITY, f32::NEG_INFINITY, f32::NAN, f32::from_bits(0xff80_0001)];
    for key in [[0, 0], [1, 77], [123, 999]] {
        let got = convert_f32_to(Store::Bf16Sr, &values, key);
        assert_eq!(got[0], 0x7f80);
        assert_eq!(got[1], 0xff80);
        assert!(bf16::from_bits(got[2]).is_nan() && bf16::from_bits(got[3]).is_nan());
    }
}
