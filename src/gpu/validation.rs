//! Messages of the Vulkan validation layer, when it is loaded: with `WGPU_VALIDATION=1` (on by
//! default in debug builds) and the Khronos layer installed (`vulkan-validationlayers` on
//! Debian), wgpu hands each message to the `log` crate. srgpt prints them on stderr and makes
//! the next GPU error check fail with them, so a run or a test under validation stops at the
//! first message instead of scrolling past it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

static MESSAGES: Mutex<Vec<String>> = Mutex::new(Vec::new());
/// whether the last record was a validation message (its detail lines follow it)
static IN_MESSAGE: AtomicBool = AtomicBool::new(false);

struct ValidationLog;

impl log::Log for ValidationLog {
    fn enabled(&self, meta: &log::Metadata) -> bool {
        meta.level() <= log::Level::Warn && meta.target().starts_with("wgpu_hal::vulkan")
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let text = record.args().to_string();
        // wgpu-hal writes "<message type> [<VUID> (<id>)]\n\t<message>", then detail lines
        // starting with a tab
        if text.starts_with("VALIDATION") {
            IN_MESSAGE.store(true, Ordering::SeqCst);
            eprintln!("vulkan validation {}: {text}", record.level());
            MESSAGES.lock().unwrap().push(text);
        } else if text.starts_with('\t') && IN_MESSAGE.load(Ordering::SeqCst) {
            eprintln!("{text}");
        } else {
            IN_MESSAGE.store(false, Ordering::SeqCst);
        }
    }

    fn flush(&self) {}
}

/// Routes wgpu's validation messages here (once per process; a logger set by someone else
/// stays).
pub fn install() {
    if log::set_logger(&ValidationLog).is_ok() {
        log::set_max_level(log::LevelFilter::Warn);
    }
}

/// The validation messages since the last call.
pub fn take() -> Vec<String> {
    std::mem::take(&mut *MESSAGES.lock().unwrap())
}
