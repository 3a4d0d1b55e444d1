//! The relay: accepts connections, dials where its route says, and carries the bytes of each
//! direction through the profile's delay, jitter, cap and stalls, resetting connections at
//! the profile's rate.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::error::LinkError;
use crate::profile::Profile;
use crate::rng::Rng;

/// Bytes read at once from a socket: one chunk of the link.
const CHUNK: usize = 16 * 1024;
/// Chunks in flight per direction before the relay stops reading (TCP's backpressure then
/// reaches the sender).
const IN_FLIGHT: usize = 64;

/// The longest a dial of the upstream may take; past it the client's connection is closed
/// (a client that retries then gets another try rather than a hang).
pub const DIAL_TIMEOUT: Duration = Duration::from_secs(5);

/// What a relay has done so far.
#[derive(Debug, Default)]
pub struct Tally {
    /// Connections accepted.
    pub accepted: AtomicU64,
    /// Connections refused: the route gave no upstream, or the upstream could not be dialled
    /// within [`DIAL_TIMEOUT`].
    pub refused: AtomicU64,
    /// Connections the relay reset.
    pub resets: AtomicU64,
    /// Connections carried now.
    pub open: AtomicU64,
    /// Bytes carried, both directions.
    pub bytes: AtomicU64,
}

/// Where a relayed connection goes: the upstream's address, and the local address to dial it
/// from (`None`: the system's choice).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Upstream {
    /// The listener the relay dials.
    pub addr: SocketAddr,
    /// The local address the relay dials from (port chosen by the system).
    pub from: Option<IpAddr>,
}

impl From<SocketAddr> for Upstream {
    fn from(addr: SocketAddr) -> Upstream {
        Upstream { addr, from: None }
    }
}

/// A running relay; dropping it stops accepting and ends every connection it carries.
pub struct Relay {
    addr: SocketAddr,
    tally: Arc<Tally>,
    task: JoinHandle<()>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Relay {
    /// Binds `listen` and relays each accepted connection to `route(dialled, client)`, where
    /// `dialled` is the address the client dialled (a listener on a wildcard or on a whole
    /// local route can serve many upstreams) and `client` the client's address; `None` refuses
    /// the connection (closed at once). `seed` seeds the random times. Call within a tokio
    /// runtime.
    pub async fn bind(
        listen: SocketAddr,
        profile: Profile,
        seed: u64,
        route: impl Fn(SocketAddr, SocketAddr) -> Option<Upstream> + Send + Sync + 'static,
    ) -> Result<Relay, LinkError> {
        profile.check()?;
        Relay::start(TcpListener::bind(listen).await?, profile, seed, route)
    }

    /// [`Relay::bind`] on a socket already bound and listening (bound in another network
    /// namespace, say). Call within a tokio runtime.
    pub fn on(
        listener: std::net::TcpListener,
        profile: Profile,
        seed: u64,
        route: impl Fn(SocketAddr, SocketAddr) -> Option<Upstream> + Send + Sync + 'static,
    ) -> Result<Relay, LinkError> {
        profile.check()?;
        listener.set_nonblocking(true)?;
        Relay::start(TcpListener::from_std(listener)?, profile, seed, route)
    }

    fn start(
        listener: TcpListener,
        profile: Profile,
        seed: u64,
        route: impl Fn(SocketAddr, SocketAddr) -> Option<Upstream> + Send + Sync + 'static,
    ) -> Result<Relay, LinkError> {
        let addr = listener.local_addr()?;
        let tally = Arc::new(Tally::default());
        let t = Arc::clone(&tally);
        let task = tokio::spawn(async move {
            let mut n: u64 = 0;
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let accepted = tokio::select! {
                    a = listener.accept() => a,
                    Some(_) = connections.join_next() => continue,
                };
                let Ok((client, peer)) = accepted else {
                    // Out of descriptors or a connection reset before it was taken: the
                    // listener itself still works.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                t.accepted.fetch_add(1, Ordering::Relaxed);
                n += 1;
                let upstream = client.local_addr().ok().and_then(|d| route(d, peer));
                let t = Arc::clone(&t);
                let rng = Rng::new(seed ^ n.wrapping_mul(0xa076_1d64_78bd_642f));
                connections.spawn(async move {
                    let Some(up) = upstream else {
                        t.refused.fetch_add(1, Ordering::Relaxed);
                        return;
                    };
                    match tokio::time::timeout(DIAL_TIMEOUT, dial(up))
                        .await
                        .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
                    {
                        Ok(server) => {
                            t.open.fetch_add(1, Ordering::Relaxed);
                            carry(client, server, profile, rng, &t).await;
                            t.open.fetch_sub(1, Ordering::Relaxed);
                        }
                        Err(_) => {
                            t.refused.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        Ok(Relay { addr, tally, task })
    }

    /// The address the relay listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What it has done so far.
    pub fn tally(&self) -> &Tally {
        &self.tally
    }
}

/// Dials `up`, from its local address if it names one.
async fn dial(up: Upstream) -> std::io::Result<TcpStream> {
    let Some(from) = up.from else {
        return TcpStream::connect(up.addr).await;
    };
    let socket = match from {
        IpAddr::V4(_) => TcpSocket::new_v4()?,
        IpAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.bind(SocketAddr::new(from, 0))?;
    socket.connect(up.addr).await
}

/// Carries both directions of one connection until both end, one fails, or the reset fires.
async fn carry(
    mut client: TcpStream,
    mut server: TcpStream,
    profile: Profile,
    mut rng: Rng,
    tally: &Tally,
) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let reset = rng.wait(profile.reset_per_min);
    let up_rng = Rng::new(rng.wait(1.0).map_or(1, |d| d.as_nanos() as u64));
    let down_rng = Rng::new(rng.wait(1.0).map_or(2, |d| d.as_nanos() as u64));
    let reset_now = {
        let (cr, cw) = client.split();
        let (sr, sw) = server.split();
        let both = async {
            tokio::join!(
                direction(cr, sw, profile, up_rng, tally),
                direction(sr, cw, profile, down_rng, tally)
            )
        };
        match reset {
            Some(after) => tokio::select! {
                _ = both => false,
                _ = tokio::time::sleep(after) => true,
            },
            None => {
                both.await;
                false
            }
        }
    };
    if reset_now {
        tally.resets.fetch_add(1, Ordering::Relaxed);
        let _ = client.set_zero_linger();
        let _ = server.set_zero_linger();
    }
}

/// A chunk of bytes and when it leaves the link; an empty chunk is the sender's end of
/// stream.
struct Chunk {
    at: Instant,
    bytes: Vec<u8>,
}

/// One direction: bytes read from `from` are written to `to` once the profile lets them.
/// Ends at the sender's end of stream (passed on as a shutdown of `to`) or an error.
async fn direction(
    mut from: ReadHalf<'_>,
    mut to: WriteHalf<'_>,
    profile: Profile,
    mut rng: Rng,
    tally: &Tally,
) {
    let (tx, mut rx) = mpsc::channel::<Chunk>(IN_FLIGHT);
    let mut stall_rng = Rng::new(rng.wait(1.0).map_or(3, |d| d.as_nanos() as u64));
    let read = async move {
        // When the cap's queue empties and when the last chunk leaves: a chunk leaves after
        // both its transmission and its delay, never before the one ahead of it.
        let mut link_free = Instant::now();
        let mut last = Instant::now();
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = from.read(&mut buf).await.unwrap_or(0);
            let now = Instant::now();
            link_free = link_free.max(now) + profile.transmission(n);
            let jitter = profile.jitter_ms as f64 * (2.0 * rng.unit() - 1.0);
            let delay = Duration::from_secs_f64((profile.delay_ms as f64 + jitter).max(0.0) / 1e3);
            last = last.max(link_free + delay);
            let chunk = Chunk {
                at: last,
                bytes: buf[..n].to_vec(),
            };
            if tx.send(chunk).await.is_err() || n == 0 {
                return;
            }
        }
    };
    let write = async move {
        let stall = Duration::from_millis(profile.stall_ms);
        let mut next_stall = stall_rng
            .wait(profile.stall_per_min)
            .map(|w| Instant::now() + w);
        while let Some(chunk) = rx.recv().await {
            tokio::time::sleep_until(chunk.at).await;
            // A stall that began before this chunk may go holds it until the stall ends.
            while let Some(start) = next_stall
                && start <= Instant::now()
            {
                let end = start + stall;
                tokio::time::sleep_until(end).await;
                next_stall = stall_rng.wait(profile.stall_per_min).map(|w| end + w);
            }
            if chunk.bytes.is_empty() {
                let _ = to.shutdown().await;
                return;
            }
            if to.write_all(&chunk.bytes).await.is_err() {
                return;
            }
            tally
                .bytes
                .fetch_add(chunk.bytes.len() as u64, Ordering::Relaxed);
        }
    };
    tokio::join!(read, write);
}
