//! Results on their way back to the CPU without stalling the queue: a small MAP_READ buffer
//! that the last command of a submission copies into, mapped once that work is done. The
//! waiting path (CLI, worker thread) reads it at once; a browser frame picks it up on a later
//! frame, since a browser runs map callbacks only between frames.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{anyhow, Result};

use super::Gpu;

/// A readback buffer and what its pending contents belong to (`T`: a step number, say).
pub struct Readback<T> {
    /// the copy destination (MAP_READ | COPY_DST)
    pub buffer: wgpu::Buffer,
    ready: Arc<AtomicBool>,
    pending: Option<T>,
}

impl<T: Copy> Readback<T> {
    pub fn new(gpu: &Gpu, label: &str, bytes: u64) -> Readback<T> {
        let buffer = gpu.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes.next_multiple_of(4).max(4),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Readback { buffer, ready: Arc::new(AtomicBool::new(false)), pending: None }
    }

    /// Asks for the buffer to be mapped once the work submitted so far is done (call after
    /// submitting the copy into it); `tag` says what it will hold.
    pub fn request(&mut self, tag: T) {
        self.ready.store(false, Ordering::SeqCst);
        let ready = self.ready.clone();
        self.buffer.slice(..).map_async(wgpu::MapMode::Read, move |r| ready.store(r.is_ok(), Ordering::SeqCst));
        self.pending = Some(tag);
    }

    /// What the buffer is waiting to hand back, if anything.
    pub fn pending(&self) -> Option<T> {
        self.pending
    }

    /// The tag and bytes of the pending contents once mapped; with `wait`, waits for them.
    /// `None` when nothing is pending, or (without `wait`) not mapped yet.
    pub fn take(&mut self, gpu: &Gpu, wait: bool, doing: &str) -> Result<Option<(T, Vec<u8>)>> {
        let Some(tag) = self.pending else {
            return Ok(None);
        };
        if wait {
            gpu.wait_until(&self.ready, doing)?;
        } else if !self.ready.load(Ordering::SeqCst) {
            return Ok(None);
        }
        let bytes = self.buffer.slice(..).get_mapped_range().map_err(|e| anyhow!("{doing}: reading back: {e}"))?.to_vec();
        self.buffer.unmap();
        self.pending = None;
        Ok(Some((tag, bytes)))
    }
}
