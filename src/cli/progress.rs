//! What a headless run shows while it trains: a bar on a terminal, elsewhere a line every few
//! seconds, and the messages of the session (checkpoints written, a run that diverged).

use std::io::IsTerminal;

use srgpt::train::session::Event;
use srgpt::train::{RunStatus, Trainer};

/// How a headless run shows its progress: a bar on a terminal; elsewhere (a log, CI) a line
/// every few seconds, never one per step.
pub struct Progress {
    bar: Option<indicatif::ProgressBar>,
    last_line: std::time::Instant,
}

/// Off a terminal, a progress line at most this often.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

impl Progress {
    pub fn new(trainer: &Trainer) -> Progress {
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

    /// Says what an event of the session tells the user: a checkpoint written, a run's note.
    pub fn show(&self, event: &Event) {
        match event {
            Event::Saved { step, paths } => paths.iter().for_each(|p| self.say(&format!("checkpoint: {p} (step {step})"))),
            Event::Note(note) => self.say(&format!("srgpt: {note}")),
            _ => {}
        }
    }

    /// A message above the bar (or on its own line).
    pub fn say(&self, msg: &str) {
        match &self.bar {
            Some(b) => b.println(msg),
            None => eprintln!("{msg}"),
        }
    }

    pub fn update(&mut self, trainer: &Trainer) {
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

    pub fn finish(&mut self, trainer: &Trainer) {
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
