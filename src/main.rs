//! The `srgpt` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use srgpt::bench::{bench_matmul, default_shapes, MatmulRow};
use srgpt::gpu::{self, AdapterReport, Gpu};
use srgpt::model::config::preset;
use srgpt::Failure;

#[derive(Parser)]
#[command(name = "srgpt", version, about = "Train a character-level GPT in bf16 with stochastic rounding, in WGSL on any GPU")]
struct Cli {
    /// Use the adapter whose name contains this text (default: WGPU_ADAPTER_NAME, else the
    /// fastest kind present). WGPU_BACKEND=vulkan|metal|dx12|gl narrows the search.
    #[arg(long, global = true)]
    adapter: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the GPU adapters, the chosen one, its features and key limits.
    Info {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Measure kernels on the chosen adapter.
    Bench {
        #[command(subcommand)]
        what: BenchCommand,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// GFLOP/s of the matmul kernel for f32, bf16 and f16 inputs at 256³, 512³, 1024³ and the
    /// model's shapes, beside a CPU sgemm (matrixmultiply) measured in the same run.
    Matmul {
        /// Also write the results as JSON to this file.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Model whose layer shapes are measured (tiny, small, base).
        #[arg(long, default_value = "small")]
        preset: String,
        /// Timed runs per problem (the median is reported).
        #[arg(long, default_value_t = 5)]
        reps: u32,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            let code = e.downcast_ref::<Failure>().map_or(1, Failure::exit_code);
            eprintln!("srgpt: {e:#}");
            ExitCode::from(code as u8)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Info { json } => info(cli.adapter.as_deref(), json),
        Command::Bench { what: BenchCommand::Matmul { json, preset: preset_name, reps } } => {
            let p = preset(&preset_name)?;
            let gpu = Gpu::new(cli.adapter.as_deref())?;
            eprintln!("adapter: {}", gpu.report.summary());
            let shapes = default_shapes(p.train.batch * p.ctx, p.d, 96);
            println!("{:<10} {:>6} {:>6} {:>6} {:>6} {:>10} {:>12}  tile", "shape", "dtype", "m", "n", "k", "GFLOP/s", "CPU sgemm");
            let rows = bench_matmul(&gpu, &shapes, reps.max(1), &mut |r: &MatmulRow| {
                println!("{:<10} {:>6} {:>6} {:>6} {:>6} {:>10.2} {:>12.2}  {}", r.what, r.dtype, r.m, r.n, r.k, r.gflops, r.cpu_sgemm_gflops, r.tile);
            })?;
            if let Some(path) = json {
                let doc = serde_json::json!({ "adapter": gpu.report, "matmul": rows });
                write_json(&path, &doc)?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn info(filter: Option<&str>, json: bool) -> Result<ExitCode> {
    let instance = gpu::new_instance();
    let adapters = gpu::list_adapters(&instance);
    let reports: Vec<AdapterReport> = adapters.iter().map(AdapterReport::of).collect();
    let chosen = gpu::choose_adapter(adapters, filter).map(|a| AdapterReport::of(&a));
    if json {
        let doc = serde_json::json!({
            "adapters": reports,
            "adapter": chosen.as_ref().ok(),
            "error": chosen.as_ref().err().map(|e| e.to_string()),
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        println!("adapters:");
        for r in &reports {
            println!("  {}", r.summary());
        }
        if let Ok(c) = &chosen {
            println!("chosen: {}", c.summary());
            println!("  driver: {} {}", c.driver, c.driver_info);
            println!("  features: {}", if c.features.is_empty() { "none".into() } else { c.features.join(", ") });
            let l = &c.limits;
            println!("  max_storage_buffer_binding_size: {} MiB", l.max_storage_buffer_binding_size >> 20);
            println!("  max_buffer_size: {} MiB", l.max_buffer_size >> 20);
            println!("  max_storage_buffers_per_shader_stage: {}", l.max_storage_buffers_per_shader_stage);
            println!("  max_compute_invocations_per_workgroup: {}", l.max_compute_invocations_per_workgroup);
            println!("  max_compute_workgroup_storage_size: {} bytes", l.max_compute_workgroup_storage_size);
            println!("  max_compute_workgroups_per_dimension: {}", l.max_compute_workgroups_per_dimension);
        }
    }
    chosen?;
    Ok(ExitCode::SUCCESS)
}

/// Writes JSON through a temporary file and a rename, so a reader never sees half a file.
fn write_json(path: &std::path::Path, doc: &serde_json::Value) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(doc)? + "\n").with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
