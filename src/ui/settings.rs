//! The dashboard's form: what the next Start trains, from a preset, the command line or the
//! page's query string.

use crate::data::{Corpus, TokenizerChoice};
use crate::model::config::{preset, ModelConfig, TrainConfig, MAX_BATCH, MAX_CTX, PRESETS};
use crate::precision::Precision;
use crate::train::output::CheckpointPolicy;
use crate::train::session::SessionOptions;
use crate::train::{TrainSpec, DEFAULT_PRESET, DEFAULT_SAMPLE_EVERY};

/// The form on the left: what the next Start trains.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `builtin`, a path, or the name of the file in `corpus_bytes`
    pub corpus: String,
    /// a corpus read already (in a browser: the file picked)
    pub corpus_bytes: Option<std::sync::Arc<[u8]>>,
    /// how the corpus is tokenized (None: byte, or a prepared folder's own)
    pub tokenizer: Option<TokenizerChoice>,
    pub preset: String,
    /// the model; its vocabulary is the corpus's, set at Start
    pub model: ModelConfig,
    pub train: TrainConfig,
    pub seed: u64,
    pub eval_every: u32,
    pub eval_batches: u32,
    pub sample_every: u32,
    /// one per mode of `Precision::ALL`
    pub modes: [bool; Precision::ALL.len()],
    /// the run's folder; empty: a new runs/<date>_<time> when `write_files`, else none
    pub out_dir: String,
    /// whether a run with no folder given gets one (the native dashboard) or writes nothing
    pub write_files: bool,
    pub checkpoints: CheckpointPolicy,
}

impl Settings {
    /// A preset's model and schedule with the defaults every way of training shares.
    pub fn from_preset(name: &str) -> Settings {
        Settings::from_spec(&TrainSpec::from_preset(&preset(name).unwrap_or(PRESETS[0]), 0))
    }

    /// The form filled in from a spec (the command line's flags, made into one).
    pub fn from_spec(spec: &TrainSpec) -> Settings {
        Settings {
            corpus: "builtin".into(),
            corpus_bytes: None,
            tokenizer: None,
            preset: spec.preset.clone(),
            model: spec.model,
            train: spec.train,
            seed: spec.seed,
            eval_every: spec.eval_every,
            eval_batches: spec.eval_batches,
            sample_every: DEFAULT_SAMPLE_EVERY,
            modes: Precision::ALL.map(|p| spec.precisions.contains(&p)),
            out_dir: String::new(),
            write_files: false,
            checkpoints: CheckpointPolicy::DEFAULT,
        }
    }

    /// The page's settings from its query string
    /// (`?preset=tiny&steps=200&batch=4&ctx=64&tokenizer=gpt2&modes=fp32,bf16-sr&save_every=50&autostart=0&continue=1`):
    /// the preset's settings with the given steps, batch, context and modes (in any order:
    /// a preset never undoes them), snapshots kept in the browser every `save_every` steps or
    /// minute, and how the page starts. `tokenizer` is `byte`, `gpt2`, or the address of a
    /// tokenizer.json, which the page fetches before it starts.
    pub fn from_query(query: &str) -> Result<(Settings, PageStart), String> {
        let mut settings = Settings::from_preset(DEFAULT_PRESET);
        // a tab can close any moment: keep a snapshot at least every minute
        settings.checkpoints.every = Some(std::time::Duration::from_secs(60));
        let mut start = PageStart { autostart: true, continue_saved: false, tokenizer_url: None };
        let number = |key: &str, value: &str| value.parse::<u32>().map_err(|_| format!("{key}={value}: not a whole number"));
        // applied after the preset, wherever it stands in the query
        let (mut steps, mut batch, mut ctx) = (None, None, None);
        for pair in query.trim_start_matches('?').split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "preset" => {
                    crate::model::config::preset(value).map_err(|e| e.to_string())?;
                    settings = Settings {
                        corpus: settings.corpus,
                        tokenizer: settings.tokenizer.clone(),
                        checkpoints: settings.checkpoints,
                        ..Settings::from_preset(value)
                    };
                }
                "steps" => steps = Some(number(key, value)?),
                "batch" => {
                    let b = number(key, value)?;
                    if !(1..=MAX_BATCH).contains(&b) {
                        return Err(format!("batch={value}: the batch must hold 1 to {MAX_BATCH} sequences"));
                    }
                    batch = Some(b);
                }
                "ctx" => {
                    let t = number(key, value)?;
                    if !(2..=MAX_CTX).contains(&t) || !t.is_multiple_of(2) {
                        return Err(format!("ctx={value}: the context must be an even length from 2 to {MAX_CTX}"));
                    }
                    ctx = Some(t);
                }
                "corpus" => {
                    if !crate::data::BUILT_IN_CORPORA.contains(&value) {
                        return Err(format!("corpus={value}: a page takes builtin or shakespeare (or a file through its picker)"));
                    }
                    settings.corpus = value.into();
                }
                "tokenizer" => match value {
                    "byte" => settings.tokenizer = Some(TokenizerChoice::Byte),
                    "gpt2" => settings.tokenizer = Some(TokenizerChoice::Gpt2),
                    // the page fetches it before it starts
                    url if url.split(['?', '#']).next().is_some_and(|path| path.ends_with(".json")) => {
                        start.tokenizer_url = Some(url.to_string())
                    }
                    _ => {
                        return Err(format!(
                            "tokenizer={value}: a page takes byte, gpt2 or the address of a tokenizer.json (relative to the page, or any address that allows it)"
                        ))
                    }
                },
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
                        "unknown page parameter '{key}' (known: preset, steps, batch, ctx, corpus, tokenizer, modes, save_every, autostart, continue)"
                    ))
                }
            }
        }
        settings.train.steps = steps.unwrap_or(settings.train.steps);
        settings.train.batch = batch.unwrap_or(settings.train.batch);
        settings.model.ctx = ctx.unwrap_or(settings.model.ctx);
        Ok((settings, start))
    }

    pub(super) fn apply_preset(&mut self, name: &str) {
        let named = Settings::from_preset(name);
        (self.preset, self.model, self.train) = (named.preset, named.model, named.train);
    }

    /// The corpus the settings name, or why it cannot be read.
    pub fn corpus(&self) -> Result<Corpus, String> {
        match &self.corpus_bytes {
            Some(bytes) => Corpus::from_text(&self.corpus, bytes, self.tokenizer.as_ref().unwrap_or(&TokenizerChoice::Byte)),
            None => Corpus::load_with(self.corpus.trim(), self.tokenizer.as_ref()),
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

    /// The corpus and the training spec, or the reason they cannot be (the checks of
    /// `TrainSpec::validate`, as on the command line).
    pub fn to_spec(&self) -> Result<(Corpus, TrainSpec), String> {
        let corpus = self.corpus()?;
        let spec = TrainSpec {
            preset: self.preset.clone(),
            model: ModelConfig { vocab: corpus.vocab_size(), ..self.model },
            train: self.train,
            precisions: Precision::ALL.iter().zip(self.modes).filter(|(_, on)| *on).map(|(p, _)| *p).collect(),
            seed: self.seed,
            eval_every: self.eval_every,
            eval_batches: self.eval_batches,
            measure_fidelity: true,
        };
        spec.validate().map_err(|e| e.to_string())?;
        corpus.check_context(spec.model.ctx).map_err(|e| e.to_string())?;
        Ok((corpus, spec))
    }
}

/// How the page starts, from its query string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageStart {
    /// start training at once (unless a kept session is offered instead)
    pub autostart: bool,
    /// continue the session kept in the browser, if any, without asking
    pub continue_saved: bool,
    /// a tokenizer.json to fetch (`?tokenizer=ADDRESS`): the settings' tokenizer once read
    pub tokenizer_url: Option<String>,
}
