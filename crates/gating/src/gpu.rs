//! The wgpu context and the host side of every kernel: upload, chunk by rows, dispatch, read.
#![doc = include_str!("../docs/kernels.md")]

use std::sync::{Mutex, mpsc};

use wgpu::util::DeviceExt;

use crate::types::{
    GateInput, GateRows, LoadBalance, Noise, Selection, check_k, check_len, check_responses, mul,
};
use crate::{FisherHead, GatingError, reference, shaders};

/// Threads per workgroup along x in every shader (`@workgroup_size(64, 1, 1)`).
const WG: u64 = 64;
/// Rows per workgroup of `gating_logits_tiled.wgsl` (its `RT`).
const LOGIT_ROWS: usize = 16;
/// [`LogitsKernel::Auto`] never tiles batches of fewer rows.
const TILED_FROM: usize = 4;
/// On a GPU, [`LogitsKernel::Auto`] tiles only when the tiled grid has this many workgroups:
/// on an H100 (Vulkan) the tiled kernel was 1.23-1.36x faster at 1,024 workgroups (4,096
/// peers, 256 rows) and slower at 256 and below, where the per-logit kernel's weight reads
/// hit the cache.
const GPU_MIN_GROUPS: usize = 1024;
/// Peers per workgroup of `gating_logits_staged.wgsl` (its `PW`).
const STAGED_PEERS: usize = 32;

/// The kernel that computes the gating logits `H(x)` ([`Gpu::set_logits_kernel`]). Both
/// accumulate each dot product in the order `t = 0..d`; they agreed bit for bit in the tests on
/// lavapipe and on an H100.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogitsKernel {
    /// Under 4 rows: [`LogitsKernel::Staged`] on a GPU, [`LogitsKernel::PerLogit`] on a CPU
    /// adapter (lavapipe). From 4 rows: [`LogitsKernel::Tiled`] on a CPU adapter, and on a GPU
    /// when the tiled grid has at least 1,024 workgroups.
    #[default]
    Auto,
    /// `gating_logits.wgsl`: one logit per invocation, each reading its column of the weights.
    PerLogit,
    /// `gating_logits_tiled.wgsl`: 16 rows x 64 peers per workgroup, each weight read serving
    /// 16 rows, the rows' x staged in workgroup memory.
    Tiled,
    /// `gating_logits_staged.wgsl`: 32 peers of one row per workgroup of 256 invocations, all
    /// of which load 64 x 32 weight tiles into workgroup memory (many reads in flight), from
    /// where 32 of them add the products. Falls back to [`LogitsKernel::PerLogit`] where its
    /// grid would exceed the device's workgroup limit.
    Staged,
}

impl LogitsKernel {
    /// Every choice, [`LogitsKernel::Auto`] last (to compare them in one run).
    pub const ALL: [LogitsKernel; 4] = [
        LogitsKernel::PerLogit,
        LogitsKernel::Tiled,
        LogitsKernel::Staged,
        LogitsKernel::Auto,
    ];
}

/// A GPU device with the crate's compute pipelines compiled.
///
/// Every method checks its input like its [`crate::reference`] twin, splits the batch into
/// chunks of rows so that no buffer binding exceeds the device's limits, runs the kernels and
/// returns what the reference returns, within the tolerances of the crate docs.
pub struct Gpu {
    device: wgpu::Device,
    queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    /// Bytes one storage binding may hold: the device limit, or less if capped.
    max_binding: u64,
    device_max_binding: u64,
    /// `max_compute_workgroups_per_dimension`.
    max_groups: u32,
    /// The logits kernels: per logit, tiled, staged.
    logits_pipelines: [wgpu::ComputePipeline; 3],
    logits_kernel: LogitsKernel,
    top_k: wgpu::ComputePipeline,
    combine: wgpu::ComputePipeline,
    fisher: wgpu::ComputePipeline,
    scatter: wgpu::ComputePipeline,
    column_sum: wgpu::ComputePipeline,
    load: wgpu::ComputePipeline,
}

impl core::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Gpu")
            .field("adapter", &self.info.name)
            .field("backend", &self.info.backend)
            .field("max_binding", &self.max_binding)
            .finish_non_exhaustive()
    }
}

/// The flags of `gating_logits.wgsl`.
const NOISY: u32 = 1;
const WRITE_PARTS: u32 = 2;

fn to_u32(operand: &'static str, value: usize) -> Result<u32, GatingError> {
    u32::try_from(value).map_err(|_| GatingError::TooLargeForU32 { operand, value })
}

fn groups_of(n: usize) -> u32 {
    // Callers bound `n` by the chunk size, itself at most `max_groups * 64` (a u32).
    n.div_ceil(WG as usize) as u32
}

impl Gpu {
    /// Opens the first adapter wgpu offers on its primary backends (Vulkan, Metal, DX12; the
    /// `WGPU_BACKEND` environment variable overrides), including a software one such as
    /// Mesa's lavapipe, with the adapter's own limits, and compiles the shaders.
    ///
    /// Fails with [`GatingError::NoAdapter`] when there is none.
    pub fn new() -> Result<Self, GatingError> {
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
        desc.backends = wgpu::Backends::from_env().unwrap_or(wgpu::Backends::PRIMARY);
        let instance = wgpu::Instance::new(desc);
        let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            ..Default::default()
        }))
        .map_err(|e| GatingError::NoAdapter(e.to_string()))?;
        let limits = adapter.limits();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("deepnode-gating"),
            required_limits: limits.clone(),
            // Only `Gpu::logits_kernel_time` uses them; enabled wherever the adapter has them.
            required_features: adapter.features() & wgpu::Features::TIMESTAMP_QUERY,
            ..Default::default()
        }))
        .map_err(|e| GatingError::RequestDevice(e.to_string()))?;
        // The tiled kernel writes its staging area before reading it, so it may skip zeroing
        // workgroup memory.
        let pipeline = |name: &str, source: &str, zero_workgroup_memory: bool| {
            let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(name),
                source: wgpu::ShaderSource::Wgsl(source.into()),
            });
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(name),
                layout: None,
                module: &module,
                entry_point: Some("main"),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants: &[],
                    zero_initialize_workgroup_memory: zero_workgroup_memory,
                },
                cache: None,
            })
        };
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let gpu = Self {
            logits_pipelines: [
                pipeline("gating_logits", shaders::GATING_LOGITS, true),
                pipeline("gating_logits_tiled", shaders::GATING_LOGITS_TILED, false),
                pipeline("gating_logits_staged", shaders::GATING_LOGITS_STAGED, false),
            ],
            logits_kernel: LogitsKernel::Auto,
            top_k: pipeline("top_k_softmax", shaders::TOP_K_SOFTMAX, true),
            combine: pipeline("combine", shaders::COMBINE, true),
            fisher: pipeline("fisher_terms", shaders::FISHER_TERMS, true),
            scatter: pipeline("scatter_rows", shaders::SCATTER_ROWS, true),
            column_sum: pipeline("column_sum", shaders::COLUMN_SUM, true),
            load: pipeline("load_prob", shaders::LOAD_PROB, true),
            max_binding: binding_limit(&limits),
            device_max_binding: binding_limit(&limits),
            max_groups: limits.max_compute_workgroups_per_dimension,
            info: adapter.get_info(),
            device,
            queue,
        };
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(GatingError::Device(e.to_string()));
        }
        Ok(gpu)
    }

    /// The adapter in use (name, backend, device type), e.g. to tell lavapipe from a GPU.
    pub fn adapter_info(&self) -> &wgpu::AdapterInfo {
        &self.info
    }

    /// Caps the bytes of any one buffer binding at `bytes` (never above the device's limit;
    /// rounded down to a multiple of 4, at least 4). Inputs are then split into more chunks of
    /// rows; a weight matrix or a single row over the cap gives
    /// [`GatingError::BufferTooLarge`]. For memory budgets and for testing the chunking.
    pub fn set_max_binding_bytes(&mut self, bytes: u64) {
        self.max_binding = (bytes.min(self.device_max_binding) & !3).max(4);
    }

    /// The bytes one buffer binding may hold now (see [`Gpu::set_max_binding_bytes`]).
    pub fn max_binding_bytes(&self) -> u64 {
        self.max_binding
    }

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
    fn forward_resident(
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
    fn upload_rows(
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
    fn scratch(&self, gate: &ResidentGate, rows: usize, k: usize) -> Scratch {
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

    /// GPU twin of [`reference::gate_mass`]: mean gate mass per peer, `[peers]`.
    pub fn gate_mass(&self, sel: &Selection) -> Result<Vec<f32>, GatingError> {
        sel.validate()?;
        let sums = self.per_peer_sums(sel, &[], |_, _, _, _| Ok(None))?;
        Ok(reference::mean_over_rows(sums, sel.rows))
    }

    /// GPU twin of [`reference::fisher_scores`]: `r_i = mean_x dF_i^T H dF_i`, `[peers]`.
    pub fn fisher_scores(
        &self,
        sel: &Selection,
        responses: &[f32],
        d_out: usize,
        head: &FisherHead<'_>,
    ) -> Result<Vec<f32>, GatingError> {
        sel.validate()?;
        check_responses(sel, responses, d_out)?;
        head.validate(sel.rows, d_out)?;
        let k = sel.k;
        self.check_fixed("head.weights", head.weights.len())?;
        let weights = self.storage("head", head.weights);
        let dims = [
            to_u32("k", k)?,
            to_u32("d_out", d_out)?,
            to_u32("classes", head.classes)?,
        ];
        let extra = [
            ("responses row", 4 * (k * d_out) as u64),
            ("probs row", 4 * head.classes as u64),
        ];
        let sums = self.per_peer_sums(sel, &extra, |gpu, enc, r0, n| {
            let params = gpu.params([to_u32("rows", n)?, dims[0], dims[1], dims[2]]);
            let gates = gpu.storage("gates", &sel.gates[r0 * k..(r0 + n) * k]);
            let resp = gpu.storage(
                "responses",
                &responses[r0 * k * d_out..(r0 + n) * k * d_out],
            );
            let probs = gpu.storage(
                "probs",
                &head.probs[r0 * head.classes..(r0 + n) * head.classes],
            );
            let terms = gpu.output("terms", n * k);
            gpu.dispatch(
                enc,
                &gpu.fisher,
                &[&params, &gates, &resp, &weights, &probs, &terms],
                (groups_of(n * k), 1),
            );
            Ok(Some(terms))
        })?;
        Ok(reference::mean_over_rows(sums, sel.rows))
    }

    /// GPU twin of [`reference::load_balance`]: importance, smooth load and their `CV^2`
    /// (the `CV^2` of the two `[peers]` vectors is taken on the host with
    /// [`reference::cv_squared`]).
    pub fn load_balance(
        &self,
        input: &GateInput<'_>,
        k: usize,
    ) -> Result<LoadBalance, GatingError> {
        input.validate()?;
        check_k(k, input.peers)?;
        let peers = input.peers;
        let col_groups = self.groups_checked("peers", peers)?;
        let weights = self.gate_weights(input)?;
        let row = 4 * peers as u64;
        let chunk = self.gate_chunk(input, &[("indices row", 4 * k as u64), ("dense row", row)])?;
        let mut importance = vec![0.0f32; peers];
        let mut load = vec![0.0f32; peers];
        for r0 in (0..input.rows).step_by(chunk) {
            let n = chunk.min(input.rows - r0);
            let n32 = n as u32;
            let scope = self.scope();
            let mut enc = self.encoder();
            let l = self.encode_logits(&mut enc, input, &weights, r0, n, true)?;
            let t = self.encode_top_k(&mut enc, &l.logits, n, peers, k, true)?;
            let noisy = u32::from(input.noise.is_some());
            let params = self.params([n32, peers as u32, k as u32, noisy]);
            let prob = self.output("prob", n * peers);
            self.dispatch(
                &mut enc,
                &self.load,
                &[
                    &params,
                    &l.logits,
                    &l.clean,
                    &l.sd,
                    &t.indices,
                    &t.thresholds,
                    &prob,
                ],
                (col_groups, n32),
            );
            let dense = self.output("dense gates", n * peers);
            let sp = self.params([n32, k as u32, peers as u32, 0]);
            self.dispatch(
                &mut enc,
                &self.scatter,
                &[&sp, &t.indices, &t.gates, &dense],
                (groups_of(n), 1),
            );
            let cp = self.params([n32, peers as u32, 0, 0]);
            let imp = self.output("importance", peers);
            let lod = self.output("load", peers);
            self.dispatch(
                &mut enc,
                &self.column_sum,
                &[&cp, &dense, &imp],
                (col_groups, 1),
            );
            self.dispatch(
                &mut enc,
                &self.column_sum,
                &[&cp, &prob, &lod],
                (col_groups, 1),
            );
            let [i, l] = self.read(enc, [&imp, &lod], scope)?;
            for (acc, v) in importance
                .iter_mut()
                .zip(bytemuck::cast_slice::<u8, f32>(&i))
            {
                *acc += *v;
            }
            for (acc, v) in load.iter_mut().zip(bytemuck::cast_slice::<u8, f32>(&l)) {
                *acc += *v;
            }
        }
        Ok(LoadBalance {
            cv2_importance: reference::cv_squared(&importance),
            cv2_load: reference::cv_squared(&load),
            importance,
            load,
        })
    }

    // ---- chunk planning -------------------------------------------------------------------

    /// Largest number of rows per chunk such that each row buffer (bytes per row given) fits
    /// one binding and a row-indexed dispatch fits the workgroup limit.
    fn rows_per_chunk(&self, per_row: &[(&'static str, u64)]) -> Result<usize, GatingError> {
        let mut rows = u64::from(self.max_groups);
        for &(operand, bytes) in per_row {
            if bytes > self.max_binding {
                return Err(GatingError::BufferTooLarge {
                    operand,
                    bytes,
                    limit: self.max_binding,
                });
            }
            if let Some(fit) = self.max_binding.checked_div(bytes) {
                rows = rows.min(fit);
            }
        }
        Ok(rows.max(1) as usize)
    }

    fn check_fixed(&self, operand: &'static str, len: usize) -> Result<(), GatingError> {
        let bytes = 4 * len as u64;
        if bytes > self.max_binding {
            return Err(GatingError::BufferTooLarge {
                operand,
                bytes,
                limit: self.max_binding,
            });
        }
        Ok(())
    }

    fn groups_checked(&self, operand: &'static str, n: usize) -> Result<u32, GatingError> {
        let groups = (n as u64).div_ceil(WG);
        if groups > u64::from(self.max_groups) {
            return Err(GatingError::TooManyWorkgroups {
                operand,
                groups,
                limit: self.max_groups,
            });
        }
        Ok(groups as u32)
    }

    /// Chunk size for the gating kernels: x, eps and the `[rows, peers]` intermediates, plus
    /// `extra` row buffers.
    fn gate_chunk(
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

    fn gate_weights(&self, input: &GateInput<'_>) -> Result<GateWeights, GatingError> {
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

    fn encode_logits(
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
    fn logits_kernel(&self, n: usize, peers: usize) -> (usize, (u32, u32)) {
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

    /// Picks the logits kernel of every later call (default [`LogitsKernel::Auto`]), e.g. to
    /// compare kernels in one run. Results do not depend on it beyond the tolerances.
    pub fn set_logits_kernel(&mut self, kernel: LogitsKernel) {
        self.logits_kernel = kernel;
    }

    fn encode_top_k(
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

    /// Sums per peer, over all rows, of per-slot values: the gates when `values` returns
    /// `None`, else the buffer it encodes for rows `r0..r0 + n`. Scatter then column sum on the
    /// device; chunks are added on the host.
    fn per_peer_sums<F>(
        &self,
        sel: &Selection,
        extra: &[(&'static str, u64)],
        values: F,
    ) -> Result<Vec<f32>, GatingError>
    where
        F: Fn(
            &Self,
            &mut wgpu::CommandEncoder,
            usize,
            usize,
        ) -> Result<Option<wgpu::Buffer>, GatingError>,
    {
        let (k, peers) = (sel.k, sel.peers);
        to_u32("rows", sel.rows)?;
        let col_groups = self.groups_checked("peers", peers)?;
        let mut per_row = vec![
            ("dense row", 4 * peers as u64),
            ("indices row", 4 * k as u64),
        ];
        per_row.extend_from_slice(extra);
        // The per-slot kernels dispatch rows * k invocations along x.
        let chunk = self
            .rows_per_chunk(&per_row)?
            .min((u64::from(self.max_groups) * WG / k as u64).max(1) as usize);
        let mut sums = vec![0.0f32; peers];
        for r0 in (0..sel.rows).step_by(chunk) {
            let n = chunk.min(sel.rows - r0);
            let scope = self.scope();
            let mut enc = self.encoder();
            let vals = match values(self, &mut enc, r0, n)? {
                Some(buffer) => buffer,
                None => self.storage("gates", &sel.gates[r0 * k..(r0 + n) * k]),
            };
            let indices = self.storage("indices", &sel.indices[r0 * k..(r0 + n) * k]);
            let dense = self.output("dense", n * peers);
            let sp = self.params([n as u32, k as u32, peers as u32, 0]);
            self.dispatch(
                &mut enc,
                &self.scatter,
                &[&sp, &indices, &vals, &dense],
                (groups_of(n), 1),
            );
            let cp = self.params([n as u32, peers as u32, 0, 0]);
            let out = self.output("sums", peers);
            self.dispatch(
                &mut enc,
                &self.column_sum,
                &[&cp, &dense, &out],
                (col_groups, 1),
            );
            let [s] = self.read(enc, [&out], scope)?;
            for (acc, v) in sums.iter_mut().zip(bytemuck::cast_slice::<u8, f32>(&s)) {
                *acc += *v;
            }
        }
        Ok(sums)
    }

    // ---- wgpu plumbing --------------------------------------------------------------------

    fn encoder(&self) -> wgpu::CommandEncoder {
        self.device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("deepnode-gating"),
            })
    }

    /// Opens the error scopes that [`Gpu::read`] closes, so a device error becomes a
    /// [`GatingError::Device`] instead of wgpu's default panic.
    fn scope(&self) -> [wgpu::ErrorScopeGuard; 2] {
        [
            self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory),
            self.device.push_error_scope(wgpu::ErrorFilter::Validation),
        ]
    }

    /// A read-only storage buffer holding `data` (4 zero bytes when empty: bindings must not
    /// be empty).
    fn storage<T: bytemuck::Pod>(&self, label: &str, data: &[T]) -> wgpu::Buffer {
        let zero = [0u8; 4];
        let contents: &[u8] = if data.is_empty() {
            &zero
        } else {
            bytemuck::cast_slice(data)
        };
        self.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents,
                usage: wgpu::BufferUsages::STORAGE,
            })
    }

    /// A zeroed read-write storage buffer of `len` 4-byte elements (at least one).
    fn output(&self, label: &str, len: usize) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: 4 * len.max(1) as u64,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        })
    }

    fn params(&self, values: [u32; 4]) -> wgpu::Buffer {
        self.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("params"),
                contents: bytemuck::cast_slice(&values),
                usage: wgpu::BufferUsages::UNIFORM,
            })
    }

    /// A bind group of `pipeline` with `buffers` at bindings 0, 1, 2, ...
    fn bind(&self, pipeline: &wgpu::ComputePipeline, buffers: &[&wgpu::Buffer]) -> wgpu::BindGroup {
        let entries: Vec<wgpu::BindGroupEntry<'_>> = buffers
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: b.as_entire_binding(),
            })
            .collect();
        self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        })
    }

    /// Records one dispatch of `pipeline` with `buffers` bound at bindings 0, 1, 2, ...
    fn dispatch(
        &self,
        enc: &mut wgpu::CommandEncoder,
        pipeline: &wgpu::ComputePipeline,
        buffers: &[&wgpu::Buffer],
        groups: (u32, u32),
    ) {
        record(enc, pipeline, &self.bind(pipeline, buffers), groups);
    }

    /// Submits `enc`, copies `outputs` back (through one staging buffer) and closes the error
    /// scopes.
    fn read<const N: usize>(
        &self,
        enc: wgpu::CommandEncoder,
        outputs: [&wgpu::Buffer; N],
        scope: [wgpu::ErrorScopeGuard; 2],
    ) -> Result<[Vec<u8>; N], GatingError> {
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("staging"),
            size: outputs.iter().map(|b| b.size()).sum(),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        self.read_via(enc, outputs.map(|b| (b, b.size())), &staging, scope)
    }

    /// Submits `enc`, copies the first `bytes` of each output into `staging` one after the
    /// other, maps only those bytes, and closes the error scopes. Every `bytes` is a non-zero
    /// multiple of 4 (outputs hold at least one element) and their sum fits `staging`.
    fn read_via<const N: usize>(
        &self,
        mut enc: wgpu::CommandEncoder,
        outputs: [(&wgpu::Buffer, u64); N],
        staging: &wgpu::Buffer,
        scope: [wgpu::ErrorScopeGuard; 2],
    ) -> Result<[Vec<u8>; N], GatingError> {
        let mut at = 0;
        let spans = outputs.map(|(b, bytes)| {
            enc.copy_buffer_to_buffer(b, 0, staging, at, bytes);
            at += bytes;
            (at - bytes, at)
        });
        self.queue.submit([enc.finish()]);
        let (tx, rx) = mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, ..at, move |r| {
            // The receiver lives until the callback has run (poll waits for it).
            let _ = tx.send(r);
        });
        let polled = self.device.poll(wgpu::PollType::wait_indefinitely());
        let [oom, validation] = scope;
        let validation = pollster::block_on(validation.pop());
        let oom = pollster::block_on(oom.pop());
        if let Some(e) = validation.or(oom) {
            return Err(GatingError::Device(e.to_string()));
        }
        polled.map_err(|e| GatingError::Device(e.to_string()))?;
        for r in rx.iter() {
            r.map_err(|e| GatingError::Device(e.to_string()))?;
        }
        let out = {
            let view = staging
                .get_mapped_range(..at)
                .map_err(|e| GatingError::Device(e.to_string()))?;
            spans.map(|(a, b)| view[a as usize..b as usize].to_vec())
        };
        staging.unmap();
        Ok(out)
    }
}

/// Records one dispatch of `pipeline` with the bind group `bind` at group 0.
fn record(
    enc: &mut wgpu::CommandEncoder,
    pipeline: &wgpu::ComputePipeline,
    bind: &wgpu::BindGroup,
    groups: (u32, u32),
) {
    let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
    pass.set_pipeline(pipeline);
    pass.set_bind_group(0, bind, &[]);
    pass.dispatch_workgroups(groups.0, groups.1, 1);
}

/// The shape checks of a resident call's batch (`x`, and `eps` exactly for a noisy gate).
fn check_rows(gate: &ResidentGate, batch: &GateRows<'_>) -> Result<(), GatingError> {
    let (d, peers, rows) = (gate.d, gate.peers, batch.rows);
    check_len("x", mul("rows * d", rows, d)?, batch.x.len())?;
    match (gate.noisy, batch.eps) {
        (true, Some(e)) => check_len("eps", mul("rows * peers", rows, peers)?, e.len()),
        (false, None) => Ok(()),
        (noisy, eps) => {
            // eps given for a noise-free gate, or missing for a noisy one.
            check_len(
                "eps",
                if noisy { rows.saturating_mul(peers) } else { 0 },
                eps.map_or(usize::MAX, <[f32]>::len),
            )
        }
    }
}

fn binding_limit(limits: &wgpu::Limits) -> u64 {
    limits
        .max_storage_buffer_binding_size
        .min(limits.max_buffer_size)
        & !3
}

/// Gate weights kept on the device across calls ([`Gpu::upload_gate`]); valid for the
/// [`Gpu`] that made it.
pub struct ResidentGate {
    weights: GateWeights,
    d: usize,
    peers: usize,
    noisy: bool,
    /// The buffers of the last call, reused by the next while its chunks fit.
    scratch: Mutex<Option<Scratch>>,
}

/// The per-call buffers of [`Gpu::gating_forward_resident`] for chunks of up to `rows` rows
/// and a given `k`, with their bind groups.
struct Scratch {
    rows: usize,
    k: usize,
    x: wgpu::Buffer,
    eps: wgpu::Buffer,
    logits_params: wgpu::Buffer,
    top_k_params: wgpu::Buffer,
    indices: wgpu::Buffer,
    gates: wgpu::Buffer,
    /// Indices then gates, `8 rows k` bytes.
    staging: wgpu::Buffer,
    /// One per logits kernel (`Gpu::logits_pipelines`).
    logits_binds: [wgpu::BindGroup; 3],
    top_k_bind: wgpu::BindGroup,
}

impl core::fmt::Debug for ResidentGate {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ResidentGate")
            .field("d", &self.d)
            .field("peers", &self.peers)
            .field("noisy", &self.noisy)
            .finish_non_exhaustive()
    }
}

struct GateWeights {
    w_gate: wgpu::Buffer,
    w_noise: wgpu::Buffer,
}

struct LogitsBuffers {
    logits: wgpu::Buffer,
    clean: wgpu::Buffer,
    sd: wgpu::Buffer,
}

struct TopKBuffers {
    indices: wgpu::Buffer,
    gates: wgpu::Buffer,
    thresholds: wgpu::Buffer,
}
