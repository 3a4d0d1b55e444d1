//! The 12-byte header of each chunk of a message, and its flags.

use crate::layout::{Reader, Writer};
use crate::{CHUNK_HEADER_LEN, MAX_CHUNK_DATA, WireError};

/// Chunk flags: the first chunk of a message (it starts with the [`Header`](crate::Header)).
pub const FIRST: u8 = 1;
/// Chunk flags: the last chunk of a message.
pub const LAST: u8 = 2;
/// Chunk flags: the message is a reply (Response or Error) to one of the receiver's requests,
/// so its id is the receiver's own, not the sender's.
pub const REPLY: u8 = 4;

/// The header of one chunk: which message it belongs to and where in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ChunkHeader {
    /// The message's request id.
    pub request_id: u64,
    /// [`FIRST`], [`LAST`], [`REPLY`], or'ed.
    pub flags: u8,
    /// Data bytes after this header (at most [`MAX_CHUNK_DATA`]).
    pub len: u16,
}

impl ChunkHeader {
    /// Writes the chunk header into `out`.
    pub fn encode(&self, out: &mut [u8; CHUNK_HEADER_LEN]) {
        let mut w = Writer { buf: out, at: 0 };
        w.put(&self.request_id.to_le_bytes());
        w.put(&[self.flags, 0]);
        w.put(&self.len.to_le_bytes());
    }

    /// Reads a chunk header: unknown flags, a reserved byte or a length over
    /// [`MAX_CHUNK_DATA`] are refused.
    pub fn decode(bytes: &[u8; CHUNK_HEADER_LEN]) -> Result<ChunkHeader, WireError> {
        let mut r = Reader { buf: bytes, at: 0 };
        let request_id = u64::from_le_bytes(r.take());
        let [flags, reserved] = r.take::<2>();
        let len = u16::from_le_bytes(r.take());
        if flags & !(FIRST | LAST | REPLY) != 0
            || reserved != 0
            || usize::from(len) > MAX_CHUNK_DATA
        {
            return Err(WireError::BadChunk);
        }
        Ok(ChunkHeader {
            request_id,
            flags,
            len,
        })
    }
}
