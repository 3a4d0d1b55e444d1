//! The crate's one error type.

/// Everything that can go wrong in this crate, on the CPU reference or on the GPU.
///
/// Shape errors are found before any work is dispatched, by the same checks on both paths.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GatingError {
    /// No wgpu adapter was found (no GPU and no software Vulkan driver such as lavapipe).
    /// The string is wgpu's reason.
    #[error("no GPU adapter found: {0}")]
    NoAdapter(String),
    /// The adapter refused to open a device with its own limits.
    #[error("could not open the GPU device: {0}")]
    RequestDevice(String),
    /// A slice's length does not match the shape it was declared with.
    #[error("{operand} has {got} elements, expected {expected}")]
    ShapeMismatch {
        /// Which argument (e.g. `"x"`, `"w_gate"`).
        operand: &'static str,
        /// Length implied by the declared shape.
        expected: usize,
        /// Length of the slice passed.
        got: usize,
    },
    /// `k` must satisfy `1 <= k <= peers`.
    #[error("k = {k} is not in 1..={peers} (peers)")]
    InvalidK {
        /// The requested number of peers per row.
        k: usize,
        /// The number of peers.
        peers: usize,
    },
    /// A selection names a peer that does not exist.
    #[error("indices[{row}, {slot}] = {index} is not below peers = {peers}")]
    IndexOutOfRange {
        /// Row of the bad entry.
        row: usize,
        /// Slot (0..k) of the bad entry.
        slot: usize,
        /// The index found.
        index: u32,
        /// The number of peers.
        peers: usize,
    },
    /// A dimension does not fit the `u32` the shaders index with.
    #[error("{operand} = {value} does not fit in the shaders' u32 indexing")]
    TooLargeForU32 {
        /// Which dimension or product.
        operand: &'static str,
        /// Its value.
        value: usize,
    },
    /// A buffer that cannot be split by rows (a weight matrix, or one row of a row buffer)
    /// is larger than the device's storage binding limit, so the input cannot be chunked.
    #[error("{operand} needs {bytes} bytes, over the device binding limit of {limit} bytes")]
    BufferTooLarge {
        /// Which buffer.
        operand: &'static str,
        /// Bytes it needs in one binding.
        bytes: u64,
        /// The limit in force (device limit, or the cap set with `Gpu::set_max_binding_bytes`).
        limit: u64,
    },
    /// A dispatch would need more workgroups along one dimension than the device allows and
    /// cannot be split by rows (e.g. the per-peer column sum with too many peers).
    #[error("{operand} needs {groups} workgroups, over the device limit of {limit}")]
    TooManyWorkgroups {
        /// Which dimension.
        operand: &'static str,
        /// Workgroups needed.
        groups: u64,
        /// `max_compute_workgroups_per_dimension` of the device.
        limit: u32,
    },
    /// The adapter lacks what the call needs (e.g. timestamp queries), or the call asks for
    /// nothing (zero repeats). The string says what.
    #[error("not supported here: {0}")]
    Unsupported(&'static str),
    /// The device reported an error (validation, out of memory, lost device, failed map).
    #[error("GPU device error: {0}")]
    Device(String),
}
