#![doc = include_str!("../README.md")]

mod error;
mod genesis;
mod hosts;
mod link_host;
mod live;
mod metrics;
#[cfg(test)]
mod model_tests;
mod network;
pub mod plan;
mod record;
mod report;
mod roles;
mod run;
mod scenario;

pub use error::DevnetError;
pub use genesis::{genesis, wallet_seed};
pub use hosts::{Hosts, list as list_netns, owner as netns_owner};
pub use link_host::{LinkConfig, LinkLine, serve_link};
pub use metrics::read_metrics;
pub use network::{EpochFigures, NetEpoch, NetNode, Restart, figures};
pub use record::{
    Departure, DomainLoss, EpochRecord, Evaluation, Gain, NodeRecord, NodeValue, Premise, Summary,
    premise, spearman, summarize,
};
pub use report::write as write_report;
pub use roles::{NodeConfig, Role, Row, Served, node_config};
pub use run::{Build, Launch, Options, Process, run};
pub use scenario::{
    DEFAULT, DEFAULT_BONDS_MOVING_AVERAGE, DEFAULT_DOMAIN, Group, LiquidAlpha, Mechanism, Member,
    Scenario, Signal,
};
