//! The browser build in a real browser: builds the page with `scripts/build-web.sh`, then
//! `web/browser-test.mjs` serves it on 127.0.0.1 and drives headless Chromium (WebGPU on its
//! SwiftShader adapter) through playwright-core: an adapter is found, a few steps run, every
//! run's train loss falls, a screenshot shows the loss curves, and a tokenizer.json fetched
//! by the page tokenizes its corpus. Needs chromium, node and
//! npm; without them it is skipped with a note, except when SRGPT_CI is set (as in CI).

mod common;

use std::path::Path;
use std::process::Command;

use common::which;

fn run(what: &str, cmd: &mut Command) {
    let status = cmd.status().unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    assert!(status.success(), "{what} failed ({status})");
}

#[test]
fn the_browser_build_trains_in_headless_chromium() {
    let required = std::env::var_os("SRGPT_CI").is_some();
    let chromium = std::env::var("CHROMIUM").map(Into::into).or_else(|_| which("chromium"));
    let missing: Vec<&str> = [("chromium", chromium.is_err()), ("node", which("node").is_err()), ("npm", which("npm").is_err())]
        .iter()
        .filter(|(_, gone)| *gone)
        .map(|(name, _)| *name)
        .collect();
    if !missing.is_empty() {
        assert!(!required, "the browser test needs {} (apt-get install chromium nodejs npm)", missing.join(", "));
        eprintln!("skipped: {} not installed", missing.join(", "));
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // its own target folder: `cargo test` holds the lock of the main one while tests run
    let work = root.join("target").join("web-test");
    let dist = work.join("dist");
    run(
        "scripts/build-web.sh",
        Command::new("bash").arg("scripts/build-web.sh").arg(&dist).env("CARGO_TARGET_DIR", work.join("cargo")).current_dir(root),
    );
    // a tokenizer.json beside the page, for ?tokenizer=tok.json: a BPE of the builtin corpus
    let builtin = work.join("builtin.txt");
    std::fs::write(&builtin, srgpt::data::Corpus::text_of("builtin").unwrap()).unwrap();
    let json = srgpt::data::hf_tokenizer::train_bpe(&[builtin.display().to_string()], 300).unwrap();
    std::fs::write(dist.join("tok.json"), json).unwrap();
    if !root.join("web/node_modules/playwright-core").is_dir() {
        run("npm ci", Command::new("npm").args(["ci", "--no-audit", "--no-fund"]).current_dir(root.join("web")));
    }
    run(
        "web/browser-test.mjs",
        Command::new("node")
            .arg("web/browser-test.mjs")
            .arg(&dist)
            .arg(work.join("page.png"))
            .env("CHROMIUM", chromium.unwrap())
            .current_dir(root),
    );
}
