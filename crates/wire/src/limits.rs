//! The size limits a node enforces on the headers it receives.

use crate::{DType, Header, Kind, Modality, WireError};

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
