//! Tensors as they travel: a dtype, a shape and raw little-endian bytes.

use deepnode_wire::{DType, Shape};

use crate::NodeError;

/// A tensor body: `bytes` are the elements of `shape` in row-major order, little-endian.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    /// Element type.
    pub dtype: DType,
    /// Dimensions (at most four).
    pub shape: Shape,
    /// Raw little-endian bytes; exactly `shape.bytes(dtype)` long.
    pub bytes: Vec<u8>,
}

impl Tensor {
    /// An f32 tensor of `dims` from `values` (row-major).
    pub fn from_f32(dims: &[u32], values: &[f32]) -> Result<Tensor, NodeError> {
        let shape = Shape::new(dims).ok_or(NodeError::Tensor("more than four dimensions"))?;
        let mut bytes = Vec::with_capacity(values.len().saturating_mul(4));
        for v in values {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        Tensor::new(DType::F32, shape, bytes)
    }

    /// An i64 tensor of `dims` from `values` (TEXT tokens).
    pub fn from_i64(dims: &[u32], values: &[i64]) -> Result<Tensor, NodeError> {
        let shape = Shape::new(dims).ok_or(NodeError::Tensor("more than four dimensions"))?;
        let mut bytes = Vec::with_capacity(values.len().saturating_mul(8));
        for v in values {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        Tensor::new(DType::I64, shape, bytes)
    }

    /// A tensor from raw parts, checking the length against the shape.
    pub fn new(dtype: DType, shape: Shape, bytes: Vec<u8>) -> Result<Tensor, NodeError> {
        if shape.bytes(dtype) != u64::try_from(bytes.len()).ok() {
            return Err(NodeError::Tensor("byte length does not match the shape"));
        }
        Ok(Tensor {
            dtype,
            shape,
            bytes,
        })
    }

    /// Zeros of `dims` in f32 (the stand-in for a peer that did not answer).
    pub fn zeros(dims: &[u32]) -> Result<Tensor, NodeError> {
        let shape = Shape::new(dims).ok_or(NodeError::Tensor("more than four dimensions"))?;
        let len = shape
            .bytes(DType::F32)
            .and_then(|b| usize::try_from(b).ok());
        let len = len.ok_or(NodeError::Tensor("too large"))?;
        Ok(Tensor {
            dtype: DType::F32,
            shape,
            bytes: vec![0; len],
        })
    }

    /// The elements as f32 (f32, bf16 and f16 widen exactly; i64 converts by `as`).
    pub fn to_f32(&self) -> Vec<f32> {
        match self.dtype {
            DType::F32 => self
                .bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            DType::Bf16 => self
                .bytes
                .chunks_exact(2)
                .map(|c| f32::from_bits(u32::from(u16::from_le_bytes([c[0], c[1]])) << 16))
                .collect(),
            DType::F16 => self
                .bytes
                .chunks_exact(2)
                .map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]])))
                .collect(),
            DType::I64 => self
                .bytes
                .chunks_exact(8)
                .map(|c| {
                    i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32
                })
                .collect(),
        }
    }

    /// The elements as i64 (TEXT tokens); `None` for a float tensor.
    pub fn to_i64(&self) -> Option<Vec<i64>> {
        (self.dtype == DType::I64).then(|| {
            self.bytes
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect()
        })
    }

    /// Whether every element is finite (always true for i64): no exponent of all ones
    /// (infinity or NaN).
    pub fn is_finite(&self) -> bool {
        // Blocks without an early exit inside, so the compiler vectorizes the test.
        const BLOCK: usize = 4096;
        match self.dtype {
            DType::I64 => true,
            // Adding the exponent's lowest bit to the exponent alone carries into the sign bit
            // exactly when the exponent is all ones.
            DType::F32 => self.bytes.chunks(BLOCK).all(|block| {
                let carries = block.chunks_exact(4).fold(0u32, |acc, c| {
                    let bits = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                    acc | ((bits & 0x7f80_0000) + 0x0080_0000)
                });
                carries & 0x8000_0000 == 0
            }),
            DType::Bf16 => all_halves_finite(&self.bytes, 0x7f80),
            DType::F16 => all_halves_finite(&self.bytes, 0x7c00),
        }
    }
}

/// Whether no 16-bit little-endian element of `bytes` has all the bits of `exponent` set.
fn all_halves_finite(bytes: &[u8], exponent: u16) -> bool {
    // The exponent's lowest bit is `exponent & exponent.wrapping_neg()`; adding it to the
    // exponent alone carries into bit 15 exactly when the exponent is all ones.
    let low = exponent & exponent.wrapping_neg();
    bytes.chunks(4096).all(|block| {
        let carries = block.chunks_exact(2).fold(0u16, |acc, c| {
            acc | ((u16::from_le_bytes([c[0], c[1]]) & exponent) + low)
        });
        carries & 0x8000 == 0
    })
}

/// IEEE binary16 to f32, exactly.
fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h >> 15) << 31;
    let exp = u32::from((h >> 10) & 0x1f);
    let frac = u32::from(h & 0x3ff);
    let bits = match (exp, frac) {
        (0, 0) => sign,
        (0, f) => {
            // Subnormal: value f * 2^-24.
            let v = f as f32 * f32::from_bits(0x3380_0000);
            return if sign != 0 { -v } else { v };
        }
        (0x1f, f) => sign | 0x7f80_0000 | (f << 13),
        (e, f) => sign | ((e + 127 - 15) << 23) | (f << 13),
    };
    f32::from_bits(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtypes_widen_exactly_and_non_finite_values_are_seen() {
        let t = Tensor::from_f32(&[1, 3], &[1.5, -2.0, 0.25]).unwrap();
        assert_eq!(t.to_f32(), vec![1.5, -2.0, 0.25]);
        assert!(t.is_finite());
        assert!(!Tensor::from_f32(&[1, 1], &[f32::NAN]).unwrap().is_finite());
        assert!(
            !Tensor::from_f32(&[1, 1], &[f32::INFINITY])
                .unwrap()
                .is_finite()
        );
        // bf16 1.5 = 0x3fc0; f16 1.5 = 0x3e00, f16 inf = 0x7c00.
        let bf = Tensor::new(
            DType::Bf16,
            Shape::new(&[1]).unwrap(),
            0x3fc0u16.to_le_bytes().to_vec(),
        )
        .unwrap();
        assert_eq!(bf.to_f32(), vec![1.5]);
        let h = Tensor::new(
            DType::F16,
            Shape::new(&[2]).unwrap(),
            [0x3e00u16.to_le_bytes(), 0x0001u16.to_le_bytes()].concat(),
        )
        .unwrap();
        assert_eq!(h.to_f32(), vec![1.5, 2f32.powi(-24)]);
        let inf = Tensor::new(
            DType::F16,
            Shape::new(&[1]).unwrap(),
            0x7c00u16.to_le_bytes().to_vec(),
        )
        .unwrap();
        assert!(!inf.is_finite());
        assert!(Tensor::new(DType::F32, Shape::new(&[2]).unwrap(), vec![0; 7]).is_err());
    }

    #[test]
    fn is_finite_sees_every_non_finite_value_wherever_it_is() {
        let mut v = vec![1.0f32; 5000];
        let t = Tensor::from_f32(&[5000], &v).unwrap();
        assert!(t.is_finite());
        for bad in [f32::NAN, -f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            for at in [0, 1023, 1024, 4999] {
                v[at] = bad;
                assert!(
                    !Tensor::from_f32(&[5000], &v).unwrap().is_finite(),
                    "{bad} at {at}"
                );
                v[at] = 1.0;
            }
        }
        for ok in [f32::MAX, f32::MIN, -0.0, f32::MIN_POSITIVE / 2.0] {
            assert!(Tensor::from_f32(&[1], &[ok]).unwrap().is_finite(), "{ok}");
        }
        let halves = |dtype, h: u16, at: usize| {
            let mut bytes = vec![0u8; 2 * 3000];
            bytes[2 * at..2 * at + 2].copy_from_slice(&h.to_le_bytes());
            Tensor::new(dtype, Shape::new(&[3000]).unwrap(), bytes)
                .unwrap()
                .is_finite()
        };
        for at in [0, 2047, 2048, 2999] {
            // bf16: +inf, -NaN; largest finite. f16: -inf, NaN; largest finite.
            assert!(!halves(DType::Bf16, 0x7f80, at) && !halves(DType::Bf16, 0xffc1, at));
            assert!(halves(DType::Bf16, 0x7f7f, at) && halves(DType::Bf16, 0xff7f, at));
            assert!(!halves(DType::F16, 0xfc00, at) && !halves(DType::F16, 0x7e00, at));
            assert!(halves(DType::F16, 0x7bff, at) && halves(DType::F16, 0xfbff, at));
        }
    }
}
