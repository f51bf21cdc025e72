//! The `srgpt` command line.

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};
use srgpt::bench::{bench_matmul, bench_train, default_shapes, MatmulRow, TrainBenchPlan};
use srgpt::data::Corpus;
use srgpt::gpu::{self, AdapterReport, Gpu};
use srgpt::model::config::{preset, ModelConfig};
use srgpt::sample::{Generation, SampleOptions, Sampler};
use srgpt::train::output::write_json_atomically;
use srgpt::ui::native::WindowOptions;
use srgpt::ui::Settings;
use srgpt::Failure;
use std::io::Write;

use cli::args::{bad_input, key_value, non_negative_number, parse_precisions, whole, MAX_SAMPLE_TOKENS};
use cli::sweep::{sweep, SweepArgs};
use cli::train::{train, TrainArgs};

#[derive(Parser)]
#[command(name = "srgpt", version, about = "Train a character-level GPT in bf16 with stochastic rounding, in WGSL on any GPU")]
struct Cli {
    /// Use an adapter this picks, as `srgpt info` prints them: a part of its name, a backend
    /// (vulkan, metal, dx12) or a device type (discrete, integrated, virtual, cpu) (default:
    /// WGPU_ADAPTER_NAME, else the fastest kind present). WGPU_BACKEND=vulkan|metal|dx12 narrows
    /// the search; wgpu's GL backend is not used.
    #[arg(long, global = true)]
    adapter: Option<String>,
    /// Without a command: the dashboard, training the tiny preset in fp32, bf16 and bf16-sr.
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// List the GPU adapters, the chosen one, its features and key limits.
    Info {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Train the GPT in one or more precision modes side by side.
    #[command(allow_negative_numbers = true)]
    Train(Box<TrainArgs>),
    /// Show a finished run's curves (its folder or metrics.jsonl) in the dashboard, or a
    /// sweep's plot and table (its folder).
    View {
        path: PathBuf,
        /// Close the window once drawn (with --screenshot, after saving the picture).
        #[arg(long)]
        exit_when_done: bool,
        /// Save the window as a PNG just before it closes, and beside it PNG.json, the
        /// dashboard's status (modes, steps, losses, where the loss plot is in the picture).
        #[arg(long)]
        screenshot: Option<PathBuf>,
    },
    /// Train every mode at several learning rates and seeds (each a side-by-side run in
    /// OUT/lr<lr>_seed<seed>/), then write OUT/sweep.json, sweep.md and sweep.png. Run again,
    /// it skips finished configurations and resumes an interrupted one.
    Sweep(Box<SweepArgs>),
    /// Draw a run's curves (its folder or metrics.jsonl) as a PNG: loss, gap to fp32, update
    /// fidelity and learning rate. Needs no display and no installed fonts.
    Plot {
        path: PathBuf,
        /// The picture [default: curves.png in the run's folder, or beside the metrics file].
        #[arg(short, long)]
        out: Option<PathBuf>,
    },
    /// Generate text from a checkpoint.
    #[command(allow_negative_numbers = true)]
    Sample {
        /// A checkpoint written by `srgpt train` (DIR/<precision>.safetensors).
        #[arg(long)]
        checkpoint: PathBuf,
        /// Text to continue.
        #[arg(long, default_value = "")]
        prompt: String,
        /// Bytes to generate.
        #[arg(long, default_value_t = 200, value_parser = whole(1, MAX_SAMPLE_TOKENS))]
        tokens: u64,
        /// Sampling temperature (0: always the most likely byte).
        #[arg(long, default_value_t = 0.8, value_parser = non_negative_number)]
        temperature: f32,
        /// Sample among the k most likely bytes only (0: all).
        #[arg(long, default_value_t = 0, value_parser = whole(0, 256))]
        top_k: u64,
        #[arg(long, default_value_t = 1, value_parser = whole(0, u64::MAX))]
        seed: u64,
    },
    /// Write a checkpoint's weights for other tools: `hf`, a folder that Hugging Face
    /// transformers' GPT2LMHeadModel and AutoTokenizer load; `nanogpt`, nanoGPT's state-dict
    /// names in a safetensors file. Optimizer state is not exported.
    Export {
        /// A checkpoint written by `srgpt train` (DIR/<precision>.safetensors).
        checkpoint: PathBuf,
        /// hf or nanogpt.
        #[arg(long, default_value = "hf")]
        format: String,
        /// The folder to write (new, or empty).
        #[arg(long)]
        out: PathBuf,
    },
    /// Print the assembled WGSL of a shader variant, as the GPU receives it (helpers
    /// included, templates and defines substituted); needs no GPU.
    Shader {
        /// A kernel file (`matmul`, `layernorm`, …) or an entry point (`layernorm_forward`).
        name: String,
        /// Only variants with this define (repeatable), e.g. `--define A=bf16 --define TRANS_B=1`.
        #[arg(long = "define", value_name = "KEY=VALUE", value_parser = key_value)]
        defines: Vec<(String, String)>,
        /// List the matching variants instead of printing one.
        #[arg(long)]
        list: bool,
    },
    /// Measure kernels on the chosen adapter.
    Bench {
        #[command(subcommand)]
        what: BenchCommand,
    },
}

/// `srgpt shader`: the variants of a kernel file or entry point that have the given defines;
/// prints the first one's WGSL (saying how many matched), or all their names with `--list`.
fn shader(name: &str, defines: &[(String, String)], list: bool) -> Result<ExitCode> {
    let all = srgpt::kernels::all_variants();
    let named: Vec<_> = all.iter().filter(|v| v.file.trim_end_matches(".wgsl") == name || v.entry == name).collect();
    if named.is_empty() {
        let mut names: Vec<&str> = all.iter().map(|v| v.file.trim_end_matches(".wgsl")).collect();
        names.dedup();
        return Err(bad_input(format!("no shader or entry point '{name}' (shaders: {})", names.join(", "))));
    }
    let chosen: Vec<_> = named.into_iter().filter(|v| defines.iter().all(|(k, val)| v.defines.get(k) == Some(val))).collect();
    let Some(first) = chosen.first() else {
        let given: Vec<String> = defines.iter().map(|(k, v)| format!("{k}={v}")).collect();
        return Err(bad_input(format!("no variant of '{name}' has {} (--list shows them)", given.join(" "))));
    };
    if list {
        for v in &chosen {
            println!("{}", v.key());
        }
        return Ok(ExitCode::SUCCESS);
    }
    println!("// {}", first.key());
    if chosen.len() > 1 {
        println!("// the first of {} variants that match; --list names them, --define KEY=VALUE narrows", chosen.len());
    }
    print!("{}", first.source()?);
    Ok(ExitCode::SUCCESS)
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Training speed and memory per precision mode: median step time after warm-up (the
    /// modes take their timed steps in turn, so a busy machine slows them alike),
    /// tokens/s, model GFLOP/s (per token 6·N + 12·n_layer·d·ctx, N = all parameters) and
    /// that as a fraction of the best matmul GFLOP/s measured in the same run
    /// ("utilisation"), GPU memory by role, bytes per parameter, and the time from launch to
    /// the first finished step.
    #[command(allow_negative_numbers = true)]
    Train {
        /// Model preset: tiny, small or base.
        #[arg(long, default_value = "tiny")]
        preset: String,
        /// Modes to measure (comma-separated).
        #[arg(long, value_delimiter = ',', default_value = "fp32,mixed,bf16,bf16-sr")]
        precision: Vec<String>,
        /// Timed steps per mode (the median is reported).
        #[arg(long, default_value_t = 5, value_parser = whole(1, 100_000))]
        steps: u64,
        /// Also time every dispatch and print each kernel family's share of a step.
        #[arg(long)]
        profile: bool,
        /// Also write the results as JSON to this file.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Corpus whose vocabulary sizes the model (builtin, shakespeare or a path).
        #[arg(long, default_value = "builtin")]
        corpus: String,
    },
    /// GFLOP/s of the matmul kernel for f32, bf16 and f16 inputs at 256³, 512³, 1024³ and the
    /// model's shapes, beside a CPU sgemm (matrixmultiply) measured in the same run.
    #[command(allow_negative_numbers = true)]
    Matmul {
        /// Also write the results as JSON to this file.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Model whose layer shapes are measured (tiny, small, base).
        #[arg(long, default_value = "small")]
        preset: String,
        /// Timed runs per problem (the median is reported).
        #[arg(long, default_value_t = 5, value_parser = whole(1, 100_000))]
        reps: u64,
        /// Report every candidate tile, not only the fastest.
        #[arg(long)]
        all_tiles: bool,
    },
}

fn main() -> ExitCode {
    launched();
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
    // no command: `srgpt train` with its defaults
    let command = match cli.command {
        Some(c) => c,
        None => Cli::try_parse_from(["srgpt", "train"])?.command.ok_or_else(|| anyhow::anyhow!("default command"))?,
    };
    match command {
        Command::Plot { path, out } => {
            let folder = if path.is_dir() { path.clone() } else { path.parent().map(PathBuf::from).unwrap_or_default() };
            let out = out.unwrap_or_else(|| folder.join("curves.png"));
            srgpt::plot::plot(&path, &out)?;
            println!("{}", out.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::View { path, exit_when_done, screenshot } => {
            if !srgpt::ui::native::display_available() {
                return Err(bad_input("srgpt view needs a display (DISPLAY or WAYLAND_DISPLAY); none is set".into()));
            }
            // a refusal before the window opens: a sweep's folder, or a run's metrics
            if srgpt::train::sweep::is_sweep(&path) {
                srgpt::train::sweep::read_sweep(&path)?;
            } else {
                srgpt::train::read_metrics(&if path.is_dir() { path.join("metrics.jsonl") } else { path.clone() })?;
            }
            let settings = Settings::from_preset("tiny");
            srgpt::ui::native::run(WindowOptions {
                settings,
                autostart: false,
                view: Some(path),
                exit_when_done,
                screenshot,
                adapter: cli.adapter,
                stop_signal: None,
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Info { json } => info(cli.adapter.as_deref(), json),
        Command::Shader { name, defines, list } => shader(&name, &defines, list),
        Command::Export { checkpoint, format, out } => {
            let format = srgpt::export::ExportFormat::parse(&format)
                .ok_or_else(|| srgpt::Failure::BadInput(format!("--format {format}: hf or nanogpt")))?;
            let ckpt = srgpt::train::checkpoint::load(&checkpoint)?;
            for path in srgpt::export::export(&ckpt, format, &out)? {
                println!("{}", path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Train(args) => train(cli.adapter.as_deref(), *args),
        Command::Sweep(args) => sweep(cli.adapter.as_deref(), *args),
        Command::Sample { checkpoint, prompt, tokens, temperature, top_k, seed } => {
            let ckpt = srgpt::train::checkpoint::load(&checkpoint)?;
            let corpus = Corpus::vocab_only(ckpt.vocab.clone());
            let prompt_ids = corpus.encode(&prompt)?;
            let gpu = Gpu::new(cli.adapter.as_deref())?;
            let sampler = Sampler::new(&gpu, ckpt.state.model, ckpt.precision, &ckpt.raw)?;
            let opts = SampleOptions { tokens: tokens as usize, temperature, top_k: top_k as usize, seed };
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(prompt.as_bytes())?;
            stdout.flush()?;
            // each byte is printed as soon as it is drawn
            let mut generation = Generation::new(&prompt_ids, &opts);
            let mut printed = 0;
            loop {
                let finished = generation.advance(&gpu, &sampler, true)?;
                let drawn = generation.drawn();
                stdout.write_all(&corpus.decode(&drawn[printed..]))?;
                stdout.flush()?;
                printed = drawn.len();
                if finished.is_some() {
                    break;
                }
            }
            stdout.write_all(b"\n")?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench { what: BenchCommand::Train { preset: preset_name, precision, steps, profile, json, corpus } } => {
            let p = preset(&preset_name)?;
            let precisions = parse_precisions(Some(&precision))?;
            let corpus = Corpus::load(&corpus)?;
            let cfg = ModelConfig::from_preset(&p, corpus.vocab_size());
            let gpu = Gpu::new(cli.adapter.as_deref())?;
            eprintln!("adapter: {}", gpu.report.summary());
            // the training bench runs first, so the first step is timed from launch
            let plan = TrainBenchPlan { cfg, batch: p.train.batch, precisions, steps: steps as u32, profile };
            let mut rows = bench_train(&gpu, &corpus, &plan, launched())?;
            let shapes = default_shapes(p.train.batch * p.ctx, p.d, corpus.vocab_size());
            let matmul = bench_matmul(&gpu, &shapes, 3, false, &mut |_| {})?;
            let best = matmul.iter().fold(0.0f64, |m, r| m.max(r.gflops));
            rows.iter_mut().for_each(|r| r.utilisation = r.model_gflops / best);
            println!(
                "preset {preset_name}: {} parameters, {} tokens per step; best matmul {best:.2} GFLOP/s",
                cfg.num_params(),
                p.train.batch * p.ctx
            );
            println!(
                "{:<20} {:>9} {:>10} {:>8} {:>7} {:>10} {:>10} {:>10} {:>10} {:>11}",
                "mode", "step ms", "tokens/s", "GFLOP/s", "util", "state B/p", "state MiB", "acts MiB", "total MiB", "1st step s"
            );
            let mib = |b: u64| b as f64 / 1048576.0;
            for r in &rows {
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
                println!("profile of {} ({total:.1} ms of kernels per step):", r.precision);
                for (name, t) in &r.profile {
                    println!("  {name:<14} {t:>8.2} ms {:>5.1}%", 100.0 * t / total);
                }
                println!("  slowest dispatches:");
                for (what, t) in &r.slowest {
                    println!("  {t:>8.2} ms  {what}");
                }
            }
            if let Some(path) = json {
                let doc = serde_json::json!({ "adapter": gpu.report, "preset": preset_name, "best_matmul_gflops": best, "runs": rows });
                write_json_atomically(&path, &doc)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench { what: BenchCommand::Matmul { json, preset: preset_name, reps, all_tiles } } => {
            let p = preset(&preset_name)?;
            let gpu = Gpu::new(cli.adapter.as_deref())?;
            eprintln!("adapter: {}", gpu.report.summary());
            let shapes = default_shapes(p.train.batch * p.ctx, p.d, 96);
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
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn info(filter: Option<&str>, json: bool) -> Result<ExitCode> {
    let instance = gpu::new_instance();
    let adapters = gpu::list_adapters(&instance)?;
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
            for path in c.paths() {
                println!("  {path}");
            }
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

fn launched() -> std::time::Instant {
    static LAUNCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    *LAUNCH.get_or_init(std::time::Instant::now)
}
