//! Files written whole or not at all: checkpoints, summaries, a cut-back metrics.jsonl and the
//! tuning cache all go through [`write_atomically`].

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Result;

/// Writes `bytes` to `path` atomically: a temporary file beside it, fsync, rename, fsync of
/// the folder. A crash at any moment leaves either the old file or the new one.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let tmp: PathBuf = dir.join(format!(".{}.tmp", path.file_name().and_then(|n| n.to_str()).unwrap_or("checkpoint")));
    let result = (|| -> std::io::Result<()> {
        let mut file = std::fs::File::create(&tmp)?;
        if test_pause::due(path) {
            test_pause::hold(&mut file, path, bytes);
        }
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(anyhow::Error::new(e).context(format!("writing {} (the previous one is left as it was)", path.display())));
    }
    Ok(())
}

/// A test's way to kill a process inside a write for certain: with
/// `SRGPT_TEST_PAUSE_WRITE=<file name>:<n>`, the n-th write of a file of that name stops
/// half-written (its first half in the temporary file, synced), creates `.<file name>.tmp.paused`
/// and waits to be killed. Unset, it costs one environment lookup per write.
mod test_pause {
    use std::io::Write;
    use std::path::Path;
    use std::sync::atomic::{AtomicU32, Ordering};

    static WRITES: AtomicU32 = AtomicU32::new(0);

    pub fn due(path: &Path) -> bool {
        let Ok(spec) = std::env::var("SRGPT_TEST_PAUSE_WRITE") else { return false };
        let Some((name, nth)) = spec.rsplit_once(':') else { return false };
        let Ok(nth) = nth.parse::<u32>() else { return false };
        path.file_name().is_some_and(|n| n == name) && WRITES.fetch_add(1, Ordering::SeqCst) + 1 == nth
    }

    pub fn hold(file: &mut std::fs::File, path: &Path, bytes: &[u8]) -> ! {
        let _ = file.write_all(&bytes[..bytes.len() / 2]);
        let _ = file.sync_all();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let _ = std::fs::write(path.with_file_name(format!(".{name}.tmp.paused")), b"");
        loop {
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
    }
}
