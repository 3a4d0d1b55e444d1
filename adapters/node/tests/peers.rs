//! Nodes over real loopback sockets: forward and backward between honest nodes, and each
//! hostile peer answered with a status or refused at the handshake, with no effect on others.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use deepnode_node::transport::{FrameRead, FrameWrite, Session};
use deepnode_node::{
    AccountKey, Admission, AdmitAll, EchoBias, Model, Node, NodeError, NoiseTcp, RandomProjection,
    ServeConfig, Tensor, Transport,
};
use deepnode_wire::{
    CHUNK_HEADER_LEN, ChunkHeader, DType, FIRST, HEADER_LEN, Header, Kind, LAST, Limits, Modality,
    REPLY, Shape, Status,
};
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

/// Polls `cond` every 10 ms until it holds; fails after `limit` with `what`.
async fn until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let started = std::time::Instant::now();
    while !cond() {
        assert!(started.elapsed() < limit, "timed out waiting: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A raw session to the node at `addr` (account 2) under account `seed`: a hostile peer that
/// writes chunks of its choosing.
async fn raw_session(seed: u8, addr: SocketAddr) -> Session {
    NoiseTcp::new(key(seed), GENESIS, Duration::from_secs(5))
        .unwrap()
        .dial(addr, account(2))
        .await
        .unwrap()
}

/// Sends one chunk of message `id`.
async fn chunk(w: &mut dyn FrameWrite, id: u64, flags: u8, data: &[u8]) -> Result<(), NodeError> {
    let mut h = [0u8; CHUNK_HEADER_LEN];
    ChunkHeader {
        request_id: id,
        len: data.len() as u16,
        flags,
    }
    .encode(&mut h);
    w.push(&[&h, data])?;
    w.flush().await
}

/// Opens forward `id` of TEXT tokens `[1, seq]` (its header only: the body never comes).
async fn open_forward(w: &mut dyn FrameWrite, id: u64, seq: u32) {
    let mut h = [0u8; HEADER_LEN];
    text_header(&[1, seq], id, 0).encode(&mut h);
    chunk(w, id, FIRST, &h).await.unwrap();
}

/// The next Error reply on a raw session, as (request id, status); `None` when the session
/// ends or nothing comes within `within`.
async fn next_refusal(r: &mut dyn FrameRead, within: Duration) -> Option<(u64, Status)> {
    let started = std::time::Instant::now();
    loop {
        let left = within.checked_sub(started.elapsed())?;
        let frame = tokio::time::timeout(left, r.recv()).await.ok()?.ok()??;
        let (head, data) = frame.split_first_chunk::<CHUNK_HEADER_LEN>()?;
        let c = ChunkHeader::decode(head).ok()?;
        if c.flags & (REPLY | FIRST) != REPLY | FIRST {
            continue;
        }
        let h = data
            .first_chunk::<HEADER_LEN>()
            .and_then(|h| Header::decode(h).ok());
        if let Some(h) = h.filter(|h| h.kind == Kind::Error) {
            return Some((c.request_id, h.status));
        }
    }
}

fn counters_of(cfg: &ServeConfig) -> Arc<deepnode_node::Counters> {
    Arc::clone(&cfg.counters)
}

#[tokio::test]
async fn sessions_are_capped_per_account() {
    let mut cfg = config(4, 16);
    cfg.max_sessions_per_account = 2;
    let counters = counters_of(&cfg);
    let b = serving(2, projection(), Arc::new(AdmitAll), cfg).await;
    let a = node(1, projection(), Arc::new(AdmitAll), config(4, 16));
    let mut conns = Vec::new();
    for _ in 0..3 {
        conns.push(a.dial(b, account(2)).await.unwrap());
    }
    // The server closes one of the three after its handshake; the other two serve.
    until("one session closed", 10 * SECOND, || {
        conns.iter().filter(|c| !c.is_open()).count() == 1
    })
    .await;
    conns.retain(|c| c.is_open());
    for c in &conns {
        assert!(c.forward(Modality::Text, &text(), SECOND).await.is_ok());
    }
    assert_eq!(conns.iter().filter(|c| c.is_open()).count(), 2);
    assert_eq!(counters.sessions_refused.load(Ordering::SeqCst), 1);
    // Another account is not affected.
    let other = node(3, projection(), Arc::new(AdmitAll), config(4, 16));
    let o = other.dial(b, account(2)).await.unwrap();
    assert!(o.forward(Modality::Text, &text(), SECOND).await.is_ok());
}

#[tokio::test]
async fn connections_are_capped_per_address_and_in_total() {
    for per_address in [true, false] {
        let mut cfg = config(4, 16);
        if per_address {
            cfg.max_sessions_per_address = 2;
        } else {
            cfg.max_sessions = 2;
        }
        let counters = counters_of(&cfg);
        let b = serving(2, projection(), Arc::new(AdmitAll), cfg).await;
        // Three accounts from one address: the third connection is closed before its
        // handshake.
        let mut held = Vec::new();
        for seed in [1, 3] {
            let n = node(seed, projection(), Arc::new(AdmitAll), config(4, 16));
            let c = n.dial(b, account(2)).await.unwrap();
            assert!(c.forward(Modality::Text, &text(), SECOND).await.is_ok());
            held.push((n, c));
        }
        let third = node(4, projection(), Arc::new(AdmitAll), config(4, 16));
        assert!(third.dial(b, account(2)).await.is_err());
        assert_eq!(counters.sessions_refused.load(Ordering::SeqCst), 1);
        // Once one leaves, its place is free again.
        held.pop();
        let mut again = None;
        let started = std::time::Instant::now();
        while again.is_none() {
            assert!(started.elapsed() < 10 * SECOND, "no place after one left");
            tokio::time::sleep(Duration::from_millis(10)).await;
            again = third.dial(b, account(2)).await.ok();
        }
        let c = again.unwrap();
        assert!(c.forward(Modality::Text, &text(), SECOND).await.is_ok());
    }
}

#[tokio::test]
async fn accounts_outside_the_metagraph_lose_their_session_at_the_handshake() {
    let b = serving(
        2,
        projection(),
        Arc::new(Only(vec![account(1)])),
        config(4, 16),
    )
    .await;
    let stranger = node(5, projection(), Arc::new(AdmitAll), config(4, 16));
    let s = stranger.dial(b, account(2)).await.unwrap();
    let e = s
        .forward(Modality::Text, &text(), SECOND)
        .await
        .unwrap_err();
    assert!(matches!(e, NodeError::Closed), "{e}");
    until("the stranger's session closed", 10 * SECOND, || {
        !s.is_open()
    })
    .await;
    let member = node(1, projection(), Arc::new(AdmitAll), config(4, 16));
    let m = member.dial(b, account(2)).await.unwrap();
    assert!(m.forward(Modality::Text, &text(), SECOND).await.is_ok());
}

#[tokio::test]
async fn idle_sessions_are_closed_and_busy_ones_kept() {
    let mut cfg = config(4, 16);
    cfg.idle_timeout = Duration::from_millis(1500);
    let n = node(2, projection(), Arc::new(AdmitAll), cfg);
    let b = n.listen("127.0.0.1:0".parse().unwrap()).await.unwrap().0;
    let idle = node(1, projection(), Arc::new(AdmitAll), config(4, 16));
    let busy = node(3, projection(), Arc::new(AdmitAll), config(4, 16));
    let i = idle.dial(b, account(2)).await.unwrap();
    let k = busy.dial(b, account(2)).await.unwrap();
    let started = std::time::Instant::now();
    while i.is_open() {
        assert!(
            started.elapsed() < 15 * SECOND,
            "the idle session stayed open"
        );
        // One forward every 100 ms keeps the other session alive.
        assert!(k.forward(Modality::Text, &text(), SECOND).await.is_ok());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(started.elapsed() >= Duration::from_millis(1500));
    assert!(k.is_open());
    assert!(k.forward(Modality::Text, &text(), SECOND).await.is_ok());
    until("the server forgot the idle session", 10 * SECOND, || {
        n.sessions() == 1
    })
    .await;
}

/// Limits with room for `[1, 4096]` token messages (32 KiB) and `[8, 4096, D]` responses.
fn wide(per_peer: usize, global: usize) -> ServeConfig {
    let mut cfg = config(per_peer, global);
    cfg.limits.max_seq = 4096;
    cfg
}

#[tokio::test]
async fn unfinished_messages_are_bounded_per_session_and_in_total_and_expire() {
    let mut cfg = wide(4, 16);
    cfg.max_open_bytes = 100 << 10;
    cfg.max_open_bytes_total = 150 << 10;
    cfg.message_timeout = Duration::from_secs(3);
    let n = node(2, projection(), Arc::new(AdmitAll), cfg);
    let b = n.listen("127.0.0.1:0".parse().unwrap()).await.unwrap().0;
    let mut s1 = raw_session(1, b).await;
    // Three 32 KiB messages fit the session's 100 KiB; the fourth is refused at once.
    for id in 1..=4 {
        open_forward(s1.writer.as_mut(), id, 4096).await;
    }
    let r = next_refusal(s1.reader.as_mut(), 10 * SECOND).await;
    assert_eq!(r, Some((4, Status::Busy)));
    assert_eq!(n.open_bytes(), 3 * (32 << 10));
    // Another session: the node's 150 KiB hold one more.
    let mut s2 = raw_session(3, b).await;
    open_forward(s2.writer.as_mut(), 1, 4096).await;
    open_forward(s2.writer.as_mut(), 2, 4096).await;
    let r = next_refusal(s2.reader.as_mut(), 10 * SECOND).await;
    assert_eq!(r, Some((2, Status::Busy)));
    // An honest small request still fits and is served.
    let honest = node(4, projection(), Arc::new(AdmitAll), wide(4, 16));
    let h = honest.dial(b, account(2)).await.unwrap();
    assert!(h.forward(Modality::Text, &text(), SECOND).await.is_ok());
    // The unfinished ones expire: each is answered DeadlineExpired and its bytes are freed.
    let mut expired = Vec::new();
    while let Some((id, status)) = next_refusal(s1.reader.as_mut(), 10 * SECOND).await {
        assert_eq!(status, Status::DeadlineExpired);
        expired.push(id);
        if expired.len() == 3 {
            break;
        }
    }
    expired.sort_unstable();
    assert_eq!(expired, [1, 2, 3]);
    assert_eq!(
        next_refusal(s2.reader.as_mut(), 10 * SECOND).await,
        Some((1, Status::DeadlineExpired))
    );
    until("the bytes freed", 10 * SECOND, || n.open_bytes() == 0).await;
    // The session is still usable: a whole message is served.
    let mut body = [0u8; HEADER_LEN].to_vec();
    text_header(&[2, 4], 9, 0).encode((&mut body[..HEADER_LEN]).try_into().unwrap());
    body.extend_from_slice(&text().bytes);
    chunk(s1.writer.as_mut(), 9, FIRST | LAST, &body)
        .await
        .unwrap();
    let frame = tokio::time::timeout(10 * SECOND, s1.reader.recv())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let c = ChunkHeader::decode(frame.first_chunk::<CHUNK_HEADER_LEN>().unwrap()).unwrap();
    assert_eq!((c.request_id, c.flags & REPLY), (9, REPLY));
    let h = Header::decode(frame[CHUNK_HEADER_LEN..].first_chunk().unwrap()).unwrap();
    assert_eq!(h.kind, Kind::Response);
}

#[tokio::test]
async fn a_peer_that_never_reads_is_closed_and_its_permits_come_back() {
    let mut cfg = config(2, 4);
    cfg.max_queued = 4;
    cfg.send_timeout = Duration::from_millis(500);
    let global = Arc::clone(&cfg.global);
    // Each small request of two rows gets a 1 MiB answer, others their own shape.
    let big = Answers(|b, s| match b {
        2 => Tensor::zeros(&[1, 1, 1 << 18]).unwrap(),
        _ => Tensor::zeros(&[b, s, DIM]).unwrap(),
    });
    let n = node(2, Arc::new(big), Arc::new(AdmitAll), cfg);
    let b = n.listen("127.0.0.1:0".parse().unwrap()).await.unwrap().0;
    let Session {
        reader: _unread,
        mut writer,
        ..
    } = raw_session(1, b).await;
    // The peer sends requests and never reads; it keeps its side of the session open.
    let flood = tokio::spawn(async move {
        let mut msg = [0u8; HEADER_LEN].to_vec();
        msg.extend_from_slice(&text().bytes);
        for id in 1..=2000u64 {
            text_header(&[2, 4], id, 0).encode((&mut msg[..HEADER_LEN]).try_into().unwrap());
            if chunk(writer.as_mut(), id, FIRST | LAST, &msg)
                .await
                .is_err()
            {
                break;
            }
        }
        writer
    });
    // The node gives up on the peer: the session closes and every permit comes back.
    until("the session closed", 20 * SECOND, || {
        n.sessions() == 0 && flood.is_finished()
    })
    .await;
    until("the permits back", 10 * SECOND, || {
        global.available_permits() == 4
    })
    .await;
    let _writer = flood.await.unwrap();
    let honest = node(3, projection(), Arc::new(AdmitAll), config(4, 16));
    let h = honest.dial(b, account(2)).await.unwrap();
    let one = Tensor::from_i64(&[1, 4], &[1, 2, 3, 4]).unwrap();
    assert!(h.forward(Modality::Text, &one, SECOND).await.is_ok());
}

/// A model that sleeps before answering and records the most forwards it ran at once.
struct Crowded {
    now: AtomicUsize,
    most: AtomicUsize,
}

impl Model for Crowded {
    fn dim(&self) -> u32 {
        DIM
    }
    fn serves(&self, m: Modality) -> bool {
        m == Modality::Text
    }
    fn forward(&self, m: Modality, x: &Tensor) -> Result<Tensor, NodeError> {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(200));
        self.now.fetch_sub(1, Ordering::SeqCst);
        RandomProjection::new(3, DIM).forward(m, x)
    }
    fn backward(&self, _: Modality, _: &Tensor, _: &Tensor) -> Result<(), NodeError> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permits_are_per_account_across_its_sessions() {
    let model = Arc::new(Crowded {
        now: AtomicUsize::new(0),
        most: AtomicUsize::new(0),
    });
    let b = serving(2, model.clone(), Arc::new(AdmitAll), config(2, 16)).await;
    let a = node(1, projection(), Arc::new(AdmitAll), config(4, 16));
    let mut flood = Vec::new();
    for _ in 0..3 {
        let c = a.dial(b, account(2)).await.unwrap();
        for _ in 0..4 {
            let c = Arc::clone(&c);
            flood.push(tokio::spawn(async move {
                c.forward(Modality::Text, &text(), 5 * SECOND).await
            }));
        }
    }
    let (mut ok, mut busy) = (0, 0);
    for f in flood {
        match f.await.unwrap() {
            Ok(_) => ok += 1,
            Err(NodeError::Refused(Status::Busy)) => busy += 1,
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert!(ok >= 2 && busy >= 6, "ok {ok}, busy {busy}");
    let most = model.most.load(Ordering::SeqCst);
    assert!(
        (1..=2).contains(&most),
        "one account, two permits: {most} at once"
    );
}

/// What a model answers to a forward of `[batch, seq]`.
type Answer = fn(u32, u32) -> Tensor;

/// Answers every forward with `out(batch, seq)`.
struct Answers(Answer);

impl Model for Answers {
    fn dim(&self) -> u32 {
        DIM
    }
    fn serves(&self, _: Modality) -> bool {
        true
    }
    fn forward(&self, _: Modality, x: &Tensor) -> Result<Tensor, NodeError> {
        let d = x.shape.dims();
        Ok((self.0)(d[0], d[1]))
    }
    fn backward(&self, _: Modality, _: &Tensor, _: &Tensor) -> Result<(), NodeError> {
        Ok(())
    }
}

#[tokio::test]
async fn bad_answers_are_refused_and_their_peers_backed_off() {
    let bad: [(u32, Answer); 4] = [
        (2, |b, s| {
            let mut v = vec![0.5f32; (b * s * DIM) as usize];
            v[3] = f32::NAN;
            Tensor::from_f32(&[b, s, DIM], &v).unwrap()
        }),
        (3, |b, s| {
            Tensor::from_f32(&[b, s, DIM], &vec![f32::INFINITY; (b * s * DIM) as usize]).unwrap()
        }),
        // More rows than asked for (within the limits).
        (4, |b, s| Tensor::zeros(&[2 * b, 2 * s, DIM]).unwrap()),
        // The right size in bytes, the wrong dtype.
        (5, |b, s| {
            Tensor::from_i64(&[b, s, DIM], &vec![1; (b * s * DIM) as usize]).unwrap()
        }),
    ];
    let a = node(1, projection(), Arc::new(AdmitAll), config(4, 16));
    let mut peers = Vec::new();
    for (seed, f) in bad {
        let addr = serving(
            seed as u8,
            Arc::new(Answers(f)),
            Arc::new(AdmitAll),
            config(4, 16),
        )
        .await;
        peers.push((seed, a.dial(addr, account(seed as u8)).await.unwrap()));
    }
    let addr = serving(6, projection(), Arc::new(AdmitAll), config(4, 16)).await;
    peers.push((6, a.dial(addr, account(6)).await.unwrap()));
    let mut backoff = std::collections::HashMap::new();
    let answers = ask_all(&peers, &mut backoff).await;
    for (uid, answer) in &answers {
        match (uid, answer) {
            (6, deepnode_node::Answer::Peer(_)) => assert_eq!(backoff[uid].wait(), Duration::ZERO),
            (2..=5, deepnode_node::Answer::StandIn(t, NodeError::BadAnswer(_))) => {
                assert_eq!(t, &Tensor::zeros(&[2, 4, DIM]).unwrap());
                assert!(
                    backoff[uid].wait() > Duration::ZERO,
                    "uid {uid} not backed off"
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    // The sessions stay usable: the honest peer answers again.
    let answers = ask_all(&peers, &mut backoff).await;
    assert!(matches!(answers[4].1, deepnode_node::Answer::Peer(_)));
}

#[tokio::test]
async fn refused_backwards_are_counted() {
    let mut cfg = config(4, 16);
    cfg.admit_at_handshake = false;
    let counters = counters_of(&cfg);
    let b = serving(2, projection(), Arc::new(Only(Vec::new())), cfg).await;
    let a = node(1, projection(), Arc::new(AdmitAll), config(4, 16));
    let c = a.dial(b, account(2)).await.unwrap();
    let grad = Tensor::zeros(&[2, 4, DIM]).unwrap();
    c.backward(Modality::Text, &text(), &grad, SECOND)
        .await
        .unwrap();
    until("the refused backward counted", 10 * SECOND, || {
        counters.refused.load(Ordering::SeqCst) == 1
    })
    .await;
    assert_eq!(counters.served.load(Ordering::SeqCst), 0);
}

/// Admits the accounts listed so far; more can be added.
struct Growing(std::sync::Mutex<Vec<AccountKey>>);

impl Admission for Growing {
    fn admit(&self, a: &AccountKey) -> bool {
        self.0.lock().unwrap().contains(a)
    }
}

#[tokio::test]
async fn a_fresh_registrant_gets_a_session_once_admitted() {
    let admission = Arc::new(Growing(Default::default()));
    let b = serving(2, projection(), admission.clone(), config(4, 16)).await;
    let fresh = node(1, projection(), Arc::new(AdmitAll), config(4, 16));
    let early = fresh.dial(b, account(2)).await.unwrap();
    until("the early session closed", 10 * SECOND, || !early.is_open()).await;
    // The metagraph shows it now: its next dial gets a session that serves.
    admission.0.lock().unwrap().push(account(1));
    let c = fresh.dial(b, account(2)).await.unwrap();
    assert!(c.forward(Modality::Text, &text(), SECOND).await.is_ok());
    assert!(c.is_open());
}
