//! The listener of a node that runs out of file descriptors: it keeps accepting once some are
//! free again. A test binary of its own, as it uses up the process's descriptors.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use deepnode_node::{AdmitAll, Node, NoiseTcp, RandomProjection, ServeConfig, Tensor};
use deepnode_wire::{Limits, Modality};
use ed25519_dalek::SigningKey;

const DIM: u32 = 8;

fn node(seed: u8, cfg: ServeConfig) -> Arc<Node> {
    let key = SigningKey::from_bytes(&[seed; 32]);
    let transport = NoiseTcp::new(key, [7; 32], Duration::from_secs(2)).unwrap();
    Arc::new(Node::new(
        Arc::new(transport),
        Arc::new(RandomProjection::new(3, DIM)),
        Arc::new(AdmitAll),
        cfg,
    ))
}

fn config() -> ServeConfig {
    let limits = Limits {
        max_payload: 1 << 20,
        max_batch: 8,
        max_seq: 64,
        dim: DIM,
        max_features: 16,
        max_image_elems: 3 * 8 * 8,
    };
    ServeConfig::new(limits, 4, 16)
}

#[tokio::test]
async fn the_listener_survives_running_out_of_file_descriptors() {
    // A low soft limit, where the prlimit tool is at hand, makes the descriptors few to use up.
    let _ = std::process::Command::new("prlimit")
        .arg(format!("--pid={}", std::process::id()))
        .arg("--nofile=512:")
        .output();
    let cfg = config();
    let counters = Arc::clone(&cfg.counters);
    let server = node(2, cfg);
    let (addr, listener) = server.listen("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let mut files = Vec::new();
    while let Ok(f) = std::fs::File::open("/dev/null") {
        files.push(f);
        assert!(files.len() < 1 << 20, "no descriptor limit reached");
    }
    // One descriptor for the client: the kernel completes its connection, and the node's
    // accept has none left for it.
    files.pop();
    let client = std::net::TcpStream::connect(addr).unwrap();
    let started = Instant::now();
    while counters.accept_errors.load(Ordering::SeqCst) == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "accept never failed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(files);
    drop(client);
    assert!(!listener.is_finished(), "the accept loop ended");
    // With descriptors free again the node accepts and serves.
    let dialer = node(1, config());
    let account = SigningKey::from_bytes(&[2; 32]).verifying_key().to_bytes();
    let conn = dialer.dial(addr, account).await.unwrap();
    let text = Tensor::from_i64(&[1, 4], &[1, 2, 3, 4]).unwrap();
    let out = conn
        .forward(Modality::Text, &text, Duration::from_secs(5))
        .await;
    assert!(out.is_ok(), "{out:?}");
    assert!(!listener.is_finished());
}
