//! The relays of a node's link on separate hosts (its own namespace, between the node's
//! namespace and the bridge): egress carries the node's connections to its peers' links,
//! ingress the peers' connections to the node, and a third the node's RPC to the ledger, all
//! through the node's link profile. Started by the devnet as `deepnode devnet link FILE`;
//! once a second it appends a [`LinkLine`] to its tally file.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deepnode_link::{Profile, Relay, Upstream};
use serde::{Deserialize, Serialize};

use crate::error::DevnetError;
use crate::plan;

/// One link as its process runs it (the devnet writes it as JSON).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkConfig {
    /// The node it carries.
    pub index: usize,
    /// The node's namespace, where the link serves the node's RPC endpoint (loopback, as the
    /// ledger serves loopback clients only).
    pub node_netns: String,
    /// What it does to the bytes.
    pub profile: Profile,
    /// Seed of its random times.
    pub seed: u64,
    /// Where it appends its [`LinkLine`]s.
    pub tally: PathBuf,
}

/// A link's tally, once a second.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LinkLine {
    /// Milliseconds since the Unix epoch.
    pub t_ms: u64,
    /// Connections open from the node to peers.
    pub out: u64,
    /// Connections open from peers to the node.
    pub inbound: u64,
    /// Connections open from the node to the ledger.
    pub rpc: u64,
    /// Connections reset so far (all three relays).
    pub resets: u64,
    /// Bytes carried so far (all three relays, both directions).
    pub bytes: u64,
    /// Nodes whose connections to this node were accepted since the last line.
    pub dialled_by: Vec<usize>,
}

impl LinkLine {
    /// Every complete line of a tally file, in order.
    pub fn read_all(path: &Path) -> Vec<LinkLine> {
        std::fs::read_to_string(path)
            .map(|t| {
                t.lines()
                    .filter_map(|l| serde_json::from_str(l).ok())
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Runs the link of the config file at `path` until SIGTERM or Ctrl-C.
pub fn serve_link(path: &Path) -> Result<(), DevnetError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| DevnetError::Input(format!("{}: {e}", path.display())))?;
    let c: LinkConfig = serde_json::from_str(&text)
        .map_err(|e| DevnetError::Input(format!("{}: {e}", path.display())))?;
    c.profile.check().map_err(DevnetError::input)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(DevnetError::failed)?;
    rt.block_on(links(c))
}

async fn links(c: LinkConfig) -> Result<(), DevnetError> {
    let me = c.index;
    let bind_err = |what: &str, e: deepnode_link::LinkError| {
        DevnetError::Failed(format!("link of node-{me}: {what}: {e}"))
    };
    let egress = Relay::bind(
        SocketAddr::from(([0, 0, 0, 0], plan::PORT)),
        c.profile,
        c.seed,
        move |dialled, _| {
            let std::net::IpAddr::V4(ip) = dialled.ip() else {
                return None;
            };
            let j = plan::node_of(plan::PUBLIC_NET, ip).filter(|&j| j != me)?;
            Some(SocketAddr::from((plan::bridge(j), plan::INGRESS_PORT)).into())
        },
    )
    .await
    .map_err(|e| bind_err("egress", e))?;
    let dialled: Arc<Mutex<Vec<usize>>> = Arc::default();
    let seen = Arc::clone(&dialled);
    let ingress = Relay::bind(
        SocketAddr::from((plan::bridge(me), plan::INGRESS_PORT)),
        c.profile,
        c.seed ^ 1,
        move |_, client| {
            let std::net::IpAddr::V4(ip) = client.ip() else {
                return None;
            };
            let j = plan::node_of(plan::BRIDGE_NET, ip)?;
            if let Ok(mut d) = seen.lock() {
                d.push(j);
            }
            Some(Upstream {
                addr: plan::endpoint(me),
                from: Some(plan::source(j).into()),
            })
        },
    )
    .await
    .map_err(|e| bind_err("ingress", e))?;
    let rpc_listener = {
        let _in_node = crate::hosts::enter(&c.node_netns)?;
        std::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], plan::RPC_PORT)))
            .map_err(|e| DevnetError::Failed(format!("link of node-{me}: rpc: {e}")))?
    };
    let rpc = Relay::on(rpc_listener, c.profile, c.seed ^ 2, |_, _| {
        Some(SocketAddr::from((plan::LEDGER, plan::RPC_PORT)).into())
    })
    .map_err(|e| bind_err("rpc", e))?;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&c.tally)
        .map_err(|e| DevnetError::Failed(format!("{}: {e}", c.tally.display())))?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(DevnetError::failed)?;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = term.recv() => return Ok(()),
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
        let relays = [&egress, &ingress, &rpc];
        let sum = |f: fn(&deepnode_link::Tally) -> u64| relays.iter().map(|r| f(r.tally())).sum();
        let line = LinkLine {
            t_ms: now_ms(),
            out: egress.tally().open.load(Ordering::Relaxed),
            inbound: ingress.tally().open.load(Ordering::Relaxed),
            rpc: rpc.tally().open.load(Ordering::Relaxed),
            resets: sum(|t| t.resets.load(Ordering::Relaxed)),
            bytes: sum(|t| t.bytes.load(Ordering::Relaxed)),
            dialled_by: dialled
                .lock()
                .map(|mut d| std::mem::take(&mut *d))
                .unwrap_or_default(),
        };
        let json = serde_json::to_string(&line).map_err(DevnetError::failed)?;
        writeln!(file, "{json}").map_err(DevnetError::failed)?;
    }
}
