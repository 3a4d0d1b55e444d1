//! A connection's stream ([`Backpressured`]): reads paused while its writes are blocked or its
//! calls queue, written bytes counted against the reply budgets.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::lock;
use super::registry::Slot;
use super::ws::WsIn;

/// What a connection's stream is carrying.
pub(super) enum Mode {
    /// The first request's head, up to its blank line (`tail`: its last bytes): it decides
    /// whether the rest is WebSocket frames.
    Head {
        len: usize,
        tail: [u8; 4],
        upgrade: Vec<u8>,
    },
    /// HTTP requests, passed as they come.
    Http,
    /// A WebSocket session's client frames, parsed as they pass.
    Ws(WsIn),
}

/// The longest first request head scanned for an upgrade.
pub(super) const MAX_HEAD: usize = 16 << 10;

/// Bytes read from a WebSocket's socket at a time, so that one read takes in a few frames,
/// not all the socket holds.
pub(super) const WS_READ: usize = 4096;

/// The largest buffer of a WebSocket message's text kept for the next message.
pub(super) const WS_KEEP: usize = 64 << 10;

/// A connection's stream, tied to its [`Slot`]: it reads nothing while a write to it is
/// blocked (the peer's receive window and the socket's send buffer are full) or while
/// [`MAX_QUEUED_CALLS`] of its WebSocket messages wait or run, so a peer that does not read
/// its replies cannot make the server take in more of its requests; it counts written bytes
/// against the reply budgets; it marks the connection departed at end of input or on an
/// error; once the connection is evicted its reads and writes fail. A connection may become a
/// WebSocket only with its first request: the stream passes that request's head alone, and
/// parses what follows as frames ([`WsIn`]).
pub(super) struct Backpressured {
    pub(super) inner: TcpStream,
    pub(super) slot: Arc<Slot>,
    pub(super) write_blocked: bool,
    pub(super) mode: Mode,
    /// Bytes read from the socket and not yet passed on.
    pub(super) stash: Vec<u8>,
    /// Zeros to pass before the stash.
    pub(super) zeros: u64,
}

impl Backpressured {
    pub(super) fn new(inner: TcpStream, slot: Arc<Slot>) -> Backpressured {
        Backpressured {
            inner,
            slot,
            write_blocked: false,
            mode: Mode::Head {
                len: 0,
                tail: [0; 4],
                upgrade: Vec::new(),
            },
            stash: Vec::new(),
            zeros: 0,
        }
    }

    pub(super) fn killed(&self) -> bool {
        self.slot.killed.load(Ordering::SeqCst)
    }

    pub(super) fn aborted<T>() -> Poll<std::io::Result<T>> {
        Poll::Ready(Err(std::io::ErrorKind::ConnectionAborted.into()))
    }

    /// Records whether the last write was blocked, and what it wrote.
    pub(super) fn wrote(
        &mut self,
        r: Poll<std::io::Result<usize>>,
        cx: &Context<'_>,
    ) -> Poll<std::io::Result<usize>> {
        self.write_blocked = r.is_pending();
        match &r {
            Poll::Pending => {
                *lock(&self.slot.writer) = Some(cx.waker().clone());
                if self.killed() {
                    return Self::aborted();
                }
            }
            Poll::Ready(Ok(n)) => self.slot.wrote(*n),
            Poll::Ready(Err(_)) => self.slot.depart(),
        }
        if !self.write_blocked {
            Slot::wake(&self.slot.reader);
        }
        r
    }

    /// Reads up to `max` bytes from the socket into the stash.
    pub(super) fn fill(
        &mut self,
        cx: &mut Context<'_>,
        max: usize,
    ) -> Poll<std::io::Result<usize>> {
        let mut tmp = vec![0u8; max];
        let mut rb = ReadBuf::new(&mut tmp);
        match Pin::new(&mut self.inner).poll_read(cx, &mut rb) {
            Poll::Ready(Ok(())) => {
                let n = rb.filled().len();
                self.stash.extend_from_slice(rb.filled());
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    /// Passes stashed bytes to `buf` under the current mode.
    pub(super) fn pass(&mut self, buf: &mut ReadBuf<'_>) -> std::io::Result<()> {
        let room = buf.remaining();
        match &mut self.mode {
            Mode::Http => {
                let n = room.min(self.stash.len());
                buf.put_slice(&self.stash[..n]);
                self.stash.drain(..n);
            }
            Mode::Head { len, tail, upgrade } => {
                let mut n = 0;
                let mut end = false;
                while n < room.min(self.stash.len()) {
                    let b = self.stash[n];
                    n += 1;
                    *len += 1;
                    tail.rotate_left(1);
                    tail[3] = b;
                    if upgrade.len() < MAX_HEAD {
                        upgrade.push(b);
                    }
                    if *tail == *b"\r\n\r\n" || *len >= MAX_HEAD {
                        end = true;
                        break;
                    }
                }
                buf.put_slice(&self.stash[..n]);
                self.stash.drain(..n);
                if end {
                    let head = String::from_utf8_lossy(upgrade).to_ascii_lowercase();
                    let ws = head.lines().any(|l| {
                        l.split_once(':')
                            .is_some_and(|(k, v)| k.trim() == "upgrade" && v.contains("websocket"))
                    });
                    self.mode = if ws {
                        self.slot.ws_ready.store(true, Ordering::SeqCst);
                        Mode::Ws(WsIn::default())
                    } else {
                        Mode::Http
                    };
                }
            }
            Mode::Ws(ws) => {
                let take = room.min(self.stash.len());
                let mut out = Vec::with_capacity(take);
                let (used, zeros) =
                    ws.feed(&self.stash[..take], &mut out, &self.slot)
                        .map_err(|_| {
                            self.slot.kill();
                            std::io::Error::from(std::io::ErrorKind::InvalidData)
                        })?;
                buf.put_slice(&out);
                self.stash.drain(..used);
                self.zeros = zeros;
            }
        }
        Ok(())
    }
}

impl AsyncRead for Backpressured {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.killed() {
            return Self::aborted();
        }
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        if self.zeros > 0 {
            let n = usize::try_from(self.zeros)
                .unwrap_or(usize::MAX)
                .min(buf.remaining());
            buf.put_slice(&vec![0u8; n]);
            self.zeros -= n as u64;
            return Poll::Ready(Ok(()));
        }
        loop {
            if self.write_blocked || self.slot.read_paused() {
                *lock(&self.slot.reader) = Some(cx.waker().clone());
                // Re-checked once the waker is in place, so a wake in between is not lost.
                if self.killed() {
                    return Self::aborted();
                }
                if self.write_blocked || self.slot.read_paused() {
                    return Poll::Pending;
                }
            }
            if self.stash.is_empty() {
                if let Mode::Http = self.mode {
                    // Straight into `buf`.
                    let before = buf.filled().len();
                    let r = Pin::new(&mut self.inner).poll_read(cx, buf);
                    return self.after_read(r, buf.filled().len() > before, cx);
                }
                let max = if let Mode::Ws(_) = self.mode {
                    WS_READ
                } else {
                    buf.remaining().min(MAX_HEAD)
                };
                match self.fill(cx, max) {
                    Poll::Ready(Ok(0)) => return self.after_read(Poll::Ready(Ok(())), false, cx),
                    Poll::Ready(Ok(_)) => {}
                    Poll::Ready(Err(e)) => return self.after_read(Poll::Ready(Err(e)), false, cx),
                    Poll::Pending => return self.after_read(Poll::Pending, false, cx),
                }
            }
            let before = buf.filled().len();
            self.pass(buf)?;
            if buf.filled().len() > before || self.zeros > 0 {
                let _ = self.after_read(Poll::Ready(Ok(())), true, cx);
                return Poll::Ready(Ok(()));
            }
            // Everything passed was dropped (the fragments of a message too long): read on.
        }
    }
}

impl Backpressured {
    /// Bookkeeping after a socket read: progress, departure, the waker for an eviction.
    pub(super) fn after_read(
        &mut self,
        r: Poll<std::io::Result<()>>,
        got: bool,
        cx: &Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        match &r {
            Poll::Ready(Ok(())) if got => {
                if self.slot.ws.load(Ordering::SeqCst) {
                    self.slot.touch();
                }
            }
            Poll::Ready(_) => self.slot.depart(),
            Poll::Pending => {
                // So that an eviction wakes a reader waiting on the socket.
                *lock(&self.slot.reader) = Some(cx.waker().clone());
                if self.killed() {
                    return Self::aborted();
                }
            }
        }
        r
    }
}

impl AsyncWrite for Backpressured {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if self.killed() {
            return Self::aborted();
        }
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.wrote(r, cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        if self.killed() {
            return Self::aborted();
        }
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.wrote(r, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        // A TCP stream's flush does nothing (it says nothing of room in the socket), so it
        // neither blocks nor unblocks the reader.
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
