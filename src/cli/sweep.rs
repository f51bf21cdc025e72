//! `srgpt sweep`: the paper's learning-rate claim as one command. Each (lr, seed) is one
//! side-by-side run of every mode in DIR/lr<lr>_seed<seed>/, trained by this same program as
//! `srgpt train --headless`; then DIR/sweep.json, sweep.md and sweep.png gather the final
//! validation losses (mean and spread over seeds), the late update fidelity and the time to
//! target of each mode at each learning rate. Run again, the command skips the finished
//! configurations and resumes an interrupted one from its checkpoints.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result};

use super::args::{bad_input, positive_number, precisions, whole, ModelFlags};
use srgpt::precision::Precision;
use srgpt::train::output::{RunSummary, Summary};
use srgpt::train::sweep::{markdown, mean_std, SweepCell};
use srgpt::train::RunStatus;

#[derive(clap::Args)]
pub struct SweepArgs {
    /// The model of every run (passed to each).
    #[command(flatten)]
    model: ModelFlags,
    /// Precision modes of every run (comma-separated) [default: fp32,bf16,bf16-sr].
    #[arg(long, value_delimiter = ',')]
    precision: Option<Vec<Precision>>,
    /// Peak learning rates (comma-separated), e.g. 3e-4,1e-3,3e-3,1e-2.
    #[arg(long, value_delimiter = ',', required = true, value_parser = positive_number)]
    lr: Vec<f32>,
    /// Seeds (comma-separated); the spread over them is the error bar.
    #[arg(long, value_delimiter = ',', required = true, value_parser = whole(0, u64::MAX))]
    seeds: Vec<u64>,
    /// Updates of each run [default: the preset's].
    #[arg(long, value_parser = whole(1, u32::MAX as u64))]
    steps: Option<u64>,
    /// `builtin`, `shakespeare`, a path to any text file or a prepared folder [default: builtin].
    #[arg(long)]
    corpus: Option<String>,
    /// `byte`, `gpt2` or a tokenizer.json, as `train` takes it [default: byte; a prepared
    /// folder's own].
    #[arg(long)]
    tokenizer: Option<srgpt::data::TokenizerChoice>,
    /// Evaluate every N updates [default: the train command's, 50].
    #[arg(long, value_parser = whole(0, u32::MAX as u64))]
    eval_every: Option<u64>,
    /// Checkpoint every N updates [default: the train command's, 200]: a killed sweep loses at
    /// most this much of the configuration it was training.
    #[arg(long, value_parser = whole(0, u32::MAX as u64))]
    ckpt_every: Option<u64>,
    /// The sweep's folder (one sub-folder per learning rate and seed).
    #[arg(long)]
    out: PathBuf,
}

fn folder(out: &Path, lr: f32, seed: u64) -> PathBuf {
    out.join(format!("lr{lr:e}_seed{seed}"))
}

/// A configuration's folder state: finished (every run done), resumable (a checkpoint for
/// every mode: the files of each step, one resume per step, since a kill during a set of
/// writes leaves some modes a step ahead), or to be trained from the start (nothing but the
/// log of a run killed before its first checkpoint). A folder holding other modes, or
/// checkpoints of only some, is refused rather than cleared.
enum State {
    Finished,
    Resumable(Vec<Vec<PathBuf>>),
    New,
}

fn state(dir: &Path, precisions: &[Precision]) -> Result<State> {
    let wanted: Vec<&str> = precisions.iter().map(|p| p.name()).collect();
    // the modes the folder already holds: they must be this sweep's, or a re-run with another
    // --precision would resume, or clear, a different run
    let summary = Summary::read(dir);
    let runs = summary.as_ref().map(|s| s.runs.clone()).unwrap_or_default();
    let logged = srgpt::train::read_metrics(&dir.join("metrics.jsonl")).ok();
    let held: Vec<String> = runs.iter().map(|r| r.precision.clone()).chain(logged.unwrap_or_default().into_iter().map(|m| m.run)).collect();
    if let Some(other) = held.iter().find(|m| !wanted.contains(&m.as_str())) {
        return Err(bad_input(format!(
            "{} holds a run of mode {other}, which this sweep (--precision {}) does not train; give the sweep another --out",
            dir.display(),
            wanted.join(",")
        )));
    }
    if summary.is_some() && runs.len() != precisions.len() {
        return Err(bad_input(format!(
            "{} holds a run of {} of this sweep's modes ({}); give the sweep another --out",
            dir.display(),
            runs.len(),
            wanted.join(",")
        )));
    }
    if !runs.is_empty() && runs.iter().all(|r| r.status == RunStatus::Done.name()) {
        return Ok(State::Finished);
    }
    let mut by_step: Vec<(u32, Vec<PathBuf>)> = Vec::new();
    let mut missing = Vec::new();
    for p in precisions {
        let path = dir.join(format!("{}.safetensors", p.name()));
        if !path.exists() {
            missing.push(p.name());
            continue;
        }
        // a checkpoint that does not load is the user's to look at, not to clear
        let step = srgpt::train::checkpoint::load(&path)?.state.step;
        match by_step.iter_mut().find(|(s, _)| *s == step) {
            Some((_, files)) => files.push(path),
            None => by_step.push((step, vec![path])),
        }
    }
    if missing.is_empty() {
        return Ok(State::Resumable(by_step.into_iter().map(|(_, files)| files).collect()));
    }
    if !by_step.is_empty() {
        // killed while writing its first checkpoints: never delete a checkpoint, say so
        return Err(bad_input(format!(
            "{} holds checkpoints of some of this sweep's modes but none of {}: it cannot be resumed as a whole; remove the folder to train it again",
            dir.display(),
            missing.join(", ")
        )));
    }
    // killed before its first checkpoint: its log is of steps that will be trained again
    for name in ["metrics.jsonl", "summary.json", "curves.png"] {
        match std::fs::remove_file(dir.join(name)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e).with_context(|| format!("clearing {}", dir.display())),
            _ => {}
        }
    }
    Ok(State::New)
}

pub fn sweep(adapter: Option<&str>, args: SweepArgs) -> Result<ExitCode> {
    let precisions = precisions(args.precision.as_deref())?;
    for (what, n) in [("--lr", args.lr.len()), ("--seeds", args.seeds.len())] {
        if n == 0 {
            return Err(bad_input(format!("{what} needs at least one value")));
        }
    }
    let mut seen = Vec::new();
    for lr in &args.lr {
        if seen.contains(lr) {
            return Err(bad_input(format!("--lr {lr} is listed twice")));
        }
        seen.push(*lr);
    }
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let exe = std::env::current_exe().context("finding this program to run the configurations")?;
    let total = args.lr.len() * args.seeds.len();
    let mut n = 0;
    for &lr in &args.lr {
        for &seed in &args.seeds {
            n += 1;
            let dir = folder(&args.out, lr, seed);
            let train = || {
                let mut cmd = Command::new(&exe);
                if let Some(a) = adapter {
                    cmd.args(["--adapter", a]);
                }
                cmd.args(["train", "--headless"]);
                cmd
            };
            let mut commands = Vec::new();
            match state(&dir, &precisions)? {
                State::Finished => {
                    eprintln!("[{n}/{total}] lr {lr:e} seed {seed}: finished already, skipped");
                    continue;
                }
                State::Resumable(groups) => {
                    eprintln!("[{n}/{total}] lr {lr:e} seed {seed}: resuming {}", dir.display());
                    for files in groups {
                        let list: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
                        let mut cmd = train();
                        cmd.arg("--resume").arg(list.join(","));
                        commands.push(cmd);
                    }
                }
                State::New => {
                    eprintln!("[{n}/{total}] lr {lr:e} seed {seed}: training in {}", dir.display());
                    let mut cmd = train();
                    let modes: Vec<&str> = precisions.iter().map(|p| p.name()).collect();
                    cmd.args(args.model.to_args());
                    cmd.args(["--precision", &modes.join(","), "--lr", &lr.to_string(), "--seed", &seed.to_string()]);
                    let optional = [("--steps", args.steps), ("--eval-every", args.eval_every), ("--ckpt-every", args.ckpt_every)];
                    for (flag, value) in optional {
                        if let Some(v) = value {
                            cmd.args([flag, &v.to_string()]);
                        }
                    }
                    if let Some(c) = &args.corpus {
                        cmd.args(["--corpus", c]);
                    }
                    if let Some(t) = &args.tokenizer {
                        cmd.arg("--tokenizer").arg(t.to_string());
                    }
                    cmd.arg("--out").arg(&dir);
                    commands.push(cmd);
                }
            }
            for mut cmd in commands {
                let status = cmd.status().context("starting a training run")?;
                if !status.success() {
                    let code = status.code().unwrap_or(1);
                    eprintln!("lr {lr:e} seed {seed}: the run ended with exit code {code}; run the same command again to continue");
                    return Ok(ExitCode::from(code.clamp(1, 255) as u8));
                }
            }
        }
    }
    write_results(&args, &precisions)?;
    Ok(ExitCode::SUCCESS)
}

/// sweep.json, sweep.md and sweep.png from the configurations' summaries.
fn write_results(args: &SweepArgs, precisions: &[Precision]) -> Result<()> {
    // each configuration's runs, read once, with its learning rate
    let mut summaries = Vec::new();
    for &lr in &args.lr {
        for &seed in &args.seeds {
            summaries.push((lr, Summary::read(&folder(&args.out, lr, seed)).map(|s| s.runs).unwrap_or_default()));
        }
    }
    let final_val = |runs: &[RunSummary], mode: &str| runs.iter().find(|r| r.precision == mode)?.final_val_loss.map(f64::from);
    let mut cells = Vec::new();
    for p in precisions {
        for &lr in &args.lr {
            let configs: Vec<&[RunSummary]> = summaries.iter().filter(|(l, _)| *l == lr).map(|(_, runs)| runs.as_slice()).collect();
            let runs: Vec<&RunSummary> = configs.iter().filter_map(|runs| runs.iter().find(|r| r.precision == p.name())).collect();
            let values = |value: fn(&RunSummary) -> Option<f64>| -> Vec<f64> { runs.iter().filter_map(|r| value(r)).collect() };
            let mean = |v: &[f64]| mean_std(v).map(|(m, _)| m);
            let finals = mean_std(&values(|r| r.final_val_loss.map(f64::from)));
            // paired by seed: the seed's own fp32 run is the baseline, so the spread is the
            // modes' difference, not the seeds'
            let gaps: Vec<f64> =
                configs.iter().filter_map(|runs| Some(final_val(runs, p.name())? - final_val(runs, Precision::Fp32.name())?)).collect();
            let gap = mean_std(&gaps);
            let steps_to_target = values(|r| r.steps_to_target.map(f64::from));
            cells.push(SweepCell {
                precision: p.name().into(),
                lr,
                seeds: runs.len(),
                final_val_mean: finals.map(|f| f.0),
                final_val_std: finals.map(|f| f.1),
                update_ratio: mean(&values(|r| r.update_ratio)),
                lost_fraction: mean(&values(|r| r.lost_fraction)),
                steps_to_target_mean: mean(&steps_to_target),
                reached_target: steps_to_target.len(),
                speedup_vs_fp32_mean: mean(&values(|r| r.speedup_vs_fp32)),
                gap_to_fp32_mean: gap.map(|g| g.0),
                gap_to_fp32_std: gap.map(|g| g.1),
            });
        }
    }
    let doc = serde_json::json!({
        "preset": args.model.preset().name,
        "lrs": args.lr,
        "seeds": args.seeds,
        "precisions": precisions.iter().map(|p| p.name()).collect::<Vec<_>>(),
        "cells": cells,
    });
    srgpt::train::output::write_json_atomically(&args.out.join("sweep.json"), &doc)?;
    srgpt::files::write_atomically(&args.out.join("sweep.md"), markdown(&cells).as_bytes())?;
    let lines: Vec<srgpt::plot::SweepLine> = precisions
        .iter()
        .map(|p| srgpt::plot::SweepLine {
            precision: p.name().into(),
            points: cells
                .iter()
                .filter(|c| c.precision == p.name())
                .filter_map(|c| c.final_val_mean.map(|m| (c.lr as f64, m, c.final_val_std.unwrap_or(0.0))))
                .collect(),
            gaps: cells
                .iter()
                .filter(|c| c.precision == p.name())
                .filter_map(|c| c.gap_to_fp32_mean.map(|m| (c.lr as f64, m, c.gap_to_fp32_std.unwrap_or(0.0))))
                .collect(),
        })
        .collect();
    srgpt::plot::plot_sweep(&lines, &args.lr, &args.out.join("sweep.png"))?;
    println!("{}", markdown(&cells));
    eprintln!("sweep: {}", args.out.join("sweep.md").display());
    Ok(())
}
