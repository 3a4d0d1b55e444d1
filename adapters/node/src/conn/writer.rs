//! The session's writer: queued messages go out as chunks, one chunk per message in turn, so a
//! large backward does not hold up a small forward.

use std::collections::VecDeque;
use std::time::Duration;

use deepnode_wire::{
    CHUNK_HEADER_LEN, ChunkHeader, FIRST, HEADER_LEN, Header, LAST, MAX_CHUNK_DATA, REPLY,
};
use tokio::sync::{OwnedSemaphorePermit, mpsc, watch};

use crate::transport::FrameWrite;

/// A message waiting to be sent: the concatenation of `parts` (a header, inputs, gradient),
/// moved in whole so that no byte is copied before it is sealed.
pub(super) struct Outgoing {
    pub(super) id: u64,
    pub(super) reply: bool,
    pub(super) parts: [Vec<u8>; 3],
    /// The request permits of a reply, given back once it is written (or dropped).
    pub(super) hold: Option<Permits>,
}

/// A served request's permits: its account's and the node's.
pub(super) type Permits = (OwnedSemaphorePermit, OwnedSemaphorePermit);

impl Outgoing {
    pub(super) fn new(id: u64, reply: bool, header: &Header, body: [Vec<u8>; 2]) -> Outgoing {
        let mut h = [0u8; HEADER_LEN];
        header.encode(&mut h);
        let [inputs, grad] = body;
        Outgoing {
            id,
            reply,
            parts: [h.to_vec(), inputs, grad],
            hold: None,
        }
    }

    fn len(&self) -> usize {
        self.parts.iter().map(Vec::len).sum()
    }

    /// Where bytes `pos..pos + n` of the message can be sealed in place: a part holding all of
    /// them and, before them, room for the chunk header (bytes already sent). Returns the
    /// part and the offset of `pos` in it.
    fn in_place(&self, pos: usize, n: usize) -> Option<(usize, usize)> {
        let mut start = 0;
        for (i, part) in self.parts.iter().enumerate() {
            let end = start + part.len();
            if pos >= start + CHUNK_HEADER_LEN && pos + n <= end {
                return Some((i, pos - start));
            }
            start = end;
        }
        None
    }

    /// The slices of the message's bytes `pos..pos + n`, in order (empty slices where a part
    /// does not overlap).
    fn slices(&self, pos: usize, n: usize) -> [&[u8]; 3] {
        let mut out: [&[u8]; 3] = [&[]; 3];
        let mut start = 0;
        for (slot, part) in out.iter_mut().zip(&self.parts) {
            let end = start + part.len();
            let (a, b) = (pos.max(start), (pos + n).min(end));
            if a < b {
                *slot = part.get(a - start..b - start).unwrap_or_default();
            }
            start = end;
        }
        out
    }
}

/// Sends queued messages as chunks, one chunk per message in turn, sealing a few chunks
/// before each write. Stops when either of `stop` turns true, every sender is gone, or a write
/// makes no progress for `send_timeout`.
pub(super) async fn write_loop(
    mut writer: Box<dyn FrameWrite>,
    mut rx: mpsc::Receiver<Outgoing>,
    stop: [watch::Receiver<bool>; 2],
    send_timeout: Duration,
) {
    let [mut closing, mut ended] = stop;
    let mut active: VecDeque<(Outgoing, usize)> = VecDeque::new();
    loop {
        if *closing.borrow() || *ended.borrow() {
            return;
        }
        if active.is_empty() && writer.buffered() == 0 {
            tokio::select! {
                m = rx.recv() => match m {
                    Some(m) => active.push_back((m, 0)),
                    None => return,
                },
                _ = closing.wait_for(|c| *c) => return,
                _ = ended.wait_for(|c| *c) => return,
            }
        }
        while let Ok(m) = rx.try_recv() {
            active.push_back((m, 0));
        }
        if let Some((mut m, pos)) = active.pop_front() {
            let len = m.len();
            let n = (len - pos).min(MAX_CHUNK_DATA);
            let mut flags = if m.reply { REPLY } else { 0 };
            if pos == 0 {
                flags |= FIRST;
            }
            if pos + n == len {
                flags |= LAST;
            }
            let mut h = [0u8; CHUNK_HEADER_LEN];
            ChunkHeader {
                request_id: m.id,
                // n <= MAX_CHUNK_DATA < 2^16.
                len: n as u16,
                flags,
            }
            .encode(&mut h);
            if let Some((part, off)) = m.in_place(pos, n) {
                // The chunk header overwrites bytes of this message already sent; the chunk
                // is sealed where it lies (the message is dropped once sent).
                let Some(frame) = m
                    .parts
                    .get_mut(part)
                    .and_then(|p| p.get_mut(off - CHUNK_HEADER_LEN..off + n))
                else {
                    return;
                };
                frame[..CHUNK_HEADER_LEN].copy_from_slice(&h);
                tokio::select! {
                    r = tokio::time::timeout(send_timeout, writer.send_in_place(frame)) => {
                        if !matches!(r, Ok(Ok(()))) {
                            return;
                        }
                    },
                    _ = closing.wait_for(|c| *c) => return,
                    _ = ended.wait_for(|c| *c) => return,
                }
            } else {
                let [a, b, c] = m.slices(pos, n);
                if writer.push(&[&h, a, b, c]).is_err() {
                    return;
                }
            }
            if flags & LAST == 0 {
                active.push_back((m, pos + n));
            }
        }
        // Write once a few frames are sealed, or at once when nothing else is waiting.
        if writer.buffered() >= FLUSH_AT || active.is_empty() {
            tokio::select! {
                r = tokio::time::timeout(send_timeout, writer.flush()) => {
                    if !matches!(r, Ok(Ok(()))) {
                        return;
                    }
                },
                _ = closing.wait_for(|c| *c) => return,
                _ = ended.wait_for(|c| *c) => return,
            }
        }
    }
}

/// Bytes sealed before the writer writes them, unless nothing else waits.
const FLUSH_AT: usize = 2 * (CHUNK_HEADER_LEN + MAX_CHUNK_DATA);
