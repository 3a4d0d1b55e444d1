//! A read whose connection breaks is sent again; a submit is not.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use deepnode_ledger_client::{Client, READ_RETRIES};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Reads one HTTP request; returns its body.
async fn request(s: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk).await.unwrap();
        assert!(n > 0, "closed mid-request");
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            if body.len() >= len {
                return body.to_owned();
            }
        }
    }
}

/// A server that resets its first `resets` connections and answers every request after with
/// a hash; returns its URL and the count of connections.
async fn server(resets: usize) -> (String, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let seen = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let n = count.fetch_add(1, Ordering::SeqCst);
            if n < resets {
                let _ = request(&mut s).await;
                s.set_zero_linger().unwrap();
                drop(s);
                continue;
            }
            tokio::spawn(async move {
                loop {
                    let body = request(&mut s).await;
                    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
                    let reply = serde_json::json!({
                        "jsonrpc": "2.0",
                        "id": v["id"],
                        "result": format!("0x{}", "ab".repeat(32)),
                    })
                    .to_string();
                    let http = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                         content-length: {}\r\n\r\n{reply}",
                        reply.len()
                    );
                    if s.write_all(http.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, seen)
}

#[tokio::test]
async fn a_read_is_sent_again_after_its_connection_breaks() {
    let (url, seen) = server(READ_RETRIES as usize).await;
    let c = Client::new(&url).unwrap();
    let hash = c.genesis_hash().await.unwrap();
    assert_eq!(hash.to_string(), format!("0x{}", "ab".repeat(32)));
    assert_eq!(seen.load(Ordering::SeqCst), READ_RETRIES as usize + 1);
    // One break more than the retries: the read fails.
    let (url, _) = server(READ_RETRIES as usize + 1).await;
    assert!(Client::new(&url).unwrap().genesis_hash().await.is_err());
}

#[tokio::test]
async fn a_submit_is_not_sent_again() {
    let (url, seen) = server(1).await;
    let c = Client::new(&url).unwrap();
    assert!(c.submit_hex("00".into()).await.is_err());
    assert_eq!(seen.load(Ordering::SeqCst), 1);
}
