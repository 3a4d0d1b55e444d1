//! Nodes over real loopback sockets: forward and backward between honest nodes, and each
//! hostile peer answered with a status or refused at the handshake, with no effect on others.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use deepnode_node::{
    AccountKey, Admission, AdmitAll, EchoBias, Model, Node, NodeError, NoiseTcp, RandomProjection,
    ServeConfig, Tensor,
};
use deepnode_wire::{DType, HEADER_LEN, Header, Kind, Limits, Modality, Shape, Status};
use ed25519_dalek::SigningKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const DIM: u32 = 8;
const GENESIS: [u8; 32] = [7; 32];
const SECOND: Duration = Duration::from_secs(1);

fn limits() -> Limits {
    Limits {
        max_payload: 1 << 20,
        max_batch: 8,
        max_seq: 64,
        dim: DIM,
        max_features: 16,
        max_image_elems: 3 * 8 * 8,
    }
}

fn config(per_peer: usize, global: usize) -> ServeConfig {
    ServeConfig::new(limits(), per_peer, global)
}

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn account(seed: u8) -> AccountKey {
    key(seed).verifying_key().to_bytes()
}

fn node(
    seed: u8,
    model: Arc<dyn Model>,
    admission: Arc<dyn Admission>,
    cfg: ServeConfig,
) -> Arc<Node> {
    let transport = NoiseTcp::new(key(seed), GENESIS, Duration::from_millis(500)).unwrap();
    Arc::new(Node::new(Arc::new(transport), model, admission, cfg))
}

async fn serving(
    seed: u8,
    model: Arc<dyn Model>,
    admission: Arc<dyn Admission>,
    cfg: ServeConfig,
) -> SocketAddr {
    let n = node(seed, model, admission, cfg);
    n.listen("127.0.0.1:0".parse().unwrap()).await.unwrap().0
}

fn projection() -> Arc<dyn Model> {
    Arc::new(RandomProjection::new(3, DIM))
}

fn text() -> Tensor {
    Tensor::from_i64(&[2, 4], &[104, 101, 108, 108, 111, 32, 119, 111]).unwrap()
}

/// Only the listed accounts get in.
struct Only(Vec<AccountKey>);

impl Admission for Only {
    fn admit(&self, a: &AccountKey) -> bool {
        self.0.contains(a)
    }
}

/// A model that sleeps before answering and counts its calls.
struct Slow(Duration, AtomicUsize);

impl Model for Slow {
    fn dim(&self) -> u32 {
        DIM
    }
    fn serves(&self, m: Modality) -> bool {
        m == Modality::Text
    }
    fn forward(&self, m: Modality, x: &Tensor) -> Result<Tensor, NodeError> {
        self.1.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(self.0);
        RandomProjection::new(3, DIM).forward(m, x)
    }
    fn backward(&self, _: Modality, _: &Tensor, _: &Tensor) -> Result<(), NodeError> {
        Ok(())
    }
}

/// The header of a TEXT forward of token shape `dims`.
fn text_header(dims: &[u32], id: u64, deadline_ms: u64) -> Header {
    Header::request(
        Kind::Forward,
        Modality::Text,
        DType::I64,
        Shape::new(dims).unwrap(),
        id,
        deadline_ms,
    )
    .unwrap()
}

fn raw(h: &Header, body_len: usize) -> Vec<u8> {
    let mut b = [0u8; HEADER_LEN];
    h.encode(&mut b);
    let mut v = b.to_vec();
    v.resize(HEADER_LEN + body_len, 0);
    v
}

#[tokio::test]
async fn two_nodes_exchange_forward_and_backward() {
    let echo = Arc::new(EchoBias::new(DIM, 0.5));
    let b = serving(2, echo.clone(), Arc::new(AdmitAll), config(4, 16)).await;
    let c = serving(3, projection(), Arc::new(AdmitAll), config(4, 16)).await;
    let a = node(1, projection(), Arc::new(AdmitAll), config(4, 16));

    // Forward: the peer's model output, bit for bit.
    let to_c = a.dial(c, account(3)).await.unwrap();
    assert_eq!(to_c.peer(), account(3));
    let out = to_c.forward(Modality::Text, &text(), SECOND).await.unwrap();
    assert_eq!(
        out,
        RandomProjection::new(3, DIM)
            .forward(Modality::Text, &text())
            .unwrap()
    );

    // Backward: the gradient reaches the served parameters (bias -= 0.5 * mean grad).
    let to_b = a.dial(b, account(2)).await.unwrap();
    let grad = Tensor::from_f32(&[2, 4, DIM], &[1.0; 2 * 4 * DIM as usize]).unwrap();
    to_b.backward(Modality::Text, &text(), &grad, SECOND)
        .await
        .unwrap();
    let mut waited = 0;
    while echo.bias()[0] == 0.0 && waited < 100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        waited += 1;
    }
    assert_eq!(echo.bias(), vec![-0.5; DIM as usize]);
    let out = to_b.forward(Modality::Text, &text(), SECOND).await.unwrap();
    assert!(out.to_f32().iter().all(|&x| x == -0.5));
}

#[tokio::test]
async fn a_large_backward_does_not_block_a_forward() {
    let mut big_limits = config(4, 16);
    big_limits.limits.max_payload = 64 << 20;
    big_limits.limits.max_seq = 1 << 16;
    let b = serving(2, projection(), Arc::new(AdmitAll), big_limits.clone()).await;
    let a = node(1, projection(), Arc::new(AdmitAll), big_limits);
    let conn = a.dial(b, account(2)).await.unwrap();
    // 8 x 65,536 tokens (4 MiB) and their 16 MiB gradient: about 330 chunks.
    let seq = 1u32 << 16;
    let inputs = Tensor::from_i64(&[8, seq], &vec![1; 8 * seq as usize]).unwrap();
    let grad = Tensor::zeros(&[8, seq, DIM]).unwrap();
    let bg = {
        let conn = Arc::clone(&conn);
        tokio::spawn(async move {
            conn.backward(Modality::Text, &inputs, &grad, Duration::from_secs(20))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(5)).await;
    let out = conn
        .forward(Modality::Text, &text(), Duration::from_secs(5))
        .await;
    assert!(out.is_ok(), "{out:?}");
    bg.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_dialer_refuses_any_account_but_the_one_dialed() {
    let b = serving(2, projection(), Arc::new(AdmitAll), config(4, 16)).await;
    let a = node(1, projection(), Arc::new(AdmitAll), config(4, 16));
    // A man in the middle at b's address holds another key: the dialer expects account 9.
    let e = a.dial(b, account(9)).await.err().unwrap();
    assert!(matches!(e, NodeError::WrongPeer), "{e}");
    // A node of another chain (other genesis in the prologue) fails the handshake.
    let other = Arc::new(Node::new(
        Arc::new(NoiseTcp::new(key(4), [8; 32], Duration::from_millis(500)).unwrap()),
        projection(),
        Arc::new(AdmitAll),
        config(4, 16),
    ));
    assert!(other.dial(b, account(2)).await.is_err());
    // The honest dial still works.
    assert!(a.dial(b, account(2)).await.is_ok());
}

#[tokio::test]
async fn callers_outside_the_metagraph_are_refused_before_their_body() {
    // Sessions are not checked at the handshake here: requests still are.
    let mut cfg = config(4, 16);
    cfg.admit_at_handshake = false;
    let b = serving(2, projection(), Arc::new(Only(vec![account(1)])), cfg).await;
    let member = node(1, projection(), Arc::new(AdmitAll), config(4, 16));
    let stranger = node(5, projection(), Arc::new(AdmitAll), config(4, 16));
    let s = stranger.dial(b, account(2)).await.unwrap();
    let e = s
        .forward(Modality::Text, &text(), SECOND)
        .await
        .unwrap_err();
    assert!(matches!(e, NodeError::Refused(Status::Unauthorized)), "{e}");
    let m = member.dial(b, account(2)).await.unwrap();
    assert!(m.forward(Modality::Text, &text(), SECOND).await.is_ok());
}

#[tokio::test]
async fn malformed_and_oversized_requests_get_a_status() {
    let calls = Arc::new(Slow(Duration::ZERO, AtomicUsize::new(0)));
    let b = serving(2, calls.clone(), Arc::new(AdmitAll), config(4, 16)).await;
    let a = node(1, projection(), Arc::new(AdmitAll), config(4, 16));
    let conn = a.dial(b, account(2)).await.unwrap();

    // A declared 4 GiB body (its shape matches): refused by the cap, the body never sent.
    let huge = text_header(&[8, 1 << 26], 100, 0);
    assert_eq!(huge.payload_len, 4 << 30);
    let e = conn
        .request_raw(100, raw(&huge, 0), SECOND)
        .await
        .unwrap_err();
    assert!(matches!(e, NodeError::Refused(Status::TooLarge)), "{e}");

    // A length that does not match the shape: malformed.
    let mut lie = text_header(&[2, 4], 101, 0);
    lie.payload_len = 9;
    let e = conn
        .request_raw(101, raw(&lie, 0), SECOND)
        .await
        .unwrap_err();
    assert!(matches!(e, NodeError::Refused(Status::Malformed)), "{e}");

    // Another wire version.
    let good = text_header(&[2, 4], 102, 0);
    let mut bytes = raw(&good, 64);
    bytes[4] = 2;
    let e = conn.request_raw(102, bytes, SECOND).await.unwrap_err();
    assert!(matches!(e, NodeError::Refused(Status::BadVersion)), "{e}");

    // A shape outside the limits, and a modality the model does not serve.
    let wide = text_header(&[9, 4], 103, 0);
    let e = conn
        .request_raw(103, raw(&wide, 9 * 4 * 8), SECOND)
        .await
        .unwrap_err();
    assert!(matches!(e, NodeError::Refused(Status::BadShape)), "{e}");
    let image = Tensor::from_f32(&[1, 3, 8, 8], &[0.5; 192]).unwrap();
    let e = conn
        .forward(Modality::Image, &image, SECOND)
        .await
        .unwrap_err();
    assert!(
        matches!(e, NodeError::Refused(Status::UnservedModality)),
        "{e}"
    );

    // NaN inputs never reach the model.
    let nan = Tensor::from_f32(&[1, 2, 4], &[0.0, f32::NAN, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0]).unwrap();
    let tensor = Arc::new(RandomProjection::new(1, DIM));
    let t = serving(6, tensor, Arc::new(AdmitAll), config(4, 16)).await;
    let e = a
        .dial(t, account(6))
        .await
        .unwrap()
        .forward(Modality::Tensor, &nan, SECOND)
        .await
        .unwrap_err();
    assert!(matches!(e, NodeError::Refused(Status::NotFinite)), "{e}");

    // An expired deadline is answered without running the model.
    let late = text_header(&[2, 4], 104, 1);
    let e = conn
        .request_raw(104, raw(&late, 64), SECOND)
        .await
        .unwrap_err();
    assert!(
        matches!(e, NodeError::Refused(Status::DeadlineExpired)),
        "{e}"
    );

    assert_eq!(
        calls.1.load(Ordering::SeqCst),
        0,
        "no refused request reached the model"
    );
    // The connection still serves.
    assert!(conn.forward(Modality::Text, &text(), SECOND).await.is_ok());
    assert_eq!(calls.1.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_flooding_peer_gets_busy_and_others_are_still_served() {
    let slow = Arc::new(Slow(Duration::from_millis(100), AtomicUsize::new(0)));
    let b = serving(2, slow, Arc::new(AdmitAll), config(2, 8)).await;
    let flooder = node(1, projection(), Arc::new(AdmitAll), config(4, 16));
    let honest = node(3, projection(), Arc::new(AdmitAll), config(4, 16));
    let f = flooder.dial(b, account(2)).await.unwrap();
    let h = honest.dial(b, account(2)).await.unwrap();
    let flood: Vec<_> = (0..30)
        .map(|_| {
            let f = Arc::clone(&f);
            tokio::spawn(async move {
                f.forward(Modality::Text, &text(), Duration::from_secs(3))
                    .await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let honest_result = h
        .forward(Modality::Text, &text(), Duration::from_secs(3))
        .await;
    let mut busy = 0;
    let mut ok = 0;
    for t in flood {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(NodeError::Refused(Status::Busy)) => busy += 1,
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert!(honest_result.is_ok(), "{honest_result:?}");
    assert!(busy >= 20 && ok >= 1, "busy {busy}, ok {ok}");
}

#[tokio::test]
async fn a_silent_or_slow_peer_times_out() {
    // Accepts TCP and never speaks: the handshake times out (half-open).
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let _hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let a = node(1, projection(), Arc::new(AdmitAll), config(4, 16));
    let e = a.dial(addr, account(2)).await.err().unwrap();
    assert!(matches!(e, NodeError::Timeout), "{e}");

    // Completes the handshake, then never answers in time.
    let slow = Arc::new(Slow(Duration::from_millis(400), AtomicUsize::new(0)));
    let b = serving(2, slow, Arc::new(AdmitAll), config(4, 16)).await;
    let conn = a.dial(b, account(2)).await.unwrap();
    let e = conn
        .forward(Modality::Text, &text(), Duration::from_millis(100))
        .await
        .unwrap_err();
    assert!(matches!(e, NodeError::Timeout), "{e}");

    // A node that listens also times out a client that connects and sends nothing.
    let mut idle = TcpStream::connect(b).await.unwrap();
    let mut buf = [0u8; 1];
    let r = tokio::time::timeout(Duration::from_secs(3), idle.read(&mut buf)).await;
    assert!(
        matches!(r, Ok(Ok(0)) | Ok(Err(_))),
        "the server closed the idle connection: {r:?}"
    );
}

#[tokio::test]
async fn a_replayed_frame_ends_the_session() {
    let b = serving(2, projection(), Arc::new(AdmitAll), config(4, 16)).await;
    // A proxy that forwards every frame and sends the first post-handshake frame from the
    // dialer twice (a captured frame replayed).
    let proxy = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let paddr = proxy.local_addr().unwrap();
    tokio::spawn(async move {
        let (client, _) = proxy.accept().await.unwrap();
        let server = TcpStream::connect(b).await.unwrap();
        let (mut cr, mut cw) = client.into_split();
        let (mut sr, mut sw) = server.into_split();
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut sr, &mut cw).await;
        });
        let mut n = 0;
        loop {
            let mut len = [0u8; 2];
            if cr.read_exact(&mut len).await.is_err() {
                break;
            }
            let mut body = vec![0u8; usize::from(u16::from_be_bytes(len))];
            if cr.read_exact(&mut body).await.is_err() {
                break;
            }
            n += 1;
            let times = if n == 3 { 2 } else { 1 };
            for _ in 0..times {
                if sw.write_all(&len).await.is_err() || sw.write_all(&body).await.is_err() {
                    return;
                }
            }
        }
    });
    let a = node(1, projection(), Arc::new(AdmitAll), config(4, 16));
    let conn = a.dial(paddr, account(2)).await.unwrap();
    // The first request may be answered before the replay is read; the replay then ends the
    // session, so a later request fails.
    let _ = conn.forward(Modality::Text, &text(), SECOND).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let e = conn
        .forward(Modality::Text, &text(), SECOND)
        .await
        .unwrap_err();
    assert!(matches!(e, NodeError::Closed | NodeError::Timeout), "{e}");
}

/// One fan-out of the test's text to `peers` under a 200 ms deadline, zeros standing in.
async fn ask_all(
    peers: &[(u32, Arc<deepnode_node::Connection>)],
    backoff: &mut std::collections::HashMap<u32, deepnode_node::Backoff>,
) -> Vec<(u32, deepnode_node::Answer)> {
    deepnode_node::fan_out(
        peers,
        backoff,
        Modality::Text,
        &text(),
        Duration::from_millis(200),
        |_| Tensor::zeros(&[2, 4, DIM]),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn a_fan_out_fills_failed_slots_with_the_stand_in_and_backs_off() {
    let slow = Arc::new(Slow(Duration::from_millis(500), AtomicUsize::new(0)));
    let a = node(1, projection(), Arc::new(AdmitAll), config(4, 16));
    let mut peers = Vec::new();
    for seed in 2..=4u8 {
        let addr = serving(seed, projection(), Arc::new(AdmitAll), config(4, 16)).await;
        peers.push((u32::from(seed), a.dial(addr, account(seed)).await.unwrap()));
    }
    let addr = serving(5, slow, Arc::new(AdmitAll), config(4, 16)).await;
    peers.push((5, a.dial(addr, account(5)).await.unwrap()));
    let mut backoff = std::collections::HashMap::new();
    let started = std::time::Instant::now();
    let answers = ask_all(&peers, &mut backoff).await;
    // Partial results after the deadline, not after the slowest peer.
    assert!(started.elapsed() < Duration::from_millis(450));
    let expected = RandomProjection::new(3, DIM)
        .forward(Modality::Text, &text())
        .unwrap();
    for (uid, answer) in &answers {
        match (uid, answer) {
            (5, deepnode_node::Answer::StandIn(t, NodeError::Timeout)) => {
                assert_eq!(t, &Tensor::zeros(&[2, 4, DIM]).unwrap())
            }
            (2..=4, deepnode_node::Answer::Peer(t)) => assert_eq!(t, &expected),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(backoff[&5].wait(), Duration::from_millis(100));
    assert_eq!(backoff[&2].wait(), Duration::ZERO);
    // While it backs off, the slow peer is not even asked, and its wait is not extended (a
    // node querying every 100 ms would otherwise never ask it again).
    for _ in 0..3 {
        let answers = ask_all(&peers, &mut backoff).await;
        assert!(matches!(
            answers[3].1,
            deepnode_node::Answer::StandIn(_, NodeError::BackingOff)
        ));
        assert_eq!(backoff[&5].wait(), Duration::from_millis(100));
    }
    // Once the wait is over it is asked again: it times out again, and the wait doubles.
    tokio::time::sleep(Duration::from_millis(120)).await;
    let answers = ask_all(&peers, &mut backoff).await;
    assert!(matches!(
        answers[3].1,
        deepnode_node::Answer::StandIn(_, NodeError::Timeout)
    ));
    assert_eq!(backoff[&5].wait(), Duration::from_millis(200));
}

/// Answers token `t` at `[b, s]` with `t + d` at `[b, s, d]`, and keeps every backward's inputs
/// and gradient.
struct Mirror(std::sync::Mutex<Vec<(Tensor, Tensor)>>);

impl Model for Mirror {
    fn dim(&self) -> u32 {
        DIM
    }
    fn serves(&self, _: Modality) -> bool {
        true
    }
    fn forward(&self, _: Modality, x: &Tensor) -> Result<Tensor, NodeError> {
        let tokens = x.to_i64().ok_or(NodeError::Tensor("not tokens"))?;
        let out: Vec<f32> = tokens
            .iter()
            .flat_map(|&t| (0..DIM).map(move |d| (t + i64::from(d)) as f32))
            .collect();
        let d = x.shape.dims();
        Tensor::from_f32(&[d[0], d[1], DIM], &out)
    }
    fn backward(&self, _: Modality, x: &Tensor, grad: &Tensor) -> Result<(), NodeError> {
        self.0.lock().unwrap().push((x.clone(), grad.clone()));
        Ok(())
    }
}

#[tokio::test]
async fn large_interleaved_messages_arrive_intact_both_ways() {
    let mut cfg = config(4, 16);
    cfg.limits.max_payload = 64 << 20;
    cfg.limits.max_seq = 1 << 16;
    let mirror = Arc::new(Mirror(Default::default()));
    let b = serving(2, mirror.clone(), Arc::new(AdmitAll), cfg.clone()).await;
    let a = node(1, projection(), Arc::new(AdmitAll), cfg);
    let conn = a.dial(b, account(2)).await.unwrap();
    // Hundreds of chunks each way, two messages at once: their chunks interleave.
    let seq = 40_000u32;
    let tokens: Vec<i64> = (0..2 * i64::from(seq)).map(|i| i * 7 % 100_003).collect();
    let inputs = Tensor::from_i64(&[2, seq], &tokens).unwrap();
    let g: Vec<f32> = (0..2 * seq * DIM).map(|i| i as f32 * 0.5).collect();
    let grad = Tensor::from_f32(&[2, seq, DIM], &g).unwrap();
    let (fwd, bwd) = tokio::join!(
        conn.forward(Modality::Text, &inputs, Duration::from_secs(10)),
        conn.backward(Modality::Text, &inputs, &grad, Duration::from_secs(10)),
    );
    bwd.unwrap();
    assert_eq!(
        fwd.unwrap(),
        Mirror(Default::default())
            .forward(Modality::Text, &inputs)
            .unwrap()
    );
    let started = std::time::Instant::now();
    while mirror.0.lock().unwrap().is_empty() {
        assert!(started.elapsed() < Duration::from_secs(10), "backward lost");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(mirror.0.lock().unwrap()[..], [(inputs, grad)]);
}
