//! The `srgpt` command line: its commands, each a call into `cli/`.

mod cli;

use srgpt::data::TokenizerChoice;
use srgpt::eval::Split;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};
use srgpt::export::ExportFormat;
use srgpt::sample::SampleOptions;
use srgpt::Failure;

use cli::args::{key_value, non_negative_number, whole, MAX_SAMPLE_TOKENS};
use cli::bench::BenchCommand;
use cli::plan::PlanArgs;
use cli::sweep::SweepArgs;
use cli::train::TrainArgs;

#[derive(Parser)]
#[command(name = "srgpt", version, about = "Train a character-level GPT in bf16 with stochastic rounding, in WGSL on any GPU")]
struct Cli {
    /// Use an adapter this picks, as `srgpt info` prints them: a part of its name, a backend
    /// (vulkan, metal, dx12) or a device type (discrete, integrated, virtual, cpu) (default:
    /// WGPU_ADAPTER_NAME, else the fastest kind present). WGPU_BACKEND=vulkan|metal|dx12 narrows
    /// the search; wgpu's GL backend is not used.
    #[arg(long, global = true)]
    adapter: Option<String>,
    /// Without a command: the dashboard, training the tiny preset in fp32, bf16 and bf16-sr.
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// List the GPU adapters, the chosen one, its features and key limits.
    Info {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Train the GPT in one or more precision modes side by side.
    #[command(allow_negative_numbers = true)]
    Train(Box<TrainArgs>),
    /// Show a finished run's curves (its folder or metrics.jsonl) in the dashboard, or a
    /// sweep's plot and table (its folder).
    View {
        path: PathBuf,
        /// Close the window once drawn (with --screenshot, after saving the picture).
        #[arg(long)]
        exit_when_done: bool,
        /// Save the window as a PNG just before it closes, and beside it PNG.json, the
        /// dashboard's status (modes, steps, losses, where the loss plot is in the picture).
        #[arg(long)]
        screenshot: Option<PathBuf>,
    },
    /// Train every mode at several learning rates and seeds (each a side-by-side run in
    /// OUT/lr<lr>_seed<seed>/), then write OUT/sweep.json, sweep.md and sweep.png. Run again,
    /// it skips finished configurations and resumes an interrupted one.
    Sweep(Box<SweepArgs>),
    /// Draw a run's curves (its folder or metrics.jsonl) as a PNG: loss, gap to fp32, update
    /// fidelity and learning rate. Needs no display and no installed fonts.
    Plot {
        path: PathBuf,
        /// The picture [default: curves.png in the run's folder, or beside the metrics file].
        #[arg(short, long)]
        out: Option<PathBuf>,
    },
    /// Generate text from a checkpoint.
    #[command(allow_negative_numbers = true)]
    Sample {
        /// A checkpoint written by `srgpt train` (DIR/<precision>.safetensors).
        #[arg(long)]
        checkpoint: PathBuf,
        /// Text to continue.
        #[arg(long, default_value = "")]
        prompt: String,
        /// Tokens to generate.
        #[arg(long, default_value_t = 200, value_parser = whole(1, MAX_SAMPLE_TOKENS))]
        tokens: u64,
        /// Sampling temperature (0: always the most likely token).
        #[arg(long, default_value_t = 0.8, value_parser = non_negative_number)]
        temperature: f32,
        /// Sample among the k most likely tokens only (0: all).
        #[arg(long, default_value_t = 0, value_parser = whole(0, srgpt::model::config::MAX_VOCAB as u64))]
        top_k: u64,
        #[arg(long, default_value_t = 1, value_parser = whole(0, u64::MAX))]
        seed: u64,
    },
    /// Tokenize text once into OUT/train.bin, OUT/val.bin (the first 90% of the text and the
    /// rest, as u16 token ids after a 1024-byte header) and OUT/tokenizer.json, for
    /// `train --corpus OUT`, which reads them through a memory map.
    Prepare {
        /// Text files (or `builtin`, `shakespeare`), in order; each is a document, joined with
        /// <|endoftext|> where the tokenizer has it.
        #[arg(required = true)]
        corpus: Vec<String>,
        /// byte, gpt2, or the path of a Hugging Face tokenizer.json.
        #[arg(long, default_value = "byte")]
        tokenizer: TokenizerChoice,
        /// The folder to write (new, empty, or one an earlier prepare wrote).
        #[arg(long)]
        out: PathBuf,
    },
    /// The loss of a checkpoint or an `srgpt export` folder on a corpus, with the tokenizer the
    /// model was trained with, as one JSON line: loss (mean nats per token), bits_per_byte,
    /// tokens, bytes, windows (consecutive, non-overlapping windows of ctx + 1 tokens from the
    /// first; each window's first ctx tokens predict its last ctx; a partial window is dropped).
    #[command(allow_negative_numbers = true)]
    Eval {
        /// A checkpoint (DIR/<precision>.safetensors, scored in its own mode) or an export
        /// folder or its model.safetensors (scored in fp32).
        model: PathBuf,
        /// builtin, shakespeare, a text file or a prepared folder.
        #[arg(long)]
        corpus: String,
        /// Must be the model's own when given (byte, gpt2 or a tokenizer.json).
        #[arg(long)]
        tokenizer: Option<TokenizerChoice>,
        /// `val`: the validation split (the last 10% of the text); `all`: the whole text.
        #[arg(long, value_enum, default_value_t = Split::Val)]
        split: Split,
        /// Windows per forward pass.
        #[arg(long, default_value_t = 8, value_parser = whole(1, 4096))]
        batch: u64,
        /// Score only the first N batches [default: all].
        #[arg(long, value_parser = whole(1, u32::MAX as u64))]
        batches: Option<u64>,
    },
    /// Tokenizers: `srgpt tokenizer train` makes a byte-level BPE for `--tokenizer FILE`.
    Tokenizer {
        #[command(subcommand)]
        what: TokenizerCommand,
    },
    /// Write a checkpoint's weights for other tools. Optimizer state is not exported.
    Export {
        /// A checkpoint written by `srgpt train` (DIR/<precision>.safetensors).
        checkpoint: PathBuf,
        #[arg(long, value_enum, default_value_t = ExportFormat::Hf)]
        format: ExportFormat,
        /// The folder to write (new, or empty).
        #[arg(long)]
        out: PathBuf,
    },
    /// Print the assembled WGSL of a shader variant, as the GPU receives it (helpers
    /// included, templates and defines substituted); needs no GPU.
    Shader {
        /// A kernel file (`matmul`, `layernorm`, …) or an entry point (`layernorm_forward`).
        name: String,
        /// Only variants with this define (repeatable), e.g. `--define A=bf16 --define TRANS_B=1`.
        #[arg(long = "define", value_name = "KEY=VALUE", value_parser = key_value)]
        defines: Vec<(String, String)>,
        /// List the matching variants instead of printing one.
        #[arg(long)]
        list: bool,
    },
    /// A model's GPU memory per precision mode (parameters, gradients, optimizer state,
    /// activations, logits) and whether its buffers fit the chosen adapter and a browser; no
    /// GPU work.
    Plan(Box<PlanArgs>),
    /// Measure kernels on the chosen adapter.
    Bench {
        #[command(subcommand)]
        what: BenchCommand,
    },
}

#[derive(Subcommand)]
enum TokenizerCommand {
    /// Train a byte-level BPE (GPT-2's pre-tokenizer, its 256 bytes and <|endoftext|>) on a
    /// corpus, written as a Hugging Face tokenizer.json for `--tokenizer FILE` (and
    /// `transformers`' AutoTokenizer). The same text gives the same file.
    Train {
        /// Text files (or `builtin`, `shakespeare`).
        #[arg(required = true)]
        corpus: Vec<String>,
        /// At most this many tokens (fewer when the text runs out of pairs to merge).
        #[arg(long, value_parser = whole(257, srgpt::model::config::MAX_VOCAB as u64))]
        vocab: u64,
        /// The tokenizer.json to write (it must not exist yet).
        #[arg(long)]
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    let launched = std::time::Instant::now();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    match run(cli, launched) {
        Ok(code) => code,
        Err(e) => {
            let code = e.downcast_ref::<Failure>().map_or(1, Failure::exit_code);
            eprintln!("srgpt: {e:#}");
            ExitCode::from(code as u8)
        }
    }
}

fn run(cli: Cli, launched: std::time::Instant) -> Result<ExitCode> {
    // no command: `srgpt train` with its defaults
    let command = match cli.command {
        Some(c) => c,
        None => Cli::try_parse_from(["srgpt", "train"])?.command.ok_or_else(|| anyhow::anyhow!("default command"))?,
    };
    let adapter = cli.adapter.as_deref();
    match command {
        Command::Info { json } => cli::info::info(adapter, json),
        Command::Train(args) => cli::train::train(adapter, *args),
        Command::View { path, exit_when_done, screenshot } => cli::view::view(cli.adapter.clone(), &path, exit_when_done, screenshot),
        Command::Sweep(args) => cli::sweep::sweep(adapter, *args),
        Command::Plot { path, out } => cli::plot::plot(&path, out),
        Command::Sample { checkpoint, prompt, tokens, temperature, top_k, seed } => cli::sample::sample(
            adapter,
            &checkpoint,
            &prompt,
            SampleOptions { tokens: tokens as usize, temperature, top_k: top_k as usize, seed },
        ),
        Command::Prepare { corpus, tokenizer, out } => cli::prepare::prepare(&corpus, &tokenizer, &out),
        Command::Tokenizer { what: TokenizerCommand::Train { corpus, vocab, out } } => {
            cli::prepare::train_tokenizer(&corpus, vocab as u32, &out)
        }
        Command::Eval { model, corpus, tokenizer, split, batch, batches } => {
            cli::eval::eval(adapter, cli::eval::EvalArgs { model: &model, corpus: &corpus, tokenizer, split, batch: batch as u32, batches })
        }
        Command::Export { checkpoint, format, out } => cli::export::export(&checkpoint, format, &out),
        Command::Shader { name, defines, list } => cli::shader::shader(&name, &defines, list),
        Command::Plan(args) => cli::plan::plan(adapter, *args),
        Command::Bench { what } => cli::bench::bench(adapter, what, launched),
    }
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;
    use srgpt::model::config::{MAX_BATCH, MAX_CTX, MAX_D, MAX_LAYERS, MAX_VOCAB};

    /// Every numeric flag of every subcommand: (its subcommand path, the flag, values just
    /// inside its bounds, values just past them). A flag added without a row here fails the
    /// test, so none escapes its bounds check.
    fn bounds() -> Vec<(&'static str, &'static str, Vec<String>, Vec<String>)> {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<String>>();
        let whole = |lo: u64, hi: u64| {
            let below = if lo == 0 { "-1".to_string() } else { (lo - 1).to_string() };
            let above = if hi == u64::MAX { "18446744073709551616".to_string() } else { (hi + 1).to_string() };
            (vec![lo.to_string(), hi.to_string()], vec![below, above, "1.5".into(), "x".into()])
        };
        let positive = (s(&["1e-30", "3e-3", "3.4e38"]), s(&["0", "-1e-3", "nan", "inf", "3.5e38"]));
        let non_negative = (s(&["0", "0.8", "3.4e38"]), s(&["-1e-30", "nan", "inf"]));
        let u32_max = u32::MAX as u64;
        let model = |sub: &'static str| {
            vec![
                (sub, "--n-layer", whole(1, MAX_LAYERS as u64)),
                (sub, "--n-head", whole(1, MAX_D as u64)),
                (sub, "--d", whole(1, MAX_D as u64)),
                (sub, "--ctx", whole(2, MAX_CTX as u64)),
                (sub, "--batch", whole(1, MAX_BATCH as u64)),
                (sub, "--grad-accum", whole(1, MAX_BATCH as u64)),
            ]
        };
        let mut rows = Vec::new();
        rows.extend(model("train"));
        rows.extend(model("sweep"));
        rows.extend(model("plan"));
        rows.extend([
            ("train", "--sample-every", whole(0, u32_max)),
            ("train", "--lr", positive.clone()),
            ("train", "--warmup", whole(0, u32_max)),
            ("train", "--steps", whole(1, u32_max)),
            ("train", "--seed", whole(0, u64::MAX)),
            ("train", "--eval-every", whole(0, u32_max)),
            ("train", "--eval-batches", whole(1, 4096)),
            ("train", "--ckpt-every", whole(0, u32_max)),
            ("train", "--ckpt-minutes", non_negative.clone()),
            ("train", "--target-loss", positive.clone()),
            ("train", "--stop-at", whole(1, u32_max)),
            ("sweep", "--lr", positive.clone()),
            ("sweep", "--seeds", whole(0, u64::MAX)),
            ("sweep", "--steps", whole(1, u32_max)),
            ("sweep", "--eval-every", whole(0, u32_max)),
            ("sweep", "--ckpt-every", whole(0, u32_max)),
            ("plan", "--vocab", whole(1, MAX_VOCAB as u64)),
            ("sample", "--tokens", whole(1, super::MAX_SAMPLE_TOKENS)),
            ("sample", "--temperature", non_negative),
            ("sample", "--top-k", whole(0, MAX_VOCAB as u64)),
            ("sample", "--seed", whole(0, u64::MAX)),
            ("eval", "--batch", whole(1, 4096)),
            ("eval", "--batches", whole(1, u32_max)),
            ("tokenizer train", "--vocab", whole(257, MAX_VOCAB as u64)),
            ("bench train", "--steps", whole(1, 100_000)),
            ("bench matmul", "--reps", whole(1, 100_000)),
        ]);
        rows.into_iter().map(|(sub, flag, (ok, bad))| (sub, flag, ok, bad)).collect()
    }

    /// Every (subcommand path, argument) of the command line.
    fn all_args(cmd: &clap::Command, path: &str, out: &mut Vec<(String, clap::Arg)>) {
        for arg in cmd.get_arguments() {
            out.push((path.to_string(), arg.clone()));
        }
        for sub in cmd.get_subcommands() {
            let sub_path = if path.is_empty() { sub.get_name().to_string() } else { format!("{path} {}", sub.get_name()) };
            all_args(sub, &sub_path, out);
        }
    }

    /// A command line of subcommand `path` with its required arguments, and `flag=value`.
    fn parses(path: &str, flag: &str, value: &str) -> Result<(), String> {
        let required: &[&str] = match path {
            "sweep" => &["--lr", "1e-3", "--seeds", "1", "--out", "x"],
            "sample" => &["--checkpoint", "x"],
            "eval" => &["model", "--corpus", "c"],
            "view" | "plot" | "shader" => &["x"],
            "prepare" | "export" => &["x", "--out", "y"],
            "tokenizer train" => &["x", "--out", "y"],
            _ => &[],
        };
        let line = ["srgpt"].into_iter().chain(path.split_whitespace()).chain(required.iter().copied());
        let arg = format!("{flag}={value}");
        Cli::command().try_get_matches_from(line.chain([arg.as_str()])).map(|_| ()).map_err(|e| e.to_string())
    }

    #[test]
    fn every_numeric_flag_takes_its_bounds_and_refuses_just_past_them_by_name() {
        let mut args = Vec::new();
        all_args(&Cli::command(), "", &mut args);
        let table = bounds();
        let mut checked = 0;
        for (path, arg) in &args {
            let Some(long) = arg.get_long() else { continue };
            if path.is_empty() || !arg.get_action().takes_values() {
                continue;
            }
            let flag = format!("--{long}");
            // a numeric flag: its parser takes 1 and refuses a word
            let numeric = parses(path, &flag, "1").is_ok() && parses(path, &flag, "many").is_err();
            let row = table.iter().find(|(sub, f, _, _)| sub == path && *f == flag);
            let Some((_, _, ok, bad)) = row else {
                assert!(!numeric, "`srgpt {path} {flag}` is numeric and has no row in this test's table of bounds");
                continue;
            };
            for value in ok {
                assert!(parses(path, &flag, value).is_ok(), "`srgpt {path} {flag}={value}` is refused: {:?}", parses(path, &flag, value));
            }
            for value in bad {
                let error = parses(path, &flag, value).expect_err(&format!("`srgpt {path} {flag}={value}` is accepted"));
                assert!(error.contains(&flag), "`srgpt {path} {flag}={value}`: the message does not name the flag: {error}");
            }
            checked += 1;
        }
        assert_eq!(checked, table.len(), "a row of the table names no flag of the command line");
    }
}
