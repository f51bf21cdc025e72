//! A browser session kept in the page's Origin Private File System, so a closed or reloaded
//! tab loses at most one save interval, and the downloads of the dashboard's Save button.
//!
//! Layout, under the folder `srgpt/` of the origin's private file system:
//! - `step-NNNNNNNNN/`: one snapshot, the same files `srgpt train` writes:
//!   `<precision>.safetensors` per run and `metrics.jsonl` (plus `corpus.bin`, a corpus
//!   that came from the file picker);
//! - `current.json`: `{"folder", "step", "corpus"}`, naming the newest complete snapshot.
//!
//! A snapshot's files are written first, each committed whole by the browser when its
//! writable stream closes; `current.json` is written last, then the older folders are
//! removed. A tab closed half-way leaves `current.json` naming the previous snapshot.

use std::cell::{Cell, RefCell};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{FileSystemDirectoryHandle, FileSystemFileHandle, FileSystemWritableFileStream};

use crate::precision::Precision;
use crate::train::checkpoint::{self, Checkpoint};
use crate::train::session::{KeepSnapshot, SavedSession};
use crate::train::Metric;

const ROOT: &str = "srgpt";
const CURRENT: &str = "current.json";
const CORPUS_FILE: &str = "corpus.bin";

/// `current.json`.
#[derive(Serialize, Deserialize)]
struct Current {
    folder: String,
    step: u32,
    /// the corpus's name: `builtin`, or a picked file kept beside the checkpoints
    corpus: String,
}

/// A session found in the private file system, ready to continue.
pub struct Saved {
    pub step: u32,
    pub checkpoints: Vec<Checkpoint>,
    pub log: Vec<Metric>,
    /// the corpus's name, and its bytes when it is not the builtin one
    pub corpus: (String, Option<Vec<u8>>),
}

/// A snapshot waiting to be written: its files, the `current.json` that will name it, and a
/// picked corpus's bytes.
type Pending = (SavedSession, Current, Option<Arc<[u8]>>);

thread_local! {
    /// the newest snapshot not yet written, and whether a writer is at work
    static NEXT: RefCell<Option<Pending>> = const { RefCell::new(None) };
    static WRITING: Cell<bool> = const { Cell::new(false) };
    /// the step of the newest snapshot on disk, and the last failure
    static KEPT_STEP: Cell<Option<u32>> = const { Cell::new(None) };
    static KEEP_ERROR: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// The step of the newest snapshot written in this page, if any.
pub fn kept_step() -> Option<u32> {
    KEPT_STEP.with(Cell::get)
}

/// Why the last snapshot could not be kept, if it could not.
pub fn keep_error() -> Option<String> {
    KEEP_ERROR.with(|e| e.borrow().clone())
}

fn js_error(doing: &str, e: JsValue) -> String {
    let text =
        e.dyn_ref::<js_sys::Error>().map(|e| String::from(e.message())).or_else(|| e.as_string()).unwrap_or_else(|| format!("{e:?}"));
    format!("{doing}: {text}")
}

/// The origin's private file system.
async fn private_root() -> Result<FileSystemDirectoryHandle, String> {
    let navigator = web_sys::window().ok_or("no window")?.navigator();
    let top = JsFuture::from(navigator.storage().get_directory()).await.map_err(|e| js_error("opening the private file system", e))?;
    Ok(top.unchecked_into())
}

/// srgpt's folder in it.
async fn root() -> Result<FileSystemDirectoryHandle, String> {
    folder(&private_root().await?, ROOT).await
}

async fn folder(parent: &FileSystemDirectoryHandle, name: &str) -> Result<FileSystemDirectoryHandle, String> {
    let options = web_sys::FileSystemGetDirectoryOptions::new();
    options.set_create(true);
    let handle = JsFuture::from(parent.get_directory_handle_with_options(name, &options)).await.map_err(|e| js_error(name, e))?;
    Ok(handle.unchecked_into())
}

async fn write(dir: &FileSystemDirectoryHandle, name: &str, bytes: &[u8]) -> Result<(), String> {
    let options = web_sys::FileSystemGetFileOptions::new();
    options.set_create(true);
    let file: FileSystemFileHandle =
        JsFuture::from(dir.get_file_handle_with_options(name, &options)).await.map_err(|e| js_error(name, e))?.unchecked_into();
    let stream: FileSystemWritableFileStream =
        JsFuture::from(file.create_writable()).await.map_err(|e| js_error(name, e))?.unchecked_into();
    JsFuture::from(stream.write_with_u8_array(bytes).map_err(|e| js_error(name, e))?).await.map_err(|e| js_error(name, e))?;
    // the browser replaces the file's contents only here, all at once
    JsFuture::from(stream.close()).await.map_err(|e| js_error(name, e))?;
    Ok(())
}

/// The file's bytes; `None` if it does not exist.
async fn read(dir: &FileSystemDirectoryHandle, name: &str) -> Result<Option<Vec<u8>>, String> {
    let Ok(file) = JsFuture::from(dir.get_file_handle(name)).await else {
        return Ok(None);
    };
    let file: FileSystemFileHandle = file.unchecked_into();
    let blob: web_sys::File = JsFuture::from(file.get_file()).await.map_err(|e| js_error(name, e))?.unchecked_into();
    let buffer = JsFuture::from(blob.array_buffer()).await.map_err(|e| js_error(name, e))?;
    Ok(Some(js_sys::Uint8Array::new(&buffer).to_vec()))
}

async fn remove(dir: &FileSystemDirectoryHandle, name: &str) -> Result<(), String> {
    let options = web_sys::FileSystemRemoveOptions::new();
    options.set_recursive(true);
    JsFuture::from(dir.remove_entry_with_options(name, &options)).await.map_err(|e| js_error(name, e))?;
    Ok(())
}

/// Writes one snapshot: its folder, then `current.json`, then removes the folder it replaces.
async fn write_snapshot(saved: &SavedSession, current: &Current, corpus: Option<&[u8]>) -> Result<(), String> {
    let root = root().await?;
    let previous: Option<Current> = read(&root, CURRENT).await?.and_then(|b| serde_json::from_slice(&b).ok());
    let dir = folder(&root, &current.folder).await?;
    for (name, bytes) in &saved.files {
        write(&dir, name, bytes).await?;
    }
    if let Some(bytes) = corpus {
        write(&dir, CORPUS_FILE, bytes).await?;
    }
    write(&root, CURRENT, serde_json::to_string(current).map_err(|e| e.to_string())?.as_bytes()).await?;
    if let Some(old) = previous.filter(|p| p.folder != current.folder) {
        remove(&root, &old.folder).await?;
    }
    Ok(())
}

/// Writes the newest snapshot handed over, one at a time: a snapshot that arrives while
/// another is being written replaces any still waiting.
async fn writer() {
    while let Some((saved, current, corpus)) = NEXT.with(|n| n.borrow_mut().take()) {
        match write_snapshot(&saved, &current, corpus.as_deref()).await {
            Ok(()) => {
                KEPT_STEP.with(|k| k.set(Some(saved.step)));
                KEEP_ERROR.with(|e| *e.borrow_mut() = None);
            }
            Err(e) => KEEP_ERROR.with(|slot| *slot.borrow_mut() = Some(format!("saving in the browser failed: {e}"))),
        }
    }
    WRITING.with(|w| w.set(false));
}

/// What a page session keeps its snapshots with: the private file system. `corpus` names
/// the session's corpus, with its bytes when it came from the file picker.
pub fn keeper(corpus: String, corpus_bytes: Option<Arc<[u8]>>) -> KeepSnapshot {
    Arc::new(move |result: Result<SavedSession, String>| match result {
        Ok(saved) => {
            let current = Current { folder: format!("step-{:09}", saved.step), step: saved.step, corpus: corpus.clone() };
            NEXT.with(|n| *n.borrow_mut() = Some((saved, current, corpus_bytes.clone())));
            if !WRITING.with(|w| w.replace(true)) {
                wasm_bindgen_futures::spawn_local(writer());
            }
        }
        Err(e) => KEEP_ERROR.with(|slot| *slot.borrow_mut() = Some(e)),
    })
}

/// The session kept in this browser, if any; an error if one is there but cannot be used.
pub async fn load() -> Result<Option<Saved>, String> {
    let root = root().await?;
    let Some(current) = read(&root, CURRENT).await? else {
        return Ok(None);
    };
    let current: Current = serde_json::from_slice(&current).map_err(|e| format!("{CURRENT}: {e}"))?;
    let dir = folder(&root, &current.folder).await?;
    let mut checkpoints = Vec::new();
    for p in Precision::ALL {
        let name = format!("{}.safetensors", p.name());
        if let Some(bytes) = read(&dir, &name).await? {
            checkpoints.push(checkpoint::decode(&bytes).map_err(|e| format!("{name}: {e}"))?);
        }
    }
    if checkpoints.is_empty() {
        return Err(format!("{} holds no checkpoint", current.folder));
    }
    let log = match read(&dir, "metrics.jsonl").await? {
        Some(bytes) => crate::train::parse_metrics(&String::from_utf8_lossy(&bytes), "metrics.jsonl").map_err(|e| e.to_string())?,
        None => Vec::new(),
    };
    let bytes = if crate::data::BUILT_IN_CORPORA.contains(&current.corpus.as_str()) { None } else { read(&dir, CORPUS_FILE).await? };
    Ok(Some(Saved { step: current.step, checkpoints, log, corpus: (current.corpus, bytes) }))
}

/// Removes the kept session.
pub async fn discard() -> Result<(), String> {
    // nothing to remove is fine
    let _ = remove(&private_root().await?, ROOT).await;
    KEPT_STEP.with(|k| k.set(None));
    Ok(())
}

/// Hands `bytes` to the browser as a download called `name` (through a Blob URL).
pub fn download(name: &str, bytes: &[u8]) -> Result<(), String> {
    let document = web_sys::window().and_then(|w| w.document()).ok_or("no document")?;
    let parts = js_sys::Array::of1(&js_sys::Uint8Array::from(bytes));
    let blob = web_sys::Blob::new_with_u8_array_sequence(&parts).map_err(|e| js_error(name, e))?;
    let url = web_sys::Url::create_object_url_with_blob(&blob).map_err(|e| js_error(name, e))?;
    let link: web_sys::HtmlAnchorElement = document.create_element("a").map_err(|e| js_error(name, e))?.unchecked_into();
    link.set_href(&url);
    link.set_download(name);
    link.click();
    // the download has its own reference to the blob once started
    let revoke = Closure::once_into_js(move || {
        let _ = web_sys::Url::revoke_object_url(&url);
    });
    let _ = web_sys::window().map(|w| w.set_timeout_with_callback_and_timeout_and_arguments_0(revoke.unchecked_ref(), 10_000));
    Ok(())
}

/// What the Save button keeps a snapshot with: every file of it downloaded.
pub fn downloader() -> KeepSnapshot {
    Arc::new(|result: Result<SavedSession, String>| {
        let outcome = result.and_then(|saved| saved.files.iter().try_for_each(|(name, bytes)| download(name, bytes)));
        if let Err(e) = outcome {
            KEEP_ERROR.with(|slot| *slot.borrow_mut() = Some(format!("download failed: {e}")));
        }
    })
}
