//! The gate's forward pass: the logits `H(x)` (three kernels), top-k with softmax, the whole
//! gate in one call, and the combination `G(x) = sum g_j f_j(x)`.

use super::*;

impl Gpu {
    /// GPU twin of [`reference::gating_logits`]: `H(x)`, `[rows, peers]`.
    pub fn gating_logits(&self, input: &GateInput<'_>) -> Result<Vec<f32>, GatingError> {
        input.validate()?;
        let mut out = Vec::with_capacity(input.rows * input.peers);
        let weights = self.gate_weights(input)?;
        let chunk = self.gate_chunk(input, &[])?;
        for r0 in (0..input.rows).step_by(chunk) {
            let n = chunk.min(input.rows - r0);
            let scope = self.scope();
            let mut enc = self.encoder();
            let l = self.encode_logits(&mut enc, input, &weights, r0, n, false)?;
            let [h] = self.read(enc, [&l.logits], scope)?;
            out.extend_from_slice(bytemuck::cast_slice(&h));
        }
        Ok(out)
    }

    /// GPU twin of [`reference::top_k_softmax`]: selection bit-exact, gates within tolerance.
    pub fn top_k_softmax(
        &self,
        logits: &[f32],
        rows: usize,
        peers: usize,
        k: usize,
    ) -> Result<Selection, GatingError> {
        check_k(k, peers)?;
        check_len("logits", mul("rows * peers", rows, peers)?, logits.len())?;
        let chunk = self.rows_per_chunk(&[
            ("logits row", 4 * peers as u64),
            ("indices row", 4 * k as u64),
        ])?;
        let mut sel = Selection {
            indices: Vec::new(),
            gates: Vec::new(),
            rows,
            k,
            peers,
        };
        for r0 in (0..rows).step_by(chunk) {
            let n = chunk.min(rows - r0);
            let scope = self.scope();
            let mut enc = self.encoder();
            let h = self.storage("logits", &logits[r0 * peers..(r0 + n) * peers]);
            let t = self.encode_top_k(&mut enc, &h, n, peers, k, false)?;
            let [i, g] = self.read(enc, [&t.indices, &t.gates], scope)?;
            sel.indices.extend_from_slice(bytemuck::cast_slice(&i));
            sel.gates.extend_from_slice(bytemuck::cast_slice(&g));
        }
        Ok(sel)
    }

    /// GPU twin of [`reference::gating_forward`]: the logits stay on the device between the
    /// two kernels. Indices equal the reference's whenever the logits agree to the rounding of
    /// `exp`/`log` (always, for noise-free inputs whose dot products are exact in f32).
    pub fn gating_forward(
        &self,
        input: &GateInput<'_>,
        k: usize,
    ) -> Result<Selection, GatingError> {
        input.validate()?;
        check_k(k, input.peers)?;
        let weights = self.gate_weights(input)?;
        let chunk = self.gate_chunk(input, &[("indices row", 4 * k as u64)])?;
        let mut sel = Selection {
            indices: Vec::new(),
            gates: Vec::new(),
            rows: input.rows,
            k,
            peers: input.peers,
        };
        for r0 in (0..input.rows).step_by(chunk) {
            let n = chunk.min(input.rows - r0);
            let scope = self.scope();
            let mut enc = self.encoder();
            let l = self.encode_logits(&mut enc, input, &weights, r0, n, false)?;
            let t = self.encode_top_k(&mut enc, &l.logits, n, input.peers, k, false)?;
            let [i, g] = self.read(enc, [&t.indices, &t.gates], scope)?;
            sel.indices.extend_from_slice(bytemuck::cast_slice(&i));
            sel.gates.extend_from_slice(bytemuck::cast_slice(&g));
        }
        Ok(sel)
    }

    /// GPU twin of [`reference::combine`]: `G(x) = sum_s g_s f_s`, `[rows, d_out]`.
    pub fn combine(
        &self,
        sel: &Selection,
        responses: &[f32],
        d_out: usize,
    ) -> Result<Vec<f32>, GatingError> {
        sel.validate()?;
        check_responses(sel, responses, d_out)?;
        if sel.rows == 0 || d_out == 0 {
            return Ok(Vec::new());
        }
        let k = sel.k;
        let chunk = self.rows_per_chunk(&[
            ("responses row", 4 * (k * d_out) as u64),
            ("mixed row", 4 * d_out as u64),
        ])?;
        let x_groups = self.groups_checked("d_out", d_out)?;
        let mut out = Vec::with_capacity(sel.rows * d_out);
        for r0 in (0..sel.rows).step_by(chunk) {
            let n = chunk.min(sel.rows - r0);
            let scope = self.scope();
            let mut enc = self.encoder();
            let params = self.params([
                to_u32("rows", n)?,
                to_u32("k", k)?,
                to_u32("d_out", d_out)?,
                0,
            ]);
            let gates = self.storage("gates", &sel.gates[r0 * k..(r0 + n) * k]);
            let resp = self.storage(
                "responses",
                &responses[r0 * k * d_out..(r0 + n) * k * d_out],
            );
            let mixed = self.output("mixed", n * d_out);
            self.dispatch(
                &mut enc,
                &self.combine,
                &[&params, &gates, &resp, &mixed],
                (x_groups, n as u32),
            );
            let [m] = self.read(enc, [&mixed], scope)?;
            out.extend_from_slice(bytemuck::cast_slice(&m));
        }
        Ok(out)
    }

    /// Chunk size for the gating kernels: x, eps and the `[rows, peers]` intermediates, plus
    /// `extra` row buffers.
    pub(super) fn gate_chunk(
        &self,
        input: &GateInput<'_>,
        extra: &[(&'static str, u64)],
    ) -> Result<usize, GatingError> {
        self.groups_checked("peers", input.peers)?;
        let mut per_row = vec![
            ("x row", 4 * input.d as u64),
            ("logits row", 4 * input.peers as u64),
        ];
        per_row.extend_from_slice(extra);
        self.rows_per_chunk(&per_row)
    }

    // ---- encoders shared by several methods -----------------------------------------------

    pub(super) fn gate_weights(&self, input: &GateInput<'_>) -> Result<GateWeights, GatingError> {
        for dim in [("rows", input.rows), ("d", input.d), ("peers", input.peers)] {
            to_u32(dim.0, dim.1)?;
        }
        self.check_fixed("w_gate", input.w_gate.len())?;
        let w_noise = match &input.noise {
            Some(noise) => {
                self.check_fixed("w_noise", noise.w_noise.len())?;
                self.storage("w_noise", noise.w_noise)
            }
            None => self.storage::<f32>("w_noise (unused)", &[]),
        };
        Ok(GateWeights {
            w_gate: self.storage("w_gate", input.w_gate),
            w_noise,
        })
    }

    pub(super) fn encode_logits(
        &self,
        enc: &mut wgpu::CommandEncoder,
        input: &GateInput<'_>,
        w: &GateWeights,
        r0: usize,
        n: usize,
        parts: bool,
    ) -> Result<LogitsBuffers, GatingError> {
        let (d, peers) = (input.d, input.peers);
        let mut flags = if parts { WRITE_PARTS } else { 0 };
        let eps = match &input.noise {
            Some(noise) => {
                flags |= NOISY;
                self.storage("eps", &noise.eps[r0 * peers..(r0 + n) * peers])
            }
            None => self.storage::<f32>("eps (unused)", &[]),
        };
        let params = self.params([to_u32("rows", n)?, d as u32, peers as u32, flags]);
        let x = self.storage("x", &input.x[r0 * d..(r0 + n) * d]);
        let logits = self.output("logits", n * peers);
        let part_len = if parts { n * peers } else { 1 };
        let clean = self.output("clean", part_len);
        let sd = self.output("noise_sd", part_len);
        let (slot, groups) = self.logits_kernel(n, peers);
        self.dispatch(
            enc,
            &self.logits_pipelines[slot],
            &[
                &params, &x, &w.w_gate, &w.w_noise, &eps, &logits, &clean, &sd,
            ],
            groups,
        );
        Ok(LogitsBuffers { logits, clean, sd })
    }

    /// The logits kernel for a chunk of `n` rows: its slot in `logits_pipelines` and its
    /// workgroup grid.
    pub(super) fn logits_kernel(&self, n: usize, peers: usize) -> (usize, (u32, u32)) {
        let per_logit = (0, (groups_of(peers), n as u32));
        let tiled = (1, (groups_of(peers), n.div_ceil(LOGIT_ROWS) as u32));
        let staged_groups = peers.div_ceil(STAGED_PEERS);
        let staged = match u32::try_from(staged_groups) {
            Ok(g) if g <= self.max_groups => (2, (g, n as u32)),
            _ => per_logit,
        };
        let cpu = self.info.device_type == wgpu::DeviceType::Cpu;
        match self.logits_kernel {
            LogitsKernel::PerLogit => per_logit,
            LogitsKernel::Tiled => tiled,
            LogitsKernel::Staged => staged,
            LogitsKernel::Auto if n < TILED_FROM => {
                if cpu {
                    per_logit
                } else {
                    staged
                }
            }
            LogitsKernel::Auto => {
                let (x, y) = tiled.1;
                if cpu || x as usize * y as usize >= GPU_MIN_GROUPS {
                    tiled
                } else {
                    per_logit
                }
            }
        }
    }

    /// Picks the logits kernel of every later call (default [`LogitsKernel::Auto`]), e.g. to
    /// compare kernels in one run. Results do not depend on it beyond the tolerances.
    pub fn set_logits_kernel(&mut self, kernel: LogitsKernel) {
        self.logits_kernel = kernel;
    }

    pub(super) fn encode_top_k(
        &self,
        enc: &mut wgpu::CommandEncoder,
        logits: &wgpu::Buffer,
        n: usize,
        peers: usize,
        k: usize,
        thresholds: bool,
    ) -> Result<TopKBuffers, GatingError> {
        let params = self.params([
            to_u32("rows", n)?,
            to_u32("peers", peers)?,
            to_u32("k", k)?,
            u32::from(thresholds),
        ]);
        let indices = self.output("indices", n * k);
        let gates = self.output("gates", n * k);
        let thr = self.output("thresholds", if thresholds { 2 * n } else { 1 });
        self.dispatch(
            enc,
            &self.top_k,
            &[&params, logits, &indices, &gates, &thr],
            (n as u32, 1),
        );
        Ok(TopKBuffers {
            indices,
            gates,
            thresholds: thr,
        })
    }
}
