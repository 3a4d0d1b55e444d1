//! The header and chunk codecs: round trips, and every malformed or over-limit header refused
//! with its own error before any body is read.

use deepnode_wire::{
    CHUNK_HEADER_LEN, ChunkHeader, DType, FIRST, HEADER_LEN, Header, Kind, LAST, Limits,
    MAX_CHUNK_DATA, Modality, REPLY, Shape, Status, WireError,
};
use proptest::prelude::*;

const LIMITS: Limits = Limits {
    max_payload: 1 << 20,
    max_batch: 8,
    max_seq: 64,
    dim: 32,
    max_features: 16,
    max_image_elems: 3 * 8 * 8,
};

fn bytes(h: &Header) -> [u8; HEADER_LEN] {
    let mut b = [0u8; HEADER_LEN];
    h.encode(&mut b);
    b
}

fn text(b: u32, s: u32) -> Header {
    Header::request(
        Kind::Forward,
        Modality::Text,
        DType::I64,
        Shape::new(&[b, s]).unwrap(),
        9,
        5,
    )
    .unwrap()
}

fn any_header() -> impl Strategy<Value = Header> {
    (
        prop::sample::select(Kind::ALL),
        prop::sample::select(Modality::ALL),
        prop::sample::select(DType::ALL),
        prop::sample::select(DType::ALL),
        prop::collection::vec(0u32..100, 2..=4),
        any::<u64>(),
        any::<u64>(),
        prop::sample::select(Status::ALL),
        1u32..64,
    )
        .prop_filter_map(
            "a Backward needs B, S >= 1",
            |(kind, modality, dtype, g, dims, id, deadline, status, dim)| {
                let shape = Shape::new(&dims)?;
                match kind {
                    Kind::Backward => {
                        Header::backward(modality, dtype, shape, g, dim, id, deadline)
                    }
                    Kind::Error => Some(Header::error(id, modality, status)),
                    k => Header::request(k, modality, dtype, shape, id, deadline),
                }
            },
        )
}

proptest! {
    #[test]
    fn every_header_round_trips(h in any_header()) {
        prop_assert_eq!(Header::decode(&bytes(&h)), Ok(h));
    }

    #[test]
    fn changing_the_length_alone_is_refused(h in any_header(), delta in 1u64..1000) {
        let mut bad = h;
        bad.payload_len = h.payload_len.wrapping_add(delta);
        let decoded = Header::decode(&bytes(&bad));
        // A Backward may still read as a whole gradient of another width: then the limits
        // refuse the width.
        match decoded {
            Err(WireError::LengthMismatch { declared, .. }) => prop_assert_eq!(declared, bad.payload_len),
            Ok(d) => {
                prop_assert_eq!(d.kind, Kind::Backward);
                prop_assert_ne!(d.grad_dim(), h.grad_dim());
            }
            Err(e) => prop_assert!(false, "unexpected {e:?}"),
        }
    }

    #[test]
    fn chunk_headers_round_trip(id in any::<u64>(), flags in 0u8..8, len in 0..=MAX_CHUNK_DATA as u16) {
        let c = ChunkHeader { request_id: id, flags, len };
        let mut b = [0u8; CHUNK_HEADER_LEN];
        c.encode(&mut b);
        prop_assert_eq!(ChunkHeader::decode(&b), Ok(c));
    }
}

#[test]
fn a_backward_needs_a_batch_and_a_sequence() {
    let empty = Shape::new(&[0, 4]).unwrap();
    assert_eq!(
        Header::backward(Modality::Text, DType::I64, empty, DType::F32, 8, 1, 0),
        None
    );
}

#[test]
fn each_corruption_has_its_own_error() {
    let good = bytes(&text(2, 16));
    let with = |at: usize, v: u8| {
        let mut b = good;
        b[at] = v;
        Header::decode(&b)
    };
    assert_eq!(with(0, b'X'), Err(WireError::BadMagic));
    assert_eq!(with(4, 2), Err(WireError::Version(2)));
    assert_eq!(
        with(6, 9),
        Err(WireError::UnknownCode {
            field: "kind",
            value: 9
        })
    );
    assert_eq!(
        with(7, 9),
        Err(WireError::UnknownCode {
            field: "modality",
            value: 9
        })
    );
    assert_eq!(
        with(8, 9),
        Err(WireError::UnknownCode {
            field: "dtype",
            value: 9
        })
    );
    assert_eq!(with(10, 5), Err(WireError::TooManyDims(5)));
    assert_eq!(with(11, 1), Err(WireError::Reserved));
    assert_eq!(
        with(12, 200),
        Err(WireError::UnknownCode {
            field: "status",
            value: 200
        })
    );
    assert_eq!(with(15, 1), Err(WireError::Reserved));
    // A dimension beyond ndim must be zero.
    assert_eq!(with(32, 1), Err(WireError::Reserved));
    // A gradient dtype on a Forward.
    assert_eq!(with(9, 0), Err(WireError::Reserved));
}

#[test]
fn a_declared_4_gib_body_is_refused_before_reading_it() {
    // The length matches the shape, so the decoder accepts it; the cap refuses it.
    let huge = Header::request(
        Kind::Forward,
        Modality::Tensor,
        DType::F32,
        Shape::new(&[1, 1 << 14, 1 << 16]).unwrap(),
        1,
        0,
    )
    .unwrap();
    assert_eq!(huge.payload_len, 1 << 32);
    let h = Header::decode(&bytes(&huge)).unwrap();
    assert_eq!(
        LIMITS.check(&h),
        Err(WireError::TooLarge {
            len: 1 << 32,
            max: 1 << 20
        })
    );
    // A 4 GiB length on a small shape does not decode at all.
    let mut lie = text(1, 1);
    lie.payload_len = 1 << 32;
    assert!(matches!(
        Header::decode(&bytes(&lie)),
        Err(WireError::LengthMismatch {
            declared: 4294967296,
            expected: 8
        })
    ));
}

#[test]
fn shapes_follow_the_limits_by_kind_and_modality() {
    let ok = |h: Header| LIMITS.check(&h);
    assert_eq!(ok(text(8, 64)), Ok(()));
    assert_eq!(ok(text(9, 64)), Err(WireError::BadShape));
    assert_eq!(ok(text(8, 65)), Err(WireError::BadShape));
    assert_eq!(ok(text(0, 4)), Err(WireError::BadShape));
    let req = |kind, m, d, dims: &[u32]| {
        Header::request(kind, m, d, Shape::new(dims).unwrap(), 1, 0).unwrap()
    };
    // Text must be i64 tokens; tensors must be float.
    assert_eq!(
        ok(req(Kind::Forward, Modality::Text, DType::F32, &[1, 4])),
        Err(WireError::BadShape)
    );
    assert_eq!(
        ok(req(
            Kind::Forward,
            Modality::Tensor,
            DType::Bf16,
            &[2, 4, 16]
        )),
        Ok(())
    );
    assert_eq!(
        ok(req(
            Kind::Forward,
            Modality::Tensor,
            DType::I64,
            &[2, 4, 16]
        )),
        Err(WireError::BadShape)
    );
    assert_eq!(
        ok(req(
            Kind::Forward,
            Modality::Tensor,
            DType::F32,
            &[2, 4, 17]
        )),
        Err(WireError::BadShape)
    );
    assert_eq!(
        ok(req(
            Kind::Forward,
            Modality::Image,
            DType::F32,
            &[2, 3, 8, 8]
        )),
        Ok(())
    );
    assert_eq!(
        ok(req(
            Kind::Forward,
            Modality::Image,
            DType::F32,
            &[2, 3, 8, 9]
        )),
        Err(WireError::BadShape)
    );
    // A response must be [B, S, dim].
    assert_eq!(
        ok(req(Kind::Response, Modality::Text, DType::F32, &[2, 4, 32])),
        Ok(())
    );
    assert_eq!(
        ok(req(Kind::Response, Modality::Text, DType::F32, &[2, 4, 31])),
        Err(WireError::BadShape)
    );
    // A backward's gradient must be [B, S, dim] of the network.
    let back = |dim| {
        Header::backward(
            Modality::Text,
            DType::I64,
            Shape::new(&[2, 4]).unwrap(),
            DType::F32,
            dim,
            3,
            0,
        )
        .unwrap()
    };
    let h = Header::decode(&bytes(&back(32))).unwrap();
    assert_eq!((h.grad_dim(), ok(h)), (Some(32), Ok(())));
    let h = Header::decode(&bytes(&back(16))).unwrap();
    assert_eq!(ok(h), Err(WireError::BadShape));
}

#[test]
fn chunk_headers_refuse_unknown_flags_and_long_chunks() {
    let mut b = [0u8; CHUNK_HEADER_LEN];
    ChunkHeader {
        request_id: 1,
        flags: FIRST | LAST | REPLY,
        len: 10,
    }
    .encode(&mut b);
    assert!(ChunkHeader::decode(&b).is_ok());
    let mut bad = b;
    bad[8] = 8;
    assert_eq!(ChunkHeader::decode(&bad), Err(WireError::BadChunk));
    let mut bad = b;
    bad[9] = 1;
    assert_eq!(ChunkHeader::decode(&bad), Err(WireError::BadChunk));
    let mut bad = b;
    bad[10..12].copy_from_slice(&u16::MAX.to_le_bytes());
    assert_eq!(ChunkHeader::decode(&bad), Err(WireError::BadChunk));
}

#[test]
fn errors_read_as_one_line() {
    let e = WireError::LengthMismatch {
        declared: 5,
        expected: 8,
    };
    assert_eq!(
        e.to_string(),
        "payload length 5 does not match the shape (8 bytes)"
    );
    assert!(Status::from_code(1).is_ok_and(|s| s == Status::Busy));
}

#[test]
fn modality_names_round_trip_and_unknown_names_are_none() {
    for m in Modality::ALL {
        assert_eq!(Modality::from_name(m.name()), Some(*m));
    }
    assert_eq!(Modality::Text.name(), "text");
    assert_eq!(Modality::from_name("Text"), None);
    assert_eq!(Modality::from_name(""), None);
}
