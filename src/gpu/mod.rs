//! The GPU layer: adapter choice, the device, compiled pipelines, buffers and dispatches.

mod adapter;
pub mod pipeline_cache;
pub mod readback;
pub mod shader;
pub mod timing;
pub mod tune;
#[cfg(not(target_arch = "wasm32"))]
pub mod validation;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

pub use adapter::*;
use anyhow::{anyhow, Result};
pub use shader::ShaderSpec;

use crate::Failure;

/// Optional features srgpt uses where the adapter has them; none is required, and none
/// changes a bit of a result (`tests/bit_identity.rs` trains with them all off).
pub const OPTIONAL_FEATURES: wgpu::Features = wgpu::Features::TIMESTAMP_QUERY
    .union(wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS)
    .union(wgpu::Features::SUBGROUP)
    .union(wgpu::Features::PIPELINE_CACHE);

/// A kernel's uniform block: a `#[repr(C)]` struct that mirrors the WGSL `struct Params` of
/// its shader field for field (`tests/shaders.rs` compares the two through naga's
/// reflection). Declared with [`uniform!`](crate::uniform).
pub trait Uniform: bytemuck::Pod {
    /// (name, byte offset, WGSL scalar type) of every field, in order
    const FIELDS: &'static [(&'static str, usize, &'static str)];
}

/// Declares a kernel's uniform block: a `#[repr(C)]` struct of `u32` and `f32` fields with a
/// [`Uniform`] implementation listing them.
#[macro_export]
macro_rules! uniform {
    ($(#[$meta:meta])* pub struct $name:ident { $($(#[$fmeta:meta])* $field:ident: $ty:ident),* $(,)? }) => {
        $(#[$meta])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
        pub struct $name { $($(#[$fmeta])* pub $field: $ty),* }

        impl $crate::gpu::Uniform for $name {
            const FIELDS: &'static [(&'static str, usize, &'static str)] =
                &[$((stringify!($field), std::mem::offset_of!($name, $field), stringify!($ty))),*];
        }
    };
}

/// The device srgpt computes on, with its pipeline cache and error capture.
pub struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub report: AdapterReport,
    pub features: wgpu::Features,
    pub limits: wgpu::Limits,
    pipelines: Mutex<HashMap<String, wgpu::ComputePipeline>>,
    /// the driver's compiled pipelines, kept across runs where the backend can (Vulkan)
    pub pipeline_cache: Option<pipeline_cache::PipelineCache>,
    errors: Arc<Mutex<Vec<String>>>,
    /// the instance, when this Gpu opened the device itself (for resource reports)
    instance: Option<wgpu::Instance>,
    /// buffers created through this Gpu, and their bytes (creation only ever counts up)
    created: (AtomicU64, AtomicU64),
    /// the staging buffer of `read_bytes`, grown as needed and reused
    staging: Mutex<Option<wgpu::Buffer>>,
    /// kernel variants measured on this adapter (see [`tune`])
    pub tuning: Mutex<tune::TuneCache>,
    /// how long a wait for the GPU goes before it says it is still waiting (it never gives
    /// up: a slow adapter finishes a slow step, only an error ends a wait)
    pub wait_notice: std::time::Duration,
    /// how many times a wait has said so
    pub long_wait_notices: AtomicU64,
}

/// A wait for the GPU says it is still waiting this often.
pub const WAIT_NOTICE: std::time::Duration = std::time::Duration::from_secs(30);

/// What a Gpu has allocated: for checks that a long run does not keep allocating.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResourceCounts {
    pub buffers_created: u64,
    pub bytes_created: u64,
    /// resources alive in wgpu, where wgpu can report them (a native instance): buffers, bind
    /// groups, command buffers and encoders, query sets
    pub alive: Option<AliveCounts>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AliveCounts {
    pub buffers: usize,
    pub bind_groups: usize,
    pub command_buffers: usize,
    pub command_encoders: usize,
    pub query_sets: usize,
}

/// What a kernel binds of a buffer: all of it, or the window of `size` bytes from byte
/// `start` (a tensor of a block larger than the adapter lets one binding be; see
/// `kernels::window`).
#[derive(Clone, Copy)]
pub struct Bound<'a> {
    pub buffer: &'a wgpu::Buffer,
    pub start: u64,
    /// None: to the end of the buffer
    pub size: Option<std::num::NonZeroU64>,
}

impl<'a> Bound<'a> {
    pub fn whole(buffer: &'a wgpu::Buffer) -> Bound<'a> {
        Bound { buffer, start: 0, size: None }
    }

    fn resource(&self) -> wgpu::BindingResource<'a> {
        wgpu::BindingResource::Buffer(wgpu::BufferBinding { buffer: self.buffer, offset: self.start, size: self.size })
    }
}

/// The most bytes one binding of a storage buffer may span on an adapter with these limits.
pub fn binding_limit(limits: &wgpu::Limits) -> u64 {
    limits.max_storage_buffer_binding_size.min(limits.max_buffer_size)
}

/// [`Gpu::grid`] on an adapter with `limits`.
pub fn grid_for(limits: &wgpu::Limits, groups: u32) -> [u32; 3] {
    let max_x = limits.max_compute_workgroups_per_dimension.min(65535);
    if groups <= max_x {
        [groups.max(1), 1, 1]
    } else {
        [max_x, groups.div_ceil(max_x), 1]
    }
}

impl Gpu {
    /// Opens the chosen adapter (see [`choose_adapter`]).
    pub fn new(name_filter: Option<&str>) -> Result<Gpu> {
        let instance = new_instance();
        let adapter = choose_adapter(list_adapters(&instance)?, name_filter)?;
        let mut gpu = Gpu::from_adapter(&adapter)?;
        gpu.instance = Some(instance);
        Ok(gpu)
    }

    /// Opens `adapter` with every optional feature it has and all of its limits.
    pub fn from_adapter(adapter: &wgpu::Adapter) -> Result<Gpu> {
        Gpu::from_adapter_with(adapter, adapter.features() & OPTIONAL_FEATURES, adapter.limits())
    }

    /// Opens `adapter` with only `features` and `limits`: e.g. none and WebGPU's defaults
    /// (`wgpu::Limits::default()`), to check here that a browser can run the same work.
    pub fn from_adapter_with(adapter: &wgpu::Adapter, features: wgpu::Features, limits: wgpu::Limits) -> Result<Gpu> {
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("srgpt"),
            required_features: features,
            required_limits: limits,
            ..Default::default()
        }))
        .map_err(|e| anyhow!("could not open the GPU device: {e}"))?;
        Ok(Gpu::from_device(device, queue, AdapterReport::of(adapter)))
    }

    /// Wraps a device opened elsewhere (e.g. by the dashboard's renderer), so training can share it.
    pub fn from_device(device: wgpu::Device, queue: wgpu::Queue, report: AdapterReport) -> Gpu {
        #[cfg(not(target_arch = "wasm32"))]
        validation::install();
        let errors = Arc::new(Mutex::new(Vec::new()));
        let sink = errors.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            sink.lock().unwrap().push(e.to_string());
        }));
        let lost = errors.clone();
        device.set_device_lost_callback(move |reason, msg| {
            if reason != wgpu::DeviceLostReason::Destroyed {
                lost.lock().unwrap().push(format!("GPU device lost ({reason:?}): {msg}"));
            }
        });
        let kept_in = if cfg!(target_arch = "wasm32") { None } else { tune::cache_dir() };
        let pipeline_cache = pipeline_cache::PipelineCache::open(&device, &report, kept_in);
        Gpu {
            features: device.features(),
            limits: device.limits(),
            pipeline_cache,
            device,
            queue,
            pipelines: Mutex::new(HashMap::new()),
            errors,
            instance: None,
            created: (AtomicU64::new(0), AtomicU64::new(0)),
            staging: Mutex::new(None),
            tuning: Mutex::new(tune::TuneCache::open(&report)),
            report,
            wait_notice: WAIT_NOTICE,
            long_wait_notices: AtomicU64::new(0),
        }
    }

    /// Creates a buffer, counting it (see [`Gpu::resource_counts`]).
    pub fn create_buffer(&self, desc: &wgpu::BufferDescriptor) -> wgpu::Buffer {
        self.created.0.fetch_add(1, Ordering::Relaxed);
        self.created.1.fetch_add(desc.size, Ordering::Relaxed);
        self.device.create_buffer(desc)
    }

    pub fn resource_counts(&self) -> ResourceCounts {
        ResourceCounts {
            buffers_created: self.created.0.load(Ordering::Relaxed),
            bytes_created: self.created.1.load(Ordering::Relaxed),
            alive: self.instance.as_ref().and_then(|i| i.generate_report()).map(|r| AliveCounts {
                buffers: r.hub.buffers.num_kept_from_user,
                bind_groups: r.hub.bind_groups.num_kept_from_user,
                command_buffers: r.hub.command_buffers.num_kept_from_user,
                command_encoders: r.hub.command_encoders.num_kept_from_user,
                query_sets: r.hub.query_sets.num_kept_from_user,
            }),
        }
    }

    /// Fails with every GPU error reported since the last check, naming `doing`.
    pub fn check_errors(&self, doing: &str) -> Result<()> {
        let mut errors = self.errors.lock().unwrap();
        #[cfg(not(target_arch = "wasm32"))]
        errors.extend(validation::take().into_iter().map(|m| format!("Vulkan validation: {m}")));
        if errors.is_empty() {
            return Ok(());
        }
        let all = errors.drain(..).collect::<Vec<_>>().join("\n");
        Err(anyhow!("GPU error while {doing}: {all}"))
    }

    /// The compute pipeline for a shader variant, compiled once and cached.
    pub fn pipeline(&self, spec: &ShaderSpec) -> Result<wgpu::ComputePipeline> {
        let key = spec.key();
        if let Some(p) = self.pipelines.lock().unwrap().get(&key) {
            return Ok(p.clone());
        }
        let source = spec.source()?;
        let module = self
            .device
            .create_shader_module(wgpu::ShaderModuleDescriptor { label: Some(&key), source: wgpu::ShaderSource::Wgsl(source.into()) });
        let pipeline = self.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(&key),
            layout: None,
            module: &module,
            entry_point: Some(spec.entry),
            compilation_options: Default::default(),
            cache: self.pipeline_cache.as_ref().map(|p| &p.cache),
        });
        self.check_errors(&format!("compiling {key}"))?;
        if let Some(p) = &self.pipeline_cache {
            p.compiled();
        }
        self.pipelines.lock().unwrap().insert(key, pipeline.clone());
        Ok(pipeline)
    }

    /// Writes the pipeline cache's file when pipelines were compiled since it was last
    /// written (between training steps).
    pub fn keep_pipelines(&self) {
        if let Some(p) = &self.pipeline_cache {
            p.save();
        }
    }

    /// A zero-filled storage buffer (also usable as copy source and destination).
    pub fn storage_buffer(&self, label: &str, bytes: u64) -> Result<wgpu::Buffer> {
        let max = self.limits.max_storage_buffer_binding_size;
        if bytes > max || bytes > self.limits.max_buffer_size {
            return Err(Failure::BadInput(format!(
                "buffer '{label}' needs {bytes} bytes, over this adapter's max_storage_buffer_binding_size of {max} bytes"
            ))
            .into());
        }
        Ok(self.zeroed_storage(label, bytes))
    }

    /// A zero-filled storage buffer that kernels bind in windows of at most
    /// max_storage_buffer_binding_size bytes (a block of tensors: the parameters, their
    /// gradients, the optimizer state), so only max_buffer_size bounds it.
    pub fn block_buffer(&self, label: &str, bytes: u64) -> Result<wgpu::Buffer> {
        let max = self.limits.max_buffer_size;
        if bytes > max {
            return Err(Failure::BadInput(format!(
                "buffer '{label}' needs {bytes} bytes, over this adapter's max_buffer_size of {max} bytes"
            ))
            .into());
        }
        Ok(self.zeroed_storage(label, bytes))
    }

    /// The storage buffer both of the above make, once its size is checked.
    fn zeroed_storage(&self, label: &str, bytes: u64) -> wgpu::Buffer {
        self.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes.max(16).next_multiple_of(4),
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    }

    /// The most bytes one binding of a storage buffer may span on this device.
    pub fn binding_limit(&self) -> u64 {
        binding_limit(&self.limits)
    }

    /// A storage buffer holding `data`.
    pub fn buffer_from(&self, label: &str, data: &[u8]) -> Result<wgpu::Buffer> {
        let buffer = self.storage_buffer(label, data.len() as u64)?;
        self.upload(&buffer, 0, data);
        Ok(buffer)
    }

    /// Writes bytes into a buffer at a byte offset (padded to the 4-byte multiple wgpu needs).
    pub fn upload(&self, buffer: &wgpu::Buffer, offset: u64, data: &[u8]) {
        if data.len().is_multiple_of(4) {
            self.queue.write_buffer(buffer, offset, data);
        } else {
            let mut padded = data.to_vec();
            padded.resize(data.len().next_multiple_of(4), 0);
            self.queue.write_buffer(buffer, offset, &padded);
        }
    }

    /// Copies `bytes` bytes from `offset` of a buffer back to the CPU, waiting for the GPU.
    pub fn read_bytes(&self, buffer: &wgpu::Buffer, offset: u64, bytes: u64) -> Result<Vec<u8>> {
        let size = bytes.next_multiple_of(4).max(4);
        let mut slot = self.staging.lock().unwrap();
        if slot.as_ref().is_none_or(|b| b.size() < size) {
            *slot = Some(self.create_buffer(&wgpu::BufferDescriptor {
                label: Some("readback"),
                size: size.next_power_of_two(),
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }));
        }
        let staging = slot.as_ref().expect("just made");
        let mut encoder = self.device.create_command_encoder(&Default::default());
        encoder.copy_buffer_to_buffer(buffer, offset, staging, 0, size);
        self.queue.submit([encoder.finish()]);
        let slice = staging.slice(..size);
        let ready = Arc::new(AtomicBool::new(false));
        let done = ready.clone();
        slice.map_async(wgpu::MapMode::Read, move |r| done.store(r.is_ok(), Ordering::SeqCst));
        self.wait_until(&ready, "reading back a buffer")?;
        let data = slice.get_mapped_range().map_err(|e| anyhow!("mapping a readback buffer: {e}"))?.to_vec();
        staging.unmap();
        Ok(data[..bytes as usize].to_vec())
    }

    pub fn read_f32(&self, buffer: &wgpu::Buffer, n: usize) -> Result<Vec<f32>> {
        Ok(bytemuck::cast_slice(&self.read_bytes(buffer, 0, n as u64 * 4)?).to_vec())
    }

    /// Blocks until all submitted work is done.
    pub fn wait(&self) -> Result<()> {
        self.wait_for_submissions("finishing the GPU's work")
    }

    /// Blocks until a `map_async` callback has set `ready`, failing with any GPU error. A
    /// browser runs map callbacks only between frames, so there this fails at once instead
    /// of spinning forever: browser code polls with [`Gpu::poll`] instead.
    pub fn wait_until(&self, ready: &AtomicBool, doing: &str) -> Result<()> {
        if cfg!(target_arch = "wasm32") && !ready.load(Ordering::SeqCst) {
            return Err(anyhow!("{doing}: a browser cannot wait for the GPU"));
        }
        let started = std::time::Instant::now();
        while !ready.load(Ordering::SeqCst) {
            self.wait_a_while(started, doing)?;
        }
        Ok(())
    }

    /// Blocks until the latest submission (whichever thread made it) is done, failing only
    /// with a GPU error, never because it takes long.
    pub fn wait_for_submissions(&self, doing: &str) -> Result<()> {
        let started = std::time::Instant::now();
        while !self.wait_a_while(started, doing)? {}
        Ok(())
    }

    /// Waits up to `wait_notice` for the latest submission; true when it finished. Says so
    /// on stderr when the wait has gone on for another `wait_notice`.
    fn wait_a_while(&self, started: std::time::Instant, doing: &str) -> Result<bool> {
        let done = match self.device.poll(wgpu::PollType::Wait { submission_index: None, timeout: Some(self.wait_notice) }) {
            Ok(_) => true,
            Err(wgpu::PollError::Timeout) => {
                self.long_wait_notices.fetch_add(1, Ordering::Relaxed);
                eprintln!("srgpt: still waiting for the GPU ({} s, {doing})…", started.elapsed().as_secs());
                false
            }
            Err(e) => return Err(anyhow!("{doing}: waiting for the GPU: {e}")),
        };
        self.check_errors(doing)?;
        Ok(done)
    }

    /// Runs the callbacks of finished GPU work without waiting (a browser does this itself
    /// between frames).
    pub fn poll(&self) {
        if !cfg!(target_arch = "wasm32") {
            let _ = self.device.poll(wgpu::PollType::Poll);
        }
    }

    /// A compute dispatch: the pipeline of `spec`, its bind group from `bindings` (buffers
    /// bound whole, by binding number) plus a uniform buffer at `params_binding`.
    pub fn dispatch(
        &self,
        name: &'static str,
        spec: &ShaderSpec,
        bindings: &[(u32, &wgpu::Buffer)],
        params_binding: u32,
        params: &impl Uniform,
        workgroups: [u32; 3],
    ) -> Result<Dispatch> {
        let bound: Vec<(u32, Bound)> = bindings.iter().map(|&(b, buffer)| (b, Bound::whole(buffer))).collect();
        self.dispatch_bound(name, spec, &bound, params_binding, params, workgroups)
    }

    /// [`Gpu::dispatch`] with each binding a whole buffer or a window of one (see
    /// [`Bound`]).
    pub fn dispatch_bound(
        &self,
        name: &'static str,
        spec: &ShaderSpec,
        bindings: &[(u32, Bound)],
        params_binding: u32,
        params: &impl Uniform,
        workgroups: [u32; 3],
    ) -> Result<Dispatch> {
        let params = bytemuck::bytes_of(params);
        let pipeline = self.pipeline(spec)?;
        let uniform = self.create_buffer(&wgpu::BufferDescriptor {
            label: Some(name),
            size: params.len().next_multiple_of(16) as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        self.upload(&uniform, 0, params);
        let mut entries: Vec<wgpu::BindGroupEntry> =
            bindings.iter().map(|(b, bound)| wgpu::BindGroupEntry { binding: *b, resource: bound.resource() }).collect();
        entries.push(wgpu::BindGroupEntry { binding: params_binding, resource: uniform.as_entire_binding() });
        let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(name),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        self.check_errors(&format!("binding {name} ({})", spec.key()))?;
        Ok(Dispatch {
            name,
            detail: format!("{} {} {workgroups:?}", spec.entry, short_defines(spec)),
            pipeline,
            bind_group,
            workgroups,
            uniform,
        })
    }

    /// The subgroup size when the device has subgroup operations and the adapter runs every
    /// subgroup at one size (kernels that map lanes to data need to know it in advance).
    pub fn fixed_subgroup_size(&self) -> Option<u32> {
        let (min, max) = (self.report.subgroup_min_size, self.report.subgroup_max_size);
        (self.features.contains(wgpu::Features::SUBGROUP) && min == max && min > 0).then_some(min)
    }

    /// Workgroup counts for `groups` workgroups in a line, folded into y past the per-dimension limit.
    pub fn grid(&self, groups: u32) -> [u32; 3] {
        grid_for(&self.limits, groups)
    }

    /// Workgroups for `rows` rows of a row kernel (64 threads, `row_threads` per row).
    pub fn row_grid(&self, rows: u32, row_threads: u32) -> [u32; 3] {
        self.grid(rows.div_ceil(64 / row_threads))
    }

    /// Records dispatches into one compute pass and submits them.
    pub fn run(&self, dispatches: &[&Dispatch]) -> Result<()> {
        let mut encoder = self.device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            for d in dispatches {
                d.record(&mut pass);
            }
        }
        self.queue.submit([encoder.finish()]);
        Ok(())
    }
}

/// The defines that tell variants apart, briefly ("A=bf16 TRANS_B").
fn short_defines(spec: &ShaderSpec) -> String {
    spec.defines
        .iter()
        .filter(|(k, v)| !spec.shape_defines.contains(k.as_str()) && v.as_str() != "0")
        .map(|(k, v)| if v == "1" { k.clone() } else { format!("{k}={v}") })
        .collect::<Vec<_>>()
        .join(" ")
}

/// One recorded kernel launch, built once and replayed every step.
pub struct Dispatch {
    /// The kernel family, for profiles and messages.
    pub name: &'static str,
    /// Entry point and defines, for detailed profiles.
    pub detail: String,
    pipeline: wgpu::ComputePipeline,
    bind_group: wgpu::BindGroup,
    workgroups: [u32; 3],
    uniform: wgpu::Buffer,
}

impl Dispatch {
    pub fn record(&self, pass: &mut wgpu::ComputePass) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        let [x, y, z] = self.workgroups;
        pass.dispatch_workgroups(x, y, z);
    }

    /// Rewrites the dispatch's uniform parameters (e.g. the learning rate of this step).
    pub fn set_params(&self, queue: &wgpu::Queue, params: &impl Uniform) {
        queue.write_buffer(&self.uniform, 0, bytemuck::bytes_of(params));
    }
}
