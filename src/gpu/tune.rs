//! Kernel variants chosen by measurement on the adapter at hand: the first time a shape is
//! seen, each candidate is timed and the fastest kept, in memory and in a small JSON file per
//! adapter and driver (under $SRGPT_CACHE_DIR, else $XDG_CACHE_HOME/srgpt, else
//! ~/.cache/srgpt), so later runs start at once. In the background (the default) a shape
//! never seen runs at once on the built-in choice and its measurement waits in a queue that
//! training drains between its steps ([`Gpu::measure_deferred`]), within a small share of
//! the wall time, taking up each better choice at a step boundary. The file's name and contents name the
//! adapter, its driver and srgpt's version: a file that does not match them (another driver,
//! another srgpt, a damaged file) is set aside with a note and measured again. SRGPT_TUNE=0
//! turns measuring and the file off (the kernels then use their built-in heuristics). No
//! choice changes a bit of any result: each kernel's candidates add the same terms in the
//! same order.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{AdapterReport, Gpu};

/// A measurement put off until a run has time for it: it returns the parameters to keep.
pub type Measurement = Box<dyn FnOnce(&Gpu) -> anyhow::Result<Vec<u32>> + Send>;

struct Deferred {
    key: String,
    /// the parameters the dispatches were built with meanwhile
    fallback: Vec<u32>,
    measure: Measurement,
}

#[derive(Default, Serialize, Deserialize)]
struct CacheFile {
    adapter: String,
    driver: String,
    #[serde(default)]
    srgpt: String,
    /// variant key -> the winning parameters
    choices: BTreeMap<String, Vec<u32>>,
}

pub struct TuneCache {
    path: Option<PathBuf>,
    file: CacheFile,
    pub enabled: bool,
    /// measure a new shape later, between training steps, instead of before its first use
    pub background: bool,
    deferred: Vec<Deferred>,
    /// (key prefix, parameters) answered for keys with no choice of their own (`forcing`)
    forced: Vec<(String, Vec<u32>)>,
    announced: bool,
}

pub(super) fn cache_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("SRGPT_CACHE_DIR") {
        return Some(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(d).join("srgpt"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache").join("srgpt"))
}

/// FNV-1a: a stable name for an adapter + driver (+ srgpt version, as kernels change).
pub(super) fn fingerprint(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
}

impl TuneCache {
    /// The cache of this adapter in the default folder.
    pub fn open(report: &AdapterReport) -> TuneCache {
        let dir = if cfg!(target_arch = "wasm32") { None } else { cache_dir() };
        TuneCache::in_dir(dir, report)
    }

    /// The cache of this adapter in `dir` (`None`: in memory only).
    pub fn in_dir(dir: Option<PathBuf>, report: &AdapterReport) -> TuneCache {
        // timing a candidate waits for the GPU, which a browser cannot do
        let enabled = !cfg!(target_arch = "wasm32") && std::env::var("SRGPT_TUNE").map(|v| v != "0").unwrap_or(true);
        let driver = format!("{} {} {}", report.backend, report.driver, report.driver_info);
        let srgpt = env!("CARGO_PKG_VERSION").to_string();
        let id = fingerprint(&format!("{}|{driver}|{srgpt}", report.name));
        let path = dir.filter(|_| enabled).map(|d| d.join(format!("tuning-{id:016x}.json")));
        let fresh = CacheFile { adapter: report.name.clone(), driver, srgpt, choices: BTreeMap::new() };
        let file = match path.as_ref().and_then(|p| std::fs::read(p).ok().map(|b| (p, b))) {
            None => fresh,
            Some((p, bytes)) => match serde_json::from_slice::<CacheFile>(&bytes) {
                Ok(f) if (&f.adapter, &f.driver, &f.srgpt) == (&fresh.adapter, &fresh.driver, &fresh.srgpt) => f,
                Ok(f) => {
                    eprintln!(
                        "note: ignoring the tuning cache {}: written for {} ({}) by srgpt {}, not {} ({}) by srgpt {}; measuring again",
                        p.display(),
                        f.adapter,
                        f.driver,
                        if f.srgpt.is_empty() { "unknown" } else { &f.srgpt },
                        fresh.adapter,
                        fresh.driver,
                        fresh.srgpt
                    );
                    fresh
                }
                Err(e) => {
                    eprintln!("note: ignoring the tuning cache {}: not readable ({e}); measuring again", p.display());
                    fresh
                }
            },
        };
        TuneCache { path, file, enabled, background: true, deferred: Vec::new(), forced: Vec::new(), announced: false }
    }

    /// A cache in memory that measures nothing and answers with `choices` (key, parameters):
    /// how a test forces a kernel choice.
    pub fn fixed(report: &AdapterReport, choices: &[(&str, Vec<u32>)]) -> TuneCache {
        let mut cache = TuneCache::in_dir(None, report);
        cache.enabled = false;
        cache.file.choices = choices.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        cache
    }

    /// The file the choices are kept in (None: in memory only).
    pub fn path(&self) -> Option<&std::path::Path> {
        self.path.as_deref()
    }

    pub fn len(&self) -> usize {
        self.file.choices.len()
    }

    pub fn is_empty(&self) -> bool {
        self.file.choices.is_empty()
    }

    pub fn get(&self, key: &str) -> Option<&[u32]> {
        let forced = || self.forced.iter().find(|(prefix, _)| key.starts_with(prefix.as_str())).map(|(_, p)| p.as_slice());
        self.file.choices.get(key).map(Vec::as_slice).or_else(forced)
    }

    /// A cache in memory that measures nothing and answers every key that starts with
    /// `prefix` with `params`: how a test forces one kernel variant on every problem.
    pub fn forcing(report: &AdapterReport, prefix: &str, params: Vec<u32>) -> TuneCache {
        let mut cache = TuneCache::fixed(report, &[]);
        cache.forced.push((prefix.to_string(), params));
        cache
    }

    /// Says once per process that a measurement is starting: on a CPU adapter the first
    /// run's measurements (and the driver compiling every candidate) can take many seconds
    /// with nothing else to show.
    pub fn announce_measuring(&mut self) {
        if !self.announced {
            self.announced = true;
            let kept = self.path.as_ref().map_or("in memory only".to_string(), |p| format!("kept in {}", p.display()));
            eprintln!("measuring kernel variants on this adapter, once per adapter and driver ({kept}); SRGPT_TUNE=0 skips it");
        }
    }

    /// Queues the measurement of `key` (once: a later one for the same key replaces it, and
    /// the buffers the earlier one held are let go); the dispatches use `fallback` meanwhile.
    pub fn defer(&mut self, key: String, fallback: Vec<u32>, measure: Measurement) {
        self.deferred.retain(|d| d.key != key);
        self.deferred.push(Deferred { key, fallback, measure });
    }

    /// Measurements waiting for a run's spare time.
    pub fn deferred(&self) -> usize {
        self.deferred.len()
    }

    /// Remembers a choice and writes the file (best effort: a read-only home only costs the
    /// next run its measurements).
    pub fn insert(&mut self, key: String, choice: Vec<u32>) {
        self.file.choices.insert(key, choice);
        if let (Some(path), Ok(bytes)) = (&self.path, serde_json::to_vec_pretty(&self.file)) {
            let _ = path.parent().map(std::fs::create_dir_all);
            let _ = crate::files::write_atomically(path, &bytes);
        }
    }
}

impl Gpu {
    /// Makes the oldest deferred measurement and keeps its choice; returns whether that choice
    /// differs from the one the dispatches were built with (they should then be built again),
    /// or None when nothing was waiting.
    pub fn measure_deferred(&self) -> anyhow::Result<Option<bool>> {
        let next = {
            let mut tuning = self.tuning.lock().unwrap();
            if tuning.deferred.is_empty() {
                return Ok(None);
            }
            tuning.deferred.remove(0)
        };
        // measured without the lock: measuring builds dispatches, which look choices up
        let chosen = (next.measure)(self)?;
        let changed = chosen != next.fallback;
        self.tuning.lock().unwrap().insert(next.key, chosen);
        Ok(Some(changed))
    }
}
