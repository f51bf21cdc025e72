//! The dashboard: live loss curves of every precision mode, a run table, throughput and LR
//! plots, samples, and the controls to start, pause, resume, stop and save. Platform-neutral
//! egui; `native` opens it in a window, training on a worker thread that shares the
//! renderer's GPU device; `web` runs it in a browser canvas, training between frames.
use eframe::egui;

#[cfg(not(target_arch = "wasm32"))]
pub mod dialogs;
#[cfg(not(target_arch = "wasm32"))]
pub mod native;
#[cfg(target_arch = "wasm32")]
pub mod opfs;
mod settings;
mod view;
#[cfg(target_arch = "wasm32")]
pub mod web;

pub use settings::{PageStart, Settings};

use std::collections::VecDeque;

use egui::Color32;

use crate::data::Corpus;
use crate::precision::Precision;
use crate::train::checkpoint::Checkpoint;
use crate::train::session::{Event, SessionOptions};
use crate::train::{Metric, TrainSpec};

/// The colour of each mode's curves.
pub fn mode_color(name: &str) -> Color32 {
    let [r, g, b] = crate::train::curves::mode_rgb(name);
    Color32::from_rgb(r, g, b)
}

/// What the plots and table know of one run.
#[derive(Clone, Debug, Default)]
pub struct RunView {
    pub name: String,
    /// (step, tokens, elapsed_s, loss)
    pub train: Vec<[f64; 4]>,
    pub val: Vec<[f64; 4]>,
    /// the validation loss in bits per byte of text (comparable across tokenizers)
    pub val_bpb: Vec<[f64; 4]>,
    pub lr: Vec<[f64; 4]>,
    pub tokens_per_s: Vec<[f64; 4]>,
    /// each update's fidelity (see `kernels::adamw::Fidelity`)
    pub update_ratio: Vec<[f64; 4]>,
    pub lost_fraction: Vec<[f64; 4]>,
    pub status: String,
    pub state_mib: f64,
    pub bytes_per_param: f64,
    pub sample: String,
    pub sample_step: u32,
}

impl RunView {
    fn last(series: &[[f64; 4]]) -> Option<f64> {
        series.last().map(|p| p[3])
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XAxis {
    Step,
    Tokens,
    Time,
}

impl XAxis {
    fn index(self) -> usize {
        match self {
            XAxis::Step => 0,
            XAxis::Tokens => 1,
            XAxis::Time => 2,
        }
    }
    fn label(self) -> &'static str {
        match self {
            XAxis::Step => "step",
            XAxis::Tokens => "tokens",
            XAxis::Time => "seconds",
        }
    }
}

/// How the dashboard reaches its training session.
pub trait Driver {
    fn start(&mut self, corpus: Corpus, spec: TrainSpec, options: SessionOptions);
    /// Continues saved runs (see [`crate::train::session::Session::resume`]).
    fn continue_run(&mut self, corpus: Corpus, checkpoints: Vec<Checkpoint>, log: Vec<Metric>, options: SessionOptions);
    fn pause(&mut self);
    fn resume(&mut self);
    fn stop(&mut self);
    /// Saves every run now: checkpoints in the run's folder, or downloads in a browser.
    fn save(&mut self);
    /// Events since the last call.
    fn poll(&mut self) -> Vec<Event>;
    fn running(&self) -> bool;
}

pub struct App {
    pub settings: Settings,
    pub runs: Vec<RunView>,
    pub log_scale: bool,
    pub x_axis: XAxis,
    pub smoothing: f32,
    pub error: Option<String>,
    pub notice: Option<String>,
    pub paused: bool,
    pub done: bool,
    pub adapter: String,
    pub viewing: Option<String>,
    /// a sweep's results, when the folder viewed is a sweep's (`srgpt view DIR`)
    pub sweep: Option<Vec<crate::train::sweep::SweepCell>>,
    pub view_path: String,
    frame_ms: VecDeque<f32>,
    /// frames drawn while training, and their total milliseconds
    pub training_frames: (u64, f64),
    /// every metric line of the current session, in arrival order
    pub log: Vec<Metric>,
    /// the step the current session continued from (`None`: it started at step 0)
    pub continued_from: Option<u32>,
    /// modes whose curves the legend has hidden from every plot
    pub hidden: std::collections::BTreeSet<String>,
    /// where the loss plot's frame was last drawn, in physical pixels (x0, y0, x1, y1), for
    /// tests that read screenshots
    pub loss_plot_px: Option<[f32; 4]>,
    driver: Option<Box<dyn Driver>>,
}

impl App {
    pub fn new(settings: Settings, adapter: String, driver: Option<Box<dyn Driver>>) -> App {
        App {
            settings,
            runs: Vec::new(),
            log_scale: false,
            x_axis: XAxis::Step,
            smoothing: 0.9,
            error: None,
            notice: None,
            paused: false,
            done: false,
            adapter,
            viewing: None,
            sweep: None,
            view_path: String::new(),
            frame_ms: VecDeque::new(),
            training_frames: (0, 0.0),
            log: Vec::new(),
            continued_from: None,
            hidden: Default::default(),
            loss_plot_px: None,
            driver,
        }
    }

    /// Starts training with the current settings (errors are shown, not thrown).
    pub fn start(&mut self) {
        match self.settings.to_spec() {
            Err(e) => self.error = Some(e),
            Ok((corpus, spec)) => match &mut self.driver {
                None => self.error = Some("no GPU: this dashboard can only view metrics".into()),
                Some(driver) => {
                    self.error = None;
                    self.notice = None;
                    self.log.clear();
                    self.continued_from = None;
                    self.runs = spec
                        .precisions
                        .iter()
                        .map(|p| RunView { name: p.name().into(), status: "starting".into(), ..Default::default() })
                        .collect();
                    self.paused = false;
                    self.done = false;
                    self.viewing = None;
                    let options = self.settings.session_options();
                    driver.start(corpus, spec, options);
                }
            },
        }
    }

    /// Continues the runs of `checkpoints` (one run's modes, at one step) on the corpus of
    /// the settings, their curves so far from `log` (errors are shown, not thrown).
    pub fn continue_run(&mut self, checkpoints: Vec<Checkpoint>, log: Vec<Metric>) {
        let corpus = match self.settings.corpus() {
            Ok(c) => c,
            Err(e) => {
                self.error = Some(e);
                return;
            }
        };
        let Some(first) = checkpoints.first() else {
            self.error = Some("no checkpoint to continue".into());
            return;
        };
        let state = &first.state;
        (self.settings.model, self.settings.train) = (state.model, state.train);
        (self.settings.seed, self.settings.eval_every, self.settings.eval_batches) = (state.seed, state.eval_every, state.eval_batches);
        self.settings.modes = Precision::ALL.map(|p| checkpoints.iter().any(|c| c.precision == p));
        let Some(driver) = &mut self.driver else {
            self.error = Some("no GPU: this dashboard can only view metrics".into());
            return;
        };
        self.error = None;
        self.notice = Some(format!("continuing from step {}", state.step));
        self.log.clear();
        self.continued_from = Some(state.step);
        self.runs = checkpoints
            .iter()
            .map(|c| RunView { name: c.precision.name().into(), status: "starting".into(), ..Default::default() })
            .collect();
        self.paused = false;
        self.done = false;
        self.viewing = None;
        let options = self.settings.session_options();
        driver.continue_run(corpus, checkpoints, log, options);
    }

    /// Continues from files picked or found together: `<precision>.safetensors` per run,
    /// and the run's `metrics.jsonl` for its curves so far, if it is among them.
    pub fn continue_from_files(&mut self, files: Vec<(String, Vec<u8>)>) {
        let mut checkpoints = Vec::new();
        let mut log = Vec::new();
        for (name, bytes) in &files {
            let parsed = if name.ends_with(".jsonl") {
                crate::train::parse_metrics(&String::from_utf8_lossy(bytes), name).map(|lines| log = lines).map_err(|e| e.to_string())
            } else {
                crate::train::checkpoint::decode(bytes)
                    .map(|c| checkpoints.push(c))
                    .map_err(|e| format!("checkpoint {name} is not usable: {e}"))
            };
            if let Err(e) = parsed {
                self.error = Some(e);
                return;
            }
        }
        self.continue_run(checkpoints, log);
    }

    pub fn running(&self) -> bool {
        self.driver.as_ref().is_some_and(|d| d.running())
    }

    /// Shows the curves of a finished run's metrics.jsonl (a folder or the file).
    pub fn open_metrics(&mut self, path: &str) {
        let file = std::path::Path::new(path.trim());
        if crate::train::sweep::is_sweep(file) {
            match crate::train::sweep::read_sweep(file) {
                Ok(cells) => {
                    self.runs.clear();
                    self.sweep = Some(cells);
                    self.viewing = Some(file.display().to_string());
                    self.error = None;
                }
                Err(e) => self.error = Some(e.to_string()),
            }
            return;
        }
        let file = crate::train::metrics_path(file);
        self.view_metrics(crate::train::read_metrics(&file), file.display().to_string());
    }

    /// Shows the curves of a metrics.jsonl read already (in a browser: the file picked).
    pub fn open_metrics_text(&mut self, name: &str, text: &str) {
        self.view_metrics(crate::train::parse_metrics(text, name), name.to_string());
    }

    fn view_metrics(&mut self, lines: anyhow::Result<Vec<Metric>>, name: String) {
        match lines {
            Err(e) => self.error = Some(e.to_string()),
            Ok(lines) => {
                self.runs.clear();
                self.sweep = None;
                self.absorb(&lines);
                for r in &mut self.runs {
                    r.status = "done".into();
                }
                self.viewing = Some(name);
                self.error = None;
            }
        }
    }

    /// What a page embedding the dashboard (or a test) reads: the adapter, the modes chosen,
    /// the latest step completed, each run's step and latest losses (null until known), and
    /// where the loss plot was drawn (physical pixels, null before the first frame).
    pub fn status_json(&self) -> serde_json::Value {
        let runs: Vec<serde_json::Value> = self
            .runs
            .iter()
            .map(|r| {
                serde_json::json!({
                    "precision": r.name,
                    "step": r.train.last().map_or(0, |p| p[0] as u32),
                    "train_loss": RunView::last(&r.train),
                    "val_loss": RunView::last(&r.val),
                    "update_ratio": RunView::last(&r.update_ratio),
                    "lost_fraction": RunView::last(&r.lost_fraction),
                    "status": r.status,
                })
            })
            .collect();
        let step = runs.iter().filter_map(|r| r["step"].as_u64()).max().unwrap_or(0);
        let requested: Vec<&str> = Precision::ALL.iter().zip(self.settings.modes).filter(|(_, on)| *on).map(|(p, _)| p.name()).collect();
        serde_json::json!({
            "adapter": self.adapter,
            "corpus": self.settings.corpus,
            "tokenizer": self.settings.tokenizer.as_ref().map_or("byte".to_string(), |t| t.to_string()),
            "modes": requested,
            "loss_plot_px": self.loss_plot_px,
            "step": step,
            "runs": runs,
            "running": self.running(),
            "paused": self.paused,
            "done": self.done,
            "error": self.error,
            "continued_from": self.continued_from,
        })
    }

    fn run_mut(&mut self, name: &str) -> &mut RunView {
        if let Some(i) = self.runs.iter().position(|r| r.name == name) {
            return &mut self.runs[i];
        }
        self.runs.push(RunView { name: name.into(), ..Default::default() });
        self.runs.last_mut().expect("just pushed")
    }

    /// Adds metric lines to the curves.
    pub fn absorb(&mut self, lines: &[Metric]) {
        for l in lines {
            let run = self.run_mut(&l.run);
            let at = |y: f64| [l.step as f64, l.tokens as f64, l.elapsed_s, y];
            if let Some(t) = l.train_loss {
                run.train.push(at(t as f64));
                run.lr.push(at(l.lr as f64));
                run.tokens_per_s.push(at(l.tokens_per_s));
            }
            if let (Some(ratio), Some(lost)) = (l.update_ratio, l.lost_fraction) {
                run.update_ratio.push(at(ratio as f64));
                run.lost_fraction.push(at(lost as f64));
            }
            if let Some(v) = l.val_loss {
                run.val.push(at(v as f64));
            }
            if let Some(bpb) = l.val_bits_per_byte {
                run.val_bpb.push(at(bpb as f64));
            }
        }
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Started { runs, out_dir } => {
                for (name, mib, bpp) in runs {
                    let r = self.run_mut(&name);
                    r.state_mib = mib;
                    r.bytes_per_param = bpp;
                    r.status = "running".into();
                }
                if !out_dir.is_empty() {
                    self.notice = Some(format!("writing {out_dir}"));
                }
            }
            Event::Metrics(lines) => {
                self.absorb(&lines);
                self.log.extend(lines);
            }
            Event::Status(list) => {
                for (name, status) in list {
                    self.run_mut(&name).status = status;
                }
            }
            Event::Sample { run, step, text } => {
                let r = self.run_mut(&run);
                r.sample = text;
                r.sample_step = step;
            }
            Event::Saved { paths, .. } => self.notice = Some(format!("saved {}", paths.join(", "))),
            Event::Note(note) => self.notice = Some(note),
            Event::Error(e) => {
                self.error = Some(e);
                self.done = true;
            }
            Event::Done => self.done = true,
        }
    }

    /// Pulls the session's events into the view.
    pub fn poll(&mut self) {
        let events = self.driver.as_mut().map(|d| d.poll()).unwrap_or_default();
        for e in events {
            self.handle(e);
        }
    }
}
