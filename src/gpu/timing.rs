//! Timing GPU work: timestamp queries around compute passes where the adapter has them,
//! otherwise wall clock around submit-and-wait.

use web_time::Instant;

use anyhow::Result;

use super::{Dispatch, Gpu};

/// Seconds each of `reps` runs of `dispatches` took on the GPU (after one untimed warm-up
/// run: a pipeline's first dispatch also pays for its compilation on some drivers).
pub fn time_dispatches(gpu: &Gpu, dispatches: &[&Dispatch], reps: u32) -> Result<Vec<f64>> {
    gpu.run(dispatches)?;
    gpu.wait()?;
    if gpu.features.contains(wgpu::Features::TIMESTAMP_QUERY) {
        time_with_queries(gpu, dispatches, reps)
    } else {
        let mut out = Vec::new();
        for _ in 0..reps {
            let start = Instant::now();
            gpu.run(dispatches)?;
            gpu.wait()?;
            out.push(start.elapsed().as_secs_f64());
        }
        Ok(out)
    }
}

/// Timestamp queries in pairs (start 2i, end 2i+1), and the buffer they resolve into.
pub struct Timestamps {
    pub set: wgpu::QuerySet,
    /// (2 * pairs) u64 ticks, once resolved
    pub resolve: wgpu::Buffer,
    pub pairs: u32,
}

impl Timestamps {
    /// `pairs` intervals' worth of queries, where the adapter has timestamp queries.
    pub fn new(gpu: &Gpu, label: &str, pairs: u32) -> Option<Timestamps> {
        if !gpu.features.contains(wgpu::Features::TIMESTAMP_QUERY) {
            return None;
        }
        let count = 2 * pairs;
        let set = gpu.device.create_query_set(&wgpu::QuerySetDescriptor { label: Some(label), ty: wgpu::QueryType::Timestamp, count });
        let resolve = gpu.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: count as u64 * 8,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        Some(Timestamps { set, resolve, pairs })
    }

    /// Records the resolve of every query into `resolve`.
    pub fn resolve(&self, encoder: &mut wgpu::CommandEncoder) {
        encoder.resolve_query_set(&self.set, 0..2 * self.pairs, &self.resolve, 0);
    }

    /// Resolves the queries and reads the intervals back, waiting for the GPU.
    pub fn read_intervals(&self, gpu: &Gpu) -> Result<Vec<f64>> {
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        self.resolve(&mut encoder);
        gpu.queue.submit([encoder.finish()]);
        Ok(intervals(gpu, &gpu.read_bytes(&self.resolve, 0, 16 * self.pairs as u64)?))
    }
}

/// Seconds between each pair of resolved ticks (start, end).
pub fn intervals(gpu: &Gpu, ticks: &[u8]) -> Vec<f64> {
    let ticks: &[u64] = bytemuck::cast_slice(ticks);
    let period = gpu.queue.get_timestamp_period() as f64 * 1e-9;
    ticks.chunks_exact(2).map(|t| t[1].saturating_sub(t[0]) as f64 * period).collect()
}

fn time_with_queries(gpu: &Gpu, dispatches: &[&Dispatch], reps: u32) -> Result<Vec<f64>> {
    let Some(queries) = Timestamps::new(gpu, "timing", reps) else {
        anyhow::bail!("this adapter has no timestamp queries");
    };
    let mut encoder = gpu.device.create_command_encoder(&Default::default());
    for r in 0..reps {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("timed"),
            timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                query_set: &queries.set,
                beginning_of_pass_write_index: Some(2 * r),
                end_of_pass_write_index: Some(2 * r + 1),
            }),
        });
        for d in dispatches {
            d.record(&mut pass);
        }
    }
    gpu.queue.submit([encoder.finish()]);
    queries.read_intervals(gpu)
}

pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    v[v.len() / 2]
}
