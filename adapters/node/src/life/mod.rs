//! A node's life on a network: register and serve its endpoint on the ledger, keep one
//! connection to every peer of the metagraph, query peers, score them, send them gradients,
//! and set weights within the ledger's rules.
//!
//! [`run`] hands the node's state to a runner that owns it and runs one tick at a time
//! (`runner`); a trainer runs on a thread of its own behind a channel (`training`). The other
//! jobs, one per file: how a node runs (`config`), who may call it (`admission`), joining the
//! network (`registration`), the peers and their dials (`dial`), queries with random inputs
//! (`fan`) and their gradients (`gradients`), scores and the weights row (`scoring`; the
//! adversarial rows in `adversary`, feature `adversarial`), and what the node reports
//! ([`Status`], also the metrics line).

mod admission;
#[cfg(feature = "adversarial")]
mod adversary;
mod config;
mod dial;
mod fan;
mod gradients;
mod registration;
mod runner;
mod scoring;
mod status;
mod training;

pub use admission::MetagraphAdmission;
pub use config::{Listen, RunConfig, Scoring};
pub use runner::run;
pub use status::Status;
