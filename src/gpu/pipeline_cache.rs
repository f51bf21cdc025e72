//! Compiled pipelines kept across runs where the backend can keep them: Vulkan's pipeline
//! cache (`Features::PIPELINE_CACHE`), one file per adapter and driver beside the tuning
//! cache. The file is loaded when the device opens and written again, whole or not at all,
//! when pipelines were compiled since; a later launch hands it to the driver, which can skip
//! compiling what it holds. The file starts with the SHA-256 of what follows: a damaged file
//! is never given to the driver (wgpu checks only the header: adapter, driver, size), only
//! set aside with a note, and the cache starts empty.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

use super::AdapterReport;

pub struct PipelineCache {
    pub cache: wgpu::PipelineCache,
    /// where the cache is kept (None: in memory only)
    path: Option<PathBuf>,
    /// pipelines compiled since the file was last written
    unsaved: AtomicU64,
}

impl PipelineCache {
    /// The device's pipeline cache, from the file in `dir` where one is there and whole; None
    /// where the device has no pipeline cache.
    pub fn open(device: &wgpu::Device, report: &AdapterReport, dir: Option<PathBuf>) -> Option<PipelineCache> {
        if !device.features().contains(wgpu::Features::PIPELINE_CACHE) {
            return None;
        }
        let path = dir.map(|d| PipelineCache::file_in(&d, report));
        let data = path.as_ref().and_then(|p| std::fs::read(p).ok().map(|bytes| (p, bytes))).and_then(|(p, bytes)| {
            match bytes.split_at_checked(32) {
                Some((sum, data)) if Sha256::digest(data).as_slice() == sum => Some(data.to_vec()),
                _ => {
                    eprintln!("note: ignoring the pipeline cache {}: damaged (its checksum does not match); compiling again", p.display());
                    None
                }
            }
        });
        // SAFETY: the data is what this adapter's driver gave `get_data` (its SHA-256 says
        // the bytes are unchanged), and wgpu checks its header against the adapter and driver;
        // `fallback` gives an empty cache where the driver still refuses it
        let cache = unsafe {
            device.create_pipeline_cache(&wgpu::PipelineCacheDescriptor {
                label: Some("srgpt pipelines"),
                data: data.as_deref(),
                fallback: true,
            })
        };
        Some(PipelineCache { cache, path, unsaved: AtomicU64::new(0) })
    }

    /// The file of `report`'s adapter and driver in the cache folder `dir`.
    pub fn file_in(dir: &std::path::Path, report: &AdapterReport) -> PathBuf {
        let id = super::tune::fingerprint(&format!("{}|{} {} {}|wgpu 30", report.name, report.backend, report.driver, report.driver_info));
        dir.join(format!("pipelines-{id:016x}.bin"))
    }

    /// The file of `report`'s adapter in the default cache folder (see [`super::tune`]), where
    /// the adapter offers a pipeline cache.
    pub fn default_file(report: &AdapterReport) -> Option<PathBuf> {
        let offered = report.features.iter().any(|f| f == "pipeline_cache");
        super::tune::cache_dir().filter(|_| offered).map(|d| PipelineCache::file_in(&d, report))
    }

    pub fn compiled(&self) {
        self.unsaved.fetch_add(1, Ordering::Relaxed);
    }

    /// Writes the file when pipelines were compiled since it was last written (best effort:
    /// a read-only cache folder only costs the next launch its compiling). Asking the driver
    /// for its data serializes the whole cache, so nothing is asked when nothing is new.
    pub fn save(&self) {
        let Some(path) = &self.path else {
            return;
        };
        if self.unsaved.swap(0, Ordering::Relaxed) == 0 {
            return;
        }
        let Some(data) = self.cache.get_data() else {
            return;
        };
        let mut file = Sha256::digest(&data).to_vec();
        file.extend_from_slice(&data);
        let _ = path.parent().map(std::fs::create_dir_all);
        let _ = crate::files::write_atomically(path, &file);
    }
}
