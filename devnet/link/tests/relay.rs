//! Each behaviour of the relay, measured by a client through it: the delay added, the jitter's
//! range with bytes in order, the cap, a stall, a reset, a refused route.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use deepnode_link::{Profile, Relay};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// An echo server on loopback; returns its address.
async fn echo() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

/// A sink that reads everything; returns its address.
async fn sink() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
            });
        }
    });
    addr
}

async fn relay(profile: Profile, to: SocketAddr) -> Relay {
    Relay::bind("127.0.0.1:0".parse().unwrap(), profile, 7, move |_, _| {
        Some(to.into())
    })
    .await
    .unwrap()
}

/// Round trips of one byte through `addr`.
async fn round_trips(addr: SocketAddr, n: usize) -> Vec<Duration> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    let mut out = Vec::new();
    for i in 0..n {
        let t = Instant::now();
        s.write_all(&[i as u8]).await.unwrap();
        let mut b = [0u8; 1];
        s.read_exact(&mut b).await.unwrap();
        assert_eq!(b[0], i as u8);
        out.push(t.elapsed());
    }
    out
}

#[tokio::test]
async fn the_delay_is_added_each_way() {
    let e = echo().await;
    let direct = round_trips(e, 3).await;
    let r = relay(
        Profile {
            delay_ms: 60,
            ..Profile::default()
        },
        e,
    )
    .await;
    let through = round_trips(r.addr(), 3).await;
    for (d, t) in direct.iter().zip(&through) {
        // Two one-way delays of 60 ms; the loaded machine may add some.
        assert!(*t >= Duration::from_millis(120), "{t:?}");
        assert!(
            *t < Duration::from_millis(120) + *d + Duration::from_millis(150),
            "{t:?}"
        );
    }
}

#[tokio::test]
async fn jitter_spreads_the_delay_and_keeps_the_bytes_in_order() {
    let e = echo().await;
    let r = relay(
        Profile {
            delay_ms: 40,
            jitter_ms: 30,
            ..Profile::default()
        },
        e,
    )
    .await;
    let rtts = round_trips(r.addr(), 20).await;
    let min = rtts.iter().min().unwrap();
    let max = rtts.iter().max().unwrap();
    assert!(*min >= Duration::from_millis(20), "{min:?}");
    assert!(*max - *min >= Duration::from_millis(15), "{min:?}..{max:?}");
    // A stream of many writes comes back whole and in order.
    let mut s = TcpStream::connect(r.addr()).await.unwrap();
    let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let (mut rd, mut wr) = s.split();
    let send = async {
        for c in data.chunks(1000) {
            wr.write_all(c).await.unwrap();
        }
        wr.shutdown().await.unwrap();
    };
    let mut back = Vec::new();
    let recv = rd.read_to_end(&mut back);
    let (_, n) = tokio::join!(send, recv);
    n.unwrap();
    assert_eq!(back, data);
}

#[tokio::test]
async fn the_bandwidth_cap_limits_the_rate() {
    let s = sink().await;
    let r = relay(
        Profile {
            bandwidth_mbit: 4.0,
            ..Profile::default()
        },
        s,
    )
    .await;
    let mut c = TcpStream::connect(r.addr()).await.unwrap();
    let t = Instant::now();
    let bytes = 1_000_000usize;
    c.write_all(&vec![1u8; bytes]).await.unwrap();
    c.shutdown().await.unwrap();
    // The sender is done once the relay has taken all but what is in flight and in the
    // socket buffers; wait until the relay has carried every byte.
    while r.tally().bytes.load(std::sync::atomic::Ordering::Relaxed) < bytes as u64 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let took = t.elapsed().as_secs_f64();
    let mbit = bytes as f64 * 8.0 / took / 1e6;
    // 1 MB at 4 Mbit/s: 2 s.
    assert!(
        (3.0..=4.05).contains(&mbit),
        "{mbit:.2} Mbit/s in {took:.2} s"
    );
}

#[tokio::test]
async fn a_stall_holds_the_bytes_for_its_length() {
    let e = echo().await;
    let r = relay(
        Profile {
            stall_per_min: 120.0,
            stall_ms: 400,
            ..Profile::default()
        },
        e,
    )
    .await;
    // Stalls of 400 ms every 0.5 s on average, each way: within 40 round trips 10 ms apart
    // some wait through one.
    let mut s = TcpStream::connect(r.addr()).await.unwrap();
    let mut longest = Duration::ZERO;
    for i in 0..40u8 {
        let t = Instant::now();
        s.write_all(&[i]).await.unwrap();
        let mut b = [0u8; 1];
        s.read_exact(&mut b).await.unwrap();
        assert_eq!(b[0], i);
        longest = longest.max(t.elapsed());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(longest >= Duration::from_millis(100), "{longest:?}");
    assert!(longest <= Duration::from_millis(1000), "{longest:?}");
}

#[tokio::test]
async fn a_reset_reaches_the_client() {
    let e = echo().await;
    let r = relay(
        Profile {
            reset_per_min: 600.0,
            ..Profile::default()
        },
        e,
    )
    .await;
    let mut s = TcpStream::connect(r.addr()).await.unwrap();
    let t = Instant::now();
    let err = loop {
        let mut b = [0u8; 1];
        let res = match s.write_all(&[1]).await {
            Ok(()) => s.read_exact(&mut b).await.map(drop),
            Err(e) => Err(e),
        };
        if let Err(e) = res {
            break e;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "no reset in 10 s");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");
    assert_eq!(
        r.tally().resets.load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

#[tokio::test]
async fn a_refused_route_closes_the_connection() {
    let r = Relay::bind(
        "127.0.0.1:0".parse().unwrap(),
        Profile::default(),
        1,
        |_, _| None,
    )
    .await
    .unwrap();
    let mut s = TcpStream::connect(r.addr()).await.unwrap();
    let mut b = [0u8; 1];
    let n = s.read(&mut b).await.unwrap_or(0);
    assert_eq!(n, 0);
    assert_eq!(
        r.tally().refused.load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

#[tokio::test]
async fn a_bad_profile_is_refused_before_binding() {
    let e = Relay::bind(
        "127.0.0.1:0".parse().unwrap(),
        Profile {
            delay_ms: 5,
            jitter_ms: 6,
            ..Profile::default()
        },
        1,
        |_, _| None,
    )
    .await
    .err()
    .unwrap();
    assert_eq!(e.to_string(), "link.jitter_ms: must not exceed delay_ms");
}

#[tokio::test]
async fn the_route_sees_the_dialled_address_and_picks_the_source() {
    // The upstream records the address each connection comes from.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up = l.local_addr().unwrap();
    let r = Relay::bind(
        "127.0.0.1:0".parse().unwrap(),
        Profile::default(),
        1,
        move |dialled, client| {
            assert_eq!(client.ip(), std::net::IpAddr::from([127, 0, 0, 1]));
            (dialled.port() != 0).then_some(deepnode_link::Upstream {
                addr: up,
                from: Some([127, 0, 0, 9].into()),
            })
        },
    )
    .await
    .unwrap();
    let c = TcpStream::connect(r.addr()).await.unwrap();
    let (s, from) = l.accept().await.unwrap();
    assert_eq!(from.ip(), std::net::IpAddr::from([127, 0, 0, 9]));
    let t = Instant::now();
    while r.tally().open.load(std::sync::atomic::Ordering::Relaxed) != 1 {
        assert!(t.elapsed() < Duration::from_secs(5), "not counted open");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    drop((c, s));
    while r.tally().open.load(std::sync::atomic::Ordering::Relaxed) != 0 {
        assert!(t.elapsed() < Duration::from_secs(5), "still open");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_relay_runs_on_a_listener_bound_elsewhere() {
    let e = echo().await;
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let r = Relay::on(l, Profile::default(), 1, move |_, _| Some(e.into())).unwrap();
    assert_eq!(round_trips(r.addr(), 2).await.len(), 2);
}

#[tokio::test]
async fn a_dial_that_hangs_closes_the_client_after_the_timeout() {
    let r = Relay::bind(
        "127.0.0.1:0".parse().unwrap(),
        Profile::default(),
        1,
        // 192.0.2.0/24 (TEST-NET-1) is never routed: the dial hangs or fails at once.
        |_, _| Some(SocketAddr::from(([192, 0, 2, 1], 9)).into()),
    )
    .await
    .unwrap();
    let t = Instant::now();
    let mut s = TcpStream::connect(r.addr()).await.unwrap();
    let mut b = [0u8; 1];
    assert_eq!(s.read(&mut b).await.unwrap_or(0), 0);
    assert!(t.elapsed() < deepnode_link::DIAL_TIMEOUT + Duration::from_secs(2));
    assert_eq!(
        r.tally().refused.load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}
