//! `srgpt train`: its flags, the dashboard they can open, and the headless run, which drives
//! the one training session (`train::session`) with the plan of `cli::plan`.

use srgpt::data::TokenizerChoice;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;

use anyhow::Result;
use srgpt::gpu::Gpu;
use srgpt::precision::Precision;
use srgpt::train::output::{divergences, RunOutput, Summary};
use srgpt::train::session::{Driving, Session, SessionOptions};
use srgpt::train::{RunStatus, Trainer};
use srgpt::Failure;

use super::args::{bad_input, non_negative_number, positive_number, whole, ModelFlags};
use super::progress::Progress;
use super::signals::watch_stop_signals;
use super::train_plan::{Start, TrainPlan};

#[derive(clap::Args)]
pub struct TrainArgs {
    /// Train without a window, printing progress (also the fallback where no display exists).
    #[arg(long)]
    pub headless: bool,
    /// Dashboard: close the window when training finishes.
    #[arg(long)]
    pub exit_when_done: bool,
    /// Dashboard: save the window as a PNG just before it closes, and beside it PNG.json, the
    /// dashboard's status (modes, steps, losses, where the loss plot is in the picture).
    #[arg(long)]
    pub screenshot: Option<PathBuf>,
    /// Dashboard: show text sampled from each run every N steps (0: never) [default: 100].
    #[arg(long, value_parser = whole(0, u32::MAX as u64))]
    pub sample_every: Option<u64>,
    /// `builtin` (srgpt's own sources), `shakespeare` (37 plays, built in; README's results),
    /// a path to any text file, or a folder `srgpt prepare` wrote (read through a memory map)
    /// [default: builtin; when resuming, the checkpoint's corpus].
    #[arg(long)]
    pub corpus: Option<String>,
    /// `byte` (one token per distinct byte of the corpus), `gpt2` (GPT-2's BPE, 50,257
    /// tokens) or the path of a Hugging Face tokenizer.json [default: byte; a prepared
    /// folder's own; when resuming, the checkpoint's].
    #[arg(long)]
    pub tokenizer: Option<TokenizerChoice>,
    #[command(flatten)]
    pub model: ModelFlags,
    /// Precision modes to train side by side (comma-separated) [default: fp32,bf16,bf16-sr].
    #[arg(long, value_delimiter = ',')]
    pub precision: Option<Vec<Precision>>,
    /// Peak learning rate.
    #[arg(long, value_parser = positive_number)]
    pub lr: Option<f32>,
    /// Linear warm-up updates (at most --steps).
    #[arg(long, value_parser = whole(0, u32::MAX as u64))]
    pub warmup: Option<u64>,
    /// Total updates of the run.
    #[arg(long, value_parser = whole(1, u32::MAX as u64))]
    pub steps: Option<u64>,
    /// [default: 1]
    #[arg(long, value_parser = whole(0, u64::MAX))]
    pub seed: Option<u64>,
    /// Evaluate on the validation batches every N updates, and at the start and end (0: only
    /// at the start and end) [default: 50].
    #[arg(long, value_parser = whole(0, u32::MAX as u64))]
    pub eval_every: Option<u64>,
    /// Number of fixed validation batches per evaluation [default: 16].
    #[arg(long, value_parser = whole(1, 4096))]
    pub eval_batches: Option<u64>,
    /// The run's folder for metrics.jsonl, summary.json and checkpoints; refused if it holds
    /// another run (default: runs/<date>_<time>, or the folder of the checkpoints resumed).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Write checkpoints every N updates (0: only by time and at the end) [default: 200].
    #[arg(long, value_parser = whole(0, u32::MAX as u64))]
    pub ckpt_every: Option<u64>,
    /// Also write checkpoints whenever this many minutes have passed since the last (0: only
    /// by steps and at the end) [default: 5].
    #[arg(long, value_parser = non_negative_number)]
    pub ckpt_minutes: Option<f32>,
    /// Continue runs from their checkpoints (comma-separated files, one per mode of the same
    /// run, or a run's folder for all of its checkpoints), in their own folder.
    #[arg(long, value_delimiter = ',')]
    pub resume: Vec<PathBuf>,
    /// Start a new run from exported weights (an `srgpt export` folder, Hugging Face or
    /// nanoGPT, its model.safetensors, or a checkpoint): its model shape and byte vocabulary
    /// (the corpus must have the same bytes), every mode from the weights rounded to bf16,
    /// fresh optimizer state.
    #[arg(long)]
    pub init: Option<PathBuf>,
    /// Do not measure each update's fidelity (update_ratio, lost_fraction), which costs a
    /// little of every step.
    #[arg(long)]
    pub no_fidelity: bool,
    /// The validation loss a run must reach for summary.json's time to target (default: 1.01 x
    /// fp32's final validation loss when fp32 is among the runs).
    #[arg(long, value_parser = positive_number)]
    pub target_loss: Option<f32>,
    /// Stop after this many updates, writing checkpoints, as if interrupted (resume later).
    #[arg(long, value_parser = whole(1, u32::MAX as u64))]
    pub stop_at: Option<u64>,
}

pub fn train(adapter: Option<&str>, args: TrainArgs) -> Result<ExitCode> {
    if let Some(why) = headless_because(&args) {
        refuse_dashboard_flags(&args, why)?;
    } else {
        #[cfg(feature = "ui")]
        return super::dashboard::train(adapter, &args);
    }
    if !args.headless && args.resume.is_empty() {
        eprintln!("srgpt: {}: training headless", headless_because(&args).unwrap_or_default());
    }
    headless(adapter, TrainPlan::new(&args)?)
}

/// Why `srgpt train` with these flags trains without a window (`None`: it opens the
/// dashboard).
fn headless_because(args: &TrainArgs) -> Option<&'static str> {
    if args.headless {
        Some("--headless opens none")
    } else if !args.resume.is_empty() {
        Some("--resume trains headless")
    } else if !cfg!(feature = "ui") {
        Some("this srgpt was built without the dashboard (cargo feature `ui`)")
    } else if !display_available() {
        Some("there is no display (DISPLAY or WAYLAND_DISPLAY is unset)")
    } else {
        None
    }
}

#[cfg(feature = "ui")]
fn display_available() -> bool {
    srgpt::ui::native::display_available()
}

#[cfg(not(feature = "ui"))]
fn display_available() -> bool {
    false
}

/// Refuses the dashboard's flags where no dashboard opens: each would do nothing.
fn refuse_dashboard_flags(args: &TrainArgs, why: &str) -> Result<()> {
    let given = [
        (args.screenshot.is_some(), "--screenshot"),
        (args.exit_when_done, "--exit-when-done"),
        (args.sample_every.is_some(), "--sample-every"),
    ];
    match given.iter().find(|(g, _)| *g) {
        Some((_, flag)) => Err(bad_input(format!("{flag} works only in the dashboard, and {why}"))),
        None => Ok(()),
    }
}

/// Trains the plan headless: the session in a loop until it finishes or a signal or
/// `--stop-at` ends it, then the summary table.
fn headless(adapter: Option<&str>, plan: TrainPlan) -> Result<ExitCode> {
    if plan.nothing_to_train() {
        eprintln!("already at step {} of {}: nothing to train ({} is left as it was)", plan.from_step, plan.total, plan.out_dir.display());
        return Ok(ExitCode::SUCCESS);
    }
    let resumed_at = plan.resuming().then_some(plan.from_step);
    let TrainPlan { start, corpus, out_dir, from_step, total, stop_at, checkpoints, target_loss, notes } = plan;
    let gpu = Gpu::new(adapter)?;
    eprintln!("adapter: {}", gpu.report.summary());
    let (mut trainer, output) = match start {
        Start::New { spec, init: Some(weights) } => (Trainer::from_weights(&gpu, corpus, spec, &weights)?, RunOutput::create(&out_dir)?),
        Start::New { spec, init: None } => (Trainer::new(&gpu, corpus, spec)?, RunOutput::create(&out_dir)?),
        Start::Resume { checkpoints, changes, source } => {
            let trainer = Trainer::resume(&gpu, corpus, checkpoints, &changes)?;
            let names: Vec<String> = trainer.runs.iter().map(|r| r.precision.name().to_string()).collect();
            (trainer, RunOutput::resume(&out_dir, &source, &names, from_step)?)
        }
    };
    trainer.recall(&output.earlier);
    trainer.target_loss = target_loss;
    say_what_runs(&trainer, resumed_at, &notes);
    let when = match (checkpoints.every_steps, checkpoints.every) {
        (0, None) => String::new(),
        (0, Some(t)) => format!("every {:.0} s, ", t.as_secs_f32()),
        (n, None) => format!("every {n} steps, "),
        (n, Some(t)) => format!("every {n} steps or {:.0} s, ", t.as_secs_f32()),
    };
    eprintln!("writing {} (checkpoints {when}at the end and on Ctrl-C)", output.dir.display());
    let stop = watch_stop_signals()?;
    let options = SessionOptions { out_dir: None, sample_every: 0, checkpoints, keep: None };
    let (mut session, _) = Session::new(trainer, Some(output), options, Driving::Headless, Vec::new());
    let mut progress = Progress::new(&session.trainer);
    while !session.is_done() {
        if stop.load(Ordering::SeqCst) != 0 || session.trainer.step >= stop_at {
            session.request_stop();
        }
        let events = session.tick(&gpu)?;
        if session.is_done() {
            progress.finish(&session.trainer);
        } else {
            progress.update(&session.trainer);
        }
        events.iter().for_each(|e| progress.show(e));
    }
    // the picture is a convenience: a failure to draw it is said, and the run still counts
    let curves = out_dir.join("curves.png");
    match srgpt::plot::plot(&out_dir, &curves) {
        Ok(()) => eprintln!("curves: {}", curves.display()),
        Err(e) => eprintln!("note: the curves could not be drawn ({e:#})"),
    }
    let summary = session.summary.as_ref().ok_or_else(|| anyhow::anyhow!("the session ended without a summary"))?;
    print_summary(summary);
    let trainer = &session.trainer;
    if trainer.runs.iter().any(|r| r.status == RunStatus::Stopped) {
        let files: Vec<String> = trainer
            .runs
            .iter()
            .filter(|r| !matches!(r.status, RunStatus::Diverged(_)))
            .map(|r| out_dir.join(format!("{}.safetensors", r.precision.name())).display().to_string())
            .collect();
        eprintln!("stopped at step {} of {}; continue with:\n  srgpt train --headless --resume {}", trainer.step, total, files.join(","));
    }
    let signal = stop.load(Ordering::SeqCst);
    if signal != 0 {
        return Ok(ExitCode::from(128 + signal as u8));
    }
    let diverged = divergences(trainer);
    if !diverged.is_empty() {
        return Err(Failure::Diverged(diverged.join("; ")).into());
    }
    Ok(ExitCode::SUCCESS)
}

/// The banner: the model, the schedule and the modes, what changes on resume.
fn say_what_runs(trainer: &Trainer, resumed_at: Option<u32>, notes: &[String]) {
    let s = &trainer.spec;
    eprintln!(
        "model: {} layers, {} heads, d {}, ctx {}, vocab {} ({} parameters); batch {}, lr {}, warm-up {}, {} steps; modes {}",
        s.model.n_layer,
        s.model.n_head,
        s.model.d,
        s.model.ctx,
        s.model.vocab,
        s.model.num_params(),
        match s.train.grad_accum {
            1 => s.train.batch.to_string(),
            n => format!("{} in {n} micro-batches of {}", s.train.batch, s.train.micro_batch()),
        },
        s.train.lr,
        s.train.warmup,
        s.train.steps,
        s.precisions.iter().map(|p| p.name()).collect::<Vec<_>>().join(",")
    );
    if s.train.warmup >= s.train.steps {
        eprintln!("note: the warm-up ({} steps) is not shorter than the run: the learning rate never reaches its peak", s.train.warmup);
    }
    if let Some(step) = resumed_at {
        eprintln!("resuming at step {step} of {}", s.train.steps);
    }
    for line in notes {
        eprintln!("{line}");
    }
}

/// The table printed at the end: each run's losses, state, speed, fidelity and time to
/// target, from summary.json.
fn print_summary(summary: &Summary) {
    println!(
        "{:<10} {:>6} {:>8} {:>14} {:>8} {:>11} {:>9} {:>8} {:>6} {:>16}  status",
        "mode", "step", "train", "val", "val bpb", "bytes/param", "tokens/s", "updated", "lost", "to target"
    );
    for r in &summary.runs {
        let train = r.final_train_loss.map_or("-".into(), |v| format!("{v:.4}"));
        let val = match (r.final_val_loss, r.last_val_loss, r.last_val_loss_step) {
            (Some(v), _, _) => format!("{v:.4}"),
            (None, Some(v), Some(at)) => format!("{v:.4} @{at}"),
            _ => "-".into(),
        };
        let share = |v: Option<f64>| v.map_or("-".into(), |v| format!("{:.1}%", 100.0 * v));
        let to_target = match (r.steps_to_target, r.speedup_vs_fp32) {
            (Some(step), Some(x)) => format!("step {step} {x:.2}x"),
            (Some(step), None) => format!("step {step}"),
            _ => "-".into(),
        };
        println!(
            "{:<10} {:>6} {:>8} {:>14} {:>8} {:>11.1} {:>9.0} {:>8} {:>6} {:>16}  {}",
            r.precision,
            r.steps_completed,
            train,
            val,
            r.last_val_bits_per_byte.map_or("-".into(), |v| format!("{v:.4}")),
            r.state_bytes_per_param,
            r.tokens_per_s,
            share(r.update_ratio),
            share(r.lost_fraction),
            to_target,
            r.status
        );
    }
    if let Some(target) = summary.target_loss {
        println!("to target: the first evaluation at val loss <= {target:.4}, and fp32's GPU time to it over the run's");
    }
}
