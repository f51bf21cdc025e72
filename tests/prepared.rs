//! Tokenizers and prepared corpora: `srgpt prepare` writes the tokens `train --corpus FILE`
//! would make of the same text (Shakespeare, 4.8 MB, so it is read in several pieces), a
//! reader written from the format's description (tests/prepared_check.py) decodes them back
//! to the text, a run reads them through the memory map with the batches of the in-memory
//! corpus, a GPT-2-tokenized model trains, checkpoints, resumes, samples and exports GPT-2's
//! tokenizer, a tokenizer `srgpt tokenizer train` made does the same and loads in
//! transformers, and damaged or mismatched folders are refused with a clear message.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use srgpt::data::{train_batch, val_batches, Corpus, Tokenizer, TokenizerChoice};

fn srgpt(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_srgpt")).args(args).env("SRGPT_TUNE", "0").output().unwrap()
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("srgpt-prepared-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Shakespeare's text in a file, and the folder `srgpt prepare FILE --tokenizer choice` wrote
/// (named after the test, as tests run side by side).
fn prepared(test: &str, choice: &TokenizerChoice) -> (PathBuf, PathBuf) {
    let label = match choice {
        TokenizerChoice::File(_) => "file".to_string(),
        named => named.to_string(),
    };
    let text = tmp(&format!("{test}-text-{label}")).with_extension("txt");
    std::fs::write(&text, Corpus::text_of("shakespeare").unwrap()).unwrap();
    let dir = tmp(&format!("{test}-dir-{label}"));
    let out = srgpt(&["prepare", text.to_str().unwrap(), "--tokenizer", &choice.to_string(), "--out", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    (text, dir)
}

/// A byte-level BPE of `vocab` tokens that `srgpt tokenizer train` made of Shakespeare, in a
/// file of the test's own.
fn trained_tokenizer(test: &str, vocab: u32) -> PathBuf {
    let path = tmp(&format!("{test}-tokenizer")).with_extension("json");
    let _ = std::fs::remove_file(&path);
    let out = srgpt(&["tokenizer", "train", "shakespeare", "--vocab", &vocab.to_string(), "--out", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    path
}

#[test]
fn prepared_tokens_are_the_texts_tokens() {
    let bpe = trained_tokenizer("tokens", 1000);
    for kind in [TokenizerChoice::Byte, TokenizerChoice::Gpt2, TokenizerChoice::File(bpe.clone())] {
        let (text, dir) = prepared("tokens", &kind);
        let mapped = Corpus::load(dir.to_str().unwrap()).unwrap();
        let memory = Corpus::load_with(text.to_str().unwrap(), Some(&kind)).unwrap();
        assert_eq!(mapped.tokenizer, memory.tokenizer, "{kind:?}");
        assert_eq!(mapped.sha256, memory.sha256, "{kind:?}: the text's hash");
        assert_eq!(mapped.train.to_vec(), memory.train.to_vec(), "{kind:?}: train tokens");
        assert_eq!(mapped.val.to_vec(), memory.val.to_vec(), "{kind:?}: validation tokens");
        for step in [0, 1, 999] {
            assert_eq!(train_batch(&mapped, 4, 64, 7, step), train_batch(&memory, 4, 64, 7, step), "{kind:?} step {step}");
        }
        assert_eq!(val_batches(&mapped, 4, 64, 7, 2), val_batches(&memory, 4, 64, 7, 2));
        // an outside reader: the header, the ids, the decoding and (where installed) tokenizers' ids
        let check = Command::new("python3")
            .args([
                "tests/prepared_check.py",
                dir.to_str().unwrap(),
                "--text",
                text.to_str().unwrap(),
                "--tokenizer",
                mapped.tokenizer.name(),
            ])
            .output()
            .unwrap();
        let said = format!("{}{}", String::from_utf8_lossy(&check.stdout), stderr(&check));
        if said.contains("No module named 'numpy'") {
            assert!(std::env::var_os("SRGPT_CI").is_none(), "CI installs numpy: {said}");
            eprintln!("SKIPPED the outside reader: numpy is not installed");
        } else {
            assert!(check.status.success(), "{kind:?}: {said}");
            eprintln!("{kind:?}: {said}");
        }
        std::fs::remove_dir_all(dir).ok();
        std::fs::remove_file(text).ok();
    }
    std::fs::remove_file(bpe).ok();
}

#[test]
fn gpt2_ids_are_gpt2s() {
    // ids from GPT-2's vocab.json and merges.txt through Hugging Face's tokenizers; two line
    // ends before a word are two tokens (198, 198), not GPT-2's "\n\n" (628)
    let gpt2 = Tokenizer::gpt2();
    assert_eq!(gpt2.encode("Hello world").unwrap(), [15496, 995]);
    assert_eq!(gpt2.encode(" tokenization").unwrap(), [11241, 1634]);
    assert_eq!(gpt2.encode("ROMEO:\n\nBut").unwrap(), [33676, 4720, 25, 198, 198, 1537]);
    assert_eq!(gpt2.encode("ROMEO:\n\n").unwrap(), [33676, 4720, 25, 628]);
    assert_eq!(gpt2.decode(&[33676, 4720, 25, 198, 198, 1537]), b"ROMEO:\n\nBut");
}

fn assert_refused(out: &Output, says: &str) {
    assert_eq!(out.status.code(), Some(2), "{}", stderr(out));
    assert!(stderr(out).contains(says), "expected {says:?} in: {}", stderr(out));
}

#[test]
fn damaged_or_mismatched_folders_are_refused() {
    let (text, dir) = prepared("refused", &TokenizerChoice::Byte);
    let d = dir.to_str().unwrap();
    let train = |extra: &[&str]| {
        let mut args = vec!["train", "--headless", "--corpus", d, "--steps", "1", "--out"];
        let out = tmp("refused-run");
        args.push(out.to_str().unwrap());
        args.extend_from_slice(extra);
        srgpt(&args)
    };
    assert_refused(&train(&["--tokenizer", "gpt2"]), "prepared with the byte tokenizer");
    // a truncated split
    let bin = dir.join("val.bin");
    let whole = std::fs::read(&bin).unwrap();
    std::fs::write(&bin, &whole[..whole.len() - 1]).unwrap();
    assert_refused(&train(&[]), "but the file has");
    std::fs::write(&bin, &whole[..100]).unwrap();
    assert_refused(&train(&[]), "no srgptTOK header");
    let mut foreign = whole.clone();
    foreign[1024 + 2 * 1000..1024 + 2 * 1001].copy_from_slice(&83u16.to_le_bytes());
    std::fs::write(&bin, &foreign).unwrap();
    assert_refused(&train(&[]), "token 1000 is id 83, outside the vocabulary of 83");
    std::fs::write(&bin, &whole).unwrap();
    // a tokenizer.json that is not the one the tokens were made with
    let json = dir.join("tokenizer.json");
    let kept = std::fs::read(&json).unwrap();
    std::fs::write(&json, Tokenizer::byte_of(b"abc").json_text()).unwrap();
    assert_refused(&train(&[]), "was made with another tokenizer");
    std::fs::write(&json, b"{").unwrap();
    assert_refused(&train(&[]), "tokenizer.json is not usable: not a tokenizer.json the tokenizers library reads");
    std::fs::write(&json, kept).unwrap();
    // prepare never writes into a folder of other files, and says why an input is unusable
    let busy = tmp("busy");
    std::fs::create_dir_all(&busy).unwrap();
    std::fs::write(busy.join("notes.txt"), b"mine").unwrap();
    assert_refused(&srgpt(&["prepare", text.to_str().unwrap(), "--out", busy.to_str().unwrap()]), "holds other files");
    assert_eq!(std::fs::read(busy.join("notes.txt")).unwrap(), b"mine");
    let empty = tmp("empty").with_extension("txt");
    std::fs::write(&empty, b"").unwrap();
    assert_refused(&srgpt(&["prepare", empty.to_str().unwrap(), "--out", tmp("from-empty").to_str().unwrap()]), "is empty");
    let latin1 = tmp("latin1").with_extension("txt");
    std::fs::write(&latin1, b"caf\xe9 au lait, and more text than a window needs").unwrap();
    assert_refused(
        &srgpt(&["prepare", latin1.to_str().unwrap(), "--tokenizer", "gpt2", "--out", tmp("from-latin1").to_str().unwrap()]),
        "is not UTF-8 text (at byte 3)",
    );
    assert_refused(
        &srgpt(&["prepare", "/no/such/file", "--out", tmp("from-nothing").to_str().unwrap()]),
        "cannot read corpus /no/such/file",
    );
    // --tokenizer FILE: a file that is missing, does not parse, or has ids past u16
    let bad_tokenizer = tmp("bad-tokenizer").with_extension("json");
    let prepare_with = |t: &Path| {
        srgpt(&["prepare", text.to_str().unwrap(), "--tokenizer", t.to_str().unwrap(), "--out", tmp("from-bad").to_str().unwrap()])
    };
    assert_refused(&prepare_with(Path::new("/no/such/tokenizer.json")), "cannot read tokenizer /no/such/tokenizer.json");
    std::fs::write(&bad_tokenizer, br#"{"model": {"type": "BPE", "vocab": "#).unwrap();
    assert_refused(&prepare_with(&bad_tokenizer), "not a tokenizer.json the tokenizers library reads");
    let word_level = |top_id: u32| {
        format!(
            r#"{{"version": "1.0", "truncation": null, "padding": null, "added_tokens": [], "normalizer": null,
               "pre_tokenizer": {{"type": "Whitespace"}}, "post_processor": null, "decoder": null,
               "model": {{"type": "WordLevel", "vocab": {{"the": {top_id}, "[UNK]": 0}}, "unk_token": "[UNK]"}}}}"#
        )
    };
    std::fs::write(&bad_tokenizer, word_level(65536)).unwrap();
    assert_refused(&prepare_with(&bad_tokenizer), "token ids go up to 65536, past srgpt's limit of 65536 tokens");
    assert_refused(
        &srgpt(&[
            "train",
            "--headless",
            "--corpus",
            text.to_str().unwrap(),
            "--tokenizer",
            bad_tokenizer.to_str().unwrap(),
            "--steps",
            "1",
            "--out",
            tmp("bad-run").to_str().unwrap(),
        ]),
        "past srgpt's limit",
    );
    assert!(!tmp("from-bad").exists() && !tmp("bad-run").exists(), "nothing is written for a bad tokenizer");
    std::fs::remove_file(&bad_tokenizer).ok();
    // a second prepare into its own folder replaces what the first wrote
    let again = srgpt(&["prepare", text.to_str().unwrap(), "--tokenizer", "gpt2", "--out", d]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(Corpus::load(d).unwrap().tokenizer.name(), "gpt2");
    for p in [&busy, &dir] {
        std::fs::remove_dir_all(p).ok();
    }
    for f in [&text, &empty, &latin1] {
        std::fs::remove_file(f).ok();
    }
}

fn first_val_loss(run: &Path, mode: &str) -> f64 {
    common::logged_losses(run).iter().find(|l| l["run"] == mode && l["val_loss"].is_number()).unwrap()["val_loss"].as_f64().unwrap()
}

#[test]
fn a_gpt2_tokenized_model_trains_resumes_samples_and_exports() {
    let (text, dir) = prepared("gpt2-run", &TokenizerChoice::Gpt2);
    let run = tmp("gpt2-run");
    let r = run.to_str().unwrap();
    let base = ["train", "--headless", "--corpus", dir.to_str().unwrap(), "--preset", "tiny", "--batch", "2", "--eval-batches", "1"];
    let out = srgpt(&[&base[..], &["--steps", "4", "--eval-every", "2", "--stop-at", "2", "--precision", "bf16-sr", "--out", r]].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    // an untrained model spreads its bets over GPT-2's 50,257 tokens: loss ln(50257) = 10.825
    let untrained = first_val_loss(&run, "bf16-sr");
    assert!((untrained - 50257f64.ln()).abs() < 0.1, "step-0 val loss {untrained}");
    // bits per byte: the loss over the bytes the validation tokens decode to (GPT-2 tokens of
    // English text average 3 to 5 bytes; Shakespeare 3.2)
    let summary: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    let bytes_per_token = summary["val_bytes_per_token"].as_f64().unwrap();
    assert!((2.0..6.0).contains(&bytes_per_token), "{bytes_per_token} bytes per GPT-2 token");
    for line in common::logged_losses(&run).iter().filter(|l| l["val_loss"].is_number()) {
        let (loss, bpb) = (line["val_loss"].as_f64().unwrap(), line["val_bits_per_byte"].as_f64().unwrap());
        assert!((bpb - loss / std::f64::consts::LN_2 / bytes_per_token).abs() < 1e-5 * bpb, "{line}");
    }
    let ckpt = srgpt::train::checkpoint::load(&run.join("bf16-sr.safetensors")).unwrap();
    assert_eq!((ckpt.tokenizer.name(), ckpt.state.model.vocab), ("gpt2", 50257));
    // the text itself under the byte tokenizer is another vocabulary
    let wrong = srgpt(&["train", "--headless", "--resume", r, "--corpus", text.to_str().unwrap(), "--tokenizer", "byte"]);
    assert_refused(&wrong, "--tokenizer byte was given, but");
    assert_refused(&wrong, "was trained with the gpt2 tokenizer (50257 tokens)");
    // resumed without naming the corpus or the tokenizer: the checkpoint's are used
    let resumed = srgpt(&["train", "--headless", "--resume", r]);
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    let steps = common::logged_losses(&run).iter().filter(|l| l["train_loss"].is_number()).count();
    assert_eq!(steps, 4, "the resumed run trained steps 3 and 4");
    let sampled =
        srgpt(&["sample", "--checkpoint", run.join("bf16-sr.safetensors").to_str().unwrap(), "--prompt", "ROMEO:", "--tokens", "8"]);
    assert!(sampled.status.success(), "{}", stderr(&sampled));
    assert!(String::from_utf8_lossy(&sampled.stdout).starts_with("ROMEO:"));
    let export = tmp("gpt2-export");
    let exported = srgpt(&["export", run.join("bf16-sr.safetensors").to_str().unwrap(), "--out", export.to_str().unwrap()]);
    assert!(exported.status.success(), "{}", stderr(&exported));
    let json = std::fs::read_to_string(export.join("tokenizer.json")).unwrap();
    assert_eq!(json, std::fs::read_to_string(dir.join("tokenizer.json")).unwrap(), "the export carries GPT-2's tokenizer.json");
    assert_eq!(Tokenizer::from_json(&json).unwrap(), Tokenizer::gpt2());
    for p in [&run, &export, &dir] {
        std::fs::remove_dir_all(p).ok();
    }
    std::fs::remove_file(text).ok();
}

fn last_val_loss(run: &Path, mode: &str) -> f64 {
    common::logged_losses(run).iter().rev().find(|l| l["run"] == mode && l["val_loss"].is_number()).unwrap()["val_loss"].as_f64().unwrap()
}

/// `srgpt tokenizer train` makes the same file of the same text; the file tokenizes a corpus
/// (`--tokenizer FILE`) whose model records the tokenizer's hash, refuses another tokenizer
/// on resume, exports that file (which transformers' AutoTokenizer loads, with srgpt's ids)
/// and comes back through `--init` with the checkpoint's loss, bit for bit.
#[test]
fn a_trained_tokenizer_trains_exports_and_loads_in_transformers() {
    let bpe = trained_tokenizer("bpe-run", 1500);
    let again = tmp("bpe-run-again").with_extension("json");
    let out = srgpt(&["tokenizer", "train", "shakespeare", "--vocab", "1500", "--out", again.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json = std::fs::read(&bpe).unwrap();
    assert_eq!(json, std::fs::read(&again).unwrap(), "the same text trains the same tokenizer");
    assert_refused(&srgpt(&["tokenizer", "train", "shakespeare", "--vocab", "1500", "--out", again.to_str().unwrap()]), "exists");
    assert_eq!(json, std::fs::read(&again).unwrap(), "an existing file is never replaced");
    assert_refused(&srgpt(&["tokenizer", "train", "shakespeare", "--vocab", "100", "--out", tmp("small").to_str().unwrap()]), "--vocab");
    let tokenizer = Tokenizer::from_file(&bpe).unwrap();
    assert_eq!((tokenizer.name(), tokenizer.vocab_size()), ("hf", 1500));
    assert_eq!(tokenizer.end_of_text(), Some(0), "<|endoftext|> is the trainer's special token");

    let (text, dir) = prepared("bpe-run", &TokenizerChoice::File(bpe.clone()));
    assert_eq!(std::fs::read(dir.join("tokenizer.json")).unwrap(), json, "the prepared folder keeps the file as it was");
    let run = tmp("bpe-run");
    let r = run.to_str().unwrap();
    // bf16-sr: `--init` starts every mode from bf16-rounded weights, which a bf16 checkpoint already is
    let base = ["train", "--headless", "--preset", "tiny", "--batch", "2", "--eval-batches", "1", "--seed", "5", "--precision", "bf16-sr"];
    let out = srgpt(
        &[
            &base[..],
            &["--corpus", text.to_str().unwrap(), "--tokenizer", bpe.to_str().unwrap()],
            &["--steps", "4", "--eval-every", "2", "--stop-at", "2", "--out", r],
        ]
        .concat(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // an untrained model spreads its bets over the 1,500 tokens
    assert!((first_val_loss(&run, "bf16-sr") - 1500f64.ln()).abs() < 0.1);
    let ckpt = srgpt::train::checkpoint::load(&run.join("bf16-sr.safetensors")).unwrap();
    assert_eq!(ckpt.tokenizer, tokenizer);
    assert_eq!(ckpt.state.model.vocab, 1500);
    // another tokenizer, named or carried by a prepared folder, is refused naming both
    assert_refused(
        &srgpt(&["train", "--headless", "--resume", r, "--tokenizer", "gpt2"]),
        "was trained with the tokenizer.json with sha256",
    );
    let (gpt2_text, gpt2_dir) = prepared("bpe-run", &TokenizerChoice::Gpt2);
    let other = srgpt(&["train", "--headless", "--resume", r, "--corpus", gpt2_dir.to_str().unwrap()]);
    assert_refused(&other, "was prepared with the gpt2 tokenizer (50257 tokens), but the model was trained with the tokenizer.json");
    // resumed on the prepared folder (the same tokens as the text under the file)
    let resumed = srgpt(&["train", "--headless", "--resume", r, "--corpus", dir.to_str().unwrap()]);
    assert!(resumed.status.success(), "{}", stderr(&resumed));

    let export = tmp("bpe-export");
    let exported = srgpt(&["export", run.join("bf16-sr.safetensors").to_str().unwrap(), "--out", export.to_str().unwrap()]);
    assert!(exported.status.success(), "{}", stderr(&exported));
    assert_eq!(std::fs::read(export.join("tokenizer.json")).unwrap(), json, "the export carries the tokenizer file");
    let init = tmp("bpe-init");
    let out = srgpt(
        &[
            &base[..],
            &[
                "--corpus",
                dir.to_str().unwrap(),
                "--init",
                export.to_str().unwrap(),
                "--steps",
                "2",
                "--eval-every",
                "2",
                "--out",
                init.to_str().unwrap(),
            ],
        ]
        .concat(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        first_val_loss(&init, "bf16-sr").to_bits(),
        last_val_loss(&run, "bf16-sr").to_bits(),
        "the exported model's first loss is the checkpoint's"
    );
    // transformers' AutoTokenizer reads the export's tokenizer with srgpt's ids
    let cases: Vec<(String, Vec<u32>)> =
        ["ROMEO: What, art thou hurt?", "  Exeunt, café 🙂\n\nEnter HAMLET", "<|endoftext|>A new document"]
            .iter()
            .map(|t| (t.to_string(), tokenizer.encode(t).unwrap()))
            .collect();
    assert_eq!(tokenizer.decode(&cases[1].1), cases[1].0.as_bytes(), "decoding is exact, emoji and all");
    let check = Command::new("python3")
        .args(["tests/tokenizer_check.py", export.to_str().unwrap(), "--cases", &serde_json::to_string(&cases).unwrap()])
        .output()
        .unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&check.stdout), stderr(&check));
    assert!(check.status.success(), "{said}");
    eprintln!("{said}");
    for p in [&run, &export, &init, &dir, &gpt2_dir] {
        std::fs::remove_dir_all(p).ok();
    }
    for f in [&bpe, &again, &text, &gpt2_text] {
        std::fs::remove_file(f).ok();
    }
}

/// GPT-2 124M itself on lavapipe: its bf16 weights (236 MiB) are larger than the 128 MiB one
/// binding may span there, so its kernels bind windows of them and AdamW runs in pieces. Two
/// steps at batch 1, ctx 128 (about 16 s each on 2 CPU cores) on a corpus prepared with
/// GPT-2's tokenizer.
#[test]
fn the_gpt2_preset_takes_two_steps_in_bf16_sr() {
    let (text, dir) = prepared("gpt2-124m", &TokenizerChoice::Gpt2);
    let run = tmp("gpt2-124m");
    let args = ["train", "--headless", "--corpus", dir.to_str().unwrap(), "--preset", "gpt2", "--precision", "bf16-sr", "--batch", "1"];
    let extra = ["--ctx", "128", "--steps", "2", "--eval-every", "0", "--eval-batches", "1", "--out", run.to_str().unwrap()];
    let out = srgpt(&[&args[..], &extra[..]].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("(123751680 parameters)"), "{}", stderr(&out));
    let steps: Vec<f64> = common::logged_losses(&run).iter().filter_map(|l| l["train_loss"].as_f64()).collect();
    assert_eq!(steps.len(), 2, "two steps");
    // from scratch: near ln(50257) = 10.8
    assert!(steps.iter().all(|l| (10.0..12.0).contains(l)), "train losses {steps:?}");
    for p in [&run, &dir] {
        std::fs::remove_dir_all(p).ok();
    }
    std::fs::remove_file(text).ok();
}

/// A prepared folder written from the format's table: `train_tokens` ids cycling through a
/// 64-token byte vocabulary, a small validation split.
fn synthetic(dir: &Path, train_tokens: u64) {
    use sha2::Digest;
    use std::io::Write;
    std::fs::create_dir_all(dir).unwrap();
    let tokenizer = Tokenizer::byte_of(&(b'0'..b'0' + 64).collect::<Vec<u8>>());
    let json = tokenizer.json_text();
    std::fs::write(dir.join("tokenizer.json"), &json).unwrap();
    for (name, count) in [("train.bin", train_tokens), ("val.bin", 4096)] {
        let mut header = [0u8; 1024];
        header[0..8].copy_from_slice(b"srgptTOK");
        header[8..12].copy_from_slice(&1u32.to_le_bytes());
        header[12..16].copy_from_slice(&2u32.to_le_bytes());
        header[16..24].copy_from_slice(&count.to_le_bytes());
        header[24..28].copy_from_slice(&64u32.to_le_bytes());
        header[32..64].copy_from_slice(&sha2::Sha256::digest(json.as_bytes()));
        header[64..68].copy_from_slice(b"byte");
        let mut out = std::io::BufWriter::new(std::fs::File::create(dir.join(name)).unwrap());
        out.write_all(&header).unwrap();
        let block: Vec<u8> = (0..1u64 << 16).flat_map(|i| ((i * 7 % 64) as u16).to_le_bytes()).collect();
        let mut left = count;
        while left > 0 {
            let n = left.min(1 << 16);
            out.write_all(&block[..2 * n as usize]).unwrap();
            left -= n;
        }
    }
}

/// The peak resident memory (VmHWM) of `srgpt train` on `corpus`, in MB, read from /proc
/// while it runs.
fn peak_rss_mb(corpus: &Path, out: &Path) -> f64 {
    let mut child = Command::new(env!("CARGO_BIN_EXE_srgpt"))
        .args(["train", "--headless", "--preset", "tiny", "--batch", "4", "--steps", "5", "--eval-every", "5", "--eval-batches", "1"])
        .args(["--precision", "bf16-sr", "--corpus"])
        .arg(corpus)
        .arg("--out")
        .arg(out)
        .env("SRGPT_TUNE", "0")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let status = format!("/proc/{}/status", child.id());
    let mut peak_kb = 0u64;
    loop {
        if let Ok(text) = std::fs::read_to_string(&status) {
            let hwm = text.lines().find_map(|l| l.strip_prefix("VmHWM:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok());
            peak_kb = peak_kb.max(hwm.unwrap_or(0));
        }
        if let Some(done) = child.try_wait().unwrap() {
            assert!(done.success(), "training on {} failed", corpus.display());
            return peak_kb as f64 / 1024.0;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn a_corpus_larger_than_memory_needs_no_more_memory() {
    // 1 GiB of tokens against 1 MiB: the same model, the same steps, the same peak memory
    let (small, large) = (tmp("rss-small"), tmp("rss-large"));
    synthetic(&small, 1 << 19);
    synthetic(&large, 1 << 29);
    let small_mb = peak_rss_mb(&small, &tmp("rss-small-run"));
    let large_mb = peak_rss_mb(&large, &tmp("rss-large-run"));
    eprintln!("peak resident memory: {small_mb:.0} MB on 1 MiB of tokens, {large_mb:.0} MB on 1 GiB");
    assert!(large_mb < small_mb + 32.0, "the 1 GiB corpus raised peak memory from {small_mb:.0} MB to {large_mb:.0} MB");
    for p in [small, large, tmp("rss-small-run"), tmp("rss-large-run")] {
        std::fs::remove_dir_all(p).ok();
    }
}
