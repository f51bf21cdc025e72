//! Ctrl-C and SIGTERM: the first asks the run to stop after the step in flight, with its
//! checkpoints written; a second exits at once.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::Result;

/// The signal (SIGINT or SIGTERM) that asked the run to stop, 0 until one does. The first
/// lets the step in flight finish and the checkpoints be written; a second exits at once.
#[cfg(unix)]
pub fn watch_stop_signals() -> Result<Arc<AtomicUsize>> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let stop = Arc::new(AtomicUsize::new(0));
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    let seen = stop.clone();
    std::thread::spawn(move || {
        for signal in signals.forever() {
            let name = if signal == SIGINT { "Ctrl-C" } else { "SIGTERM" };
            if seen.swap(signal as usize, Ordering::SeqCst) != 0 {
                eprintln!("\nsrgpt: {name} again: exiting at once (the checkpoints on disk are the last complete ones)");
                std::process::exit(128 + signal);
            }
            eprintln!("\nsrgpt: {name}: finishing the step in flight and writing checkpoints (press Ctrl-C again to exit at once)");
        }
    });
    Ok(stop)
}

/// Elsewhere (Windows) without the messages: a first Ctrl-C sets the flag, a second exits.
#[cfg(not(unix))]
pub fn watch_stop_signals() -> Result<Arc<AtomicUsize>> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let stop = Arc::new(AtomicUsize::new(0));
    let stopping = Arc::new(std::sync::atomic::AtomicBool::new(false));
    for signal in [SIGINT, SIGTERM] {
        // registered first, so it sees the flag as the previous signal left it
        signal_hook::flag::register_conditional_shutdown(signal, 128 + signal, stopping.clone())?;
        signal_hook::flag::register(signal, stopping.clone())?;
        signal_hook::flag::register_usize(signal, stop.clone(), signal as usize)?;
    }
    Ok(stop)
}
