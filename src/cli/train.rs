//! `srgpt train`: the flags, the dashboard it opens, and the headless loop with its graceful
//! stop, periodic checkpoints, resume checks and progress line.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::Result;
use srgpt::data::Corpus;
use srgpt::gpu::Gpu;
use srgpt::model::config::{preset, ModelConfig, TrainConfig, MAX_CTX, MAX_D, MAX_LAYERS};
use srgpt::precision::Precision;
use srgpt::train::checkpoint::Checkpoint;
use srgpt::train::output::{divergences, CheckpointClock, CheckpointPolicy, RunOutput};
use srgpt::train::{ResumeChanges, RunStatus, TrainSpec, Trainer};
use srgpt::ui::native::WindowOptions;
use srgpt::ui::Settings;
use srgpt::Failure;

use super::args::{bad_input, non_negative_number, parse_precisions, positive_number, whole};

#[derive(clap::Args)]
pub struct TrainArgs {
    /// Train without a window, printing progress (also the fallback where no display exists).
    #[arg(long)]
    headless: bool,
    /// Dashboard: close the window when training finishes.
    #[arg(long)]
    exit_when_done: bool,
    /// Dashboard: save the window as a PNG just before it closes, and beside it PNG.json, the
    /// dashboard's status (modes, steps, losses, where the loss plot is in the picture).
    #[arg(long)]
    screenshot: Option<PathBuf>,
    /// Dashboard: show text sampled from each run every N steps (0: never) [default: 100].
    #[arg(long, value_parser = whole(0, u32::MAX as u64))]
    sample_every: Option<u64>,
    /// `builtin` (srgpt's own sources), `shakespeare` (37 plays, built in; README's results)
    /// or a path to any file, read as bytes [default: builtin; when resuming, the
    /// checkpoint's corpus].
    #[arg(long)]
    corpus: Option<String>,
    /// Model and schedule preset: tiny, small or base [default: tiny].
    #[arg(long)]
    preset: Option<String>,
    /// Precision modes to train side by side: fp32, mixed, bf16, bf16-sr, bf16-kahan
    /// (comma-separated)
    /// [default: fp32,bf16,bf16-sr].
    #[arg(long, value_delimiter = ',')]
    precision: Option<Vec<String>>,
    #[arg(long, value_parser = whole(1, MAX_LAYERS as u64))]
    n_layer: Option<u64>,
    #[arg(long, value_parser = whole(1, MAX_D as u64))]
    n_head: Option<u64>,
    /// Channels (d).
    #[arg(long, value_parser = whole(1, MAX_D as u64))]
    d: Option<u64>,
    /// Context length (T).
    #[arg(long, value_parser = whole(2, MAX_CTX as u64))]
    ctx: Option<u64>,
    /// Sequences per batch (B).
    #[arg(long, value_parser = whole(1, 1 << 20))]
    batch: Option<u64>,
    /// Peak learning rate.
    #[arg(long, value_parser = positive_number)]
    lr: Option<f32>,
    /// Linear warm-up updates (at most --steps).
    #[arg(long, value_parser = whole(0, u32::MAX as u64))]
    warmup: Option<u64>,
    /// Total updates of the run.
    #[arg(long, value_parser = whole(1, u32::MAX as u64))]
    steps: Option<u64>,
    /// [default: 1]
    #[arg(long, value_parser = whole(0, u64::MAX))]
    seed: Option<u64>,
    /// Evaluate on the validation batches every N updates, and at the start and end (0: only
    /// at the start and end) [default: 50].
    #[arg(long, value_parser = whole(0, u32::MAX as u64))]
    eval_every: Option<u64>,
    /// Number of fixed validation batches per evaluation [default: 16].
    #[arg(long, value_parser = whole(1, 4096))]
    eval_batches: Option<u64>,
    /// The run's folder for metrics.jsonl, summary.json and checkpoints; refused if it holds
    /// another run (default: runs/<date>_<time>, or the folder of the checkpoints resumed).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Write checkpoints every N updates (0: only by time and at the end) [default: 200].
    #[arg(long, value_parser = whole(0, u32::MAX as u64))]
    ckpt_every: Option<u64>,
    /// Also write checkpoints whenever this many minutes have passed since the last (0: only
    /// by steps and at the end) [default: 5].
    #[arg(long, value_parser = non_negative_number)]
    ckpt_minutes: Option<f32>,
    /// Continue runs from their checkpoints (comma-separated files, one per mode of the same
    /// run, or a run's folder for all of its checkpoints), in their own folder.
    #[arg(long, value_delimiter = ',')]
    resume: Vec<PathBuf>,
    /// Start a new run from exported weights (an `srgpt export` folder, Hugging Face or
    /// nanoGPT, its model.safetensors, or a checkpoint): its model shape and byte vocabulary
    /// (the corpus must have the same bytes), every mode from the weights rounded to bf16,
    /// fresh optimizer state.
    #[arg(long)]
    init: Option<PathBuf>,
    /// Do not measure each update's fidelity (update_ratio, lost_fraction), which costs a
    /// little of every step.
    #[arg(long)]
    no_fidelity: bool,
    /// The validation loss a run must reach for summary.json's time to target (default: 1.01 x
    /// fp32's final validation loss when fp32 is among the runs).
    #[arg(long, value_parser = positive_number)]
    target_loss: Option<f32>,
    /// Stop after this many updates, writing checkpoints, as if interrupted (resume later).
    #[arg(long, value_parser = whole(1, u32::MAX as u64))]
    stop_at: Option<u64>,
}

/// `srgpt train` in a window: the flags fill the form, and training starts at once.
fn dashboard(adapter: Option<&str>, args: &TrainArgs) -> Result<ExitCode> {
    if args.stop_at.is_some() {
        return Err(bad_input("--stop-at works only with --headless (in the dashboard, press Stop)".into()));
    }
    if args.no_fidelity {
        return Err(bad_input("--no-fidelity works only with --headless (the dashboard always shows the fidelity)".into()));
    }
    if args.init.is_some() {
        return Err(bad_input("--init works only with --headless".into()));
    }
    if args.target_loss.is_some() {
        return Err(bad_input("--target-loss works only with --headless (the dashboard's summary uses 1.01 x fp32's final loss)".into()));
    }
    let precisions = parse_precisions(args.precision.as_deref())?;
    let (model, sched) = configured(args, 0)?;
    let mut s = Settings::from_preset(args.preset.as_deref().unwrap_or("tiny"));
    s.corpus = args.corpus.clone().unwrap_or_else(|| "builtin".into());
    (s.n_layer, s.n_head, s.d, s.ctx) = (model.n_layer, model.n_head, model.d, model.ctx);
    (s.batch, s.lr, s.warmup, s.steps) = (sched.batch, sched.lr, sched.warmup, sched.steps);
    s.seed = args.seed.unwrap_or(1);
    s.eval_every = args.eval_every.map_or(50, |v| v as u32);
    s.eval_batches = args.eval_batches.map_or(16, |v| v as u32);
    s.sample_every = args.sample_every.map_or(100, |v| v as u32);
    s.modes = Precision::ALL.map(|p| precisions.contains(&p));
    s.checkpoints = checkpoint_policy(args);
    // each Start writes a new runs/<date>_<time> unless --out names the folder
    s.write_files = true;
    if let Some(out) = &args.out {
        if srgpt::train::output::holds_run(out) {
            return Err(srgpt::train::output::folder_taken(out));
        }
        s.out_dir = out.display().to_string();
    }
    // bad settings are refused here as in headless mode, before a window opens
    s.to_spec().map_err(bad_input)?;
    // Ctrl-C closes the window as the user would, which writes the checkpoints
    let stop = watch_stop_signals()?;
    let opts = WindowOptions {
        settings: s,
        autostart: true,
        view: None,
        exit_when_done: args.exit_when_done,
        screenshot: args.screenshot.clone(),
        adapter: adapter.map(str::to_string),
        stop_signal: Some(stop.clone()),
    };
    srgpt::ui::native::run(opts)?;
    match stop.load(Ordering::SeqCst) {
        0 => Ok(ExitCode::SUCCESS),
        signal => Ok(ExitCode::from(128 + signal as u8)),
    }
}

/// The preset's model and schedule with the flags' overrides.
fn configured(args: &TrainArgs, vocab: u32) -> Result<(ModelConfig, TrainConfig)> {
    let p = preset(args.preset.as_deref().unwrap_or("tiny"))?;
    let mut model = ModelConfig::from_preset(&p, vocab);
    let mut sched = p.train;
    let given = |v: Option<u64>, default: u32| v.map_or(default, |v| v as u32);
    model.n_layer = given(args.n_layer, model.n_layer);
    model.n_head = given(args.n_head, model.n_head);
    model.d = given(args.d, model.d);
    model.ctx = given(args.ctx, model.ctx);
    sched.batch = given(args.batch, sched.batch);
    sched.lr = args.lr.unwrap_or(sched.lr);
    sched.warmup = given(args.warmup, sched.warmup);
    sched.steps = given(args.steps, sched.steps);
    if let Some(w) = args.warmup {
        if w > sched.steps as u64 {
            return Err(bad_input(format!("--warmup {w} is beyond --steps {}: the learning rate would never reach its peak", sched.steps)));
        }
    }
    Ok((model, sched))
}

/// The model and weights of `--init`: model flags may only repeat them, and the corpus must
/// have the exported vocabulary.
fn init_weights(args: &TrainArgs, path: &Path, corpus: &Corpus) -> Result<(ModelConfig, Vec<f32>)> {
    let (cfg, vocab, weights) = srgpt::export::load_init(path)?;
    for (flag, given, has) in [
        ("--n-layer", args.n_layer, cfg.n_layer),
        ("--n-head", args.n_head, cfg.n_head),
        ("--d", args.d, cfg.d),
        ("--ctx", args.ctx, cfg.ctx),
    ] {
        if let Some(g) = given.filter(|&g| g != has as u64) {
            return Err(bad_input(format!("{flag} {g} contradicts the weights of --init {}, which have {has}", path.display())));
        }
    }
    // a preset names a model and a schedule: with --init only its schedule could apply
    if let Some(name) = &args.preset {
        let named = ModelConfig::from_preset(&preset(name)?, cfg.vocab);
        if (named.n_layer, named.n_head, named.d, named.ctx) != (cfg.n_layer, cfg.n_head, cfg.d, cfg.ctx) {
            return Err(bad_input(format!(
                "--preset {name}'s model contradicts the weights of --init {}; leave --preset out and give --lr, --batch, --warmup or --steps",
                path.display()
            )));
        }
    }
    if corpus.vocab != vocab {
        return Err(bad_input(format!(
            "--init {}: its vocabulary ({} bytes) is not the corpus {}'s ({} bytes); use the corpus it was trained on",
            path.display(),
            vocab.len(),
            corpus.source,
            corpus.vocab.len()
        )));
    }
    Ok((cfg, weights))
}

fn checkpoint_policy(args: &TrainArgs) -> CheckpointPolicy {
    let default = CheckpointPolicy::DEFAULT;
    CheckpointPolicy {
        every_steps: args.ckpt_every.map_or(default.every_steps, |n| n as u32),
        every: match args.ckpt_minutes {
            Some(m) if m > 0.0 => Some(std::time::Duration::from_secs_f32(m * 60.0)),
            Some(_) => None,
            None => default.every,
        },
    }
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

/// The checkpoint files that `--resume` names: files as given, a folder as its checkpoints.
fn resume_files(given: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in given {
        if path.is_dir() {
            let found: Vec<PathBuf> =
                Precision::ALL.iter().map(|p| path.join(format!("{}.safetensors", p.name()))).filter(|f| f.exists()).collect();
            if found.is_empty() {
                return Err(bad_input(format!("--resume {}: the folder holds no checkpoint (<precision>.safetensors)", path.display())));
            }
            files.extend(found);
        } else {
            files.push(path.clone());
        }
    }
    for (i, f) in files.iter().enumerate() {
        let same = |g: &PathBuf| match (f.canonicalize(), g.canonicalize()) {
            (Ok(a), Ok(b)) => a == b,
            _ => f == g,
        };
        if files[..i].iter().any(same) {
            return Err(bad_input(format!("--resume names {} twice", f.display())));
        }
    }
    Ok(files)
}

/// Refuses flags that contradict the checkpoints being resumed (a resumed run keeps its
/// model, batch, seed and modes); returns the changes the other flags make, with a line
/// saying each.
fn resume_changes(args: &TrainArgs, checkpoints: &[Checkpoint]) -> Result<(ResumeChanges, Vec<String>)> {
    let state = &checkpoints[0].state;
    let conflict = |flag: &str, saved: String, given: String| {
        bad_input(format!(
            "{flag} {given} contradicts the checkpoint's {saved}: a resumed run keeps its model, batch, seed and modes \
             (leave {flag} out, or start a new run in a new folder)"
        ))
    };
    if let Some(p) = args.preset.as_ref().filter(|p| **p != state.preset) {
        return Err(conflict("--preset", format!("preset {}", state.preset), p.clone()));
    }
    let fixed = [
        ("--n-layer", args.n_layer, state.model.n_layer as u64),
        ("--n-head", args.n_head, state.model.n_head as u64),
        ("--d", args.d, state.model.d as u64),
        ("--ctx", args.ctx, state.model.ctx as u64),
        ("--batch", args.batch, state.train.batch as u64),
        ("--seed", args.seed, state.seed),
    ];
    for (flag, given, saved) in fixed {
        if let Some(g) = given.filter(|g| *g != saved) {
            return Err(conflict(flag, format!("{} {saved}", &flag[2..]), g.to_string()));
        }
    }
    if let Some(names) = &args.precision {
        let given = parse_precisions(Some(names))?;
        let saved: Vec<Precision> = checkpoints.iter().map(|c| c.precision).collect();
        let list = |ps: &[Precision]| {
            let mut names: Vec<&str> = ps.iter().map(|p| p.name()).collect();
            names.sort();
            names.join(",")
        };
        if list(&given) != list(&saved) {
            return Err(conflict("--precision", format!("modes {}", list(&saved)), list(&given)));
        }
    }
    let changes = ResumeChanges {
        steps: args.steps.map(|v| v as u32),
        lr: args.lr,
        warmup: args.warmup.map(|v| v as u32),
        eval_every: args.eval_every.map(|v| v as u32),
        eval_batches: args.eval_batches.map(|v| v as u32),
        skip_fidelity: args.no_fidelity,
    };
    let steps = changes.steps.unwrap_or(state.train.steps);
    if let Some(w) = changes.warmup.filter(|w| *w > steps) {
        return Err(bad_input(format!("--warmup {w} is beyond the run's {steps} steps")));
    }
    let mut said = Vec::new();
    let mut note = |flag: &str, from: String, to: Option<String>| {
        if let Some(to) = to.filter(|to| *to != from) {
            said.push(format!("{flag} changes on resume: {from} -> {to}"));
        }
    };
    note("--steps", state.train.steps.to_string(), changes.steps.map(|v| v.to_string()));
    note("--lr", state.train.lr.to_string(), changes.lr.map(|v| v.to_string()));
    note("--warmup", state.train.warmup.to_string(), changes.warmup.map(|v| v.to_string()));
    note("--eval-every", state.eval_every.to_string(), changes.eval_every.map(|v| v.to_string()));
    note("--eval-batches", state.eval_batches.to_string(), changes.eval_batches.map(|v| v.to_string()));
    Ok((changes, said))
}

/// The signal (SIGINT or SIGTERM) that asked the run to stop, 0 until one does. The first
/// lets the step in flight finish and the checkpoints be written; a second exits at once.
#[cfg(unix)]
fn watch_stop_signals() -> Result<Arc<AtomicUsize>> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let stop = Arc::new(AtomicUsize::new(0));
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    let seen = stop.clone();
    std::thread::spawn(move || {
        for signal in signals.forever() {
            let name = if signal == SIGINT { "Ctrl-C" } else { "SIGTERM" };
            if seen.swap(signal as usize, Ordering::SeqCst) != 0 {
                eprintln!("\nsrgpt: {name} again: exiting at once (the checkpoints on disk are the last complete ones)");
                std::process::exit(128 + signal);
            }
            eprintln!("\nsrgpt: {name}: finishing the step in flight and writing checkpoints (press Ctrl-C again to exit at once)");
        }
    });
    Ok(stop)
}

/// Elsewhere (Windows) without the messages: a first Ctrl-C sets the flag, a second exits.
#[cfg(not(unix))]
fn watch_stop_signals() -> Result<Arc<AtomicUsize>> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let stop = Arc::new(AtomicUsize::new(0));
    let stopping = Arc::new(std::sync::atomic::AtomicBool::new(false));
    for signal in [SIGINT, SIGTERM] {
        // registered first, so it sees the flag as the previous signal left it
        signal_hook::flag::register_conditional_shutdown(signal, 128 + signal, stopping.clone())?;
        signal_hook::flag::register(signal, stopping.clone())?;
        signal_hook::flag::register_usize(signal, stop.clone(), signal as usize)?;
    }
    Ok(stop)
}

pub fn train(adapter: Option<&str>, args: TrainArgs) -> Result<ExitCode> {
    let resuming = !args.resume.is_empty();
    if args.headless {
        refuse_dashboard_flags(&args, "--headless opens none")?;
    } else if resuming {
        refuse_dashboard_flags(&args, "--resume trains headless")?;
    } else if srgpt::ui::native::display_available() {
        return dashboard(adapter, &args);
    } else {
        refuse_dashboard_flags(&args, "there is no display (DISPLAY or WAYLAND_DISPLAY is unset)")?;
        eprintln!("srgpt: no display (DISPLAY or WAYLAND_DISPLAY is unset): training headless");
    }
    let files = resume_files(&args.resume)?;
    let checkpoints = files.iter().map(|p| srgpt::train::checkpoint::load(p)).collect::<Result<Vec<_>>>()?;
    for (i, c) in checkpoints.iter().enumerate() {
        if checkpoints[..i].iter().any(|d| d.precision == c.precision) {
            return Err(bad_input(format!("--resume names two checkpoints of mode {}", c.precision)));
        }
    }
    let (changes, said) = if resuming { resume_changes(&args, &checkpoints)? } else { (ResumeChanges::default(), Vec::new()) };
    let corpus_source =
        args.corpus.clone().or_else(|| checkpoints.first().map(|c| c.state.corpus.clone())).unwrap_or_else(|| "builtin".into());
    let corpus = Corpus::load(&corpus_source)?;
    let init = match &args.init {
        Some(_) if resuming => return Err(bad_input("--init starts a new run; --resume continues one: give one of them".into())),
        Some(path) => Some(init_weights(&args, path, &corpus)?),
        None => None,
    };
    let spec = if resuming {
        None
    } else {
        let (mut model, sched) = configured(&args, corpus.vocab_size())?;
        if let Some((cfg, _)) = &init {
            model = *cfg;
        }
        let spec = TrainSpec {
            preset: args.preset.clone().unwrap_or_else(|| "tiny".into()),
            model,
            train: sched,
            precisions: parse_precisions(args.precision.as_deref())?,
            seed: args.seed.unwrap_or(1),
            eval_every: args.eval_every.map_or(50, |v| v as u32),
            eval_batches: args.eval_batches.map_or(16, |v| v as u32),
            measure_fidelity: !args.no_fidelity,
        };
        spec.validate()?;
        corpus.check_context(model.ctx)?;
        Some(spec)
    };
    let from_step = checkpoints.first().map_or(0, |c| c.state.step);
    let total = match &spec {
        Some(s) => s.train.steps,
        None => changes.steps.unwrap_or(checkpoints[0].state.train.steps),
    };
    if let Some(stop_at) = args.stop_at {
        if stop_at > total as u64 {
            return Err(bad_input(format!("--stop-at {stop_at} is beyond the run's {total} steps")));
        }
        if stop_at <= from_step as u64 {
            return Err(bad_input(format!("--stop-at {stop_at} is not after the checkpoint's step {from_step}")));
        }
    }
    let source_dir = files.first().and_then(|f| f.parent()).map(|p| if p.as_os_str().is_empty() { Path::new(".") } else { p });
    let out_dir = match (&args.out, source_dir) {
        (Some(dir), _) => dir.clone(),
        (None, Some(dir)) => dir.to_path_buf(),
        (None, None) => srgpt::train::output::default_dir(),
    };
    if total < from_step {
        return Err(bad_input(format!("--steps {total} is below the checkpoint's step {from_step}")));
    }
    if resuming && from_step >= total {
        eprintln!("already at step {from_step} of {total}: nothing to train ({} is left as it was)", out_dir.display());
        return Ok(ExitCode::SUCCESS);
    }
    // checked before the GPU starts, so a mistake costs nothing
    if !resuming && srgpt::train::output::holds_run(&out_dir) {
        return Err(srgpt::train::output::folder_taken(&out_dir));
    }
    let gpu = Gpu::new(adapter)?;
    eprintln!("adapter: {}", gpu.report.summary());
    let mut trainer = match spec {
        Some(spec) => match &init {
            Some((_, weights)) => Trainer::from_weights(&gpu, corpus, spec, weights)?,
            None => Trainer::new(&gpu, corpus, spec)?,
        },
        None => Trainer::resume(&gpu, corpus, checkpoints, &changes)?,
    };
    let mut output = match source_dir {
        Some(source) => {
            let names: Vec<String> = trainer.runs.iter().map(|r| r.precision.name().to_string()).collect();
            RunOutput::resume(&out_dir, source, &names, from_step)?
        }
        None => RunOutput::create(&out_dir)?,
    };
    trainer.recall(&output.earlier);
    trainer.target_loss = args.target_loss;
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
    if s.train.warmup >= s.train.steps {
        eprintln!("note: the warm-up ({} steps) is not shorter than the run: the learning rate never reaches its peak", s.train.warmup);
    }
    if resuming {
        eprintln!("resuming at step {from_step} of {total}");
    }
    for line in &said {
        eprintln!("{line}");
    }
    let policy = checkpoint_policy(&args);
    let when = match (policy.every_steps, policy.every) {
        (0, None) => String::new(),
        (0, Some(t)) => format!("every {:.0} s, ", t.as_secs_f32()),
        (n, None) => format!("every {n} steps, "),
        (n, Some(t)) => format!("every {n} steps or {:.0} s, ", t.as_secs_f32()),
    };
    eprintln!("writing {} (checkpoints {when}at the end and on Ctrl-C)", out_dir.display());
    let stop_at = args.stop_at.map_or(total, |n| n as u32);
    let stop = watch_stop_signals()?;
    let mut clock = CheckpointClock::new(policy);
    let mut progress = Progress::new(&trainer);
    let mut reported = Vec::new();
    while !trainer.finished() && trainer.step < stop_at && stop.load(Ordering::SeqCst) == 0 {
        let lines = trainer.step(&gpu)?;
        output.write_metrics(&lines)?;
        for run in &trainer.runs {
            if let Some(msg) = &run.message {
                if !reported.contains(msg) {
                    reported.push(msg.clone());
                    progress.say(&format!("srgpt: {msg}"));
                }
            }
        }
        progress.update(&trainer);
        if clock.due(trainer.step, total) {
            for path in output.checkpoint(&mut trainer, &gpu)? {
                progress.say(&format!("checkpoint: {} (step {})", path.display(), trainer.step));
            }
            clock.written();
        }
    }
    let lines = trainer.flush(&gpu)?;
    output.write_metrics(&lines)?;
    trainer.mark_stopped();
    progress.finish(&trainer);
    let (written, summary) = output.finish(&mut trainer, &gpu)?;
    for p in &written {
        eprintln!("checkpoint: {} (step {})", p.display(), trainer.step);
    }
    // the picture is a convenience: a failure to draw it is said, and the run still counts
    let curves = output.dir.join("curves.png");
    match srgpt::plot::plot(&output.dir, &curves) {
        Ok(()) => eprintln!("curves: {}", curves.display()),
        Err(e) => eprintln!("note: the curves could not be drawn ({e:#})"),
    }
    println!(
        "{:<10} {:>6} {:>8} {:>14} {:>11} {:>9} {:>8} {:>6} {:>16}  status",
        "mode", "step", "train", "val", "bytes/param", "tokens/s", "updated", "lost", "to target"
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
            "{:<10} {:>6} {:>8} {:>14} {:>11.1} {:>9.0} {:>8} {:>6} {:>16}  {}",
            r.precision,
            r.steps_completed,
            train,
            val,
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
    if trainer.runs.iter().any(|r| r.status == RunStatus::Stopped) {
        let files: Vec<String> = written.iter().map(|p| p.display().to_string()).collect();
        eprintln!("stopped at step {} of {total}; continue with:\n  srgpt train --headless --resume {}", trainer.step, files.join(","));
    }
    let signal = stop.load(Ordering::SeqCst);
    if signal != 0 {
        return Ok(ExitCode::from(128 + signal as u8));
    }
    let diverged = divergences(&trainer);
    if !diverged.is_empty() {
        return Err(Failure::Diverged(diverged.join("; ")).into());
    }
    Ok(ExitCode::SUCCESS)
}

/// How a headless run shows its progress: a bar on a terminal; elsewhere (a log, CI) a line
/// every few seconds, never one per step.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    last_line: std::time::Instant,
}

/// Off a terminal, a progress line at most this often.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

impl Progress {
    fn new(trainer: &Trainer) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(trainer.spec.train.steps as u64);
            bar.set_style(
                indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {msg} [{elapsed_precise}<{eta_precise}]").expect("template"),
            );
            bar.set_position(trainer.step as u64);
            bar
        });
        Progress { bar, last_line: std::time::Instant::now() }
    }

    /// A message above the bar (or on its own line).
    fn say(&self, msg: &str) {
        match &self.bar {
            Some(b) => b.println(msg),
            None => eprintln!("{msg}"),
        }
    }

    fn update(&mut self, trainer: &Trainer) {
        let step = trainer.reported_step();
        match &self.bar {
            Some(b) => {
                b.set_position(step as u64);
                b.set_message(format!("{}{}", tokens_per_s(trainer), status_line(trainer)));
            }
            None if self.last_line.elapsed() >= PROGRESS_EVERY => {
                self.last_line = std::time::Instant::now();
                eprintln!("step {step}/{} {}{}", trainer.spec.train.steps, tokens_per_s(trainer), status_line(trainer));
            }
            None => {}
        }
    }

    fn finish(&mut self, trainer: &Trainer) {
        let step = trainer.reported_step();
        match &self.bar {
            Some(b) => {
                b.set_position(step as u64);
                b.set_message(status_line(trainer));
                b.finish();
            }
            None => eprintln!("step {step}/{} {}", trainer.spec.train.steps, status_line(trainer)),
        }
    }
}

/// "41234 tokens/s, ": one step of every live run, from their latest GPU times (the runs take
/// turns on one GPU).
fn tokens_per_s(trainer: &Trainer) -> String {
    let secs_per_token: f64 =
        trainer.runs.iter().filter(|r| r.status == RunStatus::Running && r.tokens_per_s > 0.0).map(|r| 1.0 / r.tokens_per_s).sum();
    if secs_per_token > 0.0 {
        format!("{:.0} tokens/s, ", 1.0 / secs_per_token)
    } else {
        String::new()
    }
}

/// "fp32 2.512 (val 2.43 @400) | bf16 2.530 (val 2.47 @400)": each run's train loss of the
/// step reported, and its latest validation loss with the step it was measured at.
fn status_line(trainer: &Trainer) -> String {
    trainer
        .runs
        .iter()
        .map(|r| {
            let val = r.val_loss.map_or(String::new(), |v| format!(" (val {v:.3} @{})", r.val_loss_step));
            let status = if r.status == RunStatus::Running { String::new() } else { format!(" [{}]", r.status.name()) };
            let train = r.train_loss.map_or("-".into(), |l| format!("{l:.3}"));
            format!("{} {train}{val}{status}", r.precision.name())
        })
        .collect::<Vec<_>>()
        .join(" | ")
}
