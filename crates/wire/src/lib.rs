#![doc = include_str!("../README.md")]
#![no_std]
#![deny(
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::float_arithmetic
)]

#[cfg(feature = "std")]
extern crate std;

use core::fmt;

/// The first four bytes of every header.
pub const MAGIC: [u8; 4] = *b"DNOD";
/// The wire version this crate speaks; a header of another version is refused.
pub const VERSION: u16 = 1;
/// Bytes of an encoded [`Header`].
pub const HEADER_LEN: usize = 56;
/// Bytes of an encoded [`ChunkHeader`].
pub const CHUNK_HEADER_LEN: usize = 12;
/// The largest Noise transport message (65,535 bytes) less its 16-byte AEAD tag.
pub const MAX_PLAINTEXT: usize = 65_535 - 16;
/// The most body bytes one chunk carries.
pub const MAX_CHUNK_DATA: usize = MAX_PLAINTEXT - CHUNK_HEADER_LEN;
/// At most this many dimensions.
pub const MAX_NDIM: usize = 4;

/// Why bytes are not a valid header, or a valid header breaks a node's limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WireError {
    /// The first four bytes are not [`MAGIC`].
    BadMagic,
    /// The header speaks another wire version.
    Version(u16),
    /// A kind, modality, dtype or status byte that names nothing.
    UnknownCode {
        /// Which field.
        field: &'static str,
        /// The value found.
        value: u16,
    },
    /// A reserved byte is not zero, or a dimension beyond `ndim` is not zero.
    Reserved,
    /// `ndim` above [`MAX_NDIM`].
    TooManyDims(u8),
    /// The declared payload length differs from the size of the declared shape(s).
    LengthMismatch {
        /// Bytes declared.
        declared: u64,
        /// Bytes the shape and dtype(s) need (saturating at `u64::MAX`).
        expected: u64,
    },
    /// The payload is over the node's cap.
    TooLarge {
        /// Bytes declared.
        len: u64,
        /// The cap.
        max: u64,
    },
    /// The shape breaks the node's limits for this kind and modality.
    BadShape,
    /// A chunk header's flags or reserved bytes are invalid.
    BadChunk,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::BadMagic => f.write_str("not a DeepNode message (bad magic)"),
            WireError::Version(v) => write!(f, "wire version {v}, expected {VERSION}"),
            WireError::UnknownCode { field, value } => write!(f, "unknown {field} code {value}"),
            WireError::Reserved => f.write_str("a reserved field is not zero"),
            WireError::TooManyDims(n) => write!(f, "{n} dimensions, at most {MAX_NDIM}"),
            WireError::LengthMismatch { declared, expected } => write!(
                f,
                "payload length {declared} does not match the shape ({expected} bytes)"
            ),
            WireError::TooLarge { len, max } => {
                write!(f, "payload of {len} bytes over the cap of {max}")
            }
            WireError::BadShape => f.write_str("shape outside this node's limits"),
            WireError::BadChunk => f.write_str("invalid chunk header"),
        }
    }
}

impl core::error::Error for WireError {}

macro_rules! code_enum {
    ($(#[$doc:meta])* $name:ident : $repr:ty, $field:literal { $($(#[$vdoc:meta])* $variant:ident = $value:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr($repr)]
        pub enum $name {
            $($(#[$vdoc])* $variant = $value,)+
        }

        impl $name {
            /// Every value, in code order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The code on the wire.
            pub fn code(self) -> $repr {
                self as $repr
            }

            /// The value of `code`, if any.
            pub fn from_code(code: $repr) -> Result<$name, WireError> {
                match code {
                    $($value => Ok($name::$variant),)+
                    other => Err(WireError::UnknownCode { field: $field, value: u16::from(other) }),
                }
            }
        }
    };
}

code_enum! {
    /// What a message is.
    Kind: u8, "kind" {
        /// Inputs for the peer's model; answered by a Response or an Error.
        Forward = 1,
        /// Inputs and the gradient of the caller's loss with respect to the peer's response;
        /// not answered (fire and forget).
        Backward = 2,
        /// A model's output `[B, S, dim]`.
        Response = 3,
        /// A refusal: `status` says why; no body.
        Error = 4,
    }
}

code_enum! {
    /// What the inputs are.
    Modality: u8, "modality" {
        /// Text: token bytes `[B, S]` as i64.
        Text = 0,
        /// Images `[B, C, H, W]`.
        Image = 1,
        /// Speech features `[B, S, F]`.
        Speech = 2,
        /// Float features `[B, S, F]`.
        Tensor = 3,
    }
}

code_enum! {
    /// The element type of a tensor body.
    DType: u8, "dtype" {
        /// IEEE binary32.
        F32 = 0,
        /// bfloat16 (the top half of an f32).
        Bf16 = 1,
        /// IEEE binary16.
        F16 = 2,
        /// Signed 64-bit integer.
        I64 = 3,
    }
}

code_enum! {
    /// The outcome a message reports (an Error's reason; 0 on everything else).
    Status: u16, "status" {
        /// No error.
        Ok = 0,
        /// The server is at its concurrency limit; try later.
        Busy = 1,
        /// The caller is not in the metagraph, or under the stake floor.
        Unauthorized = 2,
        /// The server does not serve this modality.
        UnservedModality = 3,
        /// The payload is over the server's cap.
        TooLarge = 4,
        /// The shape is outside the server's limits.
        BadShape = 5,
        /// The inputs hold NaN or infinite values.
        NotFinite = 6,
        /// The deadline passed before the model ran.
        DeadlineExpired = 7,
        /// The model refused or failed.
        ModelFailed = 8,
        /// The header was malformed.
        Malformed = 9,
        /// The wire version is not the server's.
        BadVersion = 10,
    }
}

impl DType {
    /// Bytes per element.
    pub fn size(self) -> u64 {
        match self {
            DType::F32 => 4,
            DType::Bf16 | DType::F16 => 2,
            DType::I64 => 8,
        }
    }
}

impl Modality {
    /// The lowercase name (`text`, `image`, `speech`, `tensor`), as the ledger's metagraph and
    /// the command line write it.
    pub fn name(self) -> &'static str {
        match self {
            Modality::Text => "text",
            Modality::Image => "image",
            Modality::Speech => "speech",
            Modality::Tensor => "tensor",
        }
    }

    /// The modality [`Modality::name`] calls `name`, if any.
    pub fn from_name(name: &str) -> Option<Modality> {
        Modality::ALL.iter().copied().find(|m| m.name() == name)
    }
}

/// Up to [`MAX_NDIM`] dimensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Shape {
    ndim: u8,
    dims: [u32; MAX_NDIM],
}

impl Shape {
    /// The shape `dims`, or `None` with more than [`MAX_NDIM`] dimensions.
    pub fn new(dims: &[u32]) -> Option<Shape> {
        let mut out = [0u32; MAX_NDIM];
        out.get_mut(..dims.len())?.copy_from_slice(dims);
        Some(Shape {
            ndim: u8::try_from(dims.len()).ok()?,
            dims: out,
        })
    }

    /// The dimensions.
    pub fn dims(&self) -> &[u32] {
        self.dims.get(..usize::from(self.ndim)).unwrap_or_default()
    }

    /// The number of elements (1 for a scalar), or `None` past `u64::MAX`.
    pub fn elems(&self) -> Option<u64> {
        self.dims()
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(u64::from(d)))
    }

    /// Bytes of a tensor of this shape and `dtype`, or `None` past `u64::MAX`.
    pub fn bytes(&self, dtype: DType) -> Option<u64> {
        self.elems()?.checked_mul(dtype.size())
    }
}

/// A message header (see the crate docs for the layout).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Header {
    /// What the message is.
    pub kind: Kind,
    /// The modality of the inputs.
    pub modality: Modality,
    /// The dtype of the body's (first) tensor.
    pub dtype: DType,
    /// Backward only: the dtype of the gradient that follows the inputs.
    pub grad_dtype: Option<DType>,
    /// The shape of the body's (first) tensor.
    pub shape: Shape,
    /// An Error's reason; [`Status::Ok`] otherwise.
    pub status: Status,
    /// The caller's id for the request; a reply repeats it.
    pub request_id: u64,
    /// Body bytes.
    pub payload_len: u64,
    /// Unix milliseconds after which the request is worthless; 0 for none.
    pub deadline_ms: u64,
}

/// `grad dtype` byte when there is none.
const NO_DTYPE: u8 = 255;

impl Header {
    /// A Forward or Response whose body is one tensor of `shape` and `dtype`; the payload
    /// length is computed. `None` if the size overflows `u64`.
    pub fn request(
        kind: Kind,
        modality: Modality,
        dtype: DType,
        shape: Shape,
        request_id: u64,
        deadline_ms: u64,
    ) -> Option<Header> {
        Some(Header {
            kind,
            modality,
            dtype,
            grad_dtype: None,
            shape,
            status: Status::Ok,
            request_id,
            payload_len: shape.bytes(dtype)?,
            deadline_ms,
        })
    }

    /// A Backward: inputs of `shape` and `dtype`, then a gradient `[B, S, dim]` of
    /// `grad_dtype` (B and S are the inputs' first two dimensions). `None` when `B` or `S` is
    /// 0 (the gradient's width could not be read back) or the size overflows `u64`.
    pub fn backward(
        modality: Modality,
        dtype: DType,
        shape: Shape,
        grad_dtype: DType,
        dim: u32,
        request_id: u64,
        deadline_ms: u64,
    ) -> Option<Header> {
        if grad_shape(&shape, 1)?.elems()? == 0 {
            return None;
        }
        let mut h = Header::request(
            Kind::Backward,
            modality,
            dtype,
            shape,
            request_id,
            deadline_ms,
        )?;
        h.grad_dtype = Some(grad_dtype);
        h.payload_len = h
            .payload_len
            .checked_add(grad_shape(&shape, dim)?.bytes(grad_dtype)?)?;
        Some(h)
    }

    /// An Error reply to request `request_id` for `status`; no body.
    pub fn error(request_id: u64, modality: Modality, status: Status) -> Header {
        Header {
            kind: Kind::Error,
            modality,
            dtype: DType::F32,
            grad_dtype: None,
            shape: Shape::default(),
            status,
            request_id,
            payload_len: 0,
            deadline_ms: 0,
        }
    }

    /// Bytes the declared shape(s) need: none for an Error; the inputs, plus for a Backward
    /// the gradient `[B, S, dim]`; `None` past `u64::MAX` or for a Backward with no `dim`.
    fn expected_len(&self, dim: Option<u32>) -> Option<u64> {
        if self.kind == Kind::Error {
            return Some(0);
        }
        let first = self.shape.bytes(self.dtype)?;
        match (self.kind, self.grad_dtype, dim) {
            (Kind::Backward, Some(g), Some(dim)) => {
                first.checked_add(grad_shape(&self.shape, dim)?.bytes(g)?)
            }
            (Kind::Backward, _, _) => None,
            _ => Some(first),
        }
    }

    /// For a Backward: the gradient's last dimension implied by the payload length, if the
    /// length is the inputs plus a whole `[B, S, dim]` gradient.
    pub fn grad_dim(&self) -> Option<u32> {
        let g = self.grad_dtype?;
        let first = self.shape.bytes(self.dtype)?;
        let rest = self.payload_len.checked_sub(first)?;
        let per = grad_shape(&self.shape, 1)?.bytes(g)?;
        if per == 0 || rest.checked_rem(per)? != 0 {
            return None;
        }
        u32::try_from(rest.checked_div(per)?).ok()
    }

    /// Writes the header into `out`.
    pub fn encode(&self, out: &mut [u8; HEADER_LEN]) {
        let mut w = Writer { buf: out, at: 0 };
        w.put(&MAGIC);
        w.put(&VERSION.to_le_bytes());
        w.put(&[
            self.kind.code(),
            self.modality.code(),
            self.dtype.code(),
            self.grad_dtype.map_or(NO_DTYPE, DType::code),
            self.shape.ndim,
            0,
        ]);
        w.put(&self.status.code().to_le_bytes());
        w.put(&[0, 0]);
        w.put(&self.request_id.to_le_bytes());
        for d in self.shape.dims {
            w.put(&d.to_le_bytes());
        }
        w.put(&self.payload_len.to_le_bytes());
        w.put(&self.deadline_ms.to_le_bytes());
    }

    /// Reads a header, checking everything that needs no limits: magic, version, every code,
    /// reserved bytes, `ndim`, and that the payload length is what the shape(s) need (a
    /// Backward's gradient must be a whole `[B, S, dim]`). Allocates nothing.
    pub fn decode(bytes: &[u8; HEADER_LEN]) -> Result<Header, WireError> {
        let mut r = Reader { buf: bytes, at: 0 };
        if r.take::<4>() != MAGIC {
            return Err(WireError::BadMagic);
        }
        let version = u16::from_le_bytes(r.take());
        if version != VERSION {
            return Err(WireError::Version(version));
        }
        let [kind, modality, dtype, grad, ndim, reserved] = r.take::<6>();
        let kind = Kind::from_code(kind)?;
        let modality = Modality::from_code(modality)?;
        let dtype = DType::from_code(dtype)?;
        let grad_dtype = match grad {
            NO_DTYPE => None,
            g => Some(DType::from_code(g)?),
        };
        let status = Status::from_code(u16::from_le_bytes(r.take()))?;
        if reserved != 0 || r.take::<2>() != [0, 0] {
            return Err(WireError::Reserved);
        }
        let request_id = u64::from_le_bytes(r.take());
        let mut dims = [0u32; MAX_NDIM];
        for d in &mut dims {
            *d = u32::from_le_bytes(r.take());
        }
        if usize::from(ndim) > MAX_NDIM {
            return Err(WireError::TooManyDims(ndim));
        }
        if dims.iter().skip(usize::from(ndim)).any(|&d| d != 0) {
            return Err(WireError::Reserved);
        }
        let h = Header {
            kind,
            modality,
            dtype,
            grad_dtype,
            shape: Shape { ndim, dims },
            status,
            request_id,
            payload_len: u64::from_le_bytes(r.take()),
            deadline_ms: u64::from_le_bytes(r.take()),
        };
        // A gradient dtype belongs to a Backward, and a Backward needs one.
        if (h.kind == Kind::Backward) != h.grad_dtype.is_some() {
            return Err(WireError::Reserved);
        }
        match h.expected_len(h.grad_dim()) {
            Some(expected) if expected == h.payload_len => Ok(h),
            other => Err(WireError::LengthMismatch {
                declared: h.payload_len,
                expected: other.unwrap_or(u64::MAX),
            }),
        }
    }
}

/// The gradient's shape `[B, S, dim]` for inputs of `shape` (at least two dimensions).
fn grad_shape(shape: &Shape, dim: u32) -> Option<Shape> {
    match shape.dims() {
        [b, s, ..] => Shape::new(&[*b, *s, dim]),
        _ => None,
    }
}

/// What a node accepts. Shapes by kind and modality:
///
/// | message | body |
/// |---|---|
/// | Forward/Backward TEXT | `[B, S]` i64 |
/// | Forward/Backward TENSOR, SPEECH | `[B, S, F]`, `F <= max_features`, f32/bf16/f16 |
/// | Forward/Backward IMAGE | `[B, C, H, W]`, `C*H*W <= max_image_elems`, f32/bf16/f16 (S = 1) |
/// | Response, and a Backward's gradient | `[B, S, dim]`, f32/bf16/f16 |
///
/// with `1 <= B <= max_batch` and `1 <= S <= max_seq` throughout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The largest body, in bytes.
    pub max_payload: u64,
    /// The largest batch `B`.
    pub max_batch: u32,
    /// The longest sequence `S`.
    pub max_seq: u32,
    /// The network's representation width `D`.
    pub dim: u32,
    /// The most features per position (TENSOR, SPEECH).
    pub max_features: u32,
    /// The most elements per image `C * H * W`.
    pub max_image_elems: u32,
}

impl Limits {
    /// Checks a decoded header against these limits (cap first, then shape and dtype).
    pub fn check(&self, h: &Header) -> Result<(), WireError> {
        if h.payload_len > self.max_payload {
            return Err(WireError::TooLarge {
                len: h.payload_len,
                max: self.max_payload,
            });
        }
        let float = |d: DType| d != DType::I64;
        let bs =
            |b: u32, s: u32| (1..=self.max_batch).contains(&b) && (1..=self.max_seq).contains(&s);
        let ok = match h.kind {
            Kind::Error => true,
            Kind::Response => {
                float(h.dtype) && matches!(h.shape.dims(), &[b, s, d] if bs(b, s) && d == self.dim)
            }
            Kind::Forward | Kind::Backward => {
                let inputs = match (h.modality, h.shape.dims()) {
                    (Modality::Text, &[b, s]) => h.dtype == DType::I64 && bs(b, s),
                    (Modality::Tensor | Modality::Speech, &[b, s, f]) => {
                        float(h.dtype) && bs(b, s) && (1..=self.max_features).contains(&f)
                    }
                    (Modality::Image, &[b, c, hh, w]) => {
                        float(h.dtype)
                            && bs(b, 1)
                            && u64::from(c)
                                .checked_mul(u64::from(hh))
                                .and_then(|x| x.checked_mul(u64::from(w)))
                                .is_some_and(|e| e >= 1 && e <= u64::from(self.max_image_elems))
                    }
                    _ => false,
                };
                let grad = match h.grad_dtype {
                    None => true,
                    Some(g) => float(g) && h.grad_dim() == Some(self.dim),
                };
                inputs && grad
            }
        };
        if ok { Ok(()) } else { Err(WireError::BadShape) }
    }
}

/// Chunk flags: the first chunk of a message (it starts with the [`Header`]).
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

/// Writes fixed arrays into a buffer whose size the caller matched to the layout.
struct Writer<'a> {
    buf: &'a mut [u8],
    at: usize,
}

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) {
        let end = self.at.saturating_add(bytes.len());
        if let Some(dst) = self.buf.get_mut(self.at..end) {
            dst.copy_from_slice(bytes);
        }
        self.at = end;
    }
}

/// Reads fixed arrays from a buffer whose size the caller matched to the layout.
struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> [u8; N] {
        let end = self.at.saturating_add(N);
        let mut out = [0u8; N];
        if let Some(src) = self.buf.get(self.at..end) {
            out.copy_from_slice(src);
        }
        self.at = end;
        out
    }
}

/// Oracle of the `wire` fuzz target: decoding arbitrary bytes never panics, and a header or
/// chunk header that decodes re-encodes to the same bytes and passes or fails the limits
/// without panicking.
#[doc(hidden)]
pub fn fuzz_oracle(data: &[u8]) {
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
