//! The message header: a tensor's shape, the fixed 56-byte layout, and how a request, a
//! gradient and an error are built.

use crate::layout::{Reader, Writer};
use crate::{DType, HEADER_LEN, Kind, MAGIC, MAX_NDIM, Modality, Status, VERSION, WireError};

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
