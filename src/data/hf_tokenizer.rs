//! Any Hugging Face `tokenizer.json` (`--tokenizer FILE`), read and run by the `tokenizers`
//! crate, and `srgpt tokenizer train`: a byte-level BPE trained on a corpus, written as a
//! `tokenizer.json` that `transformers`' `AutoTokenizer` loads. The page reads one too (picked
//! or fetched): the library builds for wasm32 with its `unstable_wasm` feature.

use std::str::FromStr;

use sha2::Digest;

use super::tokenizer::{byte_char, END_OF_TEXT};
use crate::model::config::MAX_VOCAB;
use crate::Failure;

/// A tokenizer read from a `tokenizer.json`.
pub struct HfTokenizer {
    inner: tokenizers::Tokenizer,
    /// the file's text, exactly as read (its SHA-256 is the tokenizer's identity)
    json: String,
    sha256: [u8; 32],
    /// the largest token id + 1 (the model's vocabulary size)
    vocab: u32,
    /// each id's bytes, for a byte-level tokenizer (decoding a token on its own is then exact,
    /// even one that holds part of a UTF-8 character); None for other decoders
    token_bytes: Option<Vec<Vec<u8>>>,
}

impl HfTokenizer {
    /// Parses a tokenizer.json's text; the error says what is wrong with it.
    pub fn parse(json: &str) -> Result<HfTokenizer, String> {
        let inner =
            tokenizers::Tokenizer::from_str(json).map_err(|e| format!("not a tokenizer.json the tokenizers library reads ({e})"))?;
        let ids = inner.get_vocab(true);
        let vocab = ids.values().max().map_or(0, |&m| m + 1);
        if vocab == 0 {
            return Err("its vocabulary is empty".into());
        }
        if vocab > MAX_VOCAB {
            return Err(format!("token ids go up to {}, past srgpt's limit of {MAX_VOCAB} tokens", vocab - 1));
        }
        let value: serde_json::Value = serde_json::from_str(json).map_err(|e| format!("not JSON ({e})"))?;
        let token_bytes = (value["decoder"]["type"] == "ByteLevel").then(|| {
            let char_byte: std::collections::HashMap<char, u8> = (0..=255u8).map(|b| (byte_char(b), b)).collect();
            let special: std::collections::HashSet<u32> = inner.get_added_tokens_decoder().keys().copied().collect();
            let mut table = vec![Vec::new(); vocab as usize];
            for (token, &id) in &ids {
                // an added token is its text; a vocabulary token is bytes under GPT-2's character map
                let bytes: Option<Vec<u8>> = token.chars().map(|c| char_byte.get(&c).copied()).collect();
                table[id as usize] = match bytes {
                    Some(bytes) if !special.contains(&id) => bytes,
                    _ => token.as_bytes().to_vec(),
                };
            }
            table
        });
        Ok(HfTokenizer { inner, sha256: sha2::Sha256::digest(json.as_bytes()).into(), json: json.into(), vocab, token_bytes })
    }

    pub fn json_text(&self) -> &str {
        &self.json
    }

    pub fn sha256(&self) -> [u8; 32] {
        self.sha256
    }

    pub fn vocab_size(&self) -> u32 {
        self.vocab
    }

    /// `<|endoftext|>`'s id, when the vocabulary has it (documents are joined with it).
    pub fn end_of_text(&self) -> Option<u32> {
        self.inner.token_to_id(END_OF_TEXT)
    }

    pub fn encode(&self, text: &str) -> Result<Vec<u32>, Failure> {
        let encoding =
            self.inner.encode_fast(text, false).map_err(|e| Failure::BadInput(format!("the tokenizer cannot encode the text: {e}")))?;
        Ok(encoding.get_ids().to_vec())
    }

    pub fn decode(&self, tokens: &[u32]) -> Vec<u8> {
        match &self.token_bytes {
            Some(table) => tokens.iter().filter_map(|&t| table.get(t as usize)).flatten().copied().collect(),
            None => self.inner.decode(tokens, false).map(String::into_bytes).unwrap_or_default(),
        }
    }
}

/// `srgpt tokenizer train`: a byte-level BPE (GPT-2's pre-tokenizer, its 256-byte alphabet and
/// `<|endoftext|>`) of at most `vocab` tokens, trained on the text of `sources` (files, or
/// `builtin` / `shakespeare`); returns the tokenizer.json text. The same text gives the same
/// file. (Native: it reads files.)
#[cfg(not(target_arch = "wasm32"))]
pub fn train_bpe(sources: &[String], vocab: u32) -> Result<String, Failure> {
    use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
    use tokenizers::models::TrainerWrapper;
    use tokenizers::pre_tokenizers::byte_level::ByteLevel;
    use tokenizers::AddedToken;

    let bad = Failure::BadInput;
    if sources.is_empty() {
        return Err(bad("tokenizer train needs at least one corpus file".into()));
    }
    if !(257..=MAX_VOCAB).contains(&vocab) {
        return Err(bad(format!(
            "--vocab {vocab}: a byte-level BPE needs 257 to {MAX_VOCAB} tokens (256 bytes and <|endoftext|>, then merges)"
        )));
    }
    // a first pass checks the text, so the trainer's pass (an iterator of lines, streamed: the
    // corpus may be larger than memory) meets no bad input
    let mut total = 0u64;
    for s in sources {
        super::prepared::each_piece(s, |piece| {
            std::str::from_utf8(piece)
                .map_err(|e| bad(format!("corpus {s} is not UTF-8 text (at byte {})", total + e.valid_up_to() as u64)))?;
            total += piece.len() as u64;
            Ok(())
        })?;
    }
    if total == 0 {
        return Err(bad(format!("the corpus ({}) is empty", sources.join(", "))));
    }
    let read_failure = std::sync::Mutex::new(None);
    let mut lines: Vec<Box<dyn Iterator<Item = String> + Send>> = Vec::new();
    for s in sources {
        let reader: Box<dyn std::io::BufRead + Send> = match s.as_str() {
            "builtin" | "shakespeare" => Box::new(std::io::Cursor::new(super::Corpus::text_of(s)?)),
            path => {
                Box::new(std::io::BufReader::new(std::fs::File::open(path).map_err(|e| bad(format!("cannot read corpus {path}: {e}")))?))
            }
        };
        let failure = &read_failure;
        lines.push(Box::new(std::io::BufRead::lines(reader).map_while(move |line| {
            line.map_err(|e| *failure.lock().expect("not poisoned") = Some(format!("cannot read corpus {s}: {e}"))).ok()
        })));
    }
    let mut trainer: TrainerWrapper = BpeTrainerBuilder::new()
        .vocab_size(vocab as usize)
        .show_progress(false)
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .special_tokens(vec![AddedToken::from(END_OF_TEXT, true)])
        .build()
        .into();
    let mut tokenizer = tokenizers::Tokenizer::new(BPE::default());
    tokenizer
        .with_pre_tokenizer(Some(ByteLevel::default().add_prefix_space(false)))
        .with_post_processor(Some(ByteLevel::default().trim_offsets(false)))
        .with_decoder(Some(ByteLevel::default()));
    // each line with its line end, as the text has it
    let text = lines.into_iter().flatten().map(|line| line + "\n");
    tokenizer.train(&mut trainer, text).map_err(|e| bad(format!("training the tokenizer failed: {e}")))?;
    if let Some(failure) = read_failure.into_inner().expect("not poisoned") {
        return Err(bad(failure));
    }
    tokenizer.to_string(true).map(|s| s + "\n").map_err(|e| bad(format!("the trained tokenizer does not serialize: {e}")))
}
