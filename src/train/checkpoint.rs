//! Checkpoints: one safetensors file per run, loadable by Python's `safetensors` and PyTorch.
//! Weights under GPT-2 names in the run's storage dtype (F32 or BF16; Linear weights
//! [out, in]); Adam state as `adam.m.<name>` / `adam.v.<name>`; fp32 master weights (mixed)
//! as `master.<name>`, bf16-kahan's bf16 compensation as `compensation.<name>`. The metadata holds the model and training configuration, the
//! tokenizer (`tokenizer`: `byte`, with its bytes in `vocab`; `gpt2`; or `hf`, with the
//! tokenizer.json's text in `tokenizer_json`; `tokenizer_sha256` its identity; a checkpoint
//! without the key is `byte`), the step and the RNG state as JSON. Files are written atomically.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result};
use safetensors::tensor::TensorView;
use safetensors::SafeTensors;
use serde::{Deserialize, Serialize};

use crate::data::Tokenizer;
use crate::files::write_atomically;
use crate::model::config::{ModelConfig, TrainConfig};
use crate::model::params::ParamLayout;
use crate::model::params::RawState;
use crate::precision::{Precision, Store};
use crate::Failure;

pub const FORMAT: &str = "srgpt-checkpoint-1";

/// Where a run stands, as stored in the metadata.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    pub precision: String,
    /// the preset the run started from ("custom" in checkpoints older than this field)
    #[serde(default = "custom_preset")]
    pub preset: String,
    pub model: ModelConfig,
    pub train: TrainConfig,
    /// updates done; the next update has this index
    pub step: u32,
    pub seed: u64,
    pub tokens: u64,
    pub elapsed_s: f64,
    pub corpus: String,
    pub eval_every: u32,
    pub eval_batches: u32,
}

fn custom_preset() -> String {
    "custom".into()
}

/// A loaded checkpoint.
pub struct Checkpoint {
    pub state: RunState,
    pub precision: Precision,
    pub tokenizer: Tokenizer,
    pub raw: RawState,
}

/// Every tensor of the layout as a view into a raw block of `store` values.
fn views<'a>(layout: &ParamLayout, prefix: &str, store: Store, bytes: &'a [u8]) -> Result<Vec<(String, TensorView<'a>)>> {
    let width = store.bytes_per_element();
    layout
        .tensors
        .iter()
        .map(|t| {
            let data = &bytes[t.offset * width..(t.offset + t.len) * width];
            Ok((format!("{prefix}{}", t.name), TensorView::new(store.dtype(), t.shape.clone(), data)?))
        })
        .collect()
}

/// The safetensors bytes of a run.
pub fn encode(state: &RunState, precision: Precision, tokenizer: &Tokenizer, raw: &RawState) -> Result<Vec<u8>> {
    let layout = ParamLayout::new(&state.model);
    let mut tensors = views(&layout, "", precision.param_store(), &raw.params)?;
    tensors.extend(views(&layout, "adam.m.", precision.state_store(), &raw.m)?);
    tensors.extend(views(&layout, "adam.v.", precision.state_store(), &raw.v)?);
    if let (Some(extra), Some(kind)) = (&raw.extra, precision.extra()) {
        tensors.extend(views(&layout, kind.prefix(), kind.store(), extra)?);
    }
    let mut meta = HashMap::new();
    meta.insert("format".to_string(), FORMAT.to_string());
    meta.insert("precision".into(), precision.name().into());
    meta.insert("config".into(), serde_json::to_string(&state.model)?);
    meta.insert("train".into(), serde_json::to_string(&state.train)?);
    meta.extend(tokenizer.to_metadata().into_iter().map(|(k, v)| (k.to_string(), v)));
    meta.insert("step".into(), state.step.to_string());
    // batches are a pure function of (seed, step): that pair is the whole sampler state
    meta.insert("rng".into(), serde_json::json!({ "kind": "srgpt-batch-v1", "seed": state.seed, "step": state.step }).to_string());
    meta.insert("run".into(), serde_json::to_string(state)?);
    Ok(safetensors::serialize(tensors, Some(meta))?)
}

pub fn save(path: &Path, state: &RunState, precision: Precision, tokenizer: &Tokenizer, raw: &RawState) -> Result<()> {
    write_atomically(path, &encode(state, precision, tokenizer, raw)?).with_context(|| format!("writing checkpoint {}", path.display()))
}

/// Reads and checks a checkpoint; every defect is a `Failure::BadInput` naming the file.
pub fn load(path: &Path) -> Result<Checkpoint> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read checkpoint {}", path.display())).map_err(bad)?;
    decode(&bytes).map_err(|e| Failure::BadInput(format!("checkpoint {} is not usable: {e}", path.display())).into())
}

fn bad(e: anyhow::Error) -> anyhow::Error {
    Failure::BadInput(format!("{e:#}")).into()
}

pub fn decode(bytes: &[u8]) -> Result<Checkpoint, String> {
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| format!("not a safetensors file ({e})"))?;
    let meta = header.metadata().clone().ok_or("no metadata")?;
    let get = |key: &str| meta.get(key).ok_or_else(|| format!("metadata has no '{key}'"));
    if get("format")? != FORMAT {
        return Err(format!("unknown format {:?} (expected {FORMAT})", get("format")?));
    }
    let state: RunState = serde_json::from_str(get("run")?).map_err(|e| format!("bad run metadata: {e}"))?;
    let precision = Precision::parse(&state.precision).ok_or_else(|| format!("unknown precision {:?}", state.precision))?;
    state.model.validate().map_err(|e| e.to_string())?;
    let tokenizer = Tokenizer::from_metadata(|key| meta.get(key).map(String::as_str))?;
    if tokenizer.vocab_size() != state.model.vocab {
        return Err(format!(
            "its {} vocabulary has {} tokens but the model's vocab size is {}",
            tokenizer.name(),
            tokenizer.vocab_size(),
            state.model.vocab
        ));
    }
    if state.step > state.train.steps {
        return Err(format!("step {} is past the run's total of {} steps", state.step, state.train.steps));
    }
    // what the configuration implies must fit in the file before anything is sized by it
    let implied = state.model.num_params()
        * (precision.param_store().bytes_per_element()
            + 2 * precision.state_store().bytes_per_element()
            + precision.extra().map_or(0, |e| e.store().bytes_per_element())) as u64;
    if implied > bytes.len() as u64 {
        return Err(format!("its configuration implies {implied} bytes of tensors but the file holds {}", bytes.len()));
    }
    let tensors = SafeTensors::deserialize(bytes).map_err(|e| format!("corrupt tensor data ({e})"))?;
    let layout = ParamLayout::new(&state.model);
    let gather = |prefix: &str, store: Store| -> Result<Vec<u8>, String> {
        // the embedding's padding rows are in no tensor: they stay 0
        let mut out = vec![0u8; store.buffer_bytes(layout.total) as usize];
        let width = store.bytes_per_element();
        for t in &layout.tensors {
            let name = format!("{prefix}{}", t.name);
            let view = tensors.tensor(&name).map_err(|_| format!("tensor {name} is missing"))?;
            if view.dtype() != store.dtype() || view.shape() != t.shape.as_slice() {
                return Err(format!("tensor {name} is {:?} {:?}, expected {:?} {:?}", view.dtype(), view.shape(), store.dtype(), t.shape));
            }
            out[t.offset * width..(t.offset + t.len) * width].copy_from_slice(view.data());
        }
        Ok(out)
    };
    let raw = RawState {
        params: gather("", precision.param_store())?,
        m: gather("adam.m.", precision.state_store())?,
        v: gather("adam.v.", precision.state_store())?,
        extra: precision.extra().map(|e| gather(e.prefix(), e.store())).transpose()?,
    };
    Ok(Checkpoint { state, precision, tokenizer, raw })
}
