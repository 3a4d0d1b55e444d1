#![doc = include_str!("../README.md")]

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
pub use metrics::read_metrics;
pub use record::{
    Departure, DomainLoss, EpochRecord, Evaluation, Gain, NodeRecord, NodeValue, Premise, Summary,
    premise, spearman, summarize,
};
pub use report::write as write_report;
pub use roles::{NodeConfig, Role, Row, Served, node_config};
pub use run::{Build, Launch, Options, run};
pub use scenario::{
    DEFAULT, DEFAULT_BONDS_MOVING_AVERAGE, DEFAULT_DOMAIN, Group, LiquidAlpha, Mechanism, Member,
    Scenario, Signal,
};
