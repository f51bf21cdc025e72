//! `srgpt info`: the adapters wgpu sees, the one srgpt picks, and what srgpt uses of it.

use std::process::ExitCode;

use anyhow::Result;
use srgpt::gpu::pipeline_cache::PipelineCache;
use srgpt::gpu::tune::TuneCache;
use srgpt::gpu::{self, AdapterReport};

/// What is kept on disk for an adapter, so a second launch starts at once: the kernel
/// choices measured on it and the driver's compiled pipelines.
fn caches(report: &AdapterReport) -> serde_json::Value {
    let tuning = TuneCache::open(report);
    let pipelines = PipelineCache::default_file(report);
    serde_json::json!({
        "tuning": {
            "enabled": tuning.enabled,
            "path": tuning.path(),
            "choices": tuning.len(),
        },
        "pipelines": {
            "offered": report.features.iter().any(|f| f == "pipeline_cache"),
            "path": pipelines,
            "bytes": pipelines.as_ref().and_then(|p| std::fs::metadata(p).ok()).map(|m| m.len()),
        },
    })
}

pub fn info(filter: Option<&str>, json: bool) -> Result<ExitCode> {
    let instance = gpu::new_instance();
    let adapters = gpu::list_adapters(&instance)?;
    let reports: Vec<AdapterReport> = adapters.iter().map(AdapterReport::of).collect();
    let chosen = gpu::choose_adapter(adapters, filter).map(|a| AdapterReport::of(&a));
    if json {
        let doc = serde_json::json!({
            "adapters": reports,
            "adapter": chosen.as_ref().ok(),
            "caches": chosen.as_ref().ok().map(caches),
            "error": chosen.as_ref().err().map(|e| e.to_string()),
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        println!("adapters:");
        for r in &reports {
            println!("  {}", r.summary());
        }
        if let Ok(c) = &chosen {
            println!("chosen: {}", c.summary());
            println!("  driver: {} {}", c.driver, c.driver_info);
            for path in c.paths() {
                println!("  {path}");
            }
            println!("  features: {}", if c.features.is_empty() { "none".into() } else { c.features.join(", ") });
            let kept = caches(c);
            let (tuning, pipelines) = (&kept["tuning"], &kept["pipelines"]);
            let tuning_line = match (tuning["enabled"].as_bool(), tuning["path"].as_str()) {
                (Some(false), _) => "off (SRGPT_TUNE=0): built-in kernel choices, nothing measured or kept".to_string(),
                (_, None) => format!("{} kernel choices, in memory only (no cache folder: set SRGPT_CACHE_DIR)", tuning["choices"]),
                (_, Some(path)) => format!("{} kernel choices measured on this adapter, in {path}", tuning["choices"]),
            };
            println!("  tuning cache: {tuning_line}");
            let pipelines_line = match (pipelines["offered"].as_bool(), pipelines["path"].as_str(), pipelines["bytes"].as_u64()) {
                (Some(false), _, _) => "not offered by this backend".to_string(),
                (_, None, _) => "none (no cache folder: set SRGPT_CACHE_DIR)".to_string(),
                (_, Some(path), None) => format!("none yet ({path} is written by the first training run)"),
                (_, Some(path), Some(bytes)) => format!("{} KiB of compiled pipelines in {path}", bytes.div_ceil(1024)),
            };
            println!("  pipeline cache: {pipelines_line}");
            let l = &c.limits;
            println!("  max_storage_buffer_binding_size: {} MiB", l.max_storage_buffer_binding_size >> 20);
            println!("  max_buffer_size: {} MiB", l.max_buffer_size >> 20);
            println!("  max_storage_buffers_per_shader_stage: {}", l.max_storage_buffers_per_shader_stage);
            println!("  max_compute_invocations_per_workgroup: {}", l.max_compute_invocations_per_workgroup);
            println!("  max_compute_workgroup_storage_size: {} bytes", l.max_compute_workgroup_storage_size);
            println!("  max_compute_workgroups_per_dimension: {}", l.max_compute_workgroups_per_dimension);
        }
    }
    chosen?;
    Ok(ExitCode::SUCCESS)
}
