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

fn time_with_queries(gpu: &Gpu, dispatches: &[&Dispatch], reps: u32) -> Result<Vec<f64>> {
    let count = 2 * reps;
    let queries = gpu.device.create_query_set(&wgpu::QuerySetDescriptor { label: Some("timing"), ty: wgpu::QueryType::Timestamp, count });
    let resolve = gpu.create_buffer(&wgpu::BufferDescriptor {
        label: Some("timing resolve"),
        size: count as u64 * 8,
        usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    let mut encoder = gpu.device.create_command_encoder(&Default::default());
    for r in 0..reps {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("timed"),
            timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                query_set: &queries,
                beginning_of_pass_write_index: Some(2 * r),
                end_of_pass_write_index: Some(2 * r + 1),
            }),
        });
        for d in dispatches {
            d.record(&mut pass);
        }
    }
    encoder.resolve_query_set(&queries, 0..count, &resolve, 0);
    gpu.queue.submit([encoder.finish()]);
    let bytes = gpu.read_bytes(&resolve, 0, count as u64 * 8)?;
    let ticks: &[u64] = bytemuck::cast_slice(&bytes);
    let period = gpu.queue.get_timestamp_period() as f64 * 1e-9;
    Ok(ticks.chunks_exact(2).map(|t| t[1].saturating_sub(t[0]) as f64 * period).collect())
}

pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    v[v.len() / 2]
}
