//! `srgpt train` in a window: the flags fill the dashboard's form (through the same spec as
//! a headless run), and training starts at once.

use std::process::ExitCode;
use std::sync::atomic::Ordering;

use anyhow::Result;
use srgpt::train::output::{folder_taken, holds_run};
use srgpt::train::DEFAULT_SAMPLE_EVERY;
use srgpt::ui::native::WindowOptions;
use srgpt::ui::Settings;

use super::args::bad_input;
use super::signals::watch_stop_signals;
use super::train::TrainArgs;
use super::train_plan::{checkpoint_policy, spec_of};

pub fn train(adapter: Option<&str>, args: &TrainArgs) -> Result<ExitCode> {
    let headless_only = [
        (args.stop_at.is_some(), "--stop-at works only with --headless (in the dashboard, press Stop)"),
        (args.no_fidelity, "--no-fidelity works only with --headless (the dashboard always shows the fidelity)"),
        (args.init.is_some(), "--init works only with --headless"),
        (args.target_loss.is_some(), "--target-loss works only with --headless (the dashboard's summary uses 1.01 x fp32's final loss)"),
    ];
    if let Some((_, why)) = headless_only.iter().find(|(given, _)| *given) {
        return Err(bad_input(why.to_string()));
    }
    let mut settings = Settings::from_spec(&spec_of(args, 0)?);
    settings.corpus = args.corpus.clone().unwrap_or_else(|| "builtin".into());
    settings.tokenizer = args.tokenizer.clone();
    settings.sample_every = args.sample_every.map_or(DEFAULT_SAMPLE_EVERY, |v| v as u32);
    settings.checkpoints = checkpoint_policy(args);
    // each Start writes a new runs/<date>_<time> unless --out names the folder
    settings.write_files = true;
    if let Some(out) = &args.out {
        if holds_run(out) {
            return Err(folder_taken(out));
        }
        settings.out_dir = out.display().to_string();
    }
    // bad settings are refused here as in headless mode, before a window opens
    settings.to_spec().map_err(bad_input)?;
    // Ctrl-C closes the window as the user would, which writes the checkpoints
    let stop = watch_stop_signals()?;
    srgpt::ui::native::run(WindowOptions {
        settings,
        autostart: true,
        view: None,
        exit_when_done: args.exit_when_done,
        screenshot: args.screenshot.clone(),
        adapter: adapter.map(str::to_string),
        stop_signal: Some(stop.clone()),
    })?;
    match stop.load(Ordering::SeqCst) {
        0 => Ok(ExitCode::SUCCESS),
        signal => Ok(ExitCode::from(128 + signal as u8)),
    }
}
