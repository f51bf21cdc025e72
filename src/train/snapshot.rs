//! Snapshots: every run's checkpoint bytes, copied on the GPU and encoded in the copy's map
//! callback, so a frame loop (a browser) can save without waiting.

use anyhow::Result;

use super::checkpoint::{self, RunState};
use super::{Run, RunStatus, Trainer};
use crate::gpu::Gpu;
use crate::model::params::RawState;

/// The files of a snapshot: (file name, safetensors bytes) per run.
pub type SnapshotFiles = Vec<(String, Vec<u8>)>;

/// What a snapshot calls once every run's checkpoint is encoded (or one could not be).
pub type SnapshotDone = Box<dyn FnOnce(Result<SnapshotFiles, String>) + Send>;

/// The parts of a snapshot that have come back, and what to call with them.
struct SnapshotParts {
    files: Vec<Option<(String, Vec<u8>)>>,
    done: Option<SnapshotDone>,
}

impl SnapshotParts {
    fn arrived(&mut self, i: usize, file: Result<(String, Vec<u8>), String>) {
        let done = match file {
            Ok(file) => {
                self.files[i] = Some(file);
                if self.files.iter().any(Option::is_none) {
                    return;
                }
                self.done.take().map(|d| (d, Ok(self.files.iter_mut().filter_map(Option::take).collect())))
            }
            Err(e) => self.done.take().map(|d| (d, Err(e))),
        };
        if let Some((done, result)) = done {
            done(result);
        }
    }
}

impl Trainer {
    /// Checkpoints of every run that has not diverged, as they stand after the work already
    /// submitted (update `self.step`), without waiting: the state is copied on the GPU and
    /// encoded in the copy's map callback, which calls `done` with the same bytes
    /// [`Trainer::save_checkpoints`] would write. A browser saves this way while it trains,
    /// and from a hidden tab too, whose frames have stopped but whose map callbacks still
    /// run. Returns the step the snapshot is of.
    pub fn snapshot(&self, gpu: &Gpu, done: SnapshotDone) -> Result<u32> {
        let runs: Vec<&Run> = self.runs.iter().filter(|r| !matches!(r.status, RunStatus::Diverged(_))).collect();
        let parts = std::sync::Arc::new(std::sync::Mutex::new(SnapshotParts { files: vec![None; runs.len()], done: Some(done) }));
        if runs.is_empty() {
            if let Some(done) = parts.lock().unwrap().done.take() {
                done(Ok(Vec::new()));
            }
        }
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        let mut staged = Vec::new();
        for run in &runs {
            let sizes = run.model.raw_sizes();
            let staging = gpu.create_buffer(&wgpu::BufferDescriptor {
                label: Some("snapshot"),
                size: sizes.iter().sum::<u64>().max(4),
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            run.model.copy_raw(&mut encoder, &staging);
            // the tokens of the updates submitted, not only of those read back so far
            let tokens = run.tokens_before + (self.step - self.start_step) as u64 * self.tokens_per_step();
            staged.push((staging, sizes, RunState { tokens, ..self.run_state(run) }, run.precision));
        }
        gpu.queue.submit([encoder.finish()]);
        for (i, (staging, sizes, state, precision)) in staged.into_iter().enumerate() {
            let (parts, tokenizer, buffer) = (parts.clone(), self.corpus.tokenizer.clone(), staging.clone());
            staging.slice(..).map_async(wgpu::MapMode::Read, move |mapped| {
                let file = mapped.map_err(|e| format!("snapshot of run {precision}: {e}")).and_then(|()| {
                    let bytes = buffer.slice(..).get_mapped_range().map_err(|e| format!("snapshot of run {precision}: {e}"))?.to_vec();
                    buffer.unmap();
                    let raw = RawState::from_parts(&bytes, sizes);
                    let encoded = checkpoint::encode(&state, precision, &tokenizer, &raw).map_err(|e| format!("{e:#}"))?;
                    Ok((format!("{}.safetensors", precision.name()), encoded))
                });
                parts.lock().unwrap().arrived(i, file);
            });
        }
        Ok(self.step)
    }
}
