//! `srgpt plan`: a model's GPU memory in each precision mode — parameters, gradients,
//! optimizer state, master weights or compensation, activations (the logits among them) and
//! scratch — and whether every buffer fits what a kernel can bind on the chosen adapter and
//! in a browser (WebGPU's default limits). It makes no buffer and runs no kernel: the sizes
//! come from the same allocation code the model runs (`model::buffers`), with nothing made.

use std::process::ExitCode;

use anyhow::Result;
use serde::Serialize;
use srgpt::data::TokenizerChoice;
use srgpt::gpu::{choose_adapter, list_adapters, new_instance, AdapterReport};
use srgpt::model::config::{ModelConfig, TrainConfig, MAX_VOCAB};
use srgpt::model::gpt::{binding_limit, MemoryBytes, MemoryPlan};
use srgpt::precision::Precision;

use super::args::{precisions, whole, ModelFlags};

#[derive(clap::Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub model: ModelFlags,
    /// Precision modes to plan (comma-separated) [default: fp32,bf16,bf16-sr].
    #[arg(long, value_delimiter = ',')]
    pub precision: Option<Vec<Precision>>,
    /// The vocabulary: `gpt2` (50,257 tokens), `byte` (at most 256) or a tokenizer.json's
    /// [default: gpt2 for the gpt2 presets, else byte].
    #[arg(long)]
    pub tokenizer: Option<TokenizerChoice>,
    /// The vocabulary size, overriding --tokenizer's (e.g. a tokenizer.json's).
    #[arg(long, value_parser = whole(1, MAX_VOCAB as u64))]
    pub vocab: Option<u64>,
    /// Plan without the update's fidelity sums (as `train --no-fidelity`).
    #[arg(long)]
    pub no_fidelity: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Where the plan is checked: the chosen adapter's limits, and WebGPU's defaults.
#[derive(Serialize)]
struct Target {
    name: String,
    /// the largest buffer a kernel can bind, in bytes
    binding_limit: u64,
}

#[derive(Serialize)]
struct ModePlan {
    precision: String,
    memory: MemoryBytes,
    logits_bytes: u64,
    largest: String,
    largest_bytes: u64,
    /// the most a kernel binds of the weights, gradients or optimizer state at once
    largest_binding: String,
    largest_binding_bytes: u64,
    /// per target: the buffers over its binding limit (empty: it fits)
    over_limit: Vec<Vec<String>>,
}

#[derive(Serialize)]
struct Report {
    model: ModelConfig,
    parameters: u64,
    train: TrainConfig,
    targets: Vec<Target>,
    modes: Vec<ModePlan>,
}

pub fn plan(adapter: Option<&str>, args: PlanArgs) -> Result<ExitCode> {
    let preset = args.model.preset();
    let tokenizer = args.tokenizer.unwrap_or(if preset.name.starts_with("gpt2") { TokenizerChoice::Gpt2 } else { TokenizerChoice::Byte });
    let vocab = match (args.vocab, &tokenizer) {
        (Some(v), _) => v as u32,
        (None, TokenizerChoice::Byte) => 256,
        (None, choice) => choice.for_text(&[])?.vocab_size(),
    };
    let mut model = ModelConfig::from_preset(&preset, vocab);
    let mut train = preset.train;
    args.model.apply(&mut model, &mut train);
    model.validate()?;
    train.validate()?;
    let modes = precisions(args.precision.as_deref())?;

    let mut targets = Vec::new();
    let mut notes = Vec::new();
    let instance = new_instance();
    match list_adapters(&instance).map_err(anyhow::Error::from).and_then(|a| choose_adapter(a, adapter)) {
        Ok(a) => targets.push((AdapterReport::of(&a).summary(), a.limits())),
        Err(e) => notes.push(format!("no adapter checked ({e:#})")),
    }
    targets.push(("a browser (WebGPU's default limits)".to_string(), wgpu::Limits::default()));

    let mut report = Report {
        model,
        parameters: model.num_params(),
        train,
        targets: targets.iter().map(|(name, l)| Target { name: name.clone(), binding_limit: binding_limit(l) }).collect(),
        modes: Vec::new(),
    };
    // the sizes do not depend on the limits, except the fidelity sums' few bytes
    let planning_limits = targets.first().map_or_else(wgpu::Limits::default, |(_, l)| l.clone());
    for p in modes {
        let plan = MemoryPlan::new(&model, train.micro_batch(), train.grad_accum, p, !args.no_fidelity, &planning_limits)?;
        let (largest, largest_binding) = plan.largest();
        let largest = largest.expect("a model has buffers");
        let largest_binding = largest_binding.expect("a model has weights");
        let over_limit = targets
            .iter()
            .map(|(_, l)| {
                // one entry per name: the blocks' buffers of one name are alike
                let names: Vec<String> = plan
                    .over_limit(l)
                    .iter()
                    .map(|b| {
                        let what = if b.binding_only { format!("{} of the {}", b.label, b.role.name()) } else { format!("'{}'", b.label) };
                        format!("{what} {}", mib(b.bytes))
                    })
                    .collect();
                let mut once = names.clone();
                once.dedup();
                once.into_iter()
                    .map(|name| match names.iter().filter(|n| **n == name).count() {
                        1 => name,
                        times => format!("{name} (x{times})"),
                    })
                    .collect::<Vec<String>>()
            })
            .collect();
        report.modes.push(ModePlan {
            precision: p.name().to_string(),
            memory: plan.memory,
            logits_bytes: plan.bytes_of("logits"),
            largest: largest.label.clone(),
            largest_bytes: largest.bytes,
            largest_binding: format!("{} of the {}", largest_binding.label, largest_binding.role.name()),
            largest_binding_bytes: largest_binding.bytes,
            over_limit,
        });
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report, &notes);
    }
    Ok(ExitCode::SUCCESS)
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / 1048576.0)
}

fn print_report(r: &Report, notes: &[String]) {
    let (m, t) = (&r.model, &r.train);
    println!("model: {} layers, {} heads, d {}, ctx {}, vocab {} ({} parameters)", m.n_layer, m.n_head, m.d, m.ctx, m.vocab, r.parameters);
    println!(
        "batch: {} sequences per update in {} micro-batch(es) of {}: the model holds {} tokens at once",
        t.batch,
        t.grad_accum,
        t.micro_batch(),
        t.micro_batch() as u64 * m.ctx as u64
    );
    println!("memory in MiB (activations include the logits):");
    println!(
        "  {:<11} {:>10} {:>10} {:>10} {:>10} {:>12} {:>10} {:>10} {:>10} {:>8}",
        "mode", "params", "master", "grads", "adam", "activations", "logits", "scratch", "total", "B/param"
    );
    let f = |b: u64| format!("{:.1}", b as f64 / 1048576.0);
    for mode in &r.modes {
        let mem = &mode.memory;
        println!(
            "  {:<11} {:>10} {:>10} {:>10} {:>10} {:>12} {:>10} {:>10} {:>10} {:>8.1}",
            mode.precision,
            f(mem.parameters),
            f(mem.master + mem.compensation),
            f(mem.gradients),
            f(mem.optimizer_state),
            f(mem.activations),
            f(mode.logits_bytes),
            f(mem.scratch),
            f(mem.total),
            mem.training_state() as f64 / r.parameters as f64
        );
    }
    for (i, target) in r.targets.iter().enumerate() {
        println!("on {} (a kernel binds at most {}):", target.name, mib(target.binding_limit));
        for mode in &r.modes {
            let over = &mode.over_limit[i];
            if over.is_empty() {
                println!(
                    "  {:<11} fits (largest buffer '{}', {}; largest binding {}, {})",
                    mode.precision,
                    mode.largest,
                    mib(mode.largest_bytes),
                    mode.largest_binding,
                    mib(mode.largest_binding_bytes)
                );
            } else {
                println!("  {:<11} does not fit: {} over the limit", mode.precision, over.join(", "));
            }
        }
    }
    for note in notes {
        println!("note: {note}");
    }
}
