//! The crate's one error type.

use deepnode_node::NodeError;

/// Everything that can go wrong in training, serving or checkpointing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TorchError {
    /// libtorch raised an error (a C++ exception, an I/O failure of a checkpoint).
    #[error("libtorch: {0}")]
    Tch(#[from] tch::TchError),
    /// A tensor's shape does not match what the model expects.
    #[error("{what}: shape {got:?}, expected {expected}")]
    Shape {
        /// Which tensor.
        what: &'static str,
        /// The shape received.
        got: Vec<i64>,
        /// The expected shape, in words (e.g. `"[B, S, 32]"`).
        expected: String,
    },
    /// A tensor holds NaN or infinity where finite values are required.
    #[error("{0} holds NaN or infinity")]
    NonFinite(&'static str),
    /// A tensor has the wrong element type (e.g. floats for TEXT).
    #[error("{0}: wrong element type")]
    DType(&'static str),
    /// A TEXT token outside `0..256`.
    #[error("token {0} is not a byte")]
    Token(i64),
    /// The model was built without an encoder for this modality.
    #[error("modality {0:?} is not served")]
    Modality(deepnode_wire::Modality),
    /// A configuration value is out of range.
    #[error("config: {0}")]
    Config(&'static str),
    /// No text could be read for the corpus.
    #[error("corpus: {0}")]
    Corpus(String),
    /// A checkpoint's side file is malformed.
    #[error("checkpoint: {0}")]
    Checkpoint(&'static str),
    /// The gating crate refused its inputs.
    #[error("gating: {0}")]
    Gating(#[from] deepnode_gating::GatingError),
    /// A node tensor could not be built.
    #[error("node: {0}")]
    Node(#[from] NodeError),
    /// Reading or writing a checkpoint's side files.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

impl From<TorchError> for NodeError {
    /// The node sees a refusal with the reason as text; the one place errors are mapped.
    fn from(e: TorchError) -> NodeError {
        match e {
            TorchError::Node(n) => n,
            other => NodeError::Model(other.to_string()),
        }
    }
}
