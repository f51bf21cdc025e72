//! The `srgpt` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};
use srgpt::bench::{bench_matmul, bench_train, default_shapes, MatmulRow};
use srgpt::data::Corpus;
use srgpt::gpu::{self, AdapterReport, Gpu};
use srgpt::model::config::{preset, ModelConfig, TrainConfig};
use srgpt::precision::Precision;
use srgpt::sample::{sample_text, SampleOptions, Sampler};
use srgpt::train::output::{divergences, write_json_atomically, RunOutput};
use srgpt::train::{TrainSpec, Trainer};
use srgpt::ui::native::WindowOptions;
use srgpt::ui::Settings;
use srgpt::Failure;
use std::io::{IsTerminal, Write};

#[derive(Parser)]
#[command(name = "srgpt", version, about = "Train a character-level GPT in bf16 with stochastic rounding, in WGSL on any GPU")]
struct Cli {
    /// Use the adapter whose name contains this text (default: WGPU_ADAPTER_NAME, else the
    /// fastest kind present). WGPU_BACKEND=vulkan|metal|dx12|gl narrows the search.
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
    Train(Box<TrainArgs>),
    /// Show a finished run's curves (its folder or metrics.jsonl) in the dashboard.
    View {
        path: PathBuf,
        /// Close the window once drawn (with --screenshot, after saving the picture).
        #[arg(long)]
        exit_when_done: bool,
        /// Save the window as a PNG just before it closes.
        #[arg(long)]
        screenshot: Option<PathBuf>,
    },
    /// Generate text from a checkpoint.
    Sample {
        /// A checkpoint written by `srgpt train` (DIR/<precision>.safetensors).
        #[arg(long)]
        checkpoint: PathBuf,
        /// Text to continue.
        #[arg(long, default_value = "")]
        prompt: String,
        /// Bytes to generate.
        #[arg(long, default_value_t = 200)]
        tokens: usize,
        /// Sampling temperature (0 = always the most likely byte).
        #[arg(long, default_value_t = 0.8)]
        temperature: f32,
        /// Sample among the k most likely bytes only (0 = all).
        #[arg(long, default_value_t = 0)]
        top_k: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Measure kernels on the chosen adapter.
    Bench {
        #[command(subcommand)]
        what: BenchCommand,
    },
}

#[derive(clap::Args)]
struct TrainArgs {
    /// Train without a window, printing progress (also the fallback where no display exists).
    #[arg(long)]
    headless: bool,
    /// Dashboard: close the window when training finishes.
    #[arg(long)]
    exit_when_done: bool,
    /// Dashboard: save the window as a PNG just before it closes.
    #[arg(long)]
    screenshot: Option<PathBuf>,
    /// Dashboard: show text sampled from each run every N steps (0: never).
    #[arg(long, default_value_t = 100)]
    sample_every: u32,
    /// `builtin` (srgpt's own sources, no set-up) or a path to any file, read as bytes
    /// [default: builtin; when resuming, the checkpoint's corpus].
    #[arg(long)]
    corpus: Option<String>,
    /// Model and schedule preset: tiny, small or base.
    #[arg(long, default_value = "tiny")]
    preset: String,
    /// Precision modes to train side by side: fp32, mixed, bf16, bf16-sr (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "fp32,bf16,bf16-sr")]
    precision: Vec<String>,
    #[arg(long)]
    n_layer: Option<u32>,
    #[arg(long)]
    n_head: Option<u32>,
    /// Channels (d).
    #[arg(long)]
    d: Option<u32>,
    /// Context length (T).
    #[arg(long)]
    ctx: Option<u32>,
    /// Sequences per batch (B).
    #[arg(long)]
    batch: Option<u32>,
    /// Peak learning rate.
    #[arg(long)]
    lr: Option<f32>,
    /// Linear warm-up updates.
    #[arg(long)]
    warmup: Option<u32>,
    /// Total updates of the run.
    #[arg(long)]
    steps: Option<u32>,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Evaluate on the validation batches every N updates (and at the start and end).
    #[arg(long, default_value_t = 50)]
    eval_every: u32,
    /// Number of fixed validation batches per evaluation.
    #[arg(long, default_value_t = 16)]
    eval_batches: u32,
    /// Folder for metrics.jsonl, summary.json and checkpoints (default: runs/<time>, or the
    /// folder of the checkpoint being resumed).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Write checkpoints every N updates (they are always written at the end).
    #[arg(long, default_value_t = 0)]
    ckpt_every: u32,
    /// Continue from checkpoints (comma-separated, one per mode of the same run).
    #[arg(long, value_delimiter = ',')]
    resume: Vec<PathBuf>,
    /// Stop after this many updates, writing checkpoints, as if interrupted (resume later).
    #[arg(long)]
    stop_at: Option<u32>,
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Training speed and memory per precision mode: median step time after warm-up (the
    /// modes take their timed steps in turn, so a busy machine slows them alike),
    /// tokens/s, model GFLOP/s (per token 6·N + 12·n_layer·d·ctx, N = all parameters) and
    /// that as a fraction of the best matmul GFLOP/s measured in the same run
    /// ("utilisation"), GPU memory by role, bytes per parameter, and the time from launch to
    /// the first finished step.
    Train {
        /// Model preset: tiny, small or base.
        #[arg(long, default_value = "tiny")]
        preset: String,
        /// Modes to measure (comma-separated).
        #[arg(long, value_delimiter = ',', default_value = "fp32,mixed,bf16,bf16-sr")]
        precision: Vec<String>,
        /// Timed steps per mode (the median is reported).
        #[arg(long, default_value_t = 5)]
        steps: u32,
        /// Also time every dispatch and print each kernel family's share of a step.
        #[arg(long)]
        profile: bool,
        /// Also write the results as JSON to this file.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Corpus whose vocabulary sizes the model.
        #[arg(long, default_value = "builtin")]
        corpus: String,
    },
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
        Command::View { path, exit_when_done, screenshot } => {
            if !srgpt::ui::native::display_available() {
                return Err(bad_input("srgpt view needs a display (DISPLAY or WAYLAND_DISPLAY); none is set".into()));
            }
            srgpt::train::read_metrics(&if path.is_dir() { path.join("metrics.jsonl") } else { path.clone() })?;
            let settings = Settings::from_preset("tiny");
            srgpt::ui::native::run(WindowOptions {
                settings,
                autostart: false,
                view: Some(path),
                exit_when_done,
                screenshot,
                adapter: cli.adapter,
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Info { json } => info(cli.adapter.as_deref(), json),
        Command::Train(args) => train(cli.adapter.as_deref(), *args),
        Command::Sample { checkpoint, prompt, tokens, temperature, top_k, seed } => {
            let ckpt = srgpt::train::checkpoint::load(&checkpoint)?;
            let gpu = Gpu::new(cli.adapter.as_deref())?;
            let corpus = Corpus::vocab_only(ckpt.vocab.clone());
            let sampler = Sampler::new(&gpu, ckpt.state.model, ckpt.precision, &ckpt.raw)?;
            let opts = SampleOptions { tokens, temperature, top_k, seed };
            let text = sample_text(&gpu, &corpus, &sampler, &prompt, &opts)?;
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(prompt.as_bytes())?;
            stdout.write_all(&text)?;
            stdout.write_all(b"\n")?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench { what: BenchCommand::Train { preset: preset_name, precision, steps, profile, json, corpus } } => {
            let p = preset(&preset_name)?;
            let precisions = parse_precisions(&precision)?;
            let corpus = Corpus::load(&corpus)?;
            let cfg = ModelConfig::from_preset(&p, corpus.vocab_size());
            let gpu = Gpu::new(cli.adapter.as_deref())?;
            eprintln!("adapter: {}", gpu.report.summary());
            // the training bench runs first, so the first step is timed from launch
            let mut rows = bench_train(&gpu, &corpus, cfg, p.train.batch, &precisions, steps, profile, 1.0, launched())?;
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
                "{:<8} {:>9} {:>10} {:>8} {:>7} {:>10} {:>10} {:>10} {:>10} {:>11}",
                "mode", "step ms", "tokens/s", "GFLOP/s", "util", "state B/p", "state MiB", "acts MiB", "total MiB", "1st step s"
            );
            let mib = |b: u64| b as f64 / 1048576.0;
            for r in &rows {
                let m = &r.memory_bytes;
                println!(
                    "{:<8} {:>9.1} {:>10.0} {:>8.2} {:>6.0}% {:>10.1} {:>10.2} {:>10.2} {:>10.2} {:>11.2}",
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
            let rows = bench_matmul(&gpu, &shapes, reps.max(1), all_tiles, &mut |r: &MatmulRow| {
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

/// `srgpt train` in a window: the flags fill the form, and training starts at once.
fn dashboard(adapter: Option<&str>, args: &TrainArgs) -> Result<ExitCode> {
    let precisions = parse_precisions(&args.precision)?;
    let (model, sched) = configured(args, 0)?;
    let mut s = Settings::from_preset(&args.preset);
    s.corpus = args.corpus.clone().unwrap_or_else(|| "builtin".into());
    (s.n_layer, s.n_head, s.d, s.ctx) = (model.n_layer, model.n_head, model.d, model.ctx);
    (s.batch, s.lr, s.warmup, s.steps) = (sched.batch, sched.lr, sched.warmup, sched.steps);
    s.seed = args.seed;
    s.eval_every = args.eval_every;
    s.eval_batches = args.eval_batches;
    s.sample_every = args.sample_every;
    s.modes = Precision::ALL.map(|p| precisions.contains(&p));
    s.out_dir = args.out.clone().unwrap_or_else(srgpt::train::output::default_dir).display().to_string();
    // bad settings are refused here as in headless mode, before a window opens
    s.to_spec().map_err(bad_input)?;
    let opts = WindowOptions {
        settings: s,
        autostart: true,
        view: None,
        exit_when_done: args.exit_when_done,
        screenshot: args.screenshot.clone(),
        adapter: adapter.map(str::to_string),
    };
    srgpt::ui::native::run(opts)?;
    Ok(ExitCode::SUCCESS)
}

fn launched() -> std::time::Instant {
    static LAUNCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    *LAUNCH.get_or_init(std::time::Instant::now)
}

/// The preset's model and schedule with the flags' overrides.
fn configured(args: &TrainArgs, vocab: u32) -> Result<(ModelConfig, TrainConfig)> {
    let p = preset(&args.preset)?;
    let mut model = ModelConfig::from_preset(&p, vocab);
    let mut sched = p.train;
    model.n_layer = args.n_layer.unwrap_or(model.n_layer);
    model.n_head = args.n_head.unwrap_or(model.n_head);
    model.d = args.d.unwrap_or(model.d);
    model.ctx = args.ctx.unwrap_or(model.ctx);
    sched.batch = args.batch.unwrap_or(sched.batch);
    sched.lr = args.lr.unwrap_or(sched.lr);
    sched.warmup = args.warmup.unwrap_or(sched.warmup);
    sched.steps = args.steps.unwrap_or(sched.steps);
    Ok((model, sched))
}

fn parse_precisions(names: &[String]) -> Result<Vec<Precision>> {
    let mut precisions = Vec::new();
    for name in names {
        let p = Precision::parse(name)
            .ok_or_else(|| bad_input(format!("unknown precision '{name}' (choose from fp32, mixed, bf16, bf16-sr)")))?;
        if precisions.contains(&p) {
            return Err(bad_input(format!("precision {name} is listed twice")));
        }
        precisions.push(p);
    }
    if precisions.is_empty() {
        return Err(bad_input("--precision lists no mode".into()));
    }
    Ok(precisions)
}

fn bad_input(msg: String) -> anyhow::Error {
    Failure::BadInput(msg).into()
}

fn train(adapter: Option<&str>, args: TrainArgs) -> Result<ExitCode> {
    if !args.headless && args.resume.is_empty() {
        if srgpt::ui::native::display_available() {
            return dashboard(adapter, &args);
        }
        eprintln!("srgpt: no display (DISPLAY or WAYLAND_DISPLAY is unset): training headless");
    }
    let checkpoints = args.resume.iter().map(|p| srgpt::train::checkpoint::load(p)).collect::<Result<Vec<_>>>()?;
    let corpus_source =
        args.corpus.clone().or_else(|| checkpoints.first().map(|c| c.state.corpus.clone())).unwrap_or_else(|| "builtin".into());
    let corpus = Corpus::load(&corpus_source)?;
    let resuming = !args.resume.is_empty();
    let out_dir = match (&args.out, args.resume.first()) {
        (Some(dir), _) => dir.clone(),
        (None, Some(ckpt)) => ckpt.parent().map(|p| p.to_path_buf()).unwrap_or_default(),
        (None, None) => {
            let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
            PathBuf::from(format!("runs/run-{secs}"))
        }
    };
    let spec = if resuming {
        None
    } else {
        let (model, sched) = configured(&args, corpus.vocab_size())?;
        model.validate()?;
        sched.validate()?;
        corpus.check_context(model.ctx)?;
        let precisions = parse_precisions(&args.precision)?;
        Some(TrainSpec {
            preset: args.preset.clone(),
            model,
            train: sched,
            precisions,
            seed: args.seed,
            eval_every: args.eval_every,
            eval_batches: args.eval_batches.max(1),
        })
    };
    let gpu = Gpu::new(adapter)?;
    eprintln!("adapter: {}", gpu.report.summary());
    let mut trainer = match spec {
        Some(spec) => Trainer::new(&gpu, corpus, spec)?,
        None => Trainer::resume(&gpu, corpus, checkpoints, args.steps)?,
    };
    let mut output = RunOutput::open(&out_dir)?;
    let s = &trainer.spec;
    eprintln!(
        "model: {} layers, {} heads, d {}, ctx {}, vocab {} ({} parameters); batch {}, lr {}, warm-up {}, {} steps; modes {}",
        s.model.n_layer,
        s.model.n_head,
        s.model.d,
        s.model.ctx,
        s.model.vocab,
        s.model.num_params(),
        s.train.batch,
        s.train.lr,
        s.train.warmup,
        s.train.steps,
        s.precisions.iter().map(|p| p.name()).collect::<Vec<_>>().join(",")
    );
    eprintln!("writing {}", out_dir.display());
    let total = trainer.spec.train.steps;
    let stop_at = args.stop_at.unwrap_or(total).min(total);
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(total as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {msg} [{elapsed_precise}<{eta_precise}]").expect("template"),
        );
        bar.set_position(trainer.step as u64);
        bar
    });
    let log_every = (total / 20).max(1);
    let mut reported = Vec::new();
    while !trainer.finished() && trainer.step < stop_at {
        let lines = trainer.step(&gpu)?;
        output.write_metrics(&lines)?;
        for run in &trainer.runs {
            if let Some(msg) = &run.message {
                if !reported.contains(msg) {
                    reported.push(msg.clone());
                    match &bar {
                        Some(b) => b.println(format!("srgpt: {msg}")),
                        None => eprintln!("srgpt: {msg}"),
                    }
                }
            }
        }
        let status = status_line(&trainer);
        match &bar {
            Some(b) => {
                b.set_position(trainer.step as u64);
                b.set_message(status);
            }
            None if trainer.step % log_every == 0 || lines.iter().any(|l| l.val_loss.is_some()) => {
                eprintln!("step {}/{total} {status}", trainer.step)
            }
            None => {}
        }
        if args.ckpt_every > 0 && trainer.step % args.ckpt_every == 0 && trainer.step < total {
            output.checkpoint(&mut trainer, &gpu)?;
        }
    }
    if let Some(b) = &bar {
        b.finish();
    }
    let (written, summary) = output.finish(&mut trainer, &gpu)?;
    for p in &written {
        eprintln!("checkpoint: {}", p.display());
    }
    println!("{:<8} {:>10} {:>10} {:>12} {:>10}  status", "mode", "train", "val", "bytes/param", "tokens/s");
    for r in &summary.runs {
        let fmt = |x: Option<f32>| x.map_or("-".into(), |v| format!("{v:.4}"));
        println!(
            "{:<8} {:>10} {:>10} {:>12.1} {:>10.0}  {}",
            r.precision,
            fmt(r.final_train_loss),
            fmt(r.final_val_loss),
            r.state_bytes_per_param,
            r.tokens_per_s,
            r.status
        );
    }
    let diverged = divergences(&trainer);
    if !diverged.is_empty() {
        return Err(Failure::Diverged(diverged.join("; ")).into());
    }
    Ok(ExitCode::SUCCESS)
}

/// "fp32 2.512 | bf16 2.530" with the latest losses.
fn status_line(trainer: &Trainer) -> String {
    trainer
        .runs
        .iter()
        .map(|r| {
            let val = r.val_loss.map_or(String::new(), |v| format!(" (val {v:.3})"));
            match r.train_loss {
                Some(l) => format!("{} {l:.3}{val}", r.precision.name()),
                None => format!("{} -{val}", r.precision.name()),
            }
        })
        .collect::<Vec<_>>()
        .join(" | ")
}
