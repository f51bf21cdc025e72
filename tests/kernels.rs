//! Every kernel on the GPU adapter (lavapipe in CI) against its CPU reference, with the
//! tolerances stated at each check.

mod common;

use common::*;
use srgpt::kernels::attention::{attention_backward, attention_backward_cpu, attention_forward, attention_forward_cpu, AttentionShape};
use srgpt::kernels::cross_entropy::{cross_entropy_cpu, cross_entropy_forward_backward, Logits};
use srgpt::kernels::embedding::*;
use srgpt::kernels::gelu::*;
use srgpt::kernels::layernorm::*;
use srgpt::kernels::matmul::*;
use srgpt::kernels::reduce::{column_sum, sum_squares, sum_squares_cpu, sumsq_groups};
use srgpt::kernels::softmax::*;
use srgpt::kernels::Block;
use srgpt::precision::Store;

const INPUTS: [Store; 3] = [Store::F32, Store::Bf16, Store::F16];

/// Output tolerance relative to |want|: what rounding to the output storage may add.
fn output_rel(store: Store) -> f32 {
    match store {
        Store::F32 => 1e-5,
        Store::Bf16 => 1.0 / 256.0,   // RTN: half an ulp (2^-8 relative)
        Store::Bf16Sr => 1.0 / 128.0, // SR: up to one ulp
        Store::F16 => 1.0 / 2048.0,
    }
}

/// Checks one matmul (m, n, k, transposes, storage) against the f64 CPU reference on the
/// same rounded inputs: |gpu - ref| <= 1e-4 * (1 + sqrt(k)/8) + rel(out) * |ref|.
fn check_matmul(shape: MatmulShape, input: Store, output: Store, bias: bool) {
    let MatmulShape { m, n, k, trans_a, trans_b, .. } = shape;
    let (mu, nu, ku) = (m as usize, n as usize, k as usize);
    let a = rounded(input, &random_values(mu * ku, 1 + m as u64, 1.0));
    let b = rounded(input, &random_values(ku * nu, 2 + n as u64, 1.0));
    let bias_v = rounded(input, &random_values(nu, 3, 1.0));
    let (lda, ldb) = (if trans_a { m } else { k }, if trans_b { k } else { n });
    let mut want = vec![0.0; mu * nu];
    matmul_cpu(
        &shape,
        (&a, Layout::rows(lda)),
        (&b, Layout::rows(ldb)),
        bias.then_some((&bias_v[..], 0)),
        None,
        (&mut want, Layout::rows(n)),
    );

    let (ga, gb, gbias, gc) = (upload(input, &a), upload(input, &b), upload(input, &bias_v), zeros(output, mu * nu));
    let mut mm = Matmul::new(
        shape,
        Mat::new(tref(&ga, input), Layout::rows(lda)),
        Mat::new(tref(&gb, input), Layout::rows(ldb)),
        Mat::new(tref(&gc, output), Layout::rows(n)),
    );
    if bias {
        mm.bias = Some(tref(&gbias, input));
    }
    mm.key = [7, 11];
    run(&[mm.dispatch(gpu()).unwrap()]);
    let got = download(&gc, output, mu * nu);
    let what = format!("matmul {m}x{n}x{k} trans ({trans_a},{trans_b}) {input:?} -> {output:?} bias {bias}");
    assert_close(&what, &got, &want, 1e-4 * (1.0 + (k as f32).sqrt() / 8.0), output_rel(output));
}

#[test]
fn matmul_every_input_type_and_transpose_on_odd_shapes() {
    for input in INPUTS {
        for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
            check_matmul(MatmulShape::new(67, 129, 33).trans(ta, tb), input, Store::F32, ta == tb);
            check_matmul(MatmulShape::new(64, 96, 34).trans(ta, tb), input, Store::F32, true);
        }
    }
}

#[test]
fn matmul_16bit_outputs_on_odd_and_even_shapes() {
    for output in [Store::Bf16, Store::Bf16Sr, Store::F16] {
        for input in INPUTS {
            check_matmul(MatmulShape::new(67, 129, 33).trans(false, true), input, output, true);
            check_matmul(MatmulShape::new(64, 96, 34).trans(false, true), input, output, false);
            check_matmul(MatmulShape::new(32, 66, 17).trans(true, false), input, output, true);
        }
    }
}

#[test]
fn matmul_512_cubed_every_input_type() {
    for input in INPUTS {
        check_matmul(MatmulShape::new(512, 512, 512).trans(false, true), input, Store::F32, false);
    }
    check_matmul(MatmulShape::new(512, 512, 512).trans(false, false), Store::Bf16, Store::Bf16, false);
    check_matmul(MatmulShape::new(512, 512, 512).trans(true, false), Store::Bf16, Store::F32, false);
}

#[test]
fn matmul_residual_epilogue_and_strided_batches() {
    // out = inp . W^T + bias + residual
    let (bt, c, oc) = (24usize, 32usize, 48usize);
    let (inp, w, bias, res) =
        (random_values(bt * c, 5, 1.0), random_values(oc * c, 6, 1.0), random_values(oc, 7, 1.0), random_values(bt * oc, 8, 1.0));
    let mut want = vec![0.0; bt * oc];
    let linear = LinearShape { bt: bt as u32, c: c as u32, oc: oc as u32 };
    matmul_forward_cpu(&mut want, &inp, &w, Some(&bias), linear);
    want.iter_mut().zip(&res).for_each(|(x, r)| *x += r);
    let (gi, gw, gb, gr, go) =
        (upload(Store::F32, &inp), upload(Store::F32, &w), upload(Store::F32, &bias), upload(Store::F32, &res), zeros(Store::F32, bt * oc));
    let f = Store::F32;
    let layer = Linear::new(tref(&gw, f), tref(&gb, f));
    run(&[matmul_residual_forward(gpu(), tref(&go, f), tref(&gr, f), tref(&gi, f), layer, linear).unwrap()]);
    assert_close("matmul_forward + residual", &download(&go, f, bt * oc), &want, 1e-4, 1e-5);

    // two-level batches with strides: heads read out of a wider tensor
    let (b, nh, t, hs) = (2u32, 3u32, 10u32, 4u32);
    let width = 2 * nh * hs;
    let x = random_values((b * t * width) as usize, 9, 1.0);
    let shape = MatmulShape::new(t, t, hs).trans(false, true).batch(b * nh, nh).alpha(0.5);
    let la = Layout::rows(width).batched(t * width, hs);
    let lb = Layout::rows(width).at(nh * hs).batched(t * width, hs);
    let lc = Layout::rows(t).batched(nh * t * t, t * t);
    let mut want = vec![0.0; (b * nh * t * t) as usize];
    matmul_cpu(&shape, (&x, la), (&x, lb), None, None, (&mut want, lc));
    for out in [Store::F32, Store::Bf16] {
        let (gx, gc) = (upload(Store::F32, &x), zeros(out, want.len()));
        let mm = Matmul::new(shape, Mat::new(tref(&gx, f), la), Mat::new(tref(&gx, f), lb), Mat::new(tref(&gc, out), lc));
        run(&[mm.dispatch(gpu()).unwrap()]);
        assert_close("strided batched matmul", &download(&gc, out, want.len()), &want, 1e-4, output_rel(out));
    }
}

/// Every backward adds into its gradients (llm.c's rule), so each test starts the gradient
/// outputs at random values and expects those values plus the gradient: a kernel that
/// overwrites fails.
#[test]
fn matmul_backward_accumulates_the_reference_gradients() {
    let (bt, c, oc) = (40usize, 24usize, 36usize);
    let linear = LinearShape { bt: bt as u32, c: c as u32, oc: oc as u32 };
    let (inp, w, dout) = (random_values(bt * c, 1, 1.0), random_values(oc * c, 2, 1.0), random_values(bt * oc, 3, 1.0));
    for grad in [Store::F32, Store::Bf16] {
        let f = Store::F32;
        let prior = |n: usize, seed: u64, store: Store| rounded(store, &random_values(n, seed, 1.0));
        let (dinp0, dw0, db0) = (prior(bt * c, 4, f), prior(oc * c, 5, grad), prior(oc, 6, grad));
        let (mut dinp, mut dw, mut db) = (dinp0.clone(), dw0.clone(), db0.clone());
        matmul_backward_cpu(&mut dinp, &mut dw, Some(&mut db), &dout, &inp, &w, linear);
        let (gi, gw, gd) = (upload(f, &inp), upload(f, &w), upload(f, &dout));
        let (gdi, gdw, gdb) = (upload(f, &dinp0), upload(grad, &dw0), upload(grad, &db0));
        let dlayer = Linear::new(tref(&gdw, grad), tref(&gdb, grad));
        run(&matmul_backward(gpu(), tref(&gdi, f), dlayer, tref(&gd, f), tref(&gi, f), tref(&gw, f), linear).unwrap());
        assert_close("dinp", &download(&gdi, f, bt * c), &dinp, 1e-4, 1e-5);
        assert_close("dweight", &download(&gdw, grad, oc * c), &dw, 1e-4, output_rel(grad));
        assert_close("dbias", &download(&gdb, grad, oc), &db, 1e-4, output_rel(grad));
    }
}

#[test]
fn softmax_rows_sum_to_one_and_match_reference() {
    let f = Store::F32;
    for (rows, len, scale, causal, magnitude) in
        [(37, 77, 1.0, 0, 5.0), (40, 64, 0.125, 8, 5.0), (16, 91, 1.0, 0, 1e4), (12, 50, 1.0, 0, 3e38)]
    {
        let x = random_values(rows * len, len as u64, magnitude);
        let mut want = vec![0.0; rows * len];
        let shape = SoftmaxShape { rows: rows as u32, len: len as u32, scale, causal_t: causal };
        softmax_forward_cpu(&mut want, &x, &shape);
        let (gx, gy) = (upload(f, &x), zeros(f, rows * len));
        run(&[softmax_forward(gpu(), tref(&gy, f), tref(&gx, f), &shape).unwrap()]);
        let got = download(&gy, f, rows * len);
        assert!(got.iter().all(|v| v.is_finite()), "softmax of logits up to {magnitude} is finite");
        for r in 0..rows {
            let sum: f64 = got[r * len..(r + 1) * len].iter().map(|&v| v as f64).sum();
            assert!((sum - 1.0).abs() <= 1e-6, "row {r} sums to {sum} (len {len}, magnitude {magnitude})");
        }
        assert_close("softmax", &got, &want, 1e-6, 1e-5);

        // backward on f32 probabilities
        let dout = random_values(rows * len, 3, 1.0);
        let mut dwant = dout.clone();
        softmax_backward_cpu(&mut dwant, &got, &shape);
        let gg = upload(f, &dout);
        run(&[softmax_backward(gpu(), tref(&gg, f), tref(&gy, f), &shape).unwrap()]);
        assert_close("softmax backward", &download(&gg, f, rows * len), &dwant, 1e-6, 1e-5);
    }
    // bf16 output: each probability within half a bf16 ulp of the reference
    let (rows, len) = (24usize, 64usize);
    let x = random_values(rows * len, 4, 3.0);
    let mut want = vec![0.0; rows * len];
    let shape = SoftmaxShape { rows: rows as u32, len: len as u32, scale: 1.0, causal_t: 16 };
    softmax_forward_cpu(&mut want, &x, &shape);
    let (gx, gy) = (upload(f, &x), zeros(Store::Bf16, rows * len));
    run(&[softmax_forward(gpu(), tref(&gy, Store::Bf16), tref(&gx, f), &shape).unwrap()]);
    assert_close("softmax -> bf16", &download(&gy, Store::Bf16, rows * len), &want, 1e-7, output_rel(Store::Bf16));
}

#[test]
fn cross_entropy_loss_and_dlogits_match_reference_even_for_huge_logits() {
    // (rows, vocab, padded row length, logit magnitude): the last as GPT-2's head pads, with
    // garbage in the padding columns that must stay out of the softmax and get dlogits 0
    for (rows, vocab, padded, magnitude) in [(50usize, 83usize, 83usize, 4.0f32), (20, 65, 65, 1e4), (12, 1100, 1152, 4.0)] {
        let mut logits = random_values(rows * padded, 21, magnitude);
        for r in 0..rows {
            logits[r * padded + vocab..(r + 1) * padded].fill(3e38);
        }
        let targets: Vec<u32> = (0..rows).map(|r| ((r * 7 + 3) % vocab) as u32).collect();
        let (mut losses, mut dlogits) = (vec![0.0; rows], vec![0.0; rows * padded]);
        let scale = 1.0 / rows as f32;
        cross_entropy_cpu(&mut losses, Some(&mut dlogits), &logits, &targets, vocab, padded, scale);
        let gl = upload(Store::F32, &logits);
        let gt = gpu().buffer_from("targets", bytemuck::cast_slice(&targets)).unwrap();
        let gloss = zeros(Store::F32, rows);
        let (v, vp, after) = (vocab as u32, padded as u32, Logits::ToGradient { scale });
        run(&[cross_entropy_forward_backward(gpu(), &gl, &gt, &gloss, 0, rows as u32, v, vp, after).unwrap()]);
        let got_losses = download(&gloss, Store::F32, rows);
        assert!(got_losses.iter().all(|l| l.is_finite()), "{vocab} of {padded}: losses {got_losses:?}");
        // relative to the loss size: with logits of 1e4, losses are ~1e4 and f32 has 7 digits
        assert_close("losses", &got_losses, &losses, 1e-5, 1e-6);
        // x - logsumexp carries the logits' own f32 rounding: 2 ulps of the logit scale
        let rel = (magnitude * 2.4e-7).max(1e-5);
        let got_dlogits = download(&gl, Store::F32, rows * padded);
        assert_close("dlogits", &got_dlogits, &dlogits, 1e-7, rel);
        for r in 0..rows {
            let pad = &got_dlogits[r * padded + vocab..(r + 1) * padded];
            assert!(pad.iter().all(|&d| d.to_bits() == 0), "row {r}: the padding columns' dlogits are {pad:?}, not 0");
        }
        // a chunk of rows (the head computed a chunk at a time): its logits alone, its targets
        // and losses from its first row, the same bits as in the whole
        let (first, chunk) = (rows / 3, rows / 2);
        let gchunk = upload(Store::F32, &logits[first * padded..(first + chunk) * padded]);
        let gloss2 = zeros(Store::F32, rows);
        run(&[cross_entropy_forward_backward(gpu(), &gchunk, &gt, &gloss2, first as u32, chunk as u32, v, vp, after).unwrap()]);
        let chunk_losses = download(&gloss2, Store::F32, rows);
        assert_eq!(&chunk_losses[first..first + chunk], &got_losses[first..first + chunk], "a chunk's losses are the whole's");
        assert!(chunk_losses[..first].iter().chain(&chunk_losses[first + chunk..]).all(|&l| l == 0.0), "only the chunk's rows written");
        assert_eq!(
            download(&gchunk, Store::F32, chunk * padded),
            &got_dlogits[first * padded..(first + chunk) * padded],
            "a chunk's dlogits"
        );
    }
}

#[test]
fn reductions_match_reference() {
    for store in [Store::F32, Store::Bf16] {
        let n = 10_000usize;
        let x = rounded(store, &random_values(n, 31, 2.0));
        let gx = upload(store, &x);
        let partials = zeros(Store::F32, sumsq_groups(n as u32) as usize);
        let stats = zeros(Store::F32, 4);
        run(&sum_squares(gpu(), Block::new(&gx, store), n as u32, &partials, &stats, 1).unwrap());
        let got = download(&stats, Store::F32, 4)[1] as f64;
        let want = sum_squares_cpu(&x);
        assert!((got - want).abs() <= 1e-5 * want, "sum of squares {got} vs {want}");

        let (rows, cols) = (300usize, 10usize);
        let m = random_values(rows * cols, 32, 1.0);
        // column_sum adds into its output (it computes bias gradients)
        let prior = rounded(store, &random_values(cols, 33, 1.0));
        let want: Vec<f32> = (0..cols).map(|c| ((0..rows).map(|r| m[r * cols + c] as f64).sum::<f64>() + prior[c] as f64) as f32).collect();
        let (gm, gout) = (upload(Store::F32, &m), upload(store, &prior));
        run(&[column_sum(gpu(), tref(&gout, store), tref(&gm, Store::F32), rows as u32, cols as u32).unwrap()]);
        assert_close("column sums", &download(&gout, store, cols), &want, 1e-4, output_rel(store));
    }
}

#[test]
fn layernorm_forward_and_backward_match_reference() {
    let (n, c) = (33usize, 48usize);
    let shape = LayerNormShape { n: n as u32, c: c as u32 };
    let inp = random_values(n * c, 41, 2.0);
    let (w, b) = (random_values(c, 42, 1.0).iter().map(|x| 1.0 + x).collect::<Vec<_>>(), random_values(c, 43, 0.5));
    let dout = random_values(n * c, 44, 1.0);
    for (act, grad) in [(Store::F32, Store::F32), (Store::Bf16, Store::Bf16)] {
        let inp = rounded(act, &inp);
        let (w, b) = (rounded(act, &w), rounded(act, &b));
        let (mut out, mut mean, mut rstd) = (vec![0.0; n * c], vec![0.0; n], vec![0.0; n]);
        layernorm_forward_cpu(&mut out, (&mut mean, &mut rstd), &inp, &w, &b, c);
        let mut params = w.clone();
        params.extend_from_slice(&b);
        let (gi, gp, go, gm, gr) = (upload(act, &inp), upload(act, &params), zeros(act, n * c), zeros(Store::F32, n), zeros(Store::F32, n));
        let saved = LayerNormSaved { inp: tref(&gi, act), mean: &gm, rstd: &gr };
        let affine = LayerNormAffine { block: Block::new(&gp, act), weight: 0, bias: c as u32 };
        run(&[layernorm_forward(gpu(), tref(&go, act), &saved, affine, shape).unwrap()]);
        assert_close("layernorm out", &download(&go, act, n * c), &out, 1e-5, output_rel(act) + 1e-5);
        assert_close("layernorm mean", &download(&gm, Store::F32, n), &mean, 1e-6, 1e-5);
        assert_close("layernorm rstd", &download(&gr, Store::F32, n), &rstd, 1e-6, 1e-5);

        // every gradient output starts at random values: the backward adds to them
        let dinp0 = random_values(n * c, 45, 1.0);
        let dparams0 = rounded(grad, &random_values(2 * c, 46, 1.0));
        let (mut dinp, mut dw, mut db) = (dinp0.clone(), dparams0[..c].to_vec(), dparams0[c..].to_vec());
        layernorm_backward_cpu(&mut dinp, (&mut dw, &mut db), &dout, &inp, &w, (&mean, &rstd), c);
        let (gdo, gdi, gdp) = (upload(Store::F32, &dout), upload(Store::F32, &dinp0), upload(grad, &dparams0));
        let daffine = LayerNormAffine { block: Block::new(&gdp, grad), weight: 0, bias: c as u32 };
        run(&layernorm_backward(gpu(), &gdi, daffine, &gdo, &saved, affine, shape).unwrap());
        assert_close("layernorm dinp", &download(&gdi, Store::F32, n * c), &dinp, 1e-4, 1e-4);
        let dparams = download(&gdp, grad, 2 * c);
        assert_close("layernorm dweight", &dparams[..c], &dw, 1e-4, output_rel(grad) + 1e-5);
        assert_close("layernorm dbias", &dparams[c..], &db, 1e-4, output_rel(grad) + 1e-5);
    }
}

#[test]
fn gelu_forward_and_backward_match_reference() {
    let n = 1000usize;
    let mut x = random_values(n, 51, 6.0);
    x[0] = 40.0; // tanh saturates without NaN
    x[1] = -40.0;
    for act in [Store::F32, Store::Bf16] {
        let x = rounded(act, &x);
        let mut want = vec![0.0; n];
        gelu_forward_cpu(&mut want, &x);
        let (gx, gy) = (upload(act, &x), zeros(act, n));
        run(&[gelu_forward(gpu(), tref(&gy, act), tref(&gx, act), n as u32).unwrap()]);
        assert_close("gelu", &download(&gy, act, n), &want, 1e-5, output_rel(act) + 1e-5);

        let dout = random_values(n, 52, 1.0);
        let mut dwant = dout.clone();
        gelu_backward_cpu(&mut dwant, &x);
        let gg = upload(Store::F32, &dout);
        run(&[gelu_backward(gpu(), tref(&gg, Store::F32), tref(&gx, act), n as u32).unwrap()]);
        assert_close("gelu backward", &download(&gg, Store::F32, n), &dwant, 1e-5, 1e-4);
    }
}

#[test]
fn embedding_forward_and_backward_match_reference() {
    let s = EmbeddingShape { batch: 3, t: 8, c: 12, vocab: 11 };
    let (b, t, c, v) = (3usize, 8usize, 12usize, 11usize);
    let tokens: Vec<u32> = (0..b * t).map(|i| ((i * 5 + 1) % v) as u32).collect();
    let (wte, wpe) = (random_values(v * c, 61, 1.0), random_values(t * c, 62, 1.0));
    let mut params = wte.clone();
    params.extend_from_slice(&wpe);
    let f = Store::F32;
    let mut want = vec![0.0; b * t * c];
    embedding_forward_cpu(&mut want, &tokens, &wte, &wpe, t, c);
    let gt = gpu().buffer_from("tokens", bytemuck::cast_slice(&tokens)).unwrap();
    let (gp, go) = (upload(f, &params), zeros(f, b * t * c));
    let tables = EmbeddingTables { block: Block::new(&gp, f), wte: 0, wpe: (v * c) as u32 };
    run(&[embedding_forward(gpu(), tref(&go, f), &gt, tables, &s).unwrap()]);
    assert_close("embedding", &download(&go, f, b * t * c), &want, 1e-6, 1e-6);

    let dout = random_values(b * t * c, 63, 1.0);
    // both gradients start at random values (for dwte, say the tied head's share): the
    // backward adds to them
    let prior = random_values(v * c + t * c, 64, 1.0);
    let (mut dwte, mut dwpe) = (prior[..v * c].to_vec(), prior[v * c..].to_vec());
    embedding_backward_cpu(&mut dwte, &mut dwpe, &dout, &tokens, t, c);
    let (starts, positions) = token_buckets(&tokens, v);
    let grads = prior.clone();
    let (gd, gg) = (upload(f, &dout), upload(f, &grads));
    let gs = gpu().buffer_from("starts", bytemuck::cast_slice(&starts)).unwrap();
    let gpos = gpu().buffer_from("pos", bytemuck::cast_slice(&positions)).unwrap();
    let dtables = EmbeddingTables { block: Block::new(&gg, f), wte: 0, wpe: (v * c) as u32 };
    run(&embedding_backward(gpu(), dtables, &gd, &gs, &gpos, &s).unwrap());
    let got = download(&gg, f, v * c + t * c);
    assert_close("dwte", &got[..v * c], &dwte, 1e-5, 1e-6);
    assert_close("dwpe", &got[v * c..], &dwpe, 1e-5, 1e-6);
}

/// Attention against the CPU reference built from the inputs the GPU kernel actually reads:
/// qkv rounded to the activation storage, and for the output and the backward the
/// probabilities as the GPU stored them. The bounds are then the ones every kernel has: the
/// output's own rounding (half a bf16 ulp) over f32 accumulation.
#[test]
fn attention_forward_and_backward_match_reference() {
    let s = AttentionShape { b: 2, t: 12, c: 16, nh: 4 };
    let (b, t, c, nh) = (2usize, 12usize, 16usize, 4usize);
    let hs = c / nh;
    let qkv = random_values(b * t * 3 * c, 71, 1.0);
    let dout = random_values(b * t * c, 72, 1.0);
    let dqkv0 = random_values(b * t * 3 * c, 73, 1.0); // dqkv is accumulated into
    for act in [Store::F32, Store::Bf16] {
        let f = Store::F32;
        let q = rounded(act, &qkv);
        let (mut out, mut att) = (vec![0.0; b * t * c], vec![0.0; b * nh * t * t]);
        attention_forward_cpu(&mut out, &mut att, &q, &s);
        let (gq, gpre, gatt, gout) = (upload(act, &q), zeros(f, att.len()), zeros(act, att.len()), zeros(act, out.len()));
        run(&attention_forward(gpu(), tref(&gout, act), tref(&gpre, f), tref(&gatt, act), tref(&gq, act), &s).unwrap());
        let got_att = download(&gatt, act, att.len());
        assert_close("attention probabilities", &got_att, &att, 1e-6, output_rel(act) + 1e-5);
        // out = att . v with the probabilities the GPU kept
        let mut want_out = vec![0.0f32; b * t * c];
        for bi in 0..b {
            for h in 0..nh {
                for i in 0..t {
                    for e in 0..hs {
                        let v = |j: usize| q[(bi * t + j) * 3 * c + 2 * c + h * hs + e] as f64;
                        let sum: f64 = (0..t).map(|j| got_att[((bi * nh + h) * t + i) * t + j] as f64 * v(j)).sum();
                        want_out[(bi * t + i) * c + h * hs + e] = sum as f32;
                    }
                }
            }
        }
        assert_close("attention out", &download(&gout, act, out.len()), &want_out, 1e-5, output_rel(act) + 1e-5);

        let mut dqkv = dqkv0.clone();
        attention_backward_cpu(&mut dqkv, &dout, &q, &got_att, &s);
        let (gdo, gdatt, gdq) = (upload(f, &dout), zeros(f, att.len()), upload(f, &dqkv0));
        run(&attention_backward(gpu(), tref(&gdq, f), tref(&gdatt, f), tref(&gdo, f), tref(&gq, act), tref(&gatt, act), &s).unwrap());
        assert_close("attention dqkv", &download(&gdq, f, dqkv.len()), &dqkv, 1e-4, 1e-4);
    }
}

#[test]
fn tuned_tiles_are_measured_once_cached_on_disk_and_change_no_result() {
    let gpu = srgpt::gpu::Gpu::new(None).unwrap();
    let dir = std::env::temp_dir().join(format!("srgpt-tune-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    *gpu.tuning.lock().unwrap() = srgpt::gpu::tune::TuneCache::in_dir(Some(dir.clone()), &gpu.report);
    if !gpu.tuning.lock().unwrap().enabled {
        return; // SRGPT_TUNE=0: nothing is measured
    }
    let (m, n, k) = (256u32, 192u32, 128u32);
    let (a, b) = (random_values((m * k) as usize, 1, 1.0), random_values((n * k) as usize, 2, 1.0));
    let s = Store::Bf16;
    let ga = gpu.buffer_from("a", &s.encode(&a)).unwrap();
    let gb = gpu.buffer_from("b", &s.encode(&b)).unwrap();
    let results: Vec<Vec<u8>> = (0..2)
        .map(|tuned| {
            let gc = gpu.storage_buffer("c", Store::F32.buffer_bytes((m * n) as usize)).unwrap();
            let mm = Matmul::new(
                MatmulShape::new(m, n, k).trans(false, true),
                Mat::new(tref(&ga, s), Layout::rows(k)),
                Mat::new(tref(&gb, s), Layout::rows(k)),
                Mat::new(tref(&gc, Store::F32), Layout::rows(n)),
            );
            let d = if tuned == 1 { mm.dispatch(&gpu).unwrap() } else { mm.dispatch_with(&gpu, Tile::SMALL).unwrap() };
            gpu.run(&[&d]).unwrap();
            gpu.read_bytes(&gc, 0, (m * n * 4) as u64).unwrap()
        })
        .collect();
    assert_eq!(results[0], results[1], "the tile changes no bit of the result");
    // a new shape runs at once on the built-in tile; its measurement waits for spare time
    let counts = || {
        let tuning = gpu.tuning.lock().unwrap();
        (tuning.len(), tuning.deferred())
    };
    assert_eq!(counts(), (0, 1), "one measurement deferred");
    assert!(gpu.measure_deferred().unwrap().is_some(), "the deferred measurement is made");
    assert_eq!(counts(), (1, 0), "one shape measured");
    let reopened = srgpt::gpu::tune::TuneCache::in_dir(Some(dir.clone()), &gpu.report);
    assert_eq!(reopened.len(), 1, "the choice is on disk for the next run");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn matmul_with_fused_gelu_matches_matmul_then_gelu() {
    let (bt, c, oc) = (48usize, 32usize, 64usize);
    let (inp, w, bias) = (random_values(bt * c, 81, 1.0), random_values(oc * c, 82, 1.0), random_values(oc, 83, 1.0));
    let mut pre = vec![0.0; bt * oc];
    let linear = LinearShape { bt: bt as u32, c: c as u32, oc: oc as u32 };
    matmul_forward_cpu(&mut pre, &inp, &w, Some(&bias), linear);
    let mut out = vec![0.0; bt * oc];
    gelu_forward_cpu(&mut out, &pre);
    for s in [Store::F32, Store::Bf16] {
        let (inp, w, bias) = (rounded(s, &inp), rounded(s, &w), rounded(s, &bias));
        let mut pre = vec![0.0; bt * oc];
        matmul_forward_cpu(&mut pre, &inp, &w, Some(&bias), linear);
        let mut out = vec![0.0; bt * oc];
        gelu_forward_cpu(&mut out, &pre);
        let (gi, gw, gb, gout, gpre) = (upload(s, &inp), upload(s, &w), upload(s, &bias), zeros(s, bt * oc), zeros(s, bt * oc));
        let layer = Linear::new(tref(&gw, s), tref(&gb, s));
        run(&[matmul_gelu_forward(gpu(), tref(&gout, s), tref(&gpre, s), tref(&gi, s), layer, linear).unwrap()]);
        assert_close("fused pre-activation", &download(&gpre, s, bt * oc), &pre, 1e-4, output_rel(s));
        assert_close("fused gelu", &download(&gout, s, bt * oc), &out, 1e-4, output_rel(s) + 1e-5);
    }
}

/// Every tile the adapter can run (register-blocked, staged in workgroup memory with scalar
/// or quad loads, one subgroup sharing op(a) by shuffles) gives the same bits on odd and even
/// shapes, every transpose and storage: the tuner may pick any of them for a shape without
/// changing a run (each output sums the same pairs of k terms in the same order).
#[test]
fn every_matmul_tile_gives_the_same_bits() {
    let gpu = gpu();
    eprintln!("tiles on this adapter: {:?}", Tile::candidates(gpu).iter().map(Tile::name).collect::<Vec<_>>());
    // odd shapes; every operand loadable in quads; quads for some operands, with a k tail
    for (m, n, k) in [(67u32, 50u32, 37u32), (128, 96, 64), (33, 130, 17), (36, 50, 24)] {
        for (trans_a, trans_b) in [(false, false), (false, true), (true, false), (true, true)] {
            for (input, output, bias) in
                [(Store::F32, Store::F32, false), (Store::Bf16, Store::F32, true), (Store::Bf16, Store::Bf16, false)]
            {
                let (mu, nu, ku) = (m as usize, n as usize, k as usize);
                let ga = upload(input, &random_values(mu * ku, 11 + m as u64, 1.0));
                let gb = upload(input, &random_values(ku * nu, 12 + n as u64, 1.0));
                let gbias = upload(input, &random_values(nu, 13, 1.0));
                let (lda, ldb) = (if trans_a { m } else { k }, if trans_b { k } else { n });
                let results: Vec<(Tile, Vec<u8>)> = Tile::candidates(gpu)
                    .into_iter()
                    .map(|tile| {
                        let gc = zeros(output, mu * nu);
                        let mut mm = Matmul::new(
                            MatmulShape::new(m, n, k).trans(trans_a, trans_b),
                            Mat::new(tref(&ga, input), Layout::rows(lda)),
                            Mat::new(tref(&gb, input), Layout::rows(ldb)),
                            Mat::new(tref(&gc, output), Layout::rows(n)),
                        );
                        mm.bias = bias.then(|| tref(&gbias, input));
                        let dispatch = mm.dispatch_with(gpu, tile).unwrap();
                        if tile.shared_k > 0 && (m, n, k) == (128, 96, 64) {
                            assert!(dispatch.detail.contains("QUAD_A QUAD_B"), "aligned operands load quads: {}", dispatch.detail);
                        }
                        run(&[dispatch]);
                        (tile, gpu.read_bytes(&gc, 0, output.buffer_bytes(mu * nu)).unwrap())
                    })
                    .collect();
                assert!(results.iter().any(|(t, _)| t.shared_k > 0), "a workgroup-memory tile fits every WebGPU adapter");
                for (tile, bytes) in &results[1..] {
                    assert!(
                        *bytes == results[0].1,
                        "{m}x{n}x{k} trans {trans_a}/{trans_b} {input:?}->{output:?}: tile {} differs from {}",
                        tile.name(),
                        results[0].0.name()
                    );
                }
            }
        }
    }
}

/// The row kernels' reduction is measured per adapter: every choice it can run (threads per
/// row, one subgroup per row where it has subgroups) must give the reference LayerNorm, whose
/// row sums exercise the shared row reductions.
#[test]
fn layernorm_matches_reference_with_every_row_reduction() {
    let (n, c) = (37usize, 96usize);
    let inp = random_values(n * c, 51, 2.0);
    let (w, b) = (random_values(c, 52, 1.0).iter().map(|x| 1.0 + x).collect::<Vec<_>>(), random_values(c, 53, 0.5));
    let (mut out, mut mean, mut rstd) = (vec![0.0; n * c], vec![0.0; n], vec![0.0; n]);
    layernorm_forward_cpu(&mut out, (&mut mean, &mut rstd), &inp, &w, &b, c);
    let f = Store::F32;
    let mut params = w.clone();
    params.extend_from_slice(&b);
    let (gi, gp) = (upload(f, &inp), upload(f, &params));
    let choices = srgpt::kernels::RowReduction::choices(gpu());
    eprintln!("row reductions on this adapter: {choices:?}");
    for rows_by in choices.iter().copied() {
        let threads = format!("{} threads{}", rows_by.threads, if rows_by.subgroup { " (one subgroup)" } else { "" });
        let (go, gm, gr) = (zeros(f, n * c), zeros(f, n), zeros(f, n));
        let saved = LayerNormSaved { inp: tref(&gi, f), mean: &gm, rstd: &gr };
        let affine = LayerNormAffine { block: Block::new(&gp, f), weight: 0, bias: c as u32 };
        let shape = LayerNormShape { n: n as u32, c: c as u32 };
        run(&[layernorm_forward_with(gpu(), rows_by, tref(&go, f), &saved, affine, shape).unwrap()]);
        assert_close(&format!("layernorm out, {threads} per row"), &download(&go, f, n * c), &out, 1e-5, 1e-5);
        assert_close(&format!("layernorm rstd, {threads} per row"), &download(&gr, f, n), &rstd, 1e-6, 1e-5);
    }
    let chosen = srgpt::kernels::row_reduction(gpu());
    assert!(choices.contains(&chosen), "the adapter's choice {chosen:?} is one of its choices");
}

#[test]
fn zero_clears_exactly_its_range_in_every_storage() {
    use srgpt::kernels::zero::{zero, zero_cpu};
    // (n, offset, len): one workgroup's worth, and more than a grid-strided pass of one workgroup
    let cases: [(usize, usize, usize); 2] = [(40, 6, 22), (5000, 10, 4900)];
    for (store, (n, offset, len)) in [Store::F32, Store::Bf16, Store::F16].into_iter().flat_map(|s| cases.map(|c| (s, c))) {
        let values = rounded(store, &random_values(n, 91, 1.0).iter().map(|x| x + 2.0).collect::<Vec<_>>());
        let mut want = values.clone();
        zero_cpu(&mut want[offset..offset + len]);
        let buffer = upload(store, &values);
        run(&[zero(gpu(), tref(&buffer, store).at(offset as u32), len as u32).unwrap()]);
        assert_eq!(download(&buffer, store, n), want, "{store:?}: zeros in [{offset}, {}), the rest untouched", offset + len);
    }
    let packed = zeros(Store::Bf16, 8);
    assert!(zero(gpu(), tref(&packed, Store::Bf16).at(1), 4).is_err(), "an odd offset into packed 16-bit words is refused");
}

/// SPIR-V for a one-thread compute shader (naga's output for a trivial WGSL entry point) with
/// its `OpCapability Shader` taken out: well formed for a driver, which compiles it anyway,
/// but invalid for the validation layer's SPIR-V checks (the GLSL450 memory model needs that
/// capability).
fn spirv_missing_the_shader_capability() -> Vec<u32> {
    let module = naga::front::wgsl::parse_str("@compute @workgroup_size(1) fn main() {}").unwrap();
    let info =
        naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::empty()).validate(&module).unwrap();
    let words = naga::back::spv::write_vec(&module, &info, &naga::back::spv::Options::default(), None).unwrap();
    // after the 5-word header, instructions: (word count << 16 | opcode), operands
    const OP_CAPABILITY: u32 = 17;
    const CAPABILITY_SHADER: u32 = 1;
    let (mut out, mut at) = (words[..5].to_vec(), 5);
    let mut removed = 0;
    while at < words.len() {
        let len = (words[at] >> 16) as usize;
        let instruction = &words[at..at + len];
        if instruction == [(2 << 16) | OP_CAPABILITY, CAPABILITY_SHADER] {
            removed += 1;
        } else {
            out.extend_from_slice(instruction);
        }
        at += len;
    }
    assert_eq!(removed, 1, "naga's SPIR-V declares the Shader capability once");
    out
}

/// A Vulkan validation layer message fails srgpt's GPU check: under the Khronos layer (the CI
/// validation job sets SRGPT_EXPECT_VALIDATION_LAYER=1 beside WGPU_VALIDATION=1 and the layer's
/// path), a shader module the layer finds invalid — SPIR-V without the Shader capability,
/// handed to the driver as is — must make `check_errors` fail naming the message. Guards the
/// path from the layer through wgpu's log records to srgpt's sink: a change in wgpu's log
/// target or format would otherwise silence every validation run.
#[test]
fn a_validation_layer_message_fails_the_gpu_check() {
    if std::env::var_os("SRGPT_EXPECT_VALIDATION_LAYER").is_none() {
        eprintln!("skipped: runs under the Vulkan validation layer, with SRGPT_EXPECT_VALIDATION_LAYER=1 (.ci/run's validation job)");
        return;
    }
    let instance = srgpt::gpu::new_instance();
    let adapter = srgpt::gpu::choose_adapter(srgpt::gpu::list_adapters(&instance).unwrap(), None).unwrap();
    let passthrough = wgpu::Features::PASSTHROUGH_SHADERS;
    assert!(adapter.features().contains(passthrough), "the adapter takes SPIR-V as it is (PASSTHROUGH_SHADERS)");
    let gpu = srgpt::gpu::Gpu::from_adapter_with(&adapter, passthrough, adapter.limits()).unwrap();
    gpu.check_errors("opening the device").expect("no message before the invalid use");
    let words = spirv_missing_the_shader_capability();
    let entry = wgpu::PassthroughShaderEntryPoint { name: "main".into(), workgroup_size: (1, 1, 1) };
    // SAFETY: the words are a well-formed module that lavapipe and SwiftShader parse; only
    // the validation layer's rules are broken, on purpose
    let module = unsafe {
        gpu.device.create_shader_module_passthrough(wgpu::ShaderModuleDescriptorPassthrough {
            label: Some("no Shader capability"),
            entry_points: std::borrow::Cow::Owned(vec![entry]),
            spirv: Some(std::borrow::Cow::Owned(words)),
            ..Default::default()
        })
    };
    drop(module);
    let error =
        gpu.check_errors("creating a shader module without the Shader capability").expect_err("the layer's message must fail the check");
    let text = error.to_string();
    assert!(text.contains("Vulkan validation") && text.contains("Shader"), "{text}");
}
