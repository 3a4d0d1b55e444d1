//! Gate weights kept on the device across calls, and batches of rows run against them with
//! reused per-call buffers.

use super::*;

impl Gpu {
    /// Uploads the gate weights `W_g` (and `W_noise` for a noisy gate), `[d, peers]` each,
    /// once: a [`ResidentGate`] keeps them on the device, so that
    /// [`Gpu::gating_forward_resident`] uploads only the batch. Fails like
    /// [`Gpu::gating_forward`] on a bad shape or a matrix over one binding.
    pub fn upload_gate(
        &self,
        w_gate: &[f32],
        w_noise: Option<&[f32]>,
        d: usize,
        peers: usize,
    ) -> Result<ResidentGate, GatingError> {
        let len = mul("d * peers", d, peers)?;
        check_len("w_gate", len, w_gate.len())?;
        if let Some(w) = w_noise {
            check_len("w_noise", len, w.len())?;
        }
        to_u32("d", d)?;
        to_u32("peers", peers)?;
        self.groups_checked("peers", peers)?;
        // The same checks and buffers as a per-call upload: a GateInput without rows.
        let input = GateInput {
            x: &[],
            w_gate,
            noise: w_noise.map(|w_noise| Noise { w_noise, eps: &[] }),
            rows: 0,
            d,
            peers,
        };
        Ok(ResidentGate {
            weights: self.gate_weights(&input)?,
            d,
            peers,
            noisy: w_noise.is_some(),
            scratch: Mutex::new(None),
        })
    }

    /// [`Gpu::gating_forward`] on weights already on the device: uploads `x` (`[rows, d]`)
    /// and, for a noisy gate, `eps` (`[rows, peers]`), and reads back the selection only.
    /// The same result as [`Gpu::gating_forward`] on the same weights. `eps` must be given
    /// exactly when the gate was uploaded with `W_noise`.
    ///
    /// The gate keeps the buffers of its last call (inputs, logits, selection, staging and
    /// their bindings) and reuses them while a chunk fits, so a steady caller creates no
    /// buffer per call.
    pub fn gating_forward_resident(
        &self,
        gate: &ResidentGate,
        x: &[f32],
        eps: Option<&[f32]>,
        rows: usize,
        k: usize,
    ) -> Result<Selection, GatingError> {
        let batch = GateRows { x, eps, rows };
        check_rows(gate, &batch)?;
        check_k(k, gate.peers)?;
        self.forward_resident(gate, x, eps, rows, k)
    }

    /// [`Gpu::gating_forward_resident`] for many callers' batches at once: their rows go up
    /// in one upload and through one submission per chunk (not one per batch), and come back
    /// as one [`Selection`] per batch, each equal to what its own call would return.
    pub fn gating_forward_batched(
        &self,
        gate: &ResidentGate,
        batches: &[GateRows<'_>],
        k: usize,
    ) -> Result<Vec<Selection>, GatingError> {
        let mut rows = 0usize;
        for batch in batches {
            check_rows(gate, batch)?;
            rows = rows
                .checked_add(batch.rows)
                .ok_or(GatingError::TooLargeForU32 {
                    operand: "rows",
                    value: usize::MAX,
                })?;
        }
        check_k(k, gate.peers)?;
        let mut x = Vec::with_capacity(mul("rows * d", rows, gate.d)?);
        let mut eps = Vec::with_capacity(if gate.noisy {
            mul("rows * peers", rows, gate.peers)?
        } else {
            0
        });
        for batch in batches {
            x.extend_from_slice(batch.x);
            eps.extend_from_slice(batch.eps.unwrap_or_default());
        }
        let all = self.forward_resident(gate, &x, gate.noisy.then_some(&eps[..]), rows, k)?;
        let mut out = Vec::with_capacity(batches.len());
        let mut at = 0;
        for batch in batches {
            let span = at * k..(at + batch.rows) * k;
            out.push(Selection {
                indices: all.indices[span.clone()].to_vec(),
                gates: all.gates[span].to_vec(),
                rows: batch.rows,
                k,
                peers: gate.peers,
            });
            at += batch.rows;
        }
        Ok(out)
    }

    /// The resident forward pass on checked input, through the gate's reused buffers.
    pub(super) fn forward_resident(
        &self,
        gate: &ResidentGate,
        x: &[f32],
        eps: Option<&[f32]>,
        rows: usize,
        k: usize,
    ) -> Result<Selection, GatingError> {
        let (d, peers) = (gate.d, gate.peers);
        to_u32("rows", rows)?;
        let input = GateInput {
            x,
            w_gate: &[],
            noise: eps
                .filter(|_| gate.noisy)
                .map(|eps| Noise { w_noise: &[], eps }),
            rows,
            d,
            peers,
        };
        let chunk = self.gate_chunk(&input, &[("indices row", 4 * k as u64)])?;
        let mut sel = Selection {
            indices: Vec::with_capacity(rows * k),
            gates: Vec::with_capacity(rows * k),
            rows,
            k,
            peers,
        };
        // A poisoned lock only means another call panicked mid-way: its buffers are rebuilt.
        let mut scratch = gate
            .scratch
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for r0 in (0..rows).step_by(chunk) {
            let n = chunk.min(rows - r0);
            let s: &Scratch = match scratch.take() {
                Some(s) if s.rows >= n && s.k == k => scratch.insert(s),
                old => {
                    drop(old);
                    scratch.insert(self.scratch(gate, chunk.min(rows), k))
                }
            };
            self.upload_rows(
                gate,
                s,
                &x[r0 * d..(r0 + n) * d],
                input
                    .noise
                    .map(|noise| &noise.eps[r0 * peers..(r0 + n) * peers]),
                n,
            );
            self.queue.write_buffer(
                &s.top_k_params,
                0,
                bytemuck::cast_slice(&[n as u32, peers as u32, k as u32, 0]),
            );
            let scope = self.scope();
            let mut enc = self.encoder();
            let (slot, groups) = self.logits_kernel(n, peers);
            record(
                &mut enc,
                &self.logits_pipelines[slot],
                &s.logits_binds[slot],
                groups,
            );
            record(&mut enc, &self.top_k, &s.top_k_bind, (n as u32, 1));
            let bytes = 4 * (n * k) as u64;
            let read = self.read_via(
                enc,
                [(&s.indices, bytes), (&s.gates, bytes)],
                &s.staging,
                scope,
            );
            let [i, g] = match read {
                Ok(out) => out,
                Err(e) => {
                    // The staging buffer may be left mapped: the next call builds new ones.
                    *scratch = None;
                    return Err(e);
                }
            };
            sel.indices.extend_from_slice(bytemuck::cast_slice(&i));
            sel.gates.extend_from_slice(bytemuck::cast_slice(&g));
        }
        Ok(sel)
    }

    /// Writes a chunk of `n` rows into the gate's reused buffers `s`: `x` (`[n, d]`), `eps`
    /// (`[n, peers]`, for a noisy gate) and the logits kernel's params.
    pub(super) fn upload_rows(
        &self,
        gate: &ResidentGate,
        s: &Scratch,
        x: &[f32],
        eps: Option<&[f32]>,
        n: usize,
    ) {
        let flags = if gate.noisy { NOISY } else { 0 };
        self.queue.write_buffer(
            &s.logits_params,
            0,
            bytemuck::cast_slice(&[n as u32, gate.d as u32, gate.peers as u32, flags]),
        );
        if !x.is_empty() {
            self.queue.write_buffer(&s.x, 0, bytemuck::cast_slice(x));
        }
        if let Some(eps) = eps.filter(|_| gate.noisy) {
            self.queue
                .write_buffer(&s.eps, 0, bytemuck::cast_slice(eps));
        }
    }

    /// Buffers and bindings of the resident forward pass for chunks of up to `rows` rows.
    pub(super) fn scratch(&self, gate: &ResidentGate, rows: usize, k: usize) -> Scratch {
        let (d, peers) = (gate.d, gate.peers);
        let input = |label: &str, len: usize| {
            self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: 4 * len.max(1) as u64,
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        };
        let uniform = |label: &str| {
            self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: 16,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        };
        let x = input("x", rows * d);
        let eps = input("eps", if gate.noisy { rows * peers } else { 1 });
        let logits_params = uniform("logits params");
        let top_k_params = uniform("top-k params");
        let logits = self.output("logits", rows * peers);
        let clean = self.output("clean (unused)", 1);
        let sd = self.output("noise_sd (unused)", 1);
        let indices = self.output("indices", rows * k);
        let gates = self.output("gates", rows * k);
        let thresholds = self.output("thresholds (unused)", 1);
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("staging"),
            size: 8 * (rows * k).max(1) as u64,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let w = &gate.weights;
        let logits_buffers = [
            &logits_params,
            &x,
            &w.w_gate,
            &w.w_noise,
            &eps,
            &logits,
            &clean,
            &sd,
        ];
        // Pipelines with derived layouts need a bind group each.
        let logits_binds = self
            .logits_pipelines
            .each_ref()
            .map(|p| self.bind(p, &logits_buffers));
        let top_k_bind = self.bind(
            &self.top_k,
            &[&top_k_params, &logits, &indices, &gates, &thresholds],
        );
        Scratch {
            rows,
            k,
            x,
            eps,
            logits_params,
            top_k_params,
            indices,
            gates,
            staging,
            logits_binds,
            top_k_bind,
        }
    }
}
