//! Tokenizers: `byte`, srgpt's own (the corpus's distinct bytes, sorted; token id = index);
//! `gpt2`, GPT-2's byte-level BPE (50,257 tokens: 256 bytes, 50,000 merges, and
//! `<|endoftext|>` = 50256), whose ranks ship inside the `tiktoken-rs` crate, so nothing is
//! downloaded; and `hf`, any Hugging Face `tokenizer.json` (`--tokenizer FILE`; in the page, a file picked or fetched).
//! Each writes itself as a `tokenizer.json` that `transformers`' `AutoTokenizer` loads and
//! that gives srgpt's ids.

use std::sync::{Arc, OnceLock};

use sha2::Digest;
use tiktoken_rs::CoreBPE;

pub use super::hf_tokenizer::HfTokenizer;
use crate::Failure;

/// GPT-2's vocabulary size: 50,000 merges over 256 bytes, and `<|endoftext|>`.
pub const GPT2_VOCAB: u32 = 50257;
/// GPT-2's end-of-text token, put between the documents of a prepared corpus as GPT-2 did.
pub const GPT2_END_OF_TEXT: u32 = 50256;

/// The text of the end-of-text token (GPT-2's, and `srgpt tokenizer train`'s).
pub const END_OF_TEXT: &str = "<|endoftext|>";

#[derive(Clone)]
pub enum Tokenizer {
    /// the sorted distinct bytes of the corpus; token id = index
    Byte(Vec<u8>),
    /// GPT-2's byte-level BPE
    Gpt2(Arc<CoreBPE>),
    /// a tokenizer.json read by the `tokenizers` library
    Hf(Arc<HfTokenizer>),
}

impl PartialEq for Tokenizer {
    fn eq(&self, other: &Tokenizer) -> bool {
        match (self, other) {
            (Tokenizer::Byte(a), Tokenizer::Byte(b)) => a == b,
            (Tokenizer::Gpt2(_), Tokenizer::Gpt2(_)) => true,
            (Tokenizer::Hf(a), Tokenizer::Hf(b)) => a.sha256() == b.sha256(),
            _ => false,
        }
    }
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} tokenizer ({} tokens)", self.name(), self.vocab_size())
    }
}

impl Tokenizer {
    /// GPT-2's tokenizer, built once per process (its 50k ranks take a moment to load).
    pub fn gpt2() -> Tokenizer {
        static GPT2: OnceLock<Arc<CoreBPE>> = OnceLock::new();
        Tokenizer::Gpt2(
            GPT2.get_or_init(|| Arc::new(tiktoken_rs::r50k_base().expect("the r50k ranks built into tiktoken-rs load"))).clone(),
        )
    }

    /// The byte tokenizer over the bytes that occur in `bytes`.
    pub fn byte_of(bytes: &[u8]) -> Tokenizer {
        let mut seen = [false; 256];
        bytes.iter().for_each(|&b| seen[b as usize] = true);
        Tokenizer::Byte((0..=255u8).filter(|&b| seen[b as usize]).collect())
    }

    /// The tokenizer of a `tokenizer.json` file: srgpt's byte or GPT-2's when the file is
    /// theirs, else whatever the `tokenizers` library reads from it.
    pub fn from_file(path: &std::path::Path) -> Result<Tokenizer, Failure> {
        let text =
            std::fs::read_to_string(path).map_err(|e| Failure::BadInput(format!("cannot read tokenizer {}: {e}", path.display())))?;
        Tokenizer::from_json(&text).map_err(|e| Failure::BadInput(format!("tokenizer {}: {e}", path.display())))
    }

    /// `byte`, `gpt2` or `hf` (a tokenizer.json of any other kind).
    pub fn name(&self) -> &'static str {
        match self {
            Tokenizer::Byte(_) => "byte",
            Tokenizer::Gpt2(_) => "gpt2",
            Tokenizer::Hf(_) => "hf",
        }
    }

    /// The tokenizer as messages name it: "the gpt2 tokenizer (50257 tokens)", and for `hf`
    /// the start of its SHA-256.
    pub fn describe(&self) -> String {
        match self {
            Tokenizer::Hf(_) => format!("the tokenizer.json with sha256 {}… ({} tokens)", &self.sha256_hex()[..12], self.vocab_size()),
            _ => format!("the {} tokenizer ({} tokens)", self.name(), self.vocab_size()),
        }
    }

    /// The byte vocabulary (empty for a tokenizer that is not `byte`).
    pub fn byte_vocab(&self) -> &[u8] {
        match self {
            Tokenizer::Byte(vocab) => vocab,
            _ => &[],
        }
    }

    pub fn vocab_size(&self) -> u32 {
        match self {
            Tokenizer::Byte(vocab) => vocab.len() as u32,
            Tokenizer::Gpt2(_) => GPT2_VOCAB,
            Tokenizer::Hf(hf) => hf.vocab_size(),
        }
    }

    /// Whether this tokenizer encodes bytes (`byte`) rather than UTF-8 text: a text cut for
    /// the train/validation split only needs to fall between characters for the others.
    pub fn encodes_bytes(&self) -> bool {
        matches!(self, Tokenizer::Byte(_))
    }

    /// The id put between the documents of a prepared corpus: `<|endoftext|>` where the
    /// vocabulary has it.
    pub fn end_of_text(&self) -> Option<u32> {
        match self {
            Tokenizer::Byte(_) => None,
            Tokenizer::Gpt2(_) => Some(GPT2_END_OF_TEXT),
            Tokenizer::Hf(hf) => hf.end_of_text(),
        }
    }

    /// Token ids of `text`. Bytes outside a byte vocabulary are an error; GPT-2 encodes any
    /// text (`<|endoftext|>` in the text is ordinary characters, not the special token).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, Failure> {
        match self {
            Tokenizer::Byte(vocab) => text
                .bytes()
                .map(|b| {
                    vocab.binary_search(&b).map(|i| i as u32).map_err(|_| {
                        Failure::BadInput(format!("the text has byte {b:#04x} ({:?}), which is not in the model's vocabulary", b as char))
                    })
                })
                .collect(),
            Tokenizer::Gpt2(bpe) => Ok(bpe.encode_ordinary(text)),
            Tokenizer::Hf(hf) => hf.encode(text),
        }
    }

    /// Token ids of a corpus's bytes: any bytes for `byte`; UTF-8 text for the others.
    pub fn encode_corpus(&self, source: &str, bytes: &[u8]) -> Result<Vec<u32>, Failure> {
        match self {
            Tokenizer::Byte(_) => self.encode_bytes(source, bytes),
            _ => {
                let text = std::str::from_utf8(bytes).map_err(|e| {
                    Failure::BadInput(format!(
                        "corpus {source} is not UTF-8 text (at byte {}), which the {} tokenizer needs",
                        e.valid_up_to(),
                        self.name()
                    ))
                })?;
                self.encode(text)
            }
        }
    }

    fn encode_bytes(&self, source: &str, bytes: &[u8]) -> Result<Vec<u32>, Failure> {
        let Tokenizer::Byte(vocab) = self else { unreachable!("only the byte tokenizer encodes raw bytes") };
        let mut id = [u32::MAX; 256];
        vocab.iter().enumerate().for_each(|(i, &b)| id[b as usize] = i as u32);
        bytes
            .iter()
            .map(|&b| match id[b as usize] {
                u32::MAX => Err(Failure::BadInput(format!("corpus {source} has byte {b:#04x}, which is not in the vocabulary"))),
                t => Ok(t),
            })
            .collect()
    }

    /// The bytes of `tokens` (ids outside the vocabulary decode to nothing).
    pub fn decode(&self, tokens: &[u32]) -> Vec<u8> {
        match self {
            Tokenizer::Byte(vocab) => tokens.iter().filter_map(|&t| vocab.get(t as usize).copied()).collect(),
            Tokenizer::Gpt2(bpe) => tokens.iter().flat_map(|&t| bpe.decode_bytes(&[t]).unwrap_or_default()).collect(),
            Tokenizer::Hf(hf) => hf.decode(tokens),
        }
    }

    /// The Hugging Face `tokenizer.json` of this tokenizer, as files hold it. GPT-2's (2 MB,
    /// its merges recovered from the ranks) is built once per process; an `hf` tokenizer's is
    /// the text it was read from.
    pub fn json_text(&self) -> String {
        let print = |json: serde_json::Value| serde_json::to_string_pretty(&json).expect("a JSON value prints") + "\n";
        match self {
            Tokenizer::Byte(vocab) => print(byte_tokenizer_json(vocab)),
            Tokenizer::Gpt2(bpe) => {
                static GPT2_JSON: OnceLock<String> = OnceLock::new();
                GPT2_JSON.get_or_init(|| print(gpt2_tokenizer_json(bpe))).clone()
            }
            Tokenizer::Hf(hf) => hf.json_text().into(),
        }
    }

    /// SHA-256 of `json_text`: the tokenizer's identity in prepared token files and checkpoints.
    pub fn sha256(&self) -> [u8; 32] {
        match self {
            Tokenizer::Hf(hf) => hf.sha256(),
            _ => sha2::Sha256::digest(self.json_text().as_bytes()).into(),
        }
    }

    pub fn sha256_hex(&self) -> String {
        self.sha256().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The tokenizer as a checkpoint's metadata holds it: `tokenizer` (the name), `vocab` (a
    /// byte vocabulary's bytes, as JSON), `tokenizer_sha256`, and for `hf` `tokenizer_json`
    /// (the file's text).
    pub fn to_metadata(&self) -> Vec<(&'static str, String)> {
        let own_json = match self {
            Tokenizer::Hf(hf) => Some(("tokenizer_json", hf.json_text().to_string())),
            _ => None,
        };
        let meta = [
            ("tokenizer", self.name().to_string()),
            ("vocab", serde_json::to_string(self.byte_vocab()).expect("bytes print as JSON")),
            ("tokenizer_sha256", self.sha256_hex()),
        ];
        meta.into_iter().chain(own_json).collect()
    }

    /// The tokenizer of metadata `to_metadata` wrote (`get` looks a key up); without a
    /// `tokenizer` key, `byte` (checkpoints before BPE). A stored SHA-256 must match.
    pub fn from_metadata<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Result<Tokenizer, String> {
        let tokenizer = match get("tokenizer") {
            None | Some("byte") => {
                let vocab: Vec<u8> =
                    serde_json::from_str(get("vocab").ok_or("no byte vocabulary")?).map_err(|e| format!("bad vocab metadata: {e}"))?;
                if vocab.windows(2).any(|w| w[0] >= w[1]) {
                    return Err("its byte vocabulary is not sorted".into());
                }
                Tokenizer::Byte(vocab)
            }
            Some("gpt2") => Tokenizer::gpt2(),
            Some("hf") => Tokenizer::from_json(get("tokenizer_json").ok_or("an hf tokenizer without its tokenizer_json")?)
                .map_err(|e| format!("its tokenizer_json: {e}"))?,
            Some(other) => return Err(format!("unknown tokenizer {other:?}")),
        };
        match get("tokenizer_sha256") {
            Some(sha) if sha != tokenizer.sha256_hex() => {
                Err(format!("its {} tokenizer's vocabulary does not match its stored SHA-256", tokenizer.name()))
            }
            _ => Ok(tokenizer),
        }
    }

    /// The tokenizer a `tokenizer.json` describes: srgpt's byte vocabulary or GPT-2's BPE when
    /// it is one of theirs, else (native) any tokenizer the `tokenizers` library reads.
    pub fn from_json(text: &str) -> Result<Tokenizer, String> {
        let ours = Tokenizer::from_srgpt_json(text);
        if ours.is_err() {
            return HfTokenizer::parse(text).map(|hf| Tokenizer::Hf(Arc::new(hf)));
        }
        ours
    }

    /// The tokenizer of a `tokenizer.json` srgpt writes for `byte` and `gpt2`.
    fn from_srgpt_json(text: &str) -> Result<Tokenizer, String> {
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not JSON ({e})"))?;
        let vocab = value["model"]["vocab"].as_object().ok_or("no model.vocab")?;
        if vocab.len() > 256 {
            return Tokenizer::gpt2_if_same(&value["model"]["vocab"], &value["model"]["merges"]);
        }
        // a byte vocabulary: one byte per token, ids 0.. in byte order
        let mut by_id = vec![None; vocab.len()];
        for (piece, id) in vocab {
            let mut chars = piece.chars();
            let (Some(c), None) = (chars.next(), chars.next()) else { return Err(format!("token {piece:?} is not one byte")) };
            let b = (0..=255u8).find(|&b| byte_char(b) == c).ok_or_else(|| format!("token {piece:?} is not a byte"))?;
            let slot = id.as_u64().and_then(|i| by_id.get_mut(i as usize)).ok_or_else(|| format!("token {piece:?} has id {id}"))?;
            *slot = Some(b);
        }
        let bytes: Vec<u8> = by_id.into_iter().collect::<Option<_>>().ok_or("the token ids are not 0 to n-1")?;
        let byte = Tokenizer::Byte(bytes);
        if byte.json_text() != text {
            return Err("not a tokenizer.json srgpt wrote".into());
        }
        Ok(byte)
    }
}

impl Tokenizer {
    /// GPT-2's tokenizer when `vocab` (token -> id) and `merges` (in rank order, as "a b"
    /// strings or ["a", "b"] pairs, as versions of `tokenizers` write them) are GPT-2's.
    fn gpt2_if_same(vocab: &serde_json::Value, merges: &serde_json::Value) -> Result<Tokenizer, String> {
        static GPT2_PARTS: OnceLock<(serde_json::Value, Vec<String>)> = OnceLock::new();
        let (gpt2_vocab, gpt2_merges) = GPT2_PARTS.get_or_init(|| {
            let Tokenizer::Gpt2(bpe) = Tokenizer::gpt2() else { unreachable!("gpt2() is GPT-2's") };
            let json = gpt2_tokenizer_json(&bpe);
            let merges = merge_strings(&json["model"]["merges"]).expect("GPT-2's merges are strings");
            (json["model"]["vocab"].clone(), merges)
        });
        let n = vocab.as_object().map_or(0, |v| v.len());
        if vocab != gpt2_vocab || merge_strings(merges).as_ref() != Some(gpt2_merges) {
            return Err(format!("a {n}-token vocabulary that is not GPT-2's (srgpt reads GPT-2's BPE and its own byte vocabularies)"));
        }
        Ok(Tokenizer::gpt2())
    }

    /// The tokenizer of a Hugging Face model folder: its `tokenizer.json`, else its
    /// `vocab.json` and `merges.txt` (GPT-2's files as the hub keeps them).
    pub fn from_hf_folder(dir: &std::path::Path) -> Result<Tokenizer, String> {
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).map_err(|e| format!("cannot read {name}: {e}"));
        if dir.join("tokenizer.json").exists() {
            return Tokenizer::from_json(&read("tokenizer.json")?).map_err(|e| format!("tokenizer.json: {e}"));
        }
        if !(dir.join("vocab.json").exists() && dir.join("merges.txt").exists()) {
            return Err("no tokenizer: neither tokenizer.json nor vocab.json with merges.txt".into());
        }
        let vocab: serde_json::Value = serde_json::from_str(&read("vocab.json")?).map_err(|e| format!("vocab.json: not JSON ({e})"))?;
        // merges.txt: a "#version" line, then one "a b" pair per line in rank order
        let merges: Vec<serde_json::Value> =
            read("merges.txt")?.lines().filter(|l| !l.starts_with("#version") && !l.is_empty()).map(|l| l.into()).collect();
        Tokenizer::gpt2_if_same(&vocab, &serde_json::Value::Array(merges))
    }
}

/// Merges as "a b" strings, from either form `tokenizers` writes.
fn merge_strings(merges: &serde_json::Value) -> Option<Vec<String>> {
    merges
        .as_array()?
        .iter()
        .map(|m| match m {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Array(pair) => Some(format!("{} {}", pair.first()?.as_str()?, pair.get(1)?.as_str()?)),
            _ => None,
        })
        .collect()
}

/// GPT-2's map from bytes to printable characters (the byte-level tokenizer's alphabet):
/// printable Latin-1 bytes stand for themselves, the others for 256 + their rank.
pub fn byte_char(b: u8) -> char {
    let printable = |b: u8| (b'!'..=b'~').contains(&b) || (0xa1..=0xac).contains(&b) || (0xae..=0xff).contains(&b);
    if printable(b) {
        return b as char;
    }
    let rank = (0..b).filter(|&x| !printable(x)).count() as u32;
    char::from_u32(256 + rank).expect("a valid char")
}

fn byte_string(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| byte_char(b)).collect()
}

/// One token per byte of `vocab`, ids as srgpt's, no merges; a byte outside the vocabulary is
/// an encoding error (the unknown token is not in the vocabulary), never a substitution.
fn byte_tokenizer_json(vocab: &[u8]) -> serde_json::Value {
    let ids: serde_json::Map<String, serde_json::Value> =
        vocab.iter().enumerate().map(|(id, &b)| (byte_char(b).to_string(), serde_json::json!(id))).collect();
    let byte_level = serde_json::json!({ "type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false });
    serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [],
        "normalizer": null,
        "pre_tokenizer": byte_level,
        "post_processor": null,
        "decoder": byte_level,
        "model": {
            "type": "BPE",
            "dropout": null,
            "unk_token": "<a byte outside srgpt's vocabulary>",
            "continuing_subword_prefix": null,
            "end_of_word_suffix": null,
            "fuse_unk": false,
            "byte_fallback": false,
            "ignore_merges": false,
            "vocab": ids,
            "merges": []
        }
    })
}

/// GPT-2's tokenizer.json, rebuilt from the ranks: token r's bytes under the byte-to-character
/// map, and for every token past the 256 bytes the merge that made it — the two parts that
/// byte-pair encoding with only the merges ranked below r leaves of its bytes (the pair with
/// the lowest rank merges first, as GPT-2's `bpe` does), listed in rank order. This is how
/// Hugging Face converts tiktoken files; the result equals GPT-2's vocab.json and merges.txt.
fn gpt2_tokenizer_json(bpe: &CoreBPE) -> serde_json::Value {
    let tokens: Vec<Vec<u8>> = (0..GPT2_END_OF_TEXT).map(|r| bpe.decode_bytes(&[r]).expect("every rank below 50256 is a token")).collect();
    let rank_of: std::collections::HashMap<&[u8], u32> = tokens.iter().enumerate().map(|(r, t)| (t.as_slice(), r as u32)).collect();
    let mut vocab = serde_json::Map::new();
    for (r, t) in tokens.iter().enumerate() {
        vocab.insert(byte_string(t), serde_json::json!(r));
    }
    vocab.insert("<|endoftext|>".into(), serde_json::json!(GPT2_END_OF_TEXT));
    let merges: Vec<serde_json::Value> = tokens[256..]
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let (left, right) = last_merge(t, &rank_of, 256 + i as u32);
            serde_json::json!(format!("{} {}", byte_string(left), byte_string(right)))
        })
        .collect();
    let byte_level = |prefix: bool, trim: bool| serde_json::json!({ "type": "ByteLevel", "add_prefix_space": prefix, "trim_offsets": trim, "use_regex": true });
    serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [{ "id": GPT2_END_OF_TEXT, "content": "<|endoftext|>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": true, "special": true }],
        "normalizer": null,
        "pre_tokenizer": byte_level(false, true),
        "post_processor": byte_level(true, false),
        "decoder": byte_level(true, true),
        "model": {
            "type": "BPE",
            "dropout": null,
            "unk_token": null,
            "continuing_subword_prefix": "",
            "end_of_word_suffix": "",
            "fuse_unk": false,
            "byte_fallback": false,
            "ignore_merges": false,
            "vocab": vocab,
            "merges": merges
        }
    })
}

/// The two parts of `token` that byte-pair encoding with the merges ranked below `rank` ends at.
fn last_merge<'a>(token: &'a [u8], rank_of: &std::collections::HashMap<&[u8], u32>, rank: u32) -> (&'a [u8], &'a [u8]) {
    // part boundaries: part k is token[cuts[k]..cuts[k + 1]]
    let mut cuts: Vec<usize> = (0..=token.len()).collect();
    while cuts.len() > 3 {
        let best = (0..cuts.len() - 2)
            .filter_map(|k| rank_of.get(&token[cuts[k]..cuts[k + 2]]).filter(|&&r| r < rank).map(|&r| (r, k)))
            .min()
            .expect("a GPT-2 token is made of lower-ranked tokens");
        cuts.remove(best.1 + 1);
    }
    (&token[..cuts[1]], &token[cuts[1]..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpt2_gives_gpt2s_ids() {
        // ids from GPT-2's own encoder (transformers' GPT2TokenizerFast)
        let gpt2 = Tokenizer::gpt2();
        assert_eq!(gpt2.encode("Hello world").unwrap(), vec![15496, 995]);
        assert_eq!(gpt2.decode(&[15496, 995]), b"Hello world");
        assert_eq!(gpt2.vocab_size(), 50257);
    }

    #[test]
    fn gpt2_merges_begin_as_gpt2s_merges_txt() {
        let json: serde_json::Value = serde_json::from_str(&Tokenizer::gpt2().json_text()).unwrap();
        let merges: Vec<&str> = json["model"]["merges"].as_array().unwrap().iter().map(|m| m.as_str().unwrap()).collect();
        assert_eq!(merges.len(), 50000);
        // the first lines of GPT-2's merges.txt, and the token each makes
        assert_eq!(&merges[..5], &["Ġ t", "Ġ a", "h e", "i n", "r e"]);
        assert_eq!(json["model"]["vocab"]["Ġt"], 256);
        assert_eq!(json["model"]["vocab"]["Ġthe"], 262);
        assert_eq!(merges[262 - 256], "Ġt he");
    }

    #[test]
    fn tokenizer_json_reads_back() {
        for t in [Tokenizer::byte_of(b"hello, world"), Tokenizer::gpt2()] {
            assert_eq!(Tokenizer::from_json(&t.json_text()).unwrap(), t);
        }
        assert!(Tokenizer::from_json("{}").is_err());
    }
}
