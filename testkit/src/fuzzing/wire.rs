//! The oracle of the `wire` fuzz target (`fuzz/fuzz_targets/wire.rs`): the peer wire's header
//! and chunk decoders on arbitrary bytes.

use deepnode_wire::{CHUNK_HEADER_LEN, ChunkHeader, HEADER_LEN, Header, Limits};

/// Oracle of the `wire` fuzz target: decoding arbitrary bytes never panics, and a header or
/// chunk header that decodes re-encodes to the same bytes and passes or fails the limits
/// without panicking.
pub fn wire_oracle(data: &[u8]) {
    let limits = Limits {
        max_payload: 1 << 24,
        max_batch: 64,
        max_seq: 512,
        dim: 256,
        max_features: 1024,
        max_image_elems: 3 * 64 * 64,
    };
    if let Some(bytes) = data.first_chunk::<HEADER_LEN>()
        && let Ok(h) = Header::decode(bytes)
    {
        let mut again = [0u8; HEADER_LEN];
        h.encode(&mut again);
        assert_eq!(&again, bytes, "decode-encode is not identity");
        let _ = limits.check(&h);
    }
    if let Some(bytes) = data.first_chunk::<CHUNK_HEADER_LEN>()
        && let Ok(c) = ChunkHeader::decode(bytes)
    {
        let mut again = [0u8; CHUNK_HEADER_LEN];
        c.encode(&mut again);
        assert_eq!(&again, bytes, "chunk decode-encode is not identity");
    }
}

#[cfg(test)]
mod tests {
    use deepnode_wire::{DType, Kind, Modality, Shape};

    use super::*;

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut rng = crate::Rng::new(7);
        for len in 0..400 {
            wire_oracle(&rng.bytes(len % 80));
        }
    }

    #[test]
    fn headers_that_decode_re_encode() {
        let shape = Shape::new(&[1, 2, 3]).expect("shape");
        let h = Header::request(Kind::Forward, Modality::Tensor, DType::F32, shape, 9, 0)
            .expect("header");
        let mut bytes = [0u8; HEADER_LEN];
        h.encode(&mut bytes);
        wire_oracle(&bytes);
        // Each byte changed in turn: decoded or refused, never a panic.
        for i in 0..HEADER_LEN {
            let mut b = bytes;
            b[i] ^= 0xa5;
            wire_oracle(&b);
        }
    }
}
