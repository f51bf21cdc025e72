//! Native file dialogs for the dashboard (the `rfd` crate): each opens on a thread of its
//! own, so the window keeps drawing while it is open, and its answer is picked up by the next
//! frame ([`App::take_dialogs`](super::App)). Typing a path stays possible; a test delivers
//! answers with [`deliver`] instead of opening a dialog.
use eframe::egui;

use std::path::PathBuf;
use std::sync::Mutex;

/// What a dialog was opened for, with the paths chosen.
#[derive(Clone, Debug, PartialEq)]
pub enum Picked {
    /// a corpus file
    Corpus(PathBuf),
    /// a tokenizer.json
    Tokenizer(PathBuf),
    /// the folder new runs write into
    OutDir(PathBuf),
    /// a run's folder or its metrics.jsonl, to view
    View(PathBuf),
    /// one run's `<precision>.safetensors` files (and its metrics.jsonl), to continue
    Checkpoints(Vec<PathBuf>),
    /// a checkpoint and the new folder to export it to (Hugging Face layout)
    Export { checkpoint: PathBuf, to: PathBuf },
}

/// Which dialog to open.
#[derive(Clone, Copy, Debug)]
pub enum Dialog {
    Corpus,
    Tokenizer,
    OutDir,
    ViewFolder,
    ViewFile,
    Checkpoints,
    Export,
}

static ANSWERS: Mutex<Vec<Picked>> = Mutex::new(Vec::new());

/// Hands an answer to the dashboard as a dialog would.
pub fn deliver(picked: Picked) {
    ANSWERS.lock().unwrap().push(picked);
}

/// The answers since the last call.
pub fn take() -> Vec<Picked> {
    std::mem::take(&mut *ANSWERS.lock().unwrap())
}

/// Opens `dialog` on a thread; a cancelled dialog answers nothing.
pub fn open(dialog: Dialog, ctx: &egui::Context) {
    let ctx = ctx.clone();
    std::thread::spawn(move || {
        let picked = match dialog {
            Dialog::Corpus => rfd::FileDialog::new().set_title("Corpus: any file, read as bytes").pick_file().map(Picked::Corpus),
            Dialog::Tokenizer => rfd::FileDialog::new()
                .set_title("A Hugging Face tokenizer.json")
                .add_filter("tokenizer", &["json"])
                .pick_file()
                .map(Picked::Tokenizer),
            Dialog::OutDir => {
                rfd::FileDialog::new().set_title("Folder for the runs' metrics and checkpoints").pick_folder().map(Picked::OutDir)
            }
            Dialog::ViewFolder => rfd::FileDialog::new().set_title("A run's folder").pick_folder().map(Picked::View),
            Dialog::ViewFile => {
                rfd::FileDialog::new().set_title("A run's metrics").add_filter("metrics", &["jsonl"]).pick_file().map(Picked::View)
            }
            Dialog::Checkpoints => rfd::FileDialog::new()
                .set_title("One run's checkpoints (<precision>.safetensors) and its metrics.jsonl")
                .add_filter("checkpoints and metrics", &["safetensors", "jsonl"])
                .pick_files()
                .map(Picked::Checkpoints),
            Dialog::Export => rfd::FileDialog::new()
                .set_title("The checkpoint to export for Hugging Face")
                .add_filter("checkpoint", &["safetensors"])
                .pick_file()
                .and_then(|checkpoint| {
                    let name = format!("{}-hf", checkpoint.file_stem().unwrap_or_default().to_string_lossy());
                    rfd::FileDialog::new()
                        .set_title("The new folder to write")
                        .set_file_name(name)
                        .save_file()
                        .map(|to| Picked::Export { checkpoint, to })
                }),
        };
        if let Some(p) = picked {
            deliver(p);
            ctx.request_repaint();
        }
    });
}
