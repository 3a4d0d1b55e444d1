#![doc = include_str!("../README.md")]

pub mod baseline;
pub mod convert;
pub mod data;
pub mod encoder;
mod error;
pub mod gating;
pub mod learner;
pub mod local;
pub mod served;

pub use encoder::{Encoder, EncoderConfig};
pub use error::TorchError;
pub use learner::{Learner, LearnerConfig};
pub use local::{FisherBackend, LocalConfig, LocalModel, Mixture, StepReport, StepTimings};
pub use served::{ServeConfig, TorchModel};
