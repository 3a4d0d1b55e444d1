//! The node's peers: one connection to every peer of the metagraph that serves its modality,
//! dialled in the background, a peer that fails backed off.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use deepnode_consensus::Uid;
use deepnode_ledger_client::MetagraphView;
use deepnode_wire::Modality;
use tokio::task::JoinHandle;

use super::admission::parse_key;
use crate::query::Backoff;
use crate::transport::AccountKey;
use crate::{Connection, Node, NodeError};

/// A connected peer.
pub(super) struct Peer {
    key: AccountKey,
    endpoint: String,
    pub(super) conn: Arc<Connection>,
}

/// A dial under way: the peer's key and endpoint, and the task.
type Dialing = (
    AccountKey,
    String,
    JoinHandle<Result<Arc<Connection>, NodeError>>,
);

/// The peers connected and being dialled, and each peer's backoff after a failure.
#[derive(Default)]
pub(super) struct Peers {
    pub(super) connected: HashMap<Uid, Peer>,
    dialing: HashMap<Uid, Dialing>,
    pub(super) backoff: HashMap<Uid, Backoff>,
}

impl Peers {
    /// Peers with an open connection.
    pub(super) fn up(&self) -> usize {
        self.connected.values().filter(|p| p.conn.is_open()).count()
    }

    /// Takes in the dials that finished (a connected peer, or a failure that backs the peer
    /// off), starts dials in the background to the metagraph peers that serve `modality` and are
    /// neither connected nor being dialed (or whose key or endpoint changed, or whose connection
    /// closed), each under `timeout`, and drops peers gone from the metagraph or that serve
    /// another modality now. Never waits on a dial: a peer that stalls its handshake delays no
    /// query. `(me, uid)` is this node.
    pub(super) async fn refresh(
        &mut self,
        node: &Arc<Node>,
        mg: &MetagraphView,
        (me, uid): (AccountKey, Uid),
        modality: Modality,
        timeout: Duration,
    ) {
        let Peers {
            connected: peers,
            dialing,
            backoff,
        } = self;
        let mut wanted = HashMap::new();
        for n in &mg.nodes {
            let (Ok(j), Ok(key)) = (Uid::try_from(n.uid), parse_key(&n.key)) else {
                continue;
            };
            let same_modality = n.modality.as_deref() == Some(modality.name());
            if j != uid && key != me && same_modality && n.endpoint.parse::<SocketAddr>().is_ok() {
                wanted.insert(j, (key, n.endpoint.clone()));
            }
        }
        let done: Vec<Uid> = dialing
            .iter()
            .filter(|(_, d)| d.2.is_finished())
            .map(|(j, _)| *j)
            .collect();
        for j in done {
            let Some((key, endpoint, task)) = dialing.remove(&j) else {
                continue;
            };
            let b = backoff.entry(j).or_insert_with(|| {
                Backoff::new(Duration::from_millis(200), Duration::from_secs(30))
            });
            // The task is finished: this returns at once.
            match task.await {
                Ok(Ok(conn)) => {
                    b.succeeded();
                    peers.insert(
                        j,
                        Peer {
                            key,
                            endpoint,
                            conn,
                        },
                    );
                }
                _ => b.failed(Instant::now()),
            }
        }
        let current = |j: &Uid, key: &AccountKey, endpoint: &String| {
            wanted
                .get(j)
                .is_some_and(|(k, e)| k == key && e == endpoint)
        };
        // A session that closed (the peer left, idled out, or refused this node after the
        // handshake) backs its peer off, so a peer that keeps refusing is not redialed each tick.
        let now = Instant::now();
        peers.retain(|j, p| {
            let open = p.conn.is_open();
            if !open {
                backoff
                    .entry(*j)
                    .or_insert_with(|| {
                        Backoff::new(Duration::from_millis(200), Duration::from_secs(30))
                    })
                    .failed(now);
            }
            current(j, &p.key, &p.endpoint) && open
        });
        dialing.retain(|j, d| {
            let keep = current(j, &d.0, &d.1);
            if !keep {
                d.2.abort();
            }
            keep
        });
        for (j, (key, endpoint)) in wanted {
            if peers.contains_key(&j)
                || dialing.contains_key(&j)
                || !backoff.get(&j).is_none_or(|b| b.ready(now))
            {
                continue;
            }
            let node = Arc::clone(node);
            let addr: Result<SocketAddr, _> = endpoint.parse();
            let task = tokio::spawn(async move {
                match addr {
                    Ok(a) => tokio::time::timeout(timeout, node.dial(a, key))
                        .await
                        .unwrap_or(Err(NodeError::Timeout)),
                    Err(_) => Err(NodeError::Protocol("bad endpoint".into())),
                }
            });
            dialing.insert(j, (key, endpoint, task));
        }
    }
}
