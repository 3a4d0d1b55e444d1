//! Timing the logits kernels on this device, for choosing between them.

use super::*;

impl Gpu {
    /// The device time of `repeats` runs of the logits kernel on a resident gate's batch,
    /// kernel alone: read from GPU timestamps around the dispatches, so it leaves out
    /// uploads, submission, waiting and reading back (what [`Gpu::gating_forward_resident`]
    /// adds per call). The kernel is the one [`Gpu::set_logits_kernel`] picks for `rows`;
    /// the batch must fit one chunk (one dispatch) and `repeats` must be at least 1.
    ///
    /// Fails with [`GatingError::Unsupported`] where the adapter has no timestamp queries.
    pub fn logits_kernel_time(
        &self,
        gate: &ResidentGate,
        x: &[f32],
        eps: Option<&[f32]>,
        rows: usize,
        repeats: u32,
    ) -> Result<std::time::Duration, GatingError> {
        check_rows(gate, &GateRows { x, eps, rows })?;
        if !self
            .device
            .features()
            .contains(wgpu::Features::TIMESTAMP_QUERY)
        {
            return Err(GatingError::Unsupported("timestamp queries"));
        }
        if repeats == 0 || rows == 0 {
            return Err(GatingError::Unsupported("timing zero repeats or zero rows"));
        }
        let (d, peers) = (gate.d, gate.peers);
        let input = GateInput {
            x,
            w_gate: &[],
            noise: None,
            rows,
            d,
            peers,
        };
        let chunk = self.gate_chunk(&input, &[("indices row", 4)])?;
        if rows > chunk {
            return Err(GatingError::BufferTooLarge {
                operand: "timed batch (one chunk)",
                bytes: 4 * (rows * (d + peers)) as u64,
                limit: self.max_binding,
            });
        }
        let s = self.scratch(gate, rows, 1);
        self.upload_rows(gate, &s, x, eps, rows);
        let queries = self.device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("logits kernel time"),
            ty: wgpu::QueryType::Timestamp,
            count: 2,
        });
        let resolved = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("resolved timestamps"),
            size: 16,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("timestamp staging"),
            size: 16,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let (slot, groups) = self.logits_kernel(rows, peers);
        // One pass per submission of at most this many dispatches (a bounded command buffer).
        const PER_PASS: u32 = 256;
        let mut ticks = 0u64;
        let mut left = repeats;
        while left > 0 {
            let now = left.min(PER_PASS);
            left -= now;
            let scope = self.scope();
            let mut enc = self.encoder();
            {
                let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("timed logits"),
                    timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                        query_set: &queries,
                        beginning_of_pass_write_index: Some(0),
                        end_of_pass_write_index: Some(1),
                    }),
                });
                pass.set_pipeline(&self.logits_pipelines[slot]);
                pass.set_bind_group(0, &s.logits_binds[slot], &[]);
                for _ in 0..now {
                    pass.dispatch_workgroups(groups.0, groups.1, 1);
                }
            }
            enc.resolve_query_set(&queries, 0..2, &resolved, 0);
            let [raw] = self.read_via(enc, [(&resolved, 16)], &staging, scope)?;
            let stamps: &[u64] = bytemuck::cast_slice(&raw);
            let (&begin, &end) = stamps
                .first()
                .zip(stamps.get(1))
                .ok_or_else(|| GatingError::Device("short timestamp read".into()))?;
            ticks = ticks.saturating_add(end.saturating_sub(begin));
        }
        let ns = ticks as f64 * f64::from(self.queue.get_timestamp_period());
        Ok(std::time::Duration::from_secs_f64(ns * 1e-9))
    }
}
