//! The devnet: the embedded ledger and N node processes on loopback, run for a number of
//! epochs, shown live, and written up as a report (docs/devnet/README.md tells what it shows).
//!
//! The crate owns the scenario format ([`Scenario`], `examples/devnet.toml`), the role table
//! ([`node_config`]: what each role serves and how it sets weights, as the typed
//! [`NodeConfig`] a node process runs), the records and their summary, and the report. Each of
//! those is a plain function of its inputs, tested without processes; only [`run`] starts
//! them, through the [`Launch`] its caller gives (the `deepnode` binary starts itself as
//! `deepnode devnet node FILE`).

mod error;
mod genesis;
mod live;
mod metrics;
#[cfg(test)]
mod model_tests;
mod record;
mod report;
mod roles;
mod run;
mod scenario;

pub use error::DevnetError;
pub use genesis::{genesis, wallet_seed};
pub use metrics::MetricsLine;
pub use record::{
    Departure, DomainLoss, EpochRecord, Evaluation, Gain, NodeRecord, NodeValue, Premise, Summary,
    premise, spearman, summarize,
};
pub use report::write as write_report;
pub use roles::{NodeConfig, Role, Row, Served, node_config};
pub use run::{Build, Launch, Options, run};
pub use scenario::{DEFAULT, DEFAULT_DOMAIN, Group, Member, Scenario, Signal};
