//! The dashboard: live loss curves of every precision mode, a run table, throughput and LR
//! plots, samples, and the controls to start, pause, resume, stop and save. Platform-neutral
//! egui; `native` opens it in a window, training on a worker thread that shares the
//! renderer's GPU device; `web` runs it in a browser canvas, training between frames.

#[cfg(not(target_arch = "wasm32"))]
pub mod native;
#[cfg(target_arch = "wasm32")]
pub mod opfs;
pub mod session;
#[cfg(target_arch = "wasm32")]
pub mod web;

use std::collections::VecDeque;

use egui::Color32;
use egui_plot::{Legend, Line, Plot, PlotPoints, Points};

use crate::data::Corpus;
use crate::model::config::{preset, ModelConfig, PRESETS};
use crate::precision::Precision;
use crate::train::checkpoint::Checkpoint;
use crate::train::output::CheckpointPolicy;
use crate::train::{Metric, TrainSpec};
use session::{Event, SessionOptions};

/// The colour of each mode's curves.
pub fn mode_color(name: &str) -> Color32 {
    match name {
        "fp32" => Color32::from_rgb(66, 133, 244),
        "mixed" => Color32::from_rgb(171, 71, 188),
        "bf16" => Color32::from_rgb(234, 67, 53),
        "bf16-sr" => Color32::from_rgb(52, 168, 83),
        _ => Color32::GRAY,
    }
}

/// The form on the left: what the next Start trains.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `builtin`, a path, or the name of the file in `corpus_bytes`
    pub corpus: String,
    /// a corpus read already (in a browser: the file picked)
    pub corpus_bytes: Option<std::sync::Arc<[u8]>>,
    pub preset: String,
    pub n_layer: u32,
    pub n_head: u32,
    pub d: u32,
    pub ctx: u32,
    pub batch: u32,
    pub lr: f32,
    pub warmup: u32,
    pub steps: u32,
    pub seed: u64,
    pub eval_every: u32,
    pub eval_batches: u32,
    pub sample_every: u32,
    /// fp32, mixed, bf16, bf16-sr
    pub modes: [bool; 4],
    /// the run's folder; empty: a new runs/<date>_<time> when `write_files`, else none
    pub out_dir: String,
    /// whether a run with no folder given gets one (the native dashboard) or writes nothing
    pub write_files: bool,
    pub checkpoints: CheckpointPolicy,
}

impl Settings {
    pub fn from_preset(name: &str) -> Settings {
        let p = preset(name).unwrap_or(PRESETS[0]);
        Settings {
            corpus: "builtin".into(),
            corpus_bytes: None,
            preset: p.name.into(),
            n_layer: p.n_layer,
            n_head: p.n_head,
            d: p.d,
            ctx: p.ctx,
            batch: p.train.batch,
            lr: p.train.lr,
            warmup: p.train.warmup,
            steps: p.train.steps,
            seed: 1,
            eval_every: 50,
            eval_batches: 8,
            sample_every: 100,
            modes: [true, false, true, true],
            out_dir: String::new(),
            write_files: false,
            checkpoints: CheckpointPolicy::DEFAULT,
        }
    }

    /// The page's settings from its query string
    /// (`?preset=tiny&steps=200&modes=fp32,bf16-sr&save_every=50&autostart=0&continue=1`):
    /// the preset's settings with the given steps and modes, snapshots kept in the browser
    /// every `save_every` steps or minute, and how the page starts.
    pub fn from_query(query: &str) -> Result<(Settings, PageStart), String> {
        let mut settings = Settings::from_preset("tiny");
        // a tab can close any moment: keep a snapshot at least every minute
        settings.checkpoints.every = Some(std::time::Duration::from_secs(60));
        let mut start = PageStart { autostart: true, continue_saved: false };
        let number = |key: &str, value: &str| value.parse::<u32>().map_err(|_| format!("{key}={value}: not a whole number"));
        for pair in query.trim_start_matches('?').split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "preset" => {
                    crate::model::config::preset(value).map_err(|e| e.to_string())?;
                    settings = Settings { corpus: settings.corpus, checkpoints: settings.checkpoints, ..Settings::from_preset(value) };
                }
                "steps" => settings.steps = number(key, value)?,
                "save_every" => settings.checkpoints.every_steps = number(key, value)?,
                "modes" => {
                    let mut modes = [false; 4];
                    for name in value.split(',') {
                        let p = Precision::parse(name).ok_or_else(|| format!("modes={value}: unknown mode '{name}'"))?;
                        modes[Precision::ALL.iter().position(|&q| q == p).expect("a mode of ALL")] = true;
                    }
                    settings.modes = modes;
                }
                "autostart" => start.autostart = value != "0",
                "continue" => start.continue_saved = value != "0",
                _ => return Err(format!("unknown page parameter '{key}' (known: preset, steps, modes, save_every, autostart, continue)")),
            }
        }
        Ok((settings, start))
    }

    fn apply_preset(&mut self, name: &str) {
        let keep = Settings::from_preset(name);
        *self = Settings { n_layer: keep.n_layer, n_head: keep.n_head, d: keep.d, ctx: keep.ctx, preset: keep.preset, ..self.clone() };
        (self.batch, self.lr, self.warmup, self.steps) = (keep.batch, keep.lr, keep.warmup, keep.steps);
    }

    /// The corpus the settings name, or why it cannot be read.
    pub fn corpus(&self) -> Result<Corpus, String> {
        match &self.corpus_bytes {
            Some(bytes) => Corpus::from_bytes(&self.corpus, bytes),
            None => Corpus::load(self.corpus.trim()),
        }
        .map_err(|e| e.to_string())
    }

    /// Where the next session writes (a new runs/<date>_<time> when no folder is named and
    /// this dashboard writes files), and how often.
    pub fn session_options(&self) -> SessionOptions {
        let out_dir = match self.out_dir.trim() {
            "" => self.write_files.then(crate::train::output::default_dir),
            dir => Some(std::path::PathBuf::from(dir)),
        };
        SessionOptions { out_dir, sample_every: self.sample_every, checkpoints: self.checkpoints, keep: None }
    }

    /// The corpus and the training spec, or the reason they cannot be.
    pub fn to_spec(&self) -> Result<(Corpus, TrainSpec), String> {
        let corpus = self.corpus()?;
        let model = ModelConfig { n_layer: self.n_layer, n_head: self.n_head, d: self.d, ctx: self.ctx, vocab: corpus.vocab_size() };
        let train = crate::model::config::TrainConfig { batch: self.batch, lr: self.lr, warmup: self.warmup, steps: self.steps };
        model.validate().map_err(|e| e.to_string())?;
        train.validate().map_err(|e| e.to_string())?;
        corpus.check_context(model.ctx).map_err(|e| e.to_string())?;
        if self.eval_batches == 0 {
            return Err("eval batches must be at least 1".into());
        }
        let precisions: Vec<Precision> = Precision::ALL.iter().zip(self.modes).filter(|(_, on)| *on).map(|(p, _)| *p).collect();
        if precisions.is_empty() {
            return Err("choose at least one precision mode".into());
        }
        let spec = TrainSpec {
            preset: self.preset.clone(),
            model,
            train,
            precisions,
            seed: self.seed,
            eval_every: self.eval_every,
            eval_batches: self.eval_batches,
        };
        Ok((corpus, spec))
    }
}

/// How the page starts, from its query string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageStart {
    /// start training at once (unless a kept session is offered instead)
    pub autostart: bool,
    /// continue the session kept in the browser, if any, without asking
    pub continue_saved: bool,
}

/// What the plots and table know of one run.
#[derive(Clone, Debug, Default)]
pub struct RunView {
    pub name: String,
    /// (step, tokens, elapsed_s, loss)
    pub train: Vec<[f64; 4]>,
    pub val: Vec<[f64; 4]>,
    pub lr: Vec<[f64; 4]>,
    pub tokens_per_s: Vec<[f64; 4]>,
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
    /// Continues saved runs (see [`session::Session::resume`]).
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
    pub view_path: String,
    frame_ms: VecDeque<f32>,
    /// frames drawn while training, and their total milliseconds
    pub training_frames: (u64, f64),
    /// every metric line of the current session, in arrival order
    pub log: Vec<Metric>,
    /// the step the current session continued from (`None`: it started at step 0)
    pub continued_from: Option<u32>,
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
            view_path: String::new(),
            frame_ms: VecDeque::new(),
            training_frames: (0, 0.0),
            log: Vec::new(),
            continued_from: None,
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
        (self.settings.n_layer, self.settings.n_head, self.settings.d, self.settings.ctx) =
            (state.model.n_layer, state.model.n_head, state.model.d, state.model.ctx);
        (self.settings.batch, self.settings.lr, self.settings.warmup, self.settings.steps) =
            (state.train.batch, state.train.lr, state.train.warmup, state.train.steps);
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
        let file = if file.is_dir() { file.join("metrics.jsonl") } else { file.to_path_buf() };
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
                self.absorb(&lines);
                for r in &mut self.runs {
                    r.status = "done".into();
                }
                self.viewing = Some(name);
                self.error = None;
            }
        }
    }

    /// What a page embedding the dashboard (or a test) reads: the adapter, the latest step
    /// completed, and each run's step and latest losses (null until known).
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
                    "status": r.status,
                })
            })
            .collect();
        let step = runs.iter().filter_map(|r| r["step"].as_u64()).max().unwrap_or(0);
        serde_json::json!({
            "adapter": self.adapter,
            "corpus": self.settings.corpus,
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
            if let Some(v) = l.val_loss {
                run.val.push(at(v as f64));
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
            Event::Saved(paths) => self.notice = Some(format!("saved {}", paths.join(", "))),
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

    /// The whole dashboard, inside `ui`.
    pub fn show(&mut self, ui: &mut egui::Ui) {
        self.poll();
        #[cfg(target_arch = "wasm32")]
        if let Some(picked) = web::take_picked() {
            match picked.purpose {
                web::Purpose::Checkpoints => self.continue_from_files(picked.files),
                web::Purpose::Corpus => {
                    if let Some((name, bytes)) = picked.files.into_iter().next() {
                        self.settings.corpus = name;
                        self.settings.corpus_bytes = Some(bytes.into());
                    }
                }
                web::Purpose::Metrics => {
                    if let Some((name, bytes)) = picked.files.first() {
                        self.open_metrics_text(name, &String::from_utf8_lossy(bytes));
                    }
                }
            }
        }
        let dt = ui.input(|i| i.unstable_dt) * 1000.0;
        self.frame_ms.push_back(dt);
        if self.frame_ms.len() > 60 {
            self.frame_ms.pop_front();
        }
        if self.running() && !self.paused {
            self.training_frames.0 += 1;
            self.training_frames.1 += dt as f64;
        }
        egui::Panel::bottom("status").show(ui, |ui| self.status_bar(ui));
        egui::Panel::left("controls").resizable(false).default_size(250.0).show(ui, |ui| {
            egui::ScrollArea::vertical().show(ui, |ui| self.controls(ui));
        });
        egui::CentralPanel::default().show(ui, |ui| {
            egui::ScrollArea::vertical().show(ui, |ui| self.main_view(ui));
        });
        if self.running() {
            ui.ctx().request_repaint();
        }
    }

    fn status_bar(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            let mean = self.frame_ms.iter().sum::<f32>() / self.frame_ms.len().max(1) as f32;
            ui.label(format!("adapter: {}", self.adapter));
            ui.separator();
            ui.label(format!("frame {mean:.1} ms ({:.0} fps)", 1000.0 / mean.max(0.01)));
            if let Some(n) = &self.notice {
                ui.separator();
                ui.label(n);
            }
        });
    }

    fn controls(&mut self, ui: &mut egui::Ui) {
        ui.heading("srgpt");
        ui.label("bf16 training with stochastic rounding");
        ui.separator();
        let idle = !self.running();
        ui.add_enabled_ui(idle, |ui| {
            egui::Grid::new("settings").num_columns(2).show(ui, |ui| {
                let label = ui.label("corpus");
                #[cfg(not(target_arch = "wasm32"))]
                ui.text_edit_singleline(&mut self.settings.corpus).labelled_by(label.id).on_hover_text("builtin, or a path to any file");
                #[cfg(target_arch = "wasm32")]
                ui.horizontal(|ui| {
                    ui.label(&self.settings.corpus).labelled_by(label.id);
                    if ui.button("Choose file…").on_hover_text("any text file; its bytes are the vocabulary").clicked() {
                        web::pick_file(web::Purpose::Corpus, ui.ctx());
                    }
                    if self.settings.corpus_bytes.is_some() && ui.button("builtin").clicked() {
                        self.settings.corpus = "builtin".into();
                        self.settings.corpus_bytes = None;
                    }
                });
                ui.end_row();
                let label = ui.label("preset");
                let mut chosen = self.settings.preset.clone();
                let combo = egui::ComboBox::from_id_salt("preset").selected_text(&chosen).show_ui(ui, |ui| {
                    for p in PRESETS {
                        ui.selectable_value(&mut chosen, p.name.to_string(), p.name);
                    }
                });
                combo.response.labelled_by(label.id);
                if chosen != self.settings.preset {
                    self.settings.apply_preset(&chosen);
                }
                ui.end_row();
                let s = &mut self.settings;
                for (label, value, max) in [
                    ("layers", &mut s.n_layer, 64),
                    ("heads", &mut s.n_head, 64),
                    ("d", &mut s.d, 4096),
                    ("ctx", &mut s.ctx, 4096),
                    ("batch", &mut s.batch, 4096),
                ] {
                    let label = ui.label(label);
                    ui.add(egui::DragValue::new(value).range(1..=max)).labelled_by(label.id);
                    ui.end_row();
                }
                let label = ui.label("lr");
                ui.add(egui::DragValue::new(&mut s.lr).speed(1e-4).range(0.0..=1.0).max_decimals(5)).labelled_by(label.id);
                ui.end_row();
                for (label, value) in [
                    ("warm-up", &mut s.warmup),
                    ("steps", &mut s.steps),
                    ("eval every", &mut s.eval_every),
                    ("sample every", &mut s.sample_every),
                ] {
                    let label = ui.label(label);
                    ui.add(egui::DragValue::new(value).range(0..=1_000_000)).labelled_by(label.id);
                    ui.end_row();
                }
                let label = ui.label("seed");
                ui.add(egui::DragValue::new(&mut s.seed)).labelled_by(label.id);
                ui.end_row();
                #[cfg(not(target_arch = "wasm32"))]
                {
                    let label = ui.label("output");
                    ui.text_edit_singleline(&mut s.out_dir)
                        .labelled_by(label.id)
                        .on_hover_text("the run's folder for metrics and checkpoints (empty: a new runs/<date>_<time>)");
                    ui.end_row();
                }
            });
            ui.label("modes to compare:");
            ui.horizontal_wrapped(|ui| {
                for (i, p) in Precision::ALL.iter().enumerate() {
                    ui.checkbox(&mut self.settings.modes[i], egui::RichText::new(p.name()).color(mode_color(p.name())));
                }
            });
        });
        ui.separator();
        ui.horizontal_wrapped(|ui| {
            if ui.add_enabled(idle && self.driver.is_some(), egui::Button::new("Start")).clicked() {
                self.start();
            }
            let running = self.running();
            if self.paused {
                if ui.add_enabled(running, egui::Button::new("Resume")).clicked() {
                    self.paused = false;
                    if let Some(d) = &mut self.driver {
                        d.resume();
                    }
                }
            } else if ui.add_enabled(running, egui::Button::new("Pause")).clicked() {
                self.paused = true;
                if let Some(d) = &mut self.driver {
                    d.pause();
                }
            }
            if ui.add_enabled(running, egui::Button::new("Stop")).clicked() {
                if let Some(d) = &mut self.driver {
                    d.stop();
                }
            }
            let save = if cfg!(target_arch = "wasm32") { "Download checkpoints" } else { "Save checkpoint" };
            if self.driver.is_some() && ui.add_enabled(running, egui::Button::new(save)).clicked() {
                if let Some(d) = &mut self.driver {
                    d.save();
                }
            }
        });
        ui.separator();
        let label = ui.label("view a finished run:");
        #[cfg(not(target_arch = "wasm32"))]
        ui.horizontal(|ui| {
            ui.text_edit_singleline(&mut self.view_path).labelled_by(label.id).on_hover_text("a run folder or its metrics.jsonl");
            if ui.add_enabled(idle, egui::Button::new("Open")).clicked() {
                let path = self.view_path.clone();
                self.open_metrics(&path);
            }
        });
        #[cfg(target_arch = "wasm32")]
        if ui.add_enabled(idle, egui::Button::new("Open metrics.jsonl…")).labelled_by(label.id).clicked() {
            web::pick_file(web::Purpose::Metrics, ui.ctx());
        }
        #[cfg(target_arch = "wasm32")]
        if ui
            .add_enabled(idle && self.driver.is_some(), egui::Button::new("Continue from checkpoints…"))
            .on_hover_text("one run's downloaded <precision>.safetensors files, with its metrics.jsonl for the curves so far")
            .clicked()
        {
            web::pick_file(web::Purpose::Checkpoints, ui.ctx());
        }
        if let Some(e) = &self.error {
            ui.separator();
            ui.colored_label(Color32::from_rgb(220, 60, 60), format!("error: {e}"));
        }
    }

    fn main_view(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            ui.checkbox(&mut self.log_scale, "log scale");
            ui.label("x axis:");
            for axis in [XAxis::Step, XAxis::Tokens, XAxis::Time] {
                ui.radio_value(&mut self.x_axis, axis, axis.label());
            }
            ui.add(egui::Slider::new(&mut self.smoothing, 0.0..=0.99).text("smoothing"));
            if let Some(v) = &self.viewing {
                ui.label(format!("viewing {v}"));
            }
        });
        self.loss_plot(ui);
        self.run_table(ui);
        ui.columns(2, |cols| {
            self.small_plot(&mut cols[0], "throughput", "tokens/s", |r| &r.tokens_per_s);
            self.small_plot(&mut cols[1], "learning rate", "lr", |r| &r.lr);
        });
        ui.heading("samples");
        for r in &self.runs {
            if r.sample.is_empty() {
                continue;
            }
            ui.colored_label(mode_color(&r.name), format!("{} at step {}:", r.name, r.sample_step));
            ui.monospace(printable(&r.sample));
        }
    }

    fn loss_plot(&self, ui: &mut egui::Ui) {
        let x = self.x_axis.index();
        let log = self.log_scale;
        let y = move |v: f64| if log { v.max(1e-9).ln() } else { v };
        let plot = Plot::new("loss")
            .height(320.0)
            .legend(Legend::default())
            .x_axis_label(self.x_axis.label())
            .y_axis_label(if log { "loss (log scale)" } else { "loss" })
            .y_axis_formatter(move |mark, _| if log { format!("{:.2}", mark.value.exp()) } else { format!("{:.2}", mark.value) })
            .label_formatter(move |hover| {
                let (name, p) = match hover {
                    egui_plot::HoverPosition::NearDataPoint { plot_name, position, .. } => (plot_name.to_string(), *position),
                    egui_plot::HoverPosition::Elsewhere { position } => (String::new(), *position),
                };
                let value = if log { p.y.exp() } else { p.y };
                Some(format!("{name}\nx {:.0}\nloss {value:.4}", p.x))
            });
        let alpha = self.smoothing as f64;
        plot.show(ui, |plot_ui| {
            for r in &self.runs {
                let color = mode_color(&r.name);
                let raw: PlotPoints = r.train.iter().map(|p| [p[x], y(p[3])]).collect();
                plot_ui.line(Line::new(format!("{} train", r.name), raw).color(color.gamma_multiply(0.25)).width(1.0));
                let mut ema = None;
                let smooth: PlotPoints = r
                    .train
                    .iter()
                    .map(|p| {
                        let e = ema.map_or(p[3], |e: f64| alpha * e + (1.0 - alpha) * p[3]);
                        ema = Some(e);
                        [p[x], y(e)]
                    })
                    .collect();
                plot_ui.line(Line::new(format!("{} smoothed", r.name), smooth).color(color).width(2.5));
                let val: PlotPoints = r.val.iter().map(|p| [p[x], y(p[3])]).collect();
                plot_ui.points(Points::new(format!("{} val", r.name), val).color(color).radius(3.5).filled(true));
            }
        });
    }

    fn small_plot(&self, ui: &mut egui::Ui, id: &str, label: &str, series: impl Fn(&RunView) -> &Vec<[f64; 4]>) {
        let x = self.x_axis.index();
        ui.label(label);
        Plot::new(id).height(140.0).show(ui, |plot_ui| {
            for r in &self.runs {
                let pts: PlotPoints = series(r).iter().map(|p| [p[x], p[3]]).collect();
                plot_ui.line(Line::new(r.name.clone(), pts).color(mode_color(&r.name)));
            }
        });
    }

    fn run_table(&self, ui: &mut egui::Ui) {
        egui::Grid::new("runs").striped(true).num_columns(9).show(ui, |ui| {
            for h in ["mode", "step", "train loss", "val loss", "tokens/s", "state MiB", "bytes/param", "elapsed s", "status"] {
                ui.strong(h);
            }
            ui.end_row();
            for r in &self.runs {
                let fmt = |v: Option<f64>, digits: usize| v.map_or("-".to_string(), |v| format!("{v:.digits$}"));
                ui.colored_label(mode_color(&r.name), &r.name);
                ui.label(r.train.last().map_or("0".into(), |p| format!("{}", p[0])));
                ui.label(fmt(RunView::last(&r.train), 4));
                ui.label(fmt(RunView::last(&r.val), 4));
                ui.label(fmt(RunView::last(&r.tokens_per_s), 0));
                ui.label(format!("{:.2}", r.state_mib));
                ui.label(format!("{:.1}", r.bytes_per_param));
                ui.label(r.train.last().map_or("-".into(), |p| format!("{:.1}", p[2])));
                let status = if self.paused && r.status == "running" { "paused" } else { &r.status };
                ui.label(status);
                ui.end_row();
            }
        });
    }
}

/// Sample text for display: newlines as ⏎, bytes that are not printable as ·.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c == '\n' {
                '¶'
            } else if c.is_control() || c == char::REPLACEMENT_CHARACTER {
                '·'
            } else {
                c
            }
        })
        .collect()
}
