//! Buffers, bind groups, dispatch and read-back: the plumbing every kernel's host side uses.

use super::*;

impl Gpu {
    pub(super) fn encoder(&self) -> wgpu::CommandEncoder {
        self.device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("deepnode-gating"),
            })
    }

    /// Opens the error scopes that [`Gpu::read`] closes, so a device error becomes a
    /// [`GatingError::Device`] instead of wgpu's default panic.
    pub(super) fn scope(&self) -> [wgpu::ErrorScopeGuard; 2] {
        [
            self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory),
            self.device.push_error_scope(wgpu::ErrorFilter::Validation),
        ]
    }

    /// A read-only storage buffer holding `data` (4 zero bytes when empty: bindings must not
    /// be empty).
    pub(super) fn storage<T: bytemuck::Pod>(&self, label: &str, data: &[T]) -> wgpu::Buffer {
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
    pub(super) fn output(&self, label: &str, len: usize) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: 4 * len.max(1) as u64,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        })
    }

    pub(super) fn params(&self, values: [u32; 4]) -> wgpu::Buffer {
        self.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("params"),
                contents: bytemuck::cast_slice(&values),
                usage: wgpu::BufferUsages::UNIFORM,
            })
    }

    /// A bind group of `pipeline` with `buffers` at bindings 0, 1, 2, ...
    pub(super) fn bind(
        &self,
        pipeline: &wgpu::ComputePipeline,
        buffers: &[&wgpu::Buffer],
    ) -> wgpu::BindGroup {
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
    pub(super) fn dispatch(
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
    pub(super) fn read<const N: usize>(
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
    pub(super) fn read_via<const N: usize>(
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
