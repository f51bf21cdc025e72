//! The dashboard's form: what the next Start trains, from a preset, the command line or the
//! page's query string.

use crate::data::Corpus;
use crate::model::config::{preset, ModelConfig, PRESETS};
use crate::precision::Precision;
use crate::train::output::CheckpointPolicy;
use crate::train::TrainSpec;

use super::session::SessionOptions;

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
    pub modes: [bool; Precision::ALL.len()],
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
            modes: [true, false, true, true, false],
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
                "corpus" => {
                    if !crate::data::BUILT_IN_CORPORA.contains(&value) {
                        return Err(format!("corpus={value}: a page takes builtin or shakespeare (or a file through its picker)"));
                    }
                    settings.corpus = value.into();
                }
                "save_every" => settings.checkpoints.every_steps = number(key, value)?,
                "modes" => {
                    let mut modes = [false; Precision::ALL.len()];
                    for name in value.split(',') {
                        let p = Precision::parse(name).ok_or_else(|| format!("modes={value}: unknown mode '{name}'"))?;
                        modes[Precision::ALL.iter().position(|&q| q == p).expect("a mode of ALL")] = true;
                    }
                    settings.modes = modes;
                }
                "autostart" => start.autostart = value != "0",
                "continue" => start.continue_saved = value != "0",
                _ => {
                    return Err(format!(
                        "unknown page parameter '{key}' (known: preset, steps, corpus, modes, save_every, autostart, continue)"
                    ))
                }
            }
        }
        Ok((settings, start))
    }

    pub(super) fn apply_preset(&mut self, name: &str) {
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
            measure_fidelity: true,
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
