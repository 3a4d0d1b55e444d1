//! The wgpu context and the host side of every kernel: upload, chunk by rows, dispatch, read.
#![doc = include_str!("../docs/kernels.md")]

use std::sync::{Mutex, mpsc};

use wgpu::util::DeviceExt;

use crate::types::{
    GateInput, GateRows, LoadBalance, Noise, Selection, check_k, check_len, check_responses, mul,
};
use crate::{FisherHead, GatingError, reference, shaders};

mod buffers;
mod forward;
mod resident;
mod scores;
mod timing;

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
