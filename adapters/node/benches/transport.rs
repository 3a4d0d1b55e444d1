//! `cargo bench -p deepnode-node --bench transport`: the node's wire on loopback, each figure
//! against its baseline in the same run.
//!
//! 1. Round trip of 1 MiB request + 1 MiB response: plain TCP (an echo server) against the
//!    node's encrypted forward (Noise AES-GCM, chunked wire, a model that answers at once),
//!    alternated round by round.
//! 2. Small forward requests (TEXT [1, 8] -> [1, 8, 64]) served per second by one node, 64 in
//!    flight over one connection.
//! 3. p50/p99 latency of a fan-out of that request to 16 peers.
//!
//! `DEEPNODE_BENCH_QUICK=1` runs fewer rounds, `DEEPNODE_BENCH_ROUNDS=N` sets them;
//! `DEEPNODE_BENCH_ONLY=roundtrip` runs the first part alone (for a profiler).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use deepnode_node::{
    AdmitAll, Answer, Model, Node, NodeError, NoiseTcp, ServeConfig, Tensor, fan_out,
};
use deepnode_wire::{Limits, Modality};
use ed25519_dalek::SigningKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const MIB: usize = 1 << 20;

/// Answers every forward with zeros `[B, S, dim]` (no compute: the bench measures the wire).
struct Zeros(u32);

impl Model for Zeros {
    fn dim(&self) -> u32 {
        self.0
    }
    fn serves(&self, _: Modality) -> bool {
        true
    }
    fn forward(&self, _: Modality, x: &Tensor) -> Result<Tensor, NodeError> {
        let d = x.shape.dims();
        Tensor::zeros(&[d[0], d[1], self.0])
    }
    fn backward(&self, _: Modality, _: &Tensor, _: &Tensor) -> Result<(), NodeError> {
        Ok(())
    }
}

/// The AES-GCM work of one round trip as the node does it (ring AES-256-GCM in place, frames
/// of Noise's largest plaintext): 1 MiB sealed and opened for the request, again for the
/// response. `frame` holds one frame and its tag.
fn round_trip_crypto(frame: &mut [u8]) {
    use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[7; 32]).expect("key"));
    let nonce = |n: u64| {
        let mut b = [0u8; 12];
        b[4..].copy_from_slice(&n.to_be_bytes());
        Nonce::assume_unique_for_key(b)
    };
    let (mut n, mut left) = (0u64, 2 * MIB);
    while left > 0 {
        let len = left.min(deepnode_wire::MAX_PLAINTEXT);
        let (text, tag_out) = frame[..len + 16].split_at_mut(len);
        let tag = key
            .seal_in_place_separate_tag(nonce(n), Aad::empty(), text)
            .expect("seal");
        tag_out.copy_from_slice(tag.as_ref());
        key.open_in_place(nonce(n), Aad::empty(), &mut frame[..len + 16])
            .expect("open");
        (n, left) = (n + 1, left - len);
    }
}

fn node(seed: u8, dim: u32) -> Arc<Node> {
    let limits = Limits {
        max_payload: 4 * MIB as u64,
        max_batch: 64,
        max_seq: 4096,
        dim,
        max_features: 1024,
        max_image_elems: 3 * 64 * 64,
    };
    let mut config = ServeConfig::new(limits, 256, 1024);
    config.max_open_messages = 512;
    let key = SigningKey::from_bytes(&[seed; 32]);
    let t = NoiseTcp::new(key, [0; 32], Duration::from_secs(5)).expect("noise keys");
    Arc::new(Node::new(
        Arc::new(t),
        Arc::new(Zeros(dim)),
        Arc::new(AdmitAll),
        config,
    ))
}

fn account(seed: u8) -> [u8; 32] {
    SigningKey::from_bytes(&[seed; 32])
        .verifying_key()
        .to_bytes()
}

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

async fn echo_server() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let _ = s.set_nodelay(true);
            tokio::spawn(async move {
                let mut buf = vec![0u8; MIB];
                while s.read_exact(&mut buf).await.is_ok() {
                    if s.write_all(&buf).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let quick = std::env::var("DEEPNODE_BENCH_QUICK").is_ok();
    let rounds = if quick { 20 } else { 100 };
    let rounds = std::env::var("DEEPNODE_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(rounds);
    let only_round_trip = std::env::var("DEEPNODE_BENCH_ONLY").is_ok_and(|o| o == "roundtrip");
    let any = "127.0.0.1:0".parse().expect("address");

    // 1. 1 MiB each way.
    let mut plain = TcpStream::connect(echo_server().await)
        .await
        .expect("connect");
    plain.set_nodelay(true).expect("nodelay");
    // Nodes stay alive for the whole run: dropping a node closes its sessions.
    let (server, caller) = (node(2, 256), node(1, 256));
    let (naddr, _) = server.listen(any).await.expect("listen");
    let conn = caller.dial(naddr, account(2)).await.expect("dial");
    let request = Tensor::from_f32(&[1, 1024, 256], &vec![0.5; 1024 * 256]).expect("tensor");
    let mut buf = vec![1u8; MIB];
    let mut frame = vec![1u8; 1 << 16];
    let (mut tcp, mut noise, mut crypto) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        // Alternate the three so that drift on a shared machine hits all alike.
        let t = Instant::now();
        plain.write_all(&buf).await.expect("write");
        plain.read_exact(&mut buf).await.expect("read");
        tcp.push(t.elapsed());
        let t = Instant::now();
        let out = conn
            .forward(Modality::Tensor, &request, Duration::from_secs(5))
            .await
            .expect("forward");
        noise.push(t.elapsed());
        assert_eq!(out.bytes.len(), MIB);
        let t = Instant::now();
        round_trip_crypto(&mut frame);
        crypto.push(t.elapsed());
    }
    let (tcp, noise, crypto) = (
        pct(&mut tcp, 0.5),
        pct(&mut noise, 0.5),
        pct(&mut crypto, 0.5),
    );
    let gbps = |d: Duration| 2.0 * MIB as f64 / d.as_secs_f64() / 1e9;
    println!("1 MiB request + 1 MiB response, median of {rounds}:");
    for (name, d) in [("plain TCP", tcp), ("node (Noise)", noise)] {
        println!(
            "  {name:<14} {:>8.3} ms  {:>5.2} GB/s",
            d.as_secs_f64() * 1e3,
            gbps(d)
        );
    }
    println!(
        "  node / plain   {:>8.2} (throughput ratio; target >= 0.75)",
        tcp.as_secs_f64() / noise.as_secs_f64()
    );
    // The round trip's AES-GCM alone (seal and open, each way) on one core; spread perfectly
    // over this machine's two cores on top of plain TCP's own work, it bounds the ratio.
    println!(
        "  AES-GCM of the round trip on one core {:.3} ms ({:.2} GB/s sealed + opened); \
         bound on 2 cores: plain / (plain + aes / 2) = {:.2}",
        crypto.as_secs_f64() * 1e3,
        4.0 * MIB as f64 / crypto.as_secs_f64() / 1e9,
        tcp.as_secs_f64() / (tcp.as_secs_f64() + crypto.as_secs_f64() / 2.0)
    );

    if only_round_trip {
        return;
    }
    // 2. Small requests served per second by one node.
    let (small_server, small_caller) = (node(3, 64), node(4, 64));
    let (saddr, _) = small_server.listen(any).await.expect("listen");
    let client = small_caller.dial(saddr, account(3)).await.expect("dial");
    let small = Tensor::from_i64(&[1, 8], &[1; 8]).expect("tensor");
    let per_worker = if quick { 80 } else { 600 };
    let started = Instant::now();
    let workers: Vec<_> = (0..64)
        .map(|_| {
            let c = Arc::clone(&client);
            let x = small.clone();
            tokio::spawn(async move {
                for _ in 0..per_worker {
                    c.forward(Modality::Text, &x, Duration::from_secs(5))
                        .await
                        .expect("forward");
                }
            })
        })
        .collect();
    for w in workers {
        w.await.expect("worker");
    }
    let secs = started.elapsed().as_secs_f64();
    let total = 64 * per_worker;
    println!("small forwards (TEXT [1, 8] -> [1, 8, 64]), 64 in flight on one connection:");
    println!(
        "  {:.0} requests/s ({total} in {secs:.2} s)",
        f64::from(total) / secs
    );

    // 3. Fan-out to 16 peers.
    let hub = node(5, 64);
    let (mut peers, mut servers) = (Vec::new(), Vec::new());
    for seed in 10..26u8 {
        servers.push(node(seed, 64));
        let (a, _) = servers[servers.len() - 1]
            .listen(any)
            .await
            .expect("listen");
        peers.push((
            u32::from(seed),
            hub.dial(a, account(seed)).await.expect("dial"),
        ));
    }
    let mut backoff = std::collections::HashMap::new();
    let mut lat = Vec::new();
    for _ in 0..rounds * 5 {
        let t = Instant::now();
        let zeros = |_| Tensor::zeros(&[1, 8, 64]);
        let answers = fan_out(
            &peers,
            &mut backoff,
            Modality::Text,
            &small,
            Duration::from_secs(5),
            zeros,
        )
        .await
        .expect("fan-out");
        lat.push(t.elapsed());
        assert!(answers.iter().all(|(_, a)| matches!(a, Answer::Peer(_))));
    }
    let n = lat.len();
    let (p50, p99) = (pct(&mut lat, 0.5), pct(&mut lat, 0.99));
    println!("fan-out of TEXT [1, 8] to 16 peers, {n} rounds:");
    println!(
        "  p50 {:.3} ms  p99 {:.3} ms",
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3
    );
}
