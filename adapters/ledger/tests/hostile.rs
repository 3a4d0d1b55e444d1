//! Hostile clients on loopback: a WebSocket client that floods batches and never
//! reads. Each test is bounded in time and stops by itself.
#![cfg(feature = "rpc")]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use deepnode_ledger::{Call, Chain, Extrinsic, Genesis, RpcServer, Wallet};

mod common;
use common::{post, rss_kib, ws_text as ws_frame};

fn wallet(b: u8) -> Wallet {
    Wallet::from_seed([b; 32])
}

/// A node with three registered nodes, a block every 100 ms.
async fn node(dir: &std::path::Path) -> RpcServer {
    let mut g = Genesis::default();
    g.config.tempo = 1_000;
    g.endowments = (1..=3).map(|b| (wallet(b).account(), 1_000_000)).collect();
    let mut chain = Chain::open(dir, Some(&g)).expect("open");
    let id = chain.genesis_hash();
    for b in 1..=3 {
        let ext = Extrinsic::sign(wallet(b).key(), &id, 0, Call::Register);
        chain.submit_verified(ext).expect("register");
    }
    chain.produce_block(1).expect("block 1");
    RpcServer::start(
        chain,
        "127.0.0.1:0".parse().expect("addr"),
        Duration::from_millis(100),
    )
    .await
    .expect("start")
}

/// A raw WebSocket connection (handshake done), so the test controls what is read.
fn ws_connect(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(
        s,
        "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .expect("handshake");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).expect("handshake reply");
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    s
}

/// One client sends frames of 3,300-call `ledger_metagraph` batches (about 250 KB each) and
/// never reads the replies. Batches are bounded and the server stops reading once its
/// per-connection buffer is full, so memory stays flat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_cannot_grow_memory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = node(dir.path()).await;
    let addr = node.addr();
    let batch = format!(
        "[{}]",
        (0..3_300)
            .map(|k| format!(r#"{{"jsonrpc":"2.0","id":{k},"method":"ledger_metagraph"}}"#))
            .collect::<Vec<_>>()
            .join(",")
    );
    let frame = ws_frame(batch.as_bytes());
    let before = rss_kib();
    let grown = tokio::task::spawn_blocking(move || {
        let mut s = ws_connect(addr);
        s.set_write_timeout(Some(Duration::from_millis(500)))
            .expect("timeout");
        let start = Instant::now();
        let mut sent = 0;
        // Bounded: 40 frames or 8 s; a write that blocks means the server stopped reading.
        while sent < 40 && start.elapsed() < Duration::from_secs(8) {
            if s.write_all(&frame).is_err() {
                break;
            }
            sent += 1;
        }
        // Let the server work through what it read.
        std::thread::sleep(Duration::from_millis(1_500));
        let grown = rss_kib().saturating_sub(before);
        eprintln!("never-reading client: {sent} frames sent, RSS grew {grown} KiB");
        drop(s);
        grown
    })
    .await
    .expect("client");
    node.stop().await.expect("stop");
    assert!(grown < 16 * 1024, "RSS grew {grown} KiB under one client");
}

/// A batch longer than `MAX_BATCH_LEN` is refused as a whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_are_bounded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = node(dir.path()).await;
    let addr = node.addr();
    let batch = |n: u32| {
        format!(
            "[{}]",
            (0..n)
                .map(|k| format!(r#"{{"jsonrpc":"2.0","id":{k},"method":"ledger_head"}}"#))
                .collect::<Vec<_>>()
                .join(",")
        )
    };
    let max = deepnode_ledger::rpc::MAX_BATCH_LEN;
    let (ok, too_long) =
        tokio::task::spawn_blocking(move || (post(addr, &batch(max)), post(addr, &batch(max + 1))))
            .await
            .expect("client");
    assert_eq!(ok.matches("\"result\"").count(), max as usize);
    assert!(too_long.contains("-32010"), "{too_long}");
    node.stop().await.expect("stop");
}

/// A connection to `addr` from the loopback address `from` (127.0.0.2 plays another host).
async fn connect_from(from: [u8; 4], addr: SocketAddr) -> Option<tokio::net::TcpStream> {
    let s = tokio::net::TcpSocket::new_v4().ok()?;
    s.bind(SocketAddr::from((from, 0))).ok()?;
    s.connect(addr).await.ok()
}

/// 100 idle WebSockets and 100 HTTP POSTs that declare 1,000 bytes and send one, all from
/// one address, do not lock other clients out: one address gets at most `max_per_ip`
/// connections, so honest submissions from another address go through meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_slow_clients_do_not_lock_others_out() {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let node = node(dir.path()).await;
    let addr = node.addr();
    let mut hostile = Vec::new();
    for k in 0..200 {
        let Some(mut s) = connect_from([127, 0, 0, 2], addr).await else {
            continue;
        };
        let head = if k % 2 == 0 {
            format!(
                "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            )
        } else {
            format!(
                "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
                 Content-Length: 1000\r\n\r\n["
            )
        };
        let _ = s.write_all(head.as_bytes()).await;
        hostile.push(s);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let client = deepnode_ledger::Client::new(&format!("http://{addr}")).expect("client");
    let w = wallet(1);
    let mut latencies = Vec::new();
    for _ in 0..20 {
        let start = Instant::now();
        client
            .send(w.key(), Call::AddStake { uid: 0, amount: 1 })
            .await
            .expect("an honest submission is accepted beside hostile clients");
        latencies.push(start.elapsed());
    }
    latencies.sort();
    eprintln!(
        "honest send beside 100 idle WS + 100 slow POSTs: p50 {:?}, max {:?}",
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1]
    );
    drop(hostile);
    node.stop().await.expect("stop");
}

/// A POST whose body never completes, and a connection that never sends its
/// headers, are closed after the request and header timeouts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_requests_and_silent_connections_time_out() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().expect("tempdir");
    let chain = Chain::open(dir.path(), None).expect("open");
    let limits = deepnode_ledger::rpc::ConnectionLimits {
        header_timeout: Duration::from_millis(500),
        request_timeout: Duration::from_millis(500),
        ..Default::default()
    };
    let node = RpcServer::start_with_limits(
        chain,
        "127.0.0.1:0".parse().expect("addr"),
        Duration::from_millis(100),
        limits,
    )
    .await
    .expect("start");
    let addr = node.addr();
    let mut slow = tokio::net::TcpStream::connect(addr).await.expect("connect");
    slow.write_all(
        format!("POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n[")
            .as_bytes(),
    )
    .await
    .expect("write");
    let mut silent = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let start = Instant::now();
    let mut reply = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut reply))
        .await
        .expect("the slow POST is closed")
        .expect("read");
    assert!(
        String::from_utf8_lossy(&reply).starts_with("HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&reply)
    );
    let mut none = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), silent.read_to_end(&mut none))
        .await
        .expect("the silent connection is closed")
        .ok();
    assert!(start.elapsed() < Duration::from_secs(3));
    // A page elsewhere cannot drive the RPC: foreign Host or Origin is refused.
    for extra in [
        "Host: evil.example\r\n".to_string(),
        format!("Host: {addr}\r\nOrigin: http://evil.example\r\n"),
    ] {
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let body = r#"{"jsonrpc":"2.0","id":1,"method":"ledger_head"}"#;
        s.write_all(
            format!("POST / HTTP/1.1\r\n{extra}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
                .as_bytes(),
        )
        .await
        .expect("write");
        let mut reply = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut reply))
            .await
            .expect("answered")
            .expect("read");
        assert!(
            String::from_utf8_lossy(&reply).starts_with("HTTP/1.1 403"),
            "{}",
            String::from_utf8_lossy(&reply)
        );
    }
    node.stop().await.expect("stop");
}

/// One hogging socket of a local process: connects to `addr` from 127.0.0.1 and holds the
/// connection, sending nothing (`idle`) or a declared 100 kB body a byte every 200 ms; when
/// the server closes it, opens another. Stops when `stop` is set; returns the connections it
/// opened.
async fn hog(addr: SocketAddr, idle: bool, stop: Arc<AtomicBool>) -> usize {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut opened = 0;
    while !stop.load(Ordering::SeqCst) {
        let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        opened += 1;
        if !idle {
            let head = format!(
                "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
                 Content-Length: 100000\r\n\r\n["
            );
            if s.write_all(head.as_bytes()).await.is_err() {
                continue;
            }
        }
        let mut buf = [0u8; 256];
        while !stop.load(Ordering::SeqCst) {
            tokio::select! {
                r = s.read(&mut buf) => if matches!(r, Ok(0) | Err(_)) { break },
                () = tokio::time::sleep(Duration::from_millis(200)) => {
                    if !idle && s.write_all(b" ").await.is_err() {
                        break;
                    }
                }
            }
        }
    }
    opened
}

/// A local process holds 96 sockets to a loopback server (half idle, half sending a body a
/// byte at a time) and reopens each one the server closes, while an honest client makes
/// eleven calls, each on a fresh connection as `deepnode tx` does. Every call is served.
/// Before, the per-IP cap (64) counted 127.0.0.1 as one client, the hog held every slot and
/// every honest call was refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_hog_cannot_lock_honest_clients_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = node(dir.path()).await;
    let addr = node.addr();
    let url = format!("http://{addr}");
    let stop = Arc::new(AtomicBool::new(false));
    let hogs: Vec<_> = (0..96)
        .map(|k| tokio::spawn(hog(addr, k % 2 == 0, stop.clone())))
        .collect();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let w = wallet(1);
    let mut served = Vec::new();
    let mut failed = Vec::new();
    for k in 0..11 {
        let start = Instant::now();
        let call = async {
            let client = deepnode_ledger::Client::new(&url)?;
            if k % 2 == 0 {
                client.call("ledger_head", jsonrpsee::rpc_params![]).await?;
            } else {
                client
                    .send(w.key(), Call::AddStake { uid: 0, amount: 1 })
                    .await?;
            }
            Ok::<_, deepnode_ledger::LedgerError>(())
        };
        match tokio::time::timeout(Duration::from_secs(15), call).await {
            Ok(Ok(())) => served.push(start.elapsed()),
            Ok(Err(e)) => failed.push(e.to_string()),
            Err(_) => failed.push("no reply in 15 s".into()),
        }
    }
    stop.store(true, Ordering::SeqCst);
    let mut opened = 0;
    for h in hogs {
        opened += h.await.expect("hog");
    }
    served.sort();
    eprintln!(
        "local hog ({opened} connections opened): {} of 11 honest calls served, p50 {:?}, max {:?}; \
         failures {failed:?}",
        served.len(),
        served.get(served.len() / 2),
        served.last()
    );
    node.stop().await.expect("stop");
    assert!(failed.is_empty(), "honest calls refused: {failed:?}");
}

/// Upgraded WebSocket sessions count against the connection limits: with 4 connections per
/// IP, of which 3 may be WebSockets, a fourth upgrade gets HTTP 429 (the rest is kept for
/// HTTP), and an HTTP call at the cap evicts the session that has been idle longest. Before,
/// a session stopped counting once upgraded: the fourth upgrade was accepted and no session
/// was ever closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_sessions_count_against_the_connection_limits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let chain = Chain::open(dir.path(), None).expect("open");
    let limits = deepnode_ledger::rpc::ConnectionLimits {
        max_per_ip: 4,
        max_ws_per_ip: 3,
        eviction_grace: Duration::from_millis(100),
        ..Default::default()
    };
    let node = RpcServer::start_with_limits(
        chain,
        "127.0.0.1:0".parse().expect("addr"),
        Duration::from_millis(100),
        limits,
    )
    .await
    .expect("start");
    let addr = node.addr();
    let (fourth, evicted, others_open, reply) = tokio::task::spawn_blocking(move || {
        let sessions: Vec<TcpStream> = (0..3)
            .map(|_| {
                let s = ws_connect(addr);
                std::thread::sleep(Duration::from_millis(50));
                s
            })
            .collect();
        // A fourth upgrade: refused, it would eat the HTTP reserve.
        let mut s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        write!(
            s,
            "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        .expect("handshake");
        let mut head = [0u8; 12];
        let _ = s.read_exact(&mut head);
        let fourth = String::from_utf8_lossy(&head).to_string();
        drop(s);
        std::thread::sleep(Duration::from_millis(300));
        // Three sessions and this: at the cap of 4, so the call evicts the oldest session.
        let _extra = TcpStream::connect(addr).expect("connect");
        std::thread::sleep(Duration::from_millis(300));
        let reply = post(addr, r#"{"jsonrpc":"2.0","id":1,"method":"ledger_head"}"#);
        // Closed: end of stream or a reset after whatever was sent (a ping); open: no more
        // bytes within 500 ms.
        let closed = |mut s: &TcpStream| {
            s.set_read_timeout(Some(Duration::from_millis(500)))
                .expect("timeout");
            let mut b = [0u8; 64];
            loop {
                match s.read(&mut b) {
                    Ok(0) => return true,
                    Ok(_) => {}
                    Err(e) => {
                        return !matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        );
                    }
                }
            }
        };
        let evicted = closed(&sessions[0]);
        let others_open = sessions[1..].iter().filter(|s| !closed(s)).count();
        (fourth, evicted, others_open, reply)
    })
    .await
    .expect("client");
    node.stop().await.expect("stop");
    assert_eq!(fourth, "HTTP/1.1 429", "a fourth upgrade from one address");
    assert!(reply.contains("\"result\""), "{reply}");
    assert!(
        evicted,
        "the oldest idle session was not evicted at the cap"
    );
    assert!(others_open >= 1, "every session was closed");
}

/// Sends `request` as is on a new connection and returns everything the server sends back
/// before it closes the connection (or 5 s pass).
fn raw(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let _ = s.write_all(request);
    let mut reply = Vec::new();
    let _ = s.read_to_end(&mut reply);
    String::from_utf8_lossy(&reply).into_owned()
}

/// One WebSocket frame from the server (unmasked): its opcode and payload.
fn ws_read(s: &mut TcpStream) -> std::io::Result<(u8, Vec<u8>)> {
    let mut h = [0u8; 2];
    s.read_exact(&mut h)?;
    let len = match h[1] & 0x7f {
        126 => {
            let mut b = [0u8; 2];
            s.read_exact(&mut b)?;
            u64::from(u16::from_be_bytes(b))
        }
        127 => {
            let mut b = [0u8; 8];
            s.read_exact(&mut b)?;
            u64::from_be_bytes(b)
        }
        n => u64::from(n),
    };
    let mut payload = vec![0u8; len as usize];
    s.read_exact(&mut payload)?;
    Ok((h[0] & 0x0f, payload))
}

/// The next text frame from the server, skipping pings.
fn ws_text_reply(s: &mut TcpStream) -> std::io::Result<String> {
    loop {
        let (op, payload) = ws_read(s)?;
        if op == 1 {
            return Ok(String::from_utf8_lossy(&payload).into_owned());
        }
    }
}

/// A masked frame with the given first byte (FIN and opcode).
fn ws_frame_op(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = ws_frame(payload);
    f[0] = first;
    f
}

/// Malformed requests get the right refusal: a chunked body over the limit gets 413 (it got
/// 500); two `Host` headers get 400 (the first, if loopback, passed); a request id that is an
/// object, `1e400` or past `u64` gets the JSON-RPC error -32600 (it got 200 with no reply).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_http_requests_are_refused_with_the_right_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = node(dir.path()).await;
    let addr = node.addr();
    let replies = tokio::task::spawn_blocking(move || {
        let mut chunked = format!(
            "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
             Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        )
        .into_bytes();
        let chunk = vec![b' '; 64 << 10];
        for _ in 0..6 {
            chunked.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            chunked.extend_from_slice(&chunk);
            chunked.extend_from_slice(b"\r\n");
        }
        chunked.extend_from_slice(b"0\r\n\r\n");
        let body = r#"{"jsonrpc":"2.0","id":1,"method":"ledger_head"}"#;
        let two_hosts = format!(
            "POST / HTTP/1.1\r\nHost: {addr}\r\nHost: evil.example\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let ids: Vec<String> = [
            r#"{"jsonrpc":"2.0","id":{"a":1},"method":"ledger_head"}"#,
            r#"{"jsonrpc":"2.0","id":1e400,"method":"ledger_head"}"#,
            r#"{"jsonrpc":"2.0","id":123456789012345678901234567890,"method":"ledger_head"}"#,
            r#"[{"jsonrpc":"2.0","id":[1],"method":"ledger_head"}]"#,
        ]
        .into_iter()
        .map(|b| post(addr, b))
        .collect();
        let fine = post(addr, r#"{"jsonrpc":"2.0","id":"x","method":"ledger_head"}"#);
        (raw(addr, &chunked), raw(addr, two_hosts.as_bytes()), ids, fine)
    })
    .await
    .expect("client");
    node.stop().await.expect("stop");
    let (chunked, two_hosts, ids, fine) = replies;
    let mut wrong = Vec::new();
    if !chunked.starts_with("HTTP/1.1 413") {
        wrong.push(format!("chunked: {}", chunked.lines().next().unwrap_or("")));
    }
    if !two_hosts.starts_with("HTTP/1.1 400") {
        wrong.push(format!(
            "two hosts: {}",
            two_hosts.lines().next().unwrap_or("")
        ));
    }
    for reply in ids {
        if !reply.contains("-32600") {
            wrong.push(format!("odd id: {reply:?}"));
        }
    }
    if !fine.contains("\"result\"") {
        wrong.push(format!("a string id: {fine}"));
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// WebSocket frames the server must refuse: a message over the request limit sent in
/// fragments gets -32007 like a single large frame, and the session goes on (it got no
/// reply, and the session hung); an unmasked client frame closes the connection unanswered
/// (it was answered).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_fragmented_and_unmasked_websocket_frames_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = node(dir.path()).await;
    let addr = node.addr();
    let (fragmented, after, unmasked) = tokio::task::spawn_blocking(move || {
        let mut s = ws_connect(addr);
        // Six 64 KiB fragments: 384 KiB, past MAX_REQUEST_BYTES (260 KiB).
        let piece = vec![b' '; 64 << 10];
        let mut msg = ws_frame_op(0x01, b"[");
        for _ in 0..6 {
            msg.extend(ws_frame_op(0x00, &piece));
        }
        msg.extend(ws_frame_op(0x80, b"]"));
        s.write_all(&msg).expect("fragments");
        let fragmented = ws_text_reply(&mut s).unwrap_or_else(|e| format!("no reply: {e}"));
        s.write_all(&ws_frame(
            br#"{"jsonrpc":"2.0","id":7,"method":"ledger_head"}"#,
        ))
        .expect("call");
        let after = ws_text_reply(&mut s).unwrap_or_else(|e| format!("no reply: {e}"));
        let mut u = ws_connect(addr);
        let body = br#"{"jsonrpc":"2.0","id":8,"method":"ledger_head"}"#;
        let mut frame = vec![0x81u8, body.len() as u8];
        frame.extend_from_slice(body);
        u.write_all(&frame).expect("unmasked");
        let unmasked = ws_text_reply(&mut u);
        (fragmented, after, unmasked)
    })
    .await
    .expect("client");
    node.stop().await.expect("stop");
    assert!(fragmented.contains("-32007"), "fragmented: {fragmented}");
    assert!(
        after.contains("\"id\":7") && after.contains("\"result\""),
        "after: {after}"
    );
    assert!(
        unmasked.is_err(),
        "an unmasked frame was answered: {unmasked:?}"
    );
}

/// Stopping the server with ten connections sending a body a byte at a time takes about
/// `STOP_GRACE`, not the request timeout (29 s before).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_does_not_wait_for_slow_bodies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = node(dir.path()).await;
    let addr = node.addr();
    let stop = Arc::new(AtomicBool::new(false));
    let slow: Vec<_> = (0..10)
        .map(|_| tokio::spawn(hog(addr, false, stop.clone())))
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let t = Instant::now();
    tokio::time::timeout(Duration::from_secs(20), node.stop())
        .await
        .expect("stopped within 20 s")
        .expect("stop");
    let took = t.elapsed();
    stop.store(true, Ordering::SeqCst);
    for h in slow {
        let _ = h.await;
    }
    eprintln!("stop beside 10 slow bodies: {took:?}");
    assert!(took < Duration::from_secs(5), "stop took {took:?}");
}

/// Messages that are not JSON-RPC (jsonrpsee answers them itself, before any call runs)
/// leave the session usable: after eight of them a call is still answered. They count against
/// the session's queue when read, and must not stay counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_that_are_not_json_rpc_do_not_stall_a_session() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = node(dir.path()).await;
    let addr = node.addr();
    let (errors, reply) = tokio::task::spawn_blocking(move || {
        let mut s = ws_connect(addr);
        let mut errors = 0;
        for bad in ["x", "{\"foo\":1}", "7", "[1]"].iter().cycle().take(8) {
            s.write_all(&ws_frame(bad.as_bytes())).expect("write");
            if ws_text_reply(&mut s).is_ok_and(|r| r.contains("\"error\"")) {
                errors += 1;
            }
        }
        s.write_all(&ws_frame(
            br#"{"jsonrpc":"2.0","id":9,"method":"ledger_head"}"#,
        ))
        .expect("call");
        let reply = ws_text_reply(&mut s).unwrap_or_else(|e| format!("no reply: {e}"));
        (errors, reply)
    })
    .await
    .expect("client");
    node.stop().await.expect("stop");
    assert_eq!(errors, 8, "each bad message gets an error");
    assert!(
        reply.contains("\"id\":9") && reply.contains("\"result\""),
        "{reply}"
    );
}

/// Over WebSocket as over HTTP, a request whose id jsonrpsee cannot take (an object, `1e400`,
/// past `u64`, in a batch, in a message sent in two fragments) gets the error -32600 with a
/// `null` id (it got no reply at all); a notification still gets none, and the session goes
/// on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_requests_with_bad_ids_get_invalid_request() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = node(dir.path()).await;
    let addr = node.addr();
    let (replies, after) = tokio::task::spawn_blocking(move || {
        let mut s = ws_connect(addr);
        let fragmented = br#"{"jsonrpc":"2.0","id":{"b":[2]},"method":"ledger_head"}"#;
        let mut two = ws_frame_op(0x01, &fragmented[..13]);
        two.extend(ws_frame_op(0x80, &fragmented[13..]));
        let messages: Vec<Vec<u8>> = [
            r#"{"jsonrpc":"2.0","id":{"a":1},"method":"ledger_head"}"#,
            r#"{"jsonrpc":"2.0","id":1e400,"method":"ledger_head"}"#,
            r#"{"jsonrpc":"2.0","id":123456789012345678901234567890,"method":"ledger_head"}"#,
            r#"[{"jsonrpc":"2.0","id":[1],"method":"ledger_head"},{"jsonrpc":"2.0","id":5,"method":"ledger_head"}]"#,
        ]
        .into_iter()
        .map(|m| ws_frame(m.as_bytes()))
        .chain([two])
        .collect();
        let mut replies = Vec::new();
        for m in messages {
            s.write_all(&m).expect("write");
            replies.push(ws_text_reply(&mut s).unwrap_or_else(|e| format!("no reply: {e}")));
        }
        // A notification gets no reply: the next reply is the call's after it.
        s.write_all(&ws_frame(br#"{"jsonrpc":"2.0","method":"ledger_head"}"#))
            .expect("notification");
        s.write_all(&ws_frame(
            br#"{"jsonrpc":"2.0","id":9,"method":"ledger_head"}"#,
        ))
        .expect("call");
        let after = ws_text_reply(&mut s).unwrap_or_else(|e| format!("no reply: {e}"));
        (replies, after)
    })
    .await
    .expect("client");
    node.stop().await.expect("stop");
    for reply in &replies {
        assert!(
            reply.contains("-32600") && reply.contains("\"id\":null"),
            "{replies:#?}"
        );
    }
    assert!(
        after.contains("\"id\":9") && after.contains("\"result\""),
        "after: {after}"
    );
}
