//! `srgpt export`: a checkpoint's weights in the layouts other tools load, and the way back
//! (`srgpt train --init`).
//!
//! Hugging Face (`--format hf`), a folder `transformers.GPT2LMHeadModel.from_pretrained` opens:
//!   config.json            model_type gpt2, activation gelu_new (GELU's tanh form, srgpt's),
//!                          layer_norm_epsilon 1e-5, tied embeddings, no dropout, torch_dtype
//!   model.safetensors      transformer.wte.weight (V,d), transformer.wpe.weight (T,d),
//!                          transformer.h.{i}.{ln_1,attn.c_attn,attn.c_proj,ln_2,mlp.c_fc,
//!                          mlp.c_proj}.{weight,bias}, transformer.ln_f.{weight,bias}; the
//!                          linear weights as GPT-2's Conv1D keeps them, (in, out): srgpt's
//!                          (out, in) transposed; no lm_head (tied to wte)
//!   tokenizer.json         the run's tokenizer for the `tokenizers` library: GPT-2's own
//!                          (vocabulary and merges) for `gpt2`; for `byte`, GPT-2's
//!                          byte-to-character map, one token per byte of the vocabulary, no
//!                          merges, a byte outside it an encoding error (its unknown token
//!                          is not in the vocabulary), never a substitution
//!   tokenizer_config.json
//! nanoGPT (`--format nanogpt`): DIR/model.safetensors with nanoGPT's state-dict names
//! (transformer.… as above, linear weights (out, in), lm_head.weight = wte) and its
//! `model_args` in the metadata.
//! The weights keep the checkpoint's storage: float32 (fp32; mixed's f32 master copy) or
//! bfloat16 (the bf16 modes; bf16-kahan's kept weight without its compensation). Optimizer
//! state is not exported.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result};
use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;

pub use crate::data::tokenizer::byte_char;
use crate::data::Tokenizer;
use crate::files::write_atomically;
use crate::model::config::ModelConfig;
use crate::model::params::{ParamLayout, ParamTensor};
use crate::precision::{KeptExtra, Store};
use crate::train::checkpoint::Checkpoint;
use crate::Failure;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// a folder Hugging Face transformers' GPT2LMHeadModel and AutoTokenizer load
    Hf,
    /// nanoGPT's state-dict names in a safetensors file
    #[value(name = "nanogpt")]
    NanoGpt,
}

/// Weights as exported: their storage (F32 or BF16) and raw little-endian bytes in srgpt's
/// parameter layout.
pub struct Weights {
    pub store: Store,
    pub bytes: Vec<u8>,
}

/// The weights a checkpoint keeps: mixed's f32 master copy, otherwise its parameters.
pub fn kept_weights(ckpt: &Checkpoint) -> Weights {
    match (ckpt.precision.extra(), &ckpt.raw.extra) {
        (Some(KeptExtra::Master), Some(master)) => Weights { store: Store::F32, bytes: master.clone() },
        _ => Weights { store: ckpt.precision.param_store().for_reading(), bytes: ckpt.raw.params.clone() },
    }
}

/// A linear weight: srgpt's (and nanoGPT's) (out, in) layout.
fn is_linear(t: &ParamTensor) -> bool {
    t.shape.len() == 2 && t.name.starts_with("h.")
}

/// (rows, cols) elements of `width` bytes, transposed.
fn transpose(data: &[u8], rows: usize, cols: usize, width: usize) -> Vec<u8> {
    let mut out = vec![0u8; data.len()];
    for r in 0..rows {
        for c in 0..cols {
            let (from, to) = ((r * cols + c) * width, (c * rows + r) * width);
            out[to..to + width].copy_from_slice(&data[from..from + width]);
        }
    }
    out
}

/// A tensor's name in the exports: nanoGPT's and Hugging Face's state-dict names.
fn exported_name(t: &ParamTensor) -> String {
    match t.name.as_str() {
        "wte" | "wpe" => format!("transformer.{}.weight", t.name),
        other => format!("transformer.{other}"),
    }
}

/// (name, shape, bytes) of every exported tensor.
fn tensors(cfg: &ModelConfig, weights: &Weights, format: ExportFormat) -> Vec<(String, Vec<usize>, Vec<u8>)> {
    let layout = ParamLayout::new(cfg);
    let width = weights.store.bytes_per_element();
    let mut out = Vec::new();
    for t in &layout.tensors {
        let data = &weights.bytes[t.offset * width..(t.offset + t.len) * width];
        let name = exported_name(t);
        if format == ExportFormat::Hf && is_linear(t) {
            out.push((name, vec![t.shape[1], t.shape[0]], transpose(data, t.shape[0], t.shape[1], width)));
        } else {
            out.push((name, t.shape.clone(), data.to_vec()));
        }
    }
    if format == ExportFormat::NanoGpt {
        let wte = out[0].clone();
        out.push(("lm_head.weight".into(), wte.1, wte.2));
    }
    out
}

fn safetensors_bytes(named: &[(String, Vec<usize>, Vec<u8>)], store: Store, meta: HashMap<String, String>) -> Result<Vec<u8>> {
    let views: Vec<(String, TensorView)> = named
        .iter()
        .map(|(n, shape, data)| Ok((n.clone(), TensorView::new(store.dtype(), shape.clone(), data)?)))
        .collect::<Result<_>>()?;
    Ok(safetensors::serialize(views, Some(meta))?)
}

/// Writes the export of `ckpt` into `out` (created; refused if it holds files already).
pub fn export(ckpt: &Checkpoint, format: ExportFormat, out: &Path) -> Result<Vec<std::path::PathBuf>> {
    if out.exists() && std::fs::read_dir(out).map(|mut d| d.next().is_some()).unwrap_or(true) {
        return Err(Failure::BadInput(format!("{} exists and is not empty: export writes a folder of its own", out.display())).into());
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let cfg = &ckpt.state.model;
    let weights = kept_weights(ckpt);
    let named = tensors(cfg, &weights, format);
    let torch_dtype = weights.store.torch_name();
    let srgpt_meta = serde_json::json!({
        "precision": ckpt.precision.name(), "step": ckpt.state.step, "corpus": ckpt.state.corpus, "seed": ckpt.state.seed,
        "tokenizer": ckpt.tokenizer.name(), "vocab": ckpt.tokenizer.byte_vocab(), "tokenizer_sha256": ckpt.tokenizer.sha256_hex(),
    });
    let mut written = Vec::new();
    let mut write = |name: &str, bytes: &[u8]| -> Result<()> {
        let path = out.join(name);
        write_atomically(&path, bytes)?;
        written.push(path);
        Ok(())
    };
    match format {
        ExportFormat::Hf => {
            let meta = HashMap::from([("format".to_string(), "pt".to_string()), ("srgpt".into(), srgpt_meta.to_string())]);
            write("model.safetensors", &safetensors_bytes(&named, weights.store, meta)?)?;
            let config = serde_json::json!({
                "architectures": ["GPT2LMHeadModel"],
                "model_type": "gpt2",
                "vocab_size": cfg.vocab,
                "n_positions": cfg.ctx,
                "n_ctx": cfg.ctx,
                "n_embd": cfg.d,
                "n_layer": cfg.n_layer,
                "n_head": cfg.n_head,
                "n_inner": null,
                "activation_function": "gelu_new",
                "layer_norm_epsilon": 1e-5,
                "tie_word_embeddings": true,
                "resid_pdrop": 0.0,
                "embd_pdrop": 0.0,
                "attn_pdrop": 0.0,
                "summary_first_dropout": 0.0,
                "scale_attn_weights": true,
                "bos_token_id": null,
                "eos_token_id": null,
                "torch_dtype": torch_dtype,
                "srgpt": srgpt_meta,
            });
            write("config.json", (serde_json::to_string_pretty(&config)? + "\n").as_bytes())?;
            write("tokenizer.json", ckpt.tokenizer.json_text().as_bytes())?;
            let tokenizer_config = serde_json::json!({
                "tokenizer_class": "PreTrainedTokenizerFast",
                "model_max_length": cfg.ctx,
                "clean_up_tokenization_spaces": false,
            });
            write("tokenizer_config.json", (serde_json::to_string_pretty(&tokenizer_config)? + "\n").as_bytes())?;
        }
        ExportFormat::NanoGpt => {
            let model_args = serde_json::json!({
                "n_layer": cfg.n_layer, "n_head": cfg.n_head, "n_embd": cfg.d, "block_size": cfg.ctx,
                "bias": true, "vocab_size": cfg.vocab, "dropout": 0.0,
            });
            let meta = HashMap::from([
                ("format".to_string(), "pt".to_string()),
                ("model_args".into(), model_args.to_string()),
                ("srgpt".into(), srgpt_meta.to_string()),
            ]);
            write("model.safetensors", &safetensors_bytes(&named, weights.store, meta)?)?;
        }
    }
    Ok(written)
}

/// A model read from disk: an srgpt checkpoint, or an export's shape, tokenizer and weights
/// (f32, srgpt's layout).
pub enum SavedModel {
    Checkpoint(Box<Checkpoint>),
    Export(ModelConfig, Tokenizer, Vec<f32>),
}

/// What srgpt's model is of a Hugging Face GPT-2's configuration: GELU's tanh form, LayerNorm's
/// epsilon 1e-5, the head tied to the token embedding. Anything else is refused, named.
fn check_hf_config(config: &serde_json::Value) -> Result<(), String> {
    if config["model_type"].as_str() != Some("gpt2") {
        return Err(format!("config.json: model_type {}, srgpt reads gpt2", config["model_type"]));
    }
    let activation = config["activation_function"].as_str().unwrap_or("gelu_new");
    if !["gelu_new", "gelu_pytorch_tanh"].contains(&activation) {
        return Err(format!("config.json: activation_function {activation}; srgpt's GELU is the tanh form (gelu_new)"));
    }
    let epsilon = config["layer_norm_epsilon"].as_f64().unwrap_or(1e-5);
    if (epsilon - 1e-5).abs() > 1e-12 {
        return Err(format!("config.json: layer_norm_epsilon {epsilon}; srgpt's LayerNorm uses 1e-5"));
    }
    if config["tie_word_embeddings"].as_bool() == Some(false) {
        return Err("config.json: tie_word_embeddings false; srgpt's head is the token embedding".into());
    }
    Ok(())
}

/// Weights to start a run from (`train --init`): an export folder (Hugging Face or nanoGPT),
/// a Hugging Face GPT-2 folder (config.json, model.safetensors, tokenizer.json or vocab.json
/// and merges.txt), its model.safetensors, or an srgpt checkpoint (its kept weights). Returns the model's
/// shape, the tokenizer and the weights as f32 in srgpt's layout.
pub fn load_init(path: &Path) -> Result<(ModelConfig, Tokenizer, Vec<f32>)> {
    Ok(match load_model(path)? {
        SavedModel::Checkpoint(ckpt) => {
            let w = kept_weights(&ckpt);
            let n = ParamLayout::new(&ckpt.state.model).total;
            (ckpt.state.model, ckpt.tokenizer.clone(), w.store.decode(&w.bytes, n))
        }
        SavedModel::Export(cfg, tokenizer, weights) => (cfg, tokenizer, weights),
    })
}

/// An export folder, its model.safetensors, or an srgpt checkpoint, read once.
pub fn load_model(path: &Path) -> Result<SavedModel> {
    let bad = |msg: String| -> anyhow::Error { Failure::BadInput(format!("{}: {msg}", path.display())).into() };
    let file = if path.is_dir() { path.join("model.safetensors") } else { path.to_path_buf() };
    let bytes = std::fs::read(&file).map_err(|e| bad(format!("cannot read {}: {e}", file.display())))?;
    let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| bad(format!("not a safetensors file ({e})")))?;
    let meta = header.metadata().clone().unwrap_or_default();
    if meta.get("format").map(String::as_str) == Some(crate::train::checkpoint::FORMAT) {
        return Ok(SavedModel::Checkpoint(Box::new(crate::train::checkpoint::decode(&bytes).map_err(bad)?)));
    }
    // the folder's config.json: an srgpt export's, or a Hugging Face GPT-2's
    let folder = if path.is_dir() { Some(path) } else { path.parent() };
    let config: Option<serde_json::Value> = folder
        .and_then(|d| std::fs::read_to_string(d.join("config.json")).ok())
        .map(|c| serde_json::from_str(&c).map_err(|e| bad(format!("config.json is not JSON ({e})"))))
        .transpose()?;
    let tokenizer = match meta.get("srgpt") {
        Some(srgpt) => {
            let srgpt: serde_json::Value = serde_json::from_str(srgpt).map_err(|e| bad(format!("bad srgpt metadata: {e}")))?;
            // an hf tokenizer is the export's own tokenizer.json; the others are in the metadata
            let folder_json = match (srgpt["tokenizer"].as_str(), folder) {
                (Some("hf"), Some(folder)) => Some(
                    std::fs::read_to_string(folder.join("tokenizer.json"))
                        .map_err(|e| bad(format!("cannot read its tokenizer.json: {e}")))?,
                ),
                _ => None,
            };
            let vocab = srgpt["vocab"].to_string();
            Tokenizer::from_metadata(|key| match key {
                "vocab" => Some(vocab.as_str()),
                "tokenizer_json" => folder_json.as_deref(),
                _ => srgpt[key].as_str(),
            })
            .map_err(|e| bad(format!("its tokenizer: {e}")))?
        }
        None => {
            let (Some(config), Some(folder)) = (&config, folder) else {
                return Err(bad("neither an export of srgpt nor a Hugging Face GPT-2 folder (no srgpt metadata, no config.json)".into()));
            };
            check_hf_config(config).map_err(bad)?;
            Tokenizer::from_hf_folder(folder).map_err(|e| bad(format!("its tokenizer: {e}")))?
        }
    };
    let tensors = SafeTensors::deserialize(&bytes).map_err(|e| bad(format!("corrupt tensor data ({e})")))?;
    // Hugging Face's GPT2LMHeadModel saves `transformer.`-prefixed names; the hub's GPT-2
    // files (GPT2Model's) have none
    let prefix = if tensors.tensor("transformer.wte.weight").is_ok() { "transformer." } else { "" };
    let named = |name: &str| tensors.tensor(&format!("{prefix}{name}")).map_err(|_| bad(format!("no tensor {prefix}{name}")));
    let (wte, wpe) = (named("wte.weight")?, named("wpe.weight")?);
    let n_layer = (0..).take_while(|i| named(&format!("h.{i}.ln_1.weight")).is_ok()).count() as u32;
    let n_head = match meta.get("model_args") {
        Some(args) => serde_json::from_str::<serde_json::Value>(args).ok().and_then(|a| a["n_head"].as_u64()),
        None => config.as_ref().and_then(|c| c["n_head"].as_u64()),
    }
    .ok_or_else(|| bad("no head count (config.json's n_head or the model_args metadata)".into()))? as u32;
    if let Some(layers) = config.as_ref().and_then(|c| c["n_layer"].as_u64()).filter(|&l| l != n_layer as u64) {
        return Err(bad(format!("config.json says {layers} layers, the weights hold {n_layer}")));
    }
    let cfg = ModelConfig { n_layer, n_head, d: wte.shape()[1] as u32, ctx: wpe.shape()[0] as u32, vocab: wte.shape()[0] as u32 };
    cfg.validate().map_err(|e| bad(e.to_string()))?;
    if tokenizer.vocab_size() != cfg.vocab {
        return Err(bad(format!("a {} tokenizer of {} tokens for {} embeddings", tokenizer.name(), tokenizer.vocab_size(), cfg.vocab)));
    }
    let hf = !meta.contains_key("model_args");
    let layout = ParamLayout::new(&cfg);
    let mut params = vec![0.0f32; layout.total];
    for t in &layout.tensors {
        let name = format!("{prefix}{}", exported_name(t).trim_start_matches("transformer."));
        let view = tensors.tensor(&name).map_err(|_| bad(format!("tensor {name} is missing")))?;
        let store = match view.dtype() {
            Dtype::F32 => Store::F32,
            Dtype::BF16 => Store::Bf16,
            Dtype::F16 => Store::F16,
            other => return Err(bad(format!("tensor {name} is {other:?}; float32, bfloat16 or float16 expected"))),
        };
        let transposed = hf && is_linear(t);
        let want: Vec<usize> = if transposed { vec![t.shape[1], t.shape[0]] } else { t.shape.clone() };
        if view.shape() != want.as_slice() {
            return Err(bad(format!("tensor {name} is {:?}, expected {want:?}", view.shape())));
        }
        let data = if transposed { transpose(view.data(), want[0], want[1], store.bytes_per_element()) } else { view.data().to_vec() };
        params[t.offset..t.offset + t.len].copy_from_slice(&store.decode(&data, t.len));
    }
    Ok(SavedModel::Export(cfg, tokenizer, params))
}
