//! `srgpt bench train` and `srgpt bench matmul`: their flags and their tables.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Result;
use srgpt::bench::{bench_matmul, bench_train, default_shapes, MatmulRow, TrainBenchPlan, TrainRow};
use srgpt::data::Corpus;
use srgpt::gpu::Gpu;
use srgpt::model::config::{ModelConfig, Preset};
use srgpt::precision::Precision;
use srgpt::train::output::write_json_atomically;

use super::args::{precisions, whole};

#[derive(clap::Subcommand)]
pub enum BenchCommand {
    /// Training speed and memory per precision mode: median step time after warm-up (the
    /// modes take their timed steps in turn, so a busy machine slows them alike),
    /// tokens/s, model GFLOP/s (per token 6·N + 12·n_layer·d·ctx, N = all parameters) and
    /// that as a fraction of the best matmul GFLOP/s measured in the same run
    /// ("utilisation"), GPU memory by role, bytes per parameter, and the time from launch to
    /// the first finished step.
    #[command(allow_negative_numbers = true)]
    Train {
        /// Model preset.
        #[arg(long, default_value = "tiny")]
        preset: Preset,
        /// Modes to measure (comma-separated).
        #[arg(long, value_delimiter = ',', default_value = "fp32,mixed,bf16,bf16-sr")]
        precision: Vec<Precision>,
        /// Timed steps per mode (the median is reported).
        #[arg(long, default_value_t = 5, value_parser = whole(1, 100_000))]
        steps: u64,
        /// Also time every dispatch and print each kernel family's share of a step.
        #[arg(long)]
        profile: bool,
        /// Also write the results as JSON to this file.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Corpus whose vocabulary sizes the model (builtin, shakespeare, a path or a prepared folder).
        #[arg(long, default_value = "builtin")]
        corpus: String,
        /// `byte`, `gpt2` or a tokenizer.json [default: byte; a prepared folder's own].
        #[arg(long)]
        tokenizer: Option<srgpt::data::TokenizerChoice>,
    },
    /// GFLOP/s of the matmul kernel for f32, bf16 and f16 inputs at 256³, 512³, 1024³ and the
    /// model's shapes, beside a CPU sgemm (matrixmultiply) measured in the same run.
    #[command(allow_negative_numbers = true)]
    Matmul {
        /// Also write the results as JSON to this file.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Model whose layer shapes are measured.
        #[arg(long, default_value = "small")]
        preset: Preset,
        /// Timed runs per problem (the median is reported).
        #[arg(long, default_value_t = 5, value_parser = whole(1, 100_000))]
        reps: u64,
        /// Report every candidate tile, not only the fastest.
        #[arg(long)]
        all_tiles: bool,
    },
}

pub fn bench(adapter: Option<&str>, what: BenchCommand, launched: Instant) -> Result<ExitCode> {
    match what {
        BenchCommand::Train { preset, precision, steps, profile, json, corpus, tokenizer } => {
            let corpus = Corpus::load_with(&corpus, tokenizer.as_ref())?;
            let cfg = ModelConfig::from_preset(&preset, corpus.vocab_size());
            let gpu = Gpu::new(adapter)?;
            eprintln!("adapter: {}", gpu.report.summary());
            // the training bench runs first, so the first step is timed from launch
            let plan =
                TrainBenchPlan { cfg, batch: preset.train.batch, precisions: precisions(Some(&precision))?, steps: steps as u32, profile };
            let mut rows = bench_train(&gpu, &corpus, &plan, launched)?;
            let shapes = default_shapes(preset.train.batch * preset.ctx, preset.d, corpus.vocab_size());
            let matmul = bench_matmul(&gpu, &shapes, 3, false, &mut |_| {})?;
            let best = matmul.iter().fold(0.0f64, |m, r| m.max(r.gflops));
            rows.iter_mut().for_each(|r| r.utilisation = r.model_gflops / best);
            println!(
                "preset {}: {} parameters, {} tokens per step; best matmul {best:.2} GFLOP/s",
                preset.name,
                cfg.num_params(),
                preset.train.batch * preset.ctx
            );
            print_train_rows(&rows);
            if let Some(path) = json {
                let doc = serde_json::json!({ "adapter": gpu.report, "preset": preset.name, "best_matmul_gflops": best, "runs": rows });
                write_json_atomically(&path, &doc)?;
            }
        }
        BenchCommand::Matmul { json, preset, reps, all_tiles } => {
            let gpu = Gpu::new(adapter)?;
            eprintln!("adapter: {}", gpu.report.summary());
            let shapes = default_shapes(preset.train.batch * preset.ctx, preset.d, 96);
            println!("{:<10} {:>6} {:>6} {:>6} {:>6} {:>10} {:>12}  tile", "shape", "dtype", "m", "n", "k", "GFLOP/s", "CPU sgemm");
            let rows = bench_matmul(&gpu, &shapes, reps as u32, all_tiles, &mut |r: &MatmulRow| {
                println!(
                    "{:<10} {:>6} {:>6} {:>6} {:>6} {:>10.2} {:>12.2}  {}",
                    r.what, r.dtype, r.m, r.n, r.k, r.gflops, r.cpu_sgemm_gflops, r.tile
                );
            })?;
            if let Some(path) = json {
                let doc = serde_json::json!({ "adapter": gpu.report, "matmul": rows });
                write_json_atomically(&path, &doc)?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The training bench's table, the fidelity's cost, and each profile.
fn print_train_rows(rows: &[TrainRow]) {
    println!(
        "{:<20} {:>9} {:>10} {:>8} {:>7} {:>10} {:>10} {:>10} {:>10} {:>11}",
        "mode", "step ms", "tokens/s", "GFLOP/s", "util", "state B/p", "state MiB", "acts MiB", "total MiB", "1st step s"
    );
    let mib = |b: u64| b as f64 / 1048576.0;
    for r in rows {
        let m = &r.memory_bytes;
        println!(
            "{:<20} {:>9.1} {:>10.0} {:>8.2} {:>6.0}% {:>10.1} {:>10.2} {:>10.2} {:>10.2} {:>11.2}",
            r.precision,
            r.step_ms,
            r.tokens_per_s,
            r.model_gflops,
            100.0 * r.utilisation,
            r.state_bytes_per_param,
            mib(m.training_state()),
            mib(m.activations + m.scratch),
            mib(m.total),
            r.first_step_s
        );
    }
    if let (Some(first), Some(off)) = (rows.first(), rows.iter().find(|r| r.precision.ends_with(" no-fidelity"))) {
        println!(
            "update fidelity costs {:+.1}% of a {} step ({:.1} ms with, {:.1} ms without; median steps of the same rounds)",
            100.0 * (first.step_ms / off.step_ms - 1.0),
            first.precision,
            first.step_ms,
            off.step_ms
        );
    }
    for r in rows.iter().filter(|r| !r.profile.is_empty()) {
        let total: f64 = r.profile.iter().map(|(_, t)| t).sum();
        println!("profile of {} ({total:.1} ms of kernels per step, {} dispatches):", r.precision, r.dispatches);
        for ((name, t), (_, count)) in r.profile.iter().zip(&r.profile_dispatches) {
            println!("  {name:<14} {t:>8.2} ms {:>5.1}%  {count:>4} dispatches", 100.0 * t / total);
        }
        println!("  slowest dispatches:");
        for (what, t) in &r.slowest {
            println!("  {t:>8.2} ms  {what}");
        }
    }
}
