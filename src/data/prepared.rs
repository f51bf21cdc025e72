//! Prepared corpora: `srgpt prepare` tokenizes text once into a folder, and training reads
//! the tokens through a memory map, so the corpus may be larger than memory.
//!
//! DIR/train.bin and DIR/val.bin: a 1024-byte header, then the token ids, little-endian,
//! u16 (every vocabulary srgpt takes has at most 65,536 tokens; the layout llm.c and nanoGPT
//! use for GPT-2 tokens):
//!
//! | bytes     | field                                                          |
//! |-----------|----------------------------------------------------------------|
//! | 0..8      | magic `srgptTOK`                                               |
//! | 8..12     | format version, u32 (1)                                        |
//! | 12..16    | bytes per token, u32 (2)                                       |
//! | 16..24    | token count, u64                                               |
//! | 24..28    | vocabulary size, u32                                           |
//! | 32..64    | SHA-256 of DIR/tokenizer.json                                  |
//! | 64..96    | the tokenizer's name (`byte`, `gpt2`, `hf`), UTF-8, zero-padded |
//! | 96..128   | SHA-256 of the text the tokens were made from, in file order   |
//! | 128..1024 | zero                                                           |
//!
//! DIR/tokenizer.json is the tokenizer, as Hugging Face's `tokenizers` reads it. The first
//! 90% of the text's bytes make train.bin, the rest val.bin, each tokenized on its own exactly
//! as `srgpt train --corpus FILE --tokenizer T` tokenizes the file; documents
//! (the files named) are joined with `<|endoftext|>` where the vocabulary has it, as GPT-2 was
//! trained.

use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use sha2::Digest;

use super::tokenizer::Tokenizer;
use super::{split_point, Corpus, TokenizerChoice, Tokens};
use crate::Failure;

pub const MAGIC: &[u8; 8] = b"srgptTOK";
pub const VERSION: u32 = 1;
pub const HEADER_BYTES: usize = 1024;
const TOKEN_BYTES: usize = 2;

/// The header of a prepared token file.
#[derive(Clone, Debug, PartialEq)]
pub struct Header {
    pub tokens: u64,
    pub vocab: u32,
    pub tokenizer_sha256: [u8; 32],
    pub tokenizer: String,
    pub text_sha256: [u8; 32],
}

impl Header {
    fn to_bytes(&self) -> [u8; HEADER_BYTES] {
        let mut h = [0u8; HEADER_BYTES];
        h[0..8].copy_from_slice(MAGIC);
        h[8..12].copy_from_slice(&VERSION.to_le_bytes());
        h[12..16].copy_from_slice(&(TOKEN_BYTES as u32).to_le_bytes());
        h[16..24].copy_from_slice(&self.tokens.to_le_bytes());
        h[24..28].copy_from_slice(&self.vocab.to_le_bytes());
        h[32..64].copy_from_slice(&self.tokenizer_sha256);
        h[64..64 + self.tokenizer.len()].copy_from_slice(self.tokenizer.as_bytes());
        h[96..128].copy_from_slice(&self.text_sha256);
        h
    }

    fn parse(h: &[u8]) -> Result<Header, String> {
        if h.len() < HEADER_BYTES || &h[0..8] != MAGIC {
            return Err("not a prepared token file (no srgptTOK header)".into());
        }
        let u32_at = |i: usize| u32::from_le_bytes(h[i..i + 4].try_into().unwrap());
        if u32_at(8) != VERSION {
            return Err(format!("format version {} (this srgpt reads {VERSION})", u32_at(8)));
        }
        if u32_at(12) as usize != TOKEN_BYTES {
            return Err(format!("{} bytes per token (this srgpt reads {TOKEN_BYTES})", u32_at(12)));
        }
        let name = &h[64..96];
        let name = std::str::from_utf8(&name[..name.iter().position(|&b| b == 0).unwrap_or(32)])
            .map_err(|_| "a tokenizer name that is not UTF-8")?;
        Ok(Header {
            tokens: u64::from_le_bytes(h[16..24].try_into().unwrap()),
            vocab: u32_at(24),
            tokenizer_sha256: h[32..64].try_into().unwrap(),
            tokenizer: name.into(),
            text_sha256: h[96..128].try_into().unwrap(),
        })
    }
}

/// A prepared split's tokens, mapped read-only.
#[derive(Clone, Debug)]
pub struct MappedTokens {
    map: std::sync::Arc<memmap2::Mmap>,
    len: usize,
}

impl MappedTokens {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn extend_window(&self, start: usize, n: usize, out: &mut Vec<u32>) {
        let bytes = &self.map[HEADER_BYTES + start * TOKEN_BYTES..HEADER_BYTES + (start + n) * TOKEN_BYTES];
        out.extend(bytes.chunks_exact(2).map(|b| u16::from_le_bytes([b[0], b[1]]) as u32));
    }
}

fn bad(m: String) -> Failure {
    Failure::BadInput(m)
}

/// Opens DIR's train.bin and val.bin, checked against each other and DIR/tokenizer.json.
pub fn open(dir: &Path) -> Result<Corpus, Failure> {
    let shown = dir.display();
    let json_path = dir.join("tokenizer.json");
    if !dir.join("train.bin").exists() {
        return Err(bad(format!("corpus {shown} is a folder without train.bin: give a text file, or a folder `srgpt prepare` wrote")));
    }
    let json = std::fs::read_to_string(&json_path).map_err(|e| bad(format!("cannot read {}: {e}", json_path.display())))?;
    let tokenizer = Tokenizer::from_json(&json).map_err(|e| bad(format!("{} is not usable: {e}", json_path.display())))?;
    let json_sha256: [u8; 32] = sha2::Sha256::digest(json.as_bytes()).into();
    let mut splits = Vec::new();
    let mut text_sha256 = None;
    for name in ["train.bin", "val.bin"] {
        let path = dir.join(name);
        let file = std::fs::File::open(&path).map_err(|e| bad(format!("cannot read {}: {e}", path.display())))?;
        // SAFETY: the file is only read; srgpt never writes a prepared file in place (prepare
        // writes a new file and renames it), so the mapped bytes do not change under us
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| bad(format!("cannot map {}: {e}", path.display())))?;
        let header = Header::parse(&map).map_err(|e| bad(format!("{} is not usable: {e}", path.display())))?;
        let expected = HEADER_BYTES as u64 + header.tokens * TOKEN_BYTES as u64;
        if map.len() as u64 != expected {
            return Err(bad(format!(
                "{} is not usable: its header promises {} tokens ({expected} bytes) but the file has {} bytes",
                path.display(),
                header.tokens,
                map.len()
            )));
        }
        if header.tokenizer_sha256 != json_sha256 || header.tokenizer != tokenizer.name() || header.vocab != tokenizer.vocab_size() {
            return Err(bad(format!("{} was made with another tokenizer than {}", path.display(), json_path.display())));
        }
        check_ids(&path, &header)?;
        if *text_sha256.get_or_insert(header.text_sha256) != header.text_sha256 {
            return Err(bad(format!("train.bin and val.bin in {shown} were prepared from different text")));
        }
        splits.push(Tokens::Mapped(MappedTokens { map: std::sync::Arc::new(map), len: header.tokens as usize }));
    }
    let val = splits.pop().expect("two splits");
    let train = splits.pop().expect("two splits");
    let sha256 = text_sha256.unwrap_or_default().iter().map(|b| format!("{b:02x}")).collect();
    Ok(Corpus { source: dir.display().to_string(), sha256, tokenizer, train, val })
}

/// Refuses a file with an id outside the vocabulary (the embedding would read past its rows).
/// Read through a buffer, not the map: the scan leaves the pages in the page cache, not in
/// this process's resident memory.
fn check_ids(path: &Path, header: &Header) -> Result<(), Failure> {
    let fail = |e: std::io::Error| bad(format!("cannot read {}: {e}", path.display()));
    let mut file = std::fs::File::open(path).map_err(fail)?;
    std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(HEADER_BYTES as u64)).map_err(fail)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut index = 0u64;
    while index < header.tokens {
        let n = ((header.tokens - index) as usize * TOKEN_BYTES).min(buf.len());
        file.read_exact(&mut buf[..n]).map_err(fail)?;
        for (i, b) in buf[..n].chunks_exact(TOKEN_BYTES).enumerate() {
            let id = u16::from_le_bytes([b[0], b[1]]) as u32;
            if id >= header.vocab {
                return Err(bad(format!(
                    "{} is not usable: token {} is id {id}, outside the vocabulary of {}",
                    path.display(),
                    index + i as u64,
                    header.vocab
                )));
            }
        }
        index += (n / TOKEN_BYTES) as u64;
    }
    Ok(())
}

/// Text is read and tokenized in pieces of about this many bytes, each ending in a single line
/// end between two characters that are not whitespace. No GPT-2 pre-token spans such a point,
/// and the line end is a token of its own whether or not the text ends there (a run of
/// whitespace at the very end would be one token, where inside the text it is several), so
/// the pieces' tokens are the whole text's.
const PIECE_BYTES: usize = 1 << 22;

/// `srgpt prepare`: tokenizes `sources` (files, or `builtin` / `shakespeare`) with `choice`
/// into `out`, streaming, and returns the tokenizer, train tokens and val tokens. `out` must
/// be new, empty, or a folder an earlier prepare wrote; a failure leaves what was there as it
/// was.
pub fn prepare(sources: &[String], choice: &TokenizerChoice, out: &Path) -> Result<(Tokenizer, u64, u64), Failure> {
    if let Ok(entries) = std::fs::read_dir(out) {
        let names: Vec<String> = entries.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect();
        let ours = ["train.bin", "val.bin", "tokenizer.json"];
        if names.iter().any(|n| !ours.contains(&n.as_str())) || !(names.is_empty() || names.iter().any(|n| n == "train.bin")) {
            return Err(bad(format!(
                "{} holds other files: prepare writes a folder of its own (or replaces what it wrote)",
                out.display()
            )));
        }
    }
    let result = write_prepared(sources, choice, out);
    if result.is_err() {
        for name in ["train.bin.tmp", "val.bin.tmp"] {
            let _ = std::fs::remove_file(out.join(name));
        }
    }
    result
}

fn write_prepared(sources: &[String], choice: &TokenizerChoice, out: &Path) -> Result<(Tokenizer, u64, u64), Failure> {
    if sources.is_empty() {
        return Err(bad("prepare needs at least one corpus file".into()));
    }
    let mut total = 0u64;
    for s in sources {
        total += match s.as_str() {
            "builtin" | "shakespeare" => Corpus::text_of(s)?.len() as u64,
            path => std::fs::metadata(path).map_err(|e| bad(format!("cannot read corpus {path}: {e}")))?.len(),
        };
    }
    if total == 0 {
        return Err(bad(format!("the corpus ({}) is empty", sources.join(", "))));
    }
    // the byte tokenizer's vocabulary is the bytes that occur: one pass to find them
    let tokenizer = match choice {
        TokenizerChoice::Gpt2 | TokenizerChoice::File(_) | TokenizerChoice::Json { .. } => choice.for_text(&[])?,
        TokenizerChoice::Byte => {
            let mut seen = Vec::new();
            for s in sources {
                each_piece(s, |piece| {
                    seen.extend_from_slice(Tokenizer::byte_of(piece).byte_vocab());
                    seen.sort_unstable();
                    seen.dedup();
                    Ok(())
                })?;
            }
            Tokenizer::Byte(seen)
        }
    };
    std::fs::create_dir_all(out).map_err(|e| bad(format!("cannot create {}: {e}", out.display())))?;
    let json = tokenizer.json_text();
    let mut writers = [SplitWriter::new(&out.join("train.bin"))?, SplitWriter::new(&out.join("val.bin"))?];
    let split_at = total * 9 / 10;
    let mut text_hash = sha2::Sha256::new();
    let mut done = 0u64;
    for (i, s) in sources.iter().enumerate() {
        if let Some(end_of_text) = tokenizer.end_of_text().filter(|_| i > 0) {
            writers[usize::from(done >= split_at)].push(&[end_of_text])?;
        }
        each_piece(s, |piece| {
            text_hash.update(piece);
            // the piece that crosses 90% is cut there, as `Corpus::from_text` cuts the text
            let (train_part, val_part) = if done < split_at && done + piece.len() as u64 > split_at {
                let cut = split_point(piece, (split_at - done) as usize, &tokenizer);
                (&piece[..cut], &piece[cut..])
            } else if done < split_at {
                (piece, &piece[..0])
            } else {
                (&piece[..0], piece)
            };
            for (w, part) in writers.iter_mut().zip([train_part, val_part]) {
                if !part.is_empty() {
                    w.push(&tokenizer.encode_corpus(s, part)?)?;
                }
            }
            done += piece.len() as u64;
            Ok(())
        })?;
    }
    let header = |tokens| Header {
        tokens,
        vocab: tokenizer.vocab_size(),
        tokenizer_sha256: tokenizer.sha256(),
        tokenizer: tokenizer.name().into(),
        text_sha256: text_hash.clone().finalize().into(),
    };
    let [train, val] = writers;
    let counts = (tokenizer.clone(), train.count, val.count);
    for (w, count) in [(train, counts.1), (val, counts.2)] {
        if count < 2 {
            return Err(bad(format!("the corpus ({}) is too short: {} would hold {count} tokens", sources.join(", "), w.path.display())));
        }
        w.finish(&header(count))?;
    }
    crate::files::write_atomically(&out.join("tokenizer.json"), json.as_bytes()).map_err(|e| bad(format!("{e:#}")))?;
    Ok(counts)
}

/// Calls `f` with the text of `source` in pieces (see `PIECE_BYTES`).
pub(crate) fn each_piece(source: &str, mut f: impl FnMut(&[u8]) -> Result<(), Failure>) -> Result<(), Failure> {
    let mut reader: Box<dyn Read> = match source {
        "builtin" | "shakespeare" => Box::new(std::io::Cursor::new(Corpus::text_of(source)?)),
        path => Box::new(std::fs::File::open(path).map_err(|e| bad(format!("cannot read corpus {path}: {e}")))?),
    };
    let mut held: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; PIECE_BYTES];
    loop {
        let n = reader.read(&mut buf).map_err(|e| bad(format!("cannot read corpus {source}: {e}")))?;
        held.extend_from_slice(&buf[..n]);
        if n == 0 {
            return if held.is_empty() { Ok(()) } else { f(&held) };
        }
        if held.len() >= PIECE_BYTES {
            let safe = |i: usize| held[i - 1] == b'\n' && !held[i - 2].is_ascii_whitespace() && !held[i].is_ascii_whitespace();
            let cut = (2..held.len()).rev().find(|&i| safe(i));
            if let Some(cut) = cut {
                f(&held[..cut])?;
                held.drain(..cut);
            }
        }
    }
}

/// One split's file, written under a temporary name and renamed when complete.
struct SplitWriter {
    path: PathBuf,
    tmp: PathBuf,
    out: BufWriter<std::fs::File>,
    count: u64,
}

impl SplitWriter {
    fn new(path: &Path) -> Result<SplitWriter, Failure> {
        let tmp = path.with_extension("bin.tmp");
        let file = std::fs::File::create(&tmp).map_err(|e| bad(format!("cannot write {}: {e}", tmp.display())))?;
        let mut out = BufWriter::new(file);
        out.write_all(&[0u8; HEADER_BYTES]).map_err(|e| bad(format!("cannot write {}: {e}", tmp.display())))?;
        Ok(SplitWriter { path: path.into(), tmp, out, count: 0 })
    }

    fn push(&mut self, tokens: &[u32]) -> Result<(), Failure> {
        let bytes: Vec<u8> = tokens.iter().flat_map(|&t| (t as u16).to_le_bytes()).collect();
        self.out.write_all(&bytes).map_err(|e| bad(format!("cannot write {}: {e}", self.tmp.display())))?;
        self.count += tokens.len() as u64;
        Ok(())
    }

    fn finish(self, header: &Header) -> Result<(), Failure> {
        let fail = |e: std::io::Error| bad(format!("cannot write {}: {e}", self.tmp.display()));
        let mut file = self.out.into_inner().map_err(|e| fail(e.into_error()))?;
        std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(0)).map_err(fail)?;
        file.write_all(&header.to_bytes()).map_err(fail)?;
        file.sync_all().map_err(fail)?;
        std::fs::rename(&self.tmp, &self.path).map_err(fail)?;
        Ok(())
    }
}
