//! Which adapter srgpt computes on: every adapter wgpu offers (its GL backend left out), the
//! checks an adapter must pass, the choice by `--adapter` or by kind, and what `srgpt info`
//! reports of each.

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::Failure;

/// What `srgpt info` reports about an adapter.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AdapterReport {
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
    pub driver_info: String,
    /// the range of subgroup sizes (equal when the size is fixed)
    pub subgroup_min_size: u32,
    pub subgroup_max_size: u32,
    pub features: Vec<String>,
    pub limits: KeyLimits,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KeyLimits {
    pub max_buffer_size: u64,
    pub max_storage_buffer_binding_size: u64,
    pub max_storage_buffers_per_shader_stage: u32,
    pub max_compute_invocations_per_workgroup: u32,
    pub max_compute_workgroup_size_x: u32,
    pub max_compute_workgroup_storage_size: u32,
    pub max_compute_workgroups_per_dimension: u32,
}

impl AdapterReport {
    pub fn of(adapter: &wgpu::Adapter) -> AdapterReport {
        let info = adapter.get_info();
        let limits = adapter.limits();
        AdapterReport {
            name: info.name.clone(),
            backend: format!("{:?}", info.backend).to_lowercase(),
            device_type: device_type_name(info.device_type).into(),
            driver: info.driver.clone(),
            driver_info: info.driver_info.clone(),
            subgroup_min_size: info.subgroup_min_size,
            subgroup_max_size: info.subgroup_max_size,
            features: adapter.features().iter_names().map(|(n, _)| n.to_lowercase()).collect(),
            limits: KeyLimits::of(&limits),
        }
    }

    /// Which optional paths srgpt takes on this adapter, one line each.
    pub fn paths(&self) -> Vec<String> {
        let has = |f: &str| self.features.iter().any(|x| x == f);
        let (min, max) = (self.subgroup_min_size, self.subgroup_max_size);
        let subgroups = if !has("subgroup") {
            "subgroups: off (the adapter has none): barrier reductions and tiles without subgroups".to_string()
        } else if min == max && min > 0 {
            format!("subgroups: on, size {min}: the subgroup matmul tiles and one-subgroup-per-row reductions are candidates")
        } else {
            format!("subgroups: not used: their size varies ({min}..{max}), and srgpt's kernels map lanes to data by a fixed size")
        };
        let timestamps = if has("timestamp_query") {
            "timestamp queries: on: GPU times from the GPU's clock (gpu_s, bench, bench --profile)"
        } else {
            "timestamp queries: off: GPU times from the wall clock around submit-and-wait; no per-kernel profile"
        };
        let pipelines = if has("pipeline_cache") {
            "pipeline cache: on: compiled pipelines kept across runs, beside the tuning cache"
        } else {
            "pipeline cache: off (the backend has none): each launch compiles its pipelines, or its driver's own cache does"
        };
        vec![subgroups, timestamps.to_string(), pipelines.to_string()]
    }

    /// One line: name, backend, type.
    pub fn summary(&self) -> String {
        format!("{} ({}, {})", self.name, self.backend, self.device_type)
    }

    /// The dashboard's line: name, backend, and whether a CPU emulates the GPU.
    pub fn label(&self) -> String {
        let name = if self.name.is_empty() { "unnamed adapter" } else { &self.name };
        match self.device_type.as_str() {
            "cpu" => format!("{name} ({}, software)", self.backend),
            // browsers do not say what kind of device is behind WebGPU
            "other" => format!("{name} ({})", self.backend),
            _ => format!("{name} ({}, hardware)", self.backend),
        }
    }
}

impl KeyLimits {
    fn of(l: &wgpu::Limits) -> KeyLimits {
        KeyLimits {
            max_buffer_size: l.max_buffer_size,
            max_storage_buffer_binding_size: l.max_storage_buffer_binding_size,
            max_storage_buffers_per_shader_stage: l.max_storage_buffers_per_shader_stage,
            max_compute_invocations_per_workgroup: l.max_compute_invocations_per_workgroup,
            max_compute_workgroup_size_x: l.max_compute_workgroup_size_x,
            max_compute_workgroup_storage_size: l.max_compute_workgroup_storage_size,
            max_compute_workgroups_per_dimension: l.max_compute_workgroups_per_dimension,
        }
    }
}

pub fn device_type_name(t: wgpu::DeviceType) -> &'static str {
    match t {
        wgpu::DeviceType::DiscreteGpu => "discrete",
        wgpu::DeviceType::IntegratedGpu => "integrated",
        wgpu::DeviceType::VirtualGpu => "virtual",
        wgpu::DeviceType::Cpu => "cpu",
        wgpu::DeviceType::Other => "other",
    }
}

/// Preference order of device types: real GPUs first, a software adapter when it is all there is.
fn device_type_rank(t: wgpu::DeviceType) -> u32 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    }
}

const NO_ADAPTER_HELP: &str = "no GPU adapter with compute shaders was found.\n\
  srgpt needs a Vulkan, Metal or DX12 driver. On Linux without a GPU, install Mesa's software\n\
  Vulkan driver (lavapipe): `sudo apt-get install mesa-vulkan-drivers` (Debian/Ubuntu; Mesa 25\n\
  from bookworm-backports is ~3x faster than Debian 12's), and set XDG_RUNTIME_DIR (e.g. /tmp).\n\
  `srgpt info` lists the adapters wgpu can see; WGPU_BACKEND=vulkan|metal|dx12 narrows the search\n\
  (wgpu's GL backend is not used).";

/// The wgpu instance, its flags from the environment (`WGPU_VALIDATION=1` loads the
/// validation layer where installed; see [`super::validation`]).
pub fn new_instance() -> wgpu::Instance {
    #[cfg(not(target_arch = "wasm32"))]
    super::validation::install();
    wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env())
}

/// The names of wgpu's GL backend, which srgpt leaves out: its compute path (GLSL through
/// naga, no subgroups, no timestamp queries, GLES storage limits) is not tested here, and
/// every platform with OpenGL compute has Vulkan, Metal or DX12 too.
const GL_NAMES: [&str; 3] = ["gl", "gles", "opengl"];

/// The backends to search: WGPU_BACKEND's (comma-separated) when set, else all supported.
/// An unknown name, or only GL, is an error that says what is accepted.
pub fn backends_from_env() -> Result<wgpu::Backends, Failure> {
    let Some(value) = std::env::var("WGPU_BACKEND").ok().filter(|v| !v.trim().is_empty()) else {
        return Ok(wgpu::Backends::VULKAN | wgpu::Backends::METAL | wgpu::Backends::DX12);
    };
    let mut backends = wgpu::Backends::empty();
    for name in value.split(',').map(|n| n.trim().to_lowercase()) {
        backends |= match name.as_str() {
            "vulkan" | "vk" => wgpu::Backends::VULKAN,
            "metal" | "mtl" => wgpu::Backends::METAL,
            "dx12" | "d3d12" => wgpu::Backends::DX12,
            gl if GL_NAMES.contains(&gl) => wgpu::Backends::empty(),
            _ => return Err(Failure::BadInput(format!("WGPU_BACKEND: unknown backend '{name}' (vulkan, metal, dx12, gl)"))),
        };
    }
    if backends.is_empty() {
        return Err(Failure::BadInput(format!("WGPU_BACKEND={value}: {GL_UNSUPPORTED}")));
    }
    Ok(backends)
}

const GL_UNSUPPORTED: &str = "srgpt does not compute on wgpu's GL backend (untested there; use vulkan, metal or dx12)";

/// Every adapter wgpu can see on the backends of [`backends_from_env`].
pub fn list_adapters(instance: &wgpu::Instance) -> Result<Vec<wgpu::Adapter>, Failure> {
    Ok(pollster::block_on(instance.enumerate_adapters(backends_from_env()?)))
}

fn has_compute(adapter: &wgpu::Adapter) -> bool {
    adapter.get_downlevel_capabilities().flags.contains(wgpu::DownlevelFlags::COMPUTE_SHADERS)
}

/// What srgpt's kernels need of an adapter beyond compute shaders: storage buffers bound at
/// once by one kernel (WebGPU's default limit, which they are written to).
pub const NEEDED_STORAGE_BUFFERS: u32 = 8;

/// What `adapter` lacks for srgpt, if anything.
fn missing_capability(adapter: &wgpu::Adapter) -> Option<String> {
    if !has_compute(adapter) {
        return Some("compute shaders".into());
    }
    let have = adapter.limits().max_storage_buffers_per_shader_stage;
    (have < NEEDED_STORAGE_BUFFERS).then(|| format!("{NEEDED_STORAGE_BUFFERS} storage buffers per shader stage (it allows {have})"))
}

/// Whether `filter` (lowercase) picks the adapter `r`: it is the adapter's backend or device
/// type as `srgpt info` prints them, or a part of its name.
fn adapter_matches(r: &AdapterReport, filter: &str) -> bool {
    r.backend == filter || r.device_type == filter || r.name.to_lowercase().contains(filter)
}

/// Chooses the adapter: the highest-performance type among those `--adapter` (else
/// `WGPU_ADAPTER_NAME`) picks — a part of the name, a backend (vulkan, metal, dx12) or a device
/// type (discrete, integrated, virtual, cpu), as `srgpt info` prints them — or among all.
pub fn choose_adapter(adapters: Vec<wgpu::Adapter>, name_filter: Option<&str>) -> Result<wgpu::Adapter> {
    let env_filter = std::env::var("WGPU_ADAPTER_NAME").ok().filter(|s| !s.is_empty());
    let filter = name_filter.map(str::to_string).or(env_filter);
    let wanted = backends_from_env()?;
    let adapters: Vec<wgpu::Adapter> = adapters.into_iter().filter(|a| wanted.contains(a.get_info().backend.into())).collect();
    let all_names: Vec<String> = adapters.iter().map(|a| AdapterReport::of(a).summary()).collect();
    let mut candidates = adapters;
    if let Some(f) = &filter {
        let needle = f.trim().to_lowercase();
        if GL_NAMES.contains(&needle.as_str()) {
            return Err(Failure::BadInput(format!("--adapter {f}: {GL_UNSUPPORTED}")).into());
        }
        candidates.retain(|a| adapter_matches(&AdapterReport::of(a), &needle));
        if candidates.is_empty() {
            return Err(Failure::NoAdapter(format!(
                "no adapter matches '{f}' (a part of its name, a backend or a device type). Adapters found: {}",
                if all_names.is_empty() { "none".into() } else { all_names.join("; ") }
            ))
            .into());
        }
    }
    let (mut usable, lacking): (Vec<_>, Vec<_>) = candidates.into_iter().partition(|a| missing_capability(a).is_none());
    if usable.is_empty() && filter.is_some() {
        let why: Vec<String> = lacking
            .iter()
            .map(|a| format!("{} lacks {}", AdapterReport::of(a).summary(), missing_capability(a).unwrap_or_default()))
            .collect();
        return Err(Failure::NoAdapter(format!(
            "no adapter that srgpt can compute on matches '{}': {}",
            filter.unwrap_or_default(),
            why.join("; ")
        ))
        .into());
    }
    usable.sort_by_key(|a| device_type_rank(a.get_info().device_type));
    usable.into_iter().next().ok_or_else(|| Failure::NoAdapter(NO_ADAPTER_HELP.into()).into())
}
