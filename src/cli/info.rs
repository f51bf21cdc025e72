//! `srgpt info`: the adapters wgpu sees, the one srgpt picks, and what srgpt uses of it.

use std::process::ExitCode;

use anyhow::Result;
use srgpt::gpu::{self, AdapterReport};

pub fn info(filter: Option<&str>, json: bool) -> Result<ExitCode> {
    let instance = gpu::new_instance();
    let adapters = gpu::list_adapters(&instance)?;
    let reports: Vec<AdapterReport> = adapters.iter().map(AdapterReport::of).collect();
    let chosen = gpu::choose_adapter(adapters, filter).map(|a| AdapterReport::of(&a));
    if json {
        let doc = serde_json::json!({
            "adapters": reports,
            "adapter": chosen.as_ref().ok(),
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
