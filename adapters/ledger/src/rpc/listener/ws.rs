//! A WebSocket's client-to-server frames, parsed as they pass ([`WsIn`]).

use std::sync::atomic::Ordering;

use super::super::wire::MAX_REQUEST_BYTES;
use super::registry::Slot;
use super::stream::WS_KEEP;

/// The client-to-server frames of a WebSocket, parsed as they pass: each complete data
/// message is counted in [`Slot::queued`]; an unmasked frame closes the connection; a
/// message past [`MAX_REQUEST_BYTES`] is cut so that jsonrpsee answers it with `-32007`
/// (its reader then skips the message's whole length: the stream supplies the part already
/// passed as zeros, and drops the message's later fragments) and the session goes on.
#[derive(Default)]
pub(super) struct WsIn {
    pub(super) head: [u8; 14],
    pub(super) have: usize,
    /// Payload bytes left in the current frame.
    pub(super) left: u64,
    /// The current frame is a data frame, the last of its message, dropped.
    pub(super) data: bool,
    pub(super) fin: bool,
    pub(super) drop_frame: bool,
    /// The current frame made its message too long.
    pub(super) over: bool,
    /// Payload bytes of the current data message so far.
    pub(super) msg: u64,
    /// Dropping the later fragments of a message that was too long.
    pub(super) dropping: bool,
    /// The current frame's masking key, and the payload bytes of it passed so far.
    pub(super) mask: [u8; 4],
    pub(super) pos: u64,
    /// The current data message's payload so far, unmasked (for [`Slot::message`]).
    pub(super) text: Vec<u8>,
}

/// What a WebSocket client sent that the server refuses.
#[derive(Debug)]
pub(super) struct Unmasked;

impl WsIn {
    /// The header's length once its first bytes are in.
    pub(super) fn head_len(&self) -> Option<usize> {
        if self.have < 2 {
            return None;
        }
        let ext = match self.head[1] & 0x7f {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        Some(2 + ext + if self.head[1] & 0x80 != 0 { 4 } else { 0 })
    }

    /// Passes `chunk` to `out`, frame by frame; returns the bytes of `chunk` consumed and the
    /// zeros to supply before the rest.
    pub(super) fn feed(
        &mut self,
        chunk: &[u8],
        out: &mut Vec<u8>,
        slot: &Slot,
    ) -> Result<(usize, u64), Unmasked> {
        let mut i = 0;
        while i < chunk.len() {
            if self.left > 0 {
                let n = usize::try_from(self.left)
                    .unwrap_or(usize::MAX)
                    .min(chunk.len() - i);
                if !self.drop_frame {
                    out.extend_from_slice(&chunk[i..i + n]);
                    if self.data && !self.over {
                        let (mask, pos) = (self.mask, self.pos);
                        self.text
                            .extend(chunk[i..i + n].iter().enumerate().map(|(k, b)| {
                                b ^ mask[usize::try_from((pos + k as u64) % 4).unwrap_or(0)]
                            }));
                    }
                }
                self.pos += n as u64;
                i += n;
                self.left -= n as u64;
                if self.left == 0 {
                    let zeros = self.frame_end(slot);
                    if zeros > 0 {
                        return Ok((i, zeros));
                    }
                }
                continue;
            }
            self.head[self.have] = chunk[i];
            self.have += 1;
            i += 1;
            let Some(need) = self.head_len() else {
                continue;
            };
            if self.have < need {
                continue;
            }
            if self.head[1] & 0x80 == 0 {
                return Err(Unmasked);
            }
            let len = match self.head[1] & 0x7f {
                126 => u64::from(u16::from_be_bytes([self.head[2], self.head[3]])),
                127 => u64::from_be_bytes(self.head[2..10].try_into().unwrap_or([0xff; 8])),
                n => u64::from(n),
            };
            self.have = 0;
            self.fin = self.head[0] & 0x80 != 0;
            self.data = self.head[0] & 0x08 == 0;
            self.over = false;
            self.drop_frame = self.dropping && self.data;
            if self.drop_frame {
                if self.fin {
                    self.dropping = false;
                }
            } else {
                out.extend_from_slice(&self.head[..need]);
                if self.data {
                    let before = self.msg;
                    if before == 0 {
                        self.text.clear();
                    }
                    self.msg = self.msg.saturating_add(len);
                    if self.msg > u64::from(MAX_REQUEST_BYTES) {
                        // jsonrpsee's reader skips `self.msg` bytes from here: this frame's
                        // payload, then `before` zeros.
                        self.over = true;
                        self.dropping = !self.fin;
                        self.msg = before;
                    }
                }
            }
            self.mask.copy_from_slice(&self.head[need - 4..need]);
            self.pos = 0;
            self.left = len;
            if len == 0 {
                let zeros = self.frame_end(slot);
                if zeros > 0 {
                    return Ok((i, zeros));
                }
            }
        }
        Ok((i, 0))
    }

    /// The current frame ended; returns the zeros to supply after it.
    pub(super) fn frame_end(&mut self, slot: &Slot) -> u64 {
        if self.over {
            self.over = false;
            self.text = Vec::new();
            return std::mem::take(&mut self.msg);
        }
        if self.data && self.fin && !self.drop_frame {
            self.msg = 0;
            slot.message(&self.text);
            // A large message's buffer is not kept for the small ones after it.
            if self.text.capacity() > WS_KEEP {
                self.text = Vec::new();
            }
            self.text.clear();
            slot.queued.fetch_add(1, Ordering::SeqCst);
        }
        0
    }
}
