//! A training session driven from the dashboard: the trainer, its output folder and the
//! periodic samples, advanced one update per `tick`. A native build runs it on a worker
//! thread; the browser calls `tick` between frames.

use std::path::PathBuf;

use anyhow::Result;

use crate::data::Corpus;
use crate::gpu::Gpu;
use crate::sample::{SampleOptions, Sampler};
use crate::train::output::RunOutput;
use crate::train::{Metric, RunStatus, TrainSpec, Trainer};

/// What the dashboard learns from a session.
#[derive(Clone, Debug)]
pub enum Event {
    /// the runs exist: (mode, training-state MiB, bytes per parameter)
    Started {
        runs: Vec<(String, f64, f64)>,
        out_dir: String,
    },
    Metrics(Vec<Metric>),
    Status(Vec<(String, String)>),
    Sample {
        run: String,
        step: u32,
        text: String,
    },
    Saved(Vec<String>),
    Error(String),
    Done,
}

/// Pieces small enough (a few ms each on a CPU adapter) to keep 30+ frames per second.
const DISPATCHES_PER_SUBMISSION: usize = 1;

pub struct Session {
    pub trainer: Trainer,
    output: Option<RunOutput>,
    sample_every: u32,
    done: bool,
}

impl Session {
    /// Builds the models (compiling their pipelines) and opens the output folder
    /// (`None`: write nothing, as in a browser).
    pub fn start(gpu: &Gpu, corpus: Corpus, spec: TrainSpec, out_dir: Option<PathBuf>, sample_every: u32) -> Result<(Session, Event)> {
        let mut trainer = Trainer::new(gpu, corpus, spec)?;
        trainer.share_queue_with_renderer(DISPATCHES_PER_SUBMISSION);
        let output = out_dir.as_deref().map(RunOutput::open).transpose()?;
        let runs = trainer
            .runs
            .iter()
            .map(|r| (r.precision.name().to_string(), r.model.memory.training_state() as f64 / 1048576.0, r.model.state_bytes_per_param()))
            .collect();
        let started = Event::Started { runs, out_dir: out_dir.map(|d| d.display().to_string()).unwrap_or_default() };
        Ok((Session { trainer, output, sample_every, done: false }, started))
    }

    pub fn is_done(&self) -> bool {
        self.done
    }

    /// One update of every live run, with its metric lines, statuses and any samples due.
    pub fn tick(&mut self, gpu: &Gpu) -> Result<Vec<Event>> {
        if self.done {
            return Ok(Vec::new());
        }
        let mut events = Vec::new();
        if self.trainer.finished() {
            events.extend(self.finish(gpu)?);
            return Ok(events);
        }
        let lines = self.trainer.step(gpu)?;
        if let Some(out) = &mut self.output {
            out.write_metrics(&lines)?;
        }
        events.push(Event::Metrics(lines));
        events.push(self.status());
        let step = self.trainer.step;
        if self.sample_every > 0 && (step.is_multiple_of(self.sample_every) || step == 1) {
            events.extend(self.samples(gpu)?);
        }
        if self.trainer.finished() {
            events.extend(self.finish(gpu)?);
        }
        Ok(events)
    }

    pub fn status(&self) -> Event {
        Event::Status(self.trainer.runs.iter().map(|r| (r.precision.name().to_string(), r.status.name().to_string())).collect())
    }

    /// Text from each live run's current weights.
    pub fn samples(&self, gpu: &Gpu) -> Result<Vec<Event>> {
        let mut out = Vec::new();
        for run in self.trainer.runs.iter().filter(|r| !matches!(r.status, RunStatus::Diverged(_))) {
            let sampler = Sampler::new(gpu, self.trainer.spec.model, run.precision, &run.model.read_raw(gpu)?)?;
            let opts = SampleOptions { tokens: 120, temperature: 0.8, top_k: 0, seed: 7 };
            let prompt = self.trainer.corpus.encode("\n").unwrap_or_default();
            let ids = sampler.generate(gpu, &prompt, &opts)?;
            let text = String::from_utf8_lossy(&self.trainer.corpus.decode(&ids)).into_owned();
            out.push(Event::Sample { run: run.precision.name().into(), step: self.trainer.step, text });
        }
        Ok(out)
    }

    /// Writes checkpoints now (the run goes on).
    pub fn save(&mut self, gpu: &Gpu) -> Result<Event> {
        match &mut self.output {
            Some(out) => {
                let paths = out.checkpoint(&mut self.trainer, gpu)?;
                Ok(Event::Saved(paths.iter().map(|p| p.display().to_string()).collect()))
            }
            None => Ok(Event::Error("this session writes no files".into())),
        }
    }

    /// Final checkpoints and summary; the session ends.
    pub fn finish(&mut self, gpu: &Gpu) -> Result<Vec<Event>> {
        if self.done {
            return Ok(Vec::new());
        }
        self.done = true;
        let mut events = Vec::new();
        match &mut self.output {
            Some(out) => {
                let lines = self.trainer.flush(gpu)?;
                out.write_metrics(&lines)?;
                events.push(Event::Metrics(lines));
                let (paths, _) = out.finish(&mut self.trainer, gpu)?;
                events.push(Event::Saved(paths.iter().map(|p| p.display().to_string()).collect()));
            }
            None => events.push(Event::Metrics(self.trainer.flush(gpu)?)),
        }
        let ended = if self.trainer.step >= self.trainer.spec.train.steps { RunStatus::Done } else { RunStatus::Stopped };
        for run in self.trainer.runs.iter_mut().filter(|r| r.status == RunStatus::Running) {
            run.status = ended;
        }
        events.push(self.status());
        events.push(Event::Done);
        Ok(events)
    }
}
