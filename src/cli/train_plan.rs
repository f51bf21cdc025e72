//! `srgpt train`'s flags made into one checked plan, with no GPU: the preset and what
//! overrides it, the checkpoints a resume continues or the weights `--init` starts from, the
//! corpus, the folder, when to checkpoint and when to stop. The run consumes the plan, so a
//! mistake in the flags is refused before anything is built, and costs nothing.

use std::path::{Path, PathBuf};

use anyhow::Result;
use srgpt::data::Corpus;
use srgpt::model::config::{ModelConfig, TrainConfig};
use srgpt::model::params::ParamLayout;
use srgpt::precision::Precision;
use srgpt::train::checkpoint::Checkpoint;
use srgpt::train::output::{default_dir, folder_taken, holds_run, CheckpointPolicy};
use srgpt::train::{ResumeChanges, TrainSpec, DEFAULT_EVAL_BATCHES, DEFAULT_EVAL_EVERY, DEFAULT_SEED};

use super::args::{bad_input, precisions};
use super::train::TrainArgs;

/// How the run begins.
pub enum Start {
    /// a new run of `spec`, from `init` (srgpt's layout, f32) when `--init` gave weights
    New { spec: TrainSpec, init: Option<Vec<f32>> },
    /// the runs of `checkpoints` continued in their own folder, `source`, with `changes`
    Resume { checkpoints: Vec<Checkpoint>, changes: ResumeChanges, source: PathBuf },
}

/// Everything a headless run needs, checked.
pub struct TrainPlan {
    pub start: Start,
    pub corpus: Corpus,
    pub out_dir: PathBuf,
    /// the update the run starts at (0, or the checkpoints'), the one it is set to end at,
    /// and the one `--stop-at` stops it at (else `total`)
    pub from_step: u32,
    pub total: u32,
    pub stop_at: u32,
    pub checkpoints: CheckpointPolicy,
    pub target_loss: Option<f32>,
    /// what the flags change on resume, a line each, said before training
    pub notes: Vec<String>,
}

impl TrainPlan {
    /// The plan of `srgpt train --headless` with these flags, or why it cannot run.
    pub fn new(args: &TrainArgs) -> Result<TrainPlan> {
        let files = resume_files(&args.resume)?;
        let checkpoints = files.iter().map(|p| srgpt::train::checkpoint::load(p)).collect::<Result<Vec<_>>>()?;
        for (i, c) in checkpoints.iter().enumerate() {
            if checkpoints[..i].iter().any(|d| d.precision == c.precision) {
                return Err(bad_input(format!("--resume names two checkpoints of mode {}", c.precision)));
            }
        }
        let corpus_source = args.corpus.clone().or_else(|| checkpoints.first().map(|c| c.state.corpus.clone()));
        let source = corpus_source.as_deref().unwrap_or("builtin");
        let corpus = match checkpoints.first() {
            // a resumed run reads its corpus with its own tokenizer
            Some(first) => {
                if let Some(choice) = &args.tokenizer {
                    choice.require(&first.tokenizer, &format!("{} was trained with", files[0].display()))?;
                }
                Corpus::load_for(source, &first.tokenizer)?
            }
            None => Corpus::load_with(source, args.tokenizer.as_ref())?,
        };
        let (start, notes) = match files.first() {
            Some(first_file) => {
                if args.init.is_some() {
                    return Err(bad_input("--init starts a new run; --resume continues one: give one of them".into()));
                }
                let (changes, notes) = resume_changes(args, &checkpoints)?;
                let source = first_folder(first_file);
                (Start::Resume { checkpoints, changes, source }, notes)
            }
            None => {
                let mut spec = spec_of(args, corpus.vocab_size())?;
                let init = match &args.init {
                    Some(path) => {
                        let (model, weights) = init_weights(args, path, &corpus)?;
                        spec.model = model;
                        Some(weights)
                    }
                    None => None,
                };
                spec.validate()?;
                corpus.check_context(spec.model.ctx)?;
                (Start::New { spec, init }, Vec::new())
            }
        };
        let (from_step, total) = match &start {
            Start::New { spec, .. } => (0, spec.train.steps),
            Start::Resume { checkpoints, changes, .. } => {
                let state = &checkpoints[0].state;
                (state.step, changes.steps.unwrap_or(state.train.steps))
            }
        };
        if total < from_step {
            return Err(bad_input(format!("--steps {total} is below the checkpoint's step {from_step}")));
        }
        if let Some(stop_at) = args.stop_at {
            if stop_at > total as u64 {
                return Err(bad_input(format!("--stop-at {stop_at} is beyond the run's {total} steps")));
            }
            if stop_at <= from_step as u64 {
                return Err(bad_input(format!("--stop-at {stop_at} is not after the checkpoint's step {from_step}")));
            }
        }
        let out_dir = match (&args.out, &start) {
            (Some(dir), _) => dir.clone(),
            (None, Start::Resume { source, .. }) => source.clone(),
            (None, Start::New { .. }) => default_dir(),
        };
        if matches!(start, Start::New { .. }) && holds_run(&out_dir) {
            return Err(folder_taken(&out_dir));
        }
        Ok(TrainPlan {
            start,
            corpus,
            out_dir,
            from_step,
            total,
            stop_at: args.stop_at.map_or(total, |n| n as u32),
            checkpoints: checkpoint_policy(args),
            target_loss: args.target_loss,
            notes,
        })
    }

    pub fn resuming(&self) -> bool {
        matches!(self.start, Start::Resume { .. })
    }

    /// A resumed run already at its last step: there is nothing to train.
    pub fn nothing_to_train(&self) -> bool {
        self.resuming() && self.from_step >= self.total
    }
}

/// The spec of a new run: the preset's model and schedule with the flags' overrides, the
/// defaults for the rest.
pub fn spec_of(args: &TrainArgs, vocab: u32) -> Result<TrainSpec> {
    let mut spec = TrainSpec::from_preset(&args.model.preset(), vocab);
    args.model.apply(&mut spec.model, &mut spec.train);
    let TrainConfig { lr, warmup, steps, .. } = &mut spec.train;
    *lr = args.lr.unwrap_or(*lr);
    *warmup = args.warmup.map_or(*warmup, |v| v as u32);
    *steps = args.steps.map_or(*steps, |v| v as u32);
    if let Some(w) = args.warmup.filter(|&w| w > spec.train.steps as u64) {
        return Err(bad_input(format!(
            "--warmup {w} is beyond --steps {}: the learning rate would never reach its peak",
            spec.train.steps
        )));
    }
    spec.precisions = precisions(args.precision.as_deref())?;
    spec.seed = args.seed.unwrap_or(DEFAULT_SEED);
    spec.eval_every = args.eval_every.map_or(DEFAULT_EVAL_EVERY, |v| v as u32);
    spec.eval_batches = args.eval_batches.map_or(DEFAULT_EVAL_BATCHES, |v| v as u32);
    spec.measure_fidelity = !args.no_fidelity;
    Ok(spec)
}

/// The checkpoint schedule of `--ckpt-every` and `--ckpt-minutes`.
pub fn checkpoint_policy(args: &TrainArgs) -> CheckpointPolicy {
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

/// The folder a checkpoint file is in ("." for a bare file name).
fn first_folder(file: &Path) -> PathBuf {
    match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The model and weights of `--init`: model flags may only repeat them (but --ctx may be
/// shorter: the first positions are kept), and the corpus must have the exported vocabulary.
fn init_weights(args: &TrainArgs, path: &Path, corpus: &Corpus) -> Result<(ModelConfig, Vec<f32>)> {
    let (cfg, tokenizer, weights) = srgpt::export::load_init(path).map_err(|e| bad_input(format!("--init {e}")))?;
    let has = [cfg.n_layer, cfg.n_head, cfg.d, cfg.ctx];
    for ((flag, given), has) in args.model.shape().into_iter().zip(has) {
        if flag == "--ctx" && given.is_some_and(|g| g < has as u64) {
            continue;
        }
        if let Some(g) = given.filter(|&g| g != has as u64) {
            return Err(bad_input(format!("{flag} {g} contradicts the weights of --init {}, which have {has}", path.display())));
        }
    }
    // a preset names a model and a schedule: with --init only its schedule could apply
    if let Some(preset) = &args.model.preset {
        let named = ModelConfig::from_preset(preset, cfg.vocab);
        if (named.n_layer, named.n_head, named.d, named.ctx) != (cfg.n_layer, cfg.n_head, cfg.d, cfg.ctx) {
            return Err(bad_input(format!(
                "--preset {}'s model contradicts the weights of --init {}; leave --preset out and give --lr, --batch, --warmup or --steps",
                preset.name,
                path.display()
            )));
        }
    }
    if corpus.tokenizer != tokenizer {
        return Err(bad_input(format!(
            "--init {}: its vocabulary ({:?}) is not the corpus {}'s ({:?}); use the corpus and --tokenizer it was trained with",
            path.display(),
            tokenizer,
            corpus.source,
            corpus.tokenizer
        )));
    }
    Ok(match args.model.ctx {
        Some(ctx) if (ctx as u32) < cfg.ctx => shorter_context(&cfg, &weights, ctx as u32),
        _ => (cfg, weights),
    })
}

/// A model of `ctx` positions from weights of a longer context: the same tensors, with the
/// first `ctx` rows of the position embedding (what a shorter sequence reads of it anyway).
fn shorter_context(cfg: &ModelConfig, weights: &[f32], ctx: u32) -> (ModelConfig, Vec<f32>) {
    let short = ModelConfig { ctx, ..*cfg };
    let (from, to) = (ParamLayout::new(cfg), ParamLayout::new(&short));
    let mut out = vec![0.0; to.total];
    for (t, f) in to.tensors.iter().zip(&from.tensors) {
        out[t.offset..t.offset + t.len].copy_from_slice(&weights[f.offset..f.offset + t.len]);
    }
    (short, out)
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
    if let Some(p) = args.model.preset.filter(|p| p.name != state.preset) {
        return Err(conflict("--preset", format!("preset {}", state.preset), p.name.to_string()));
    }
    let saved = [state.model.n_layer, state.model.n_head, state.model.d, state.model.ctx, state.train.batch, state.train.grad_accum];
    let batch_flags = [("--batch", args.model.batch), ("--grad-accum", args.model.grad_accum)];
    let fixed = args.model.shape().into_iter().chain(batch_flags).zip(saved.map(u64::from));
    for ((flag, given), saved) in fixed.chain([(("--seed", args.seed), state.seed)]) {
        if let Some(g) = given.filter(|g| *g != saved) {
            return Err(conflict(flag, format!("{} {saved}", &flag[2..]), g.to_string()));
        }
    }
    if args.precision.is_some() {
        let given = precisions(args.precision.as_deref())?;
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
    let mut notes = Vec::new();
    let mut note = |flag: &str, from: String, to: Option<String>| {
        if let Some(to) = to.filter(|to| *to != from) {
            notes.push(format!("{flag} changes on resume: {from} -> {to}"));
        }
    };
    note("--steps", state.train.steps.to_string(), changes.steps.map(|v| v.to_string()));
    note("--lr", state.train.lr.to_string(), changes.lr.map(|v| v.to_string()));
    note("--warmup", state.train.warmup.to_string(), changes.warmup.map(|v| v.to_string()));
    note("--eval-every", state.eval_every.to_string(), changes.eval_every.map(|v| v.to_string()));
    note("--eval-batches", state.eval_batches.to_string(), changes.eval_batches.map(|v| v.to_string()));
    Ok((changes, notes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        train: TrainArgs,
    }

    fn plan(flags: &[&str]) -> Result<TrainPlan> {
        let args = Flags::try_parse_from(["train", "--headless"].iter().chain(flags)).expect("flags parse").train;
        TrainPlan::new(&args)
    }

    fn new_spec(p: &TrainPlan) -> &TrainSpec {
        match &p.start {
            Start::New { spec, .. } => spec,
            Start::Resume { .. } => panic!("a new run was planned as a resume"),
        }
    }

    fn refusal(flags: &[&str]) -> String {
        match plan(flags) {
            Ok(_) => panic!("{flags:?} was accepted"),
            Err(e) => {
                assert_eq!(e.downcast_ref::<srgpt::Failure>().map(srgpt::Failure::exit_code), Some(2), "{e:#}");
                format!("{e:#}")
            }
        }
    }

    fn empty_folder(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("srgpt-plan-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_preset_gives_the_model_and_schedule_and_flags_override_them() {
        let out = empty_folder("preset");
        let p = plan(&["--preset", "small", "--d", "64", "--batch", "3", "--lr", "0.01", "--out", out.to_str().unwrap()]).unwrap();
        let s = new_spec(&p);
        assert_eq!((s.preset.as_str(), s.model.n_layer, s.model.n_head, s.model.d, s.model.ctx), ("small", 4, 4, 64, 128));
        assert_eq!((s.train.batch, s.train.lr, s.train.warmup, s.train.steps), (3, 0.01, 100, 2000));
        assert_eq!(s.model.vocab, p.corpus.vocab_size());
        assert_eq!((p.from_step, p.total, p.stop_at), (0, 2000, 2000));
        assert_eq!(p.out_dir, out);
    }

    #[test]
    fn without_flags_every_default_is_the_shared_one() {
        let s = TrainPlan::new(&Flags::try_parse_from(["train"]).unwrap().train).unwrap();
        let spec = new_spec(&s);
        let defaults = TrainSpec::from_preset(&srgpt::model::config::preset("tiny").unwrap(), s.corpus.vocab_size());
        assert_eq!((spec.preset.as_str(), spec.model, spec.train), (defaults.preset.as_str(), defaults.model, defaults.train));
        assert_eq!((&spec.precisions, spec.seed, spec.eval_every, spec.eval_batches), (&defaults.precisions, 1, 50, 16));
        assert!(s.out_dir.starts_with("runs"), "{}", s.out_dir.display());
        assert_eq!(s.checkpoints.every_steps, 200);
    }

    #[test]
    fn the_schedule_flags_are_checked_together() {
        assert!(refusal(&["--warmup", "700"]).contains("--warmup 700 is beyond --steps 600"));
        assert!(refusal(&["--steps", "10", "--stop-at", "11"]).contains("--stop-at 11 is beyond the run's 10 steps"));
        assert!(refusal(&["--n-head", "3"]).contains("--n-head"));
        assert!(refusal(&["--precision", "fp32,fp32"]).contains("listed twice"));
        let p = plan(&["--steps", "10", "--stop-at", "4", "--out", empty_folder("stop").to_str().unwrap()]).unwrap();
        assert_eq!((p.total, p.stop_at), (10, 4));
    }

    #[test]
    fn a_folder_that_holds_a_run_is_refused_before_the_gpu() {
        let out = empty_folder("taken");
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(out.join("metrics.jsonl"), "").unwrap();
        assert!(refusal(&["--out", out.to_str().unwrap()]).contains("holds an earlier run"));
        std::fs::remove_dir_all(&out).unwrap();
    }

    #[test]
    fn resume_and_init_exclude_each_other_and_need_their_files() {
        assert!(refusal(&["--resume", "/no/such.safetensors"]).contains("cannot read checkpoint"));
        let empty = empty_folder("resume");
        std::fs::create_dir_all(&empty).unwrap();
        assert!(refusal(&["--resume", empty.to_str().unwrap()]).contains("holds no checkpoint"));
        assert!(refusal(&["--init", "/no/such/folder"]).contains("/no/such/folder"));
        std::fs::remove_dir_all(&empty).unwrap();
    }

    #[test]
    fn the_checkpoint_schedule_follows_its_flags() {
        let p = |flags: &[&str]| checkpoint_policy(&Flags::try_parse_from(["train"].iter().chain(flags)).unwrap().train);
        assert_eq!(p(&["--ckpt-every", "7"]).every_steps, 7);
        assert_eq!(p(&["--ckpt-minutes", "0"]).every, None);
        assert_eq!(p(&["--ckpt-minutes", "0.5"]).every, Some(std::time::Duration::from_secs(30)));
        assert_eq!(p(&[]).every, CheckpointPolicy::DEFAULT.every);
    }
}
