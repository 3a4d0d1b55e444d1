//! Between the node's wire tensors ([`deepnode_node::Tensor`]) and libtorch tensors.

use deepnode_node::Tensor as NodeTensor;
use deepnode_wire::{DType, Shape};
use tch::{Kind, Tensor};

use crate::TorchError;

/// A node tensor as a CPU libtorch tensor of the same shape: i64 stays i64 (TEXT tokens);
/// f32, bf16 and f16 become f32 (widening is exact). f32 and i64 bytes are copied once, as
/// they are (the wire is little-endian, as is the host where this path is taken).
pub fn to_tch(t: &NodeTensor) -> Result<Tensor, TorchError> {
    let dims: Vec<i64> = t.shape.dims().iter().map(|&d| i64::from(d)).collect();
    let kind = match t.dtype {
        DType::F32 => Some(Kind::Float),
        DType::I64 => Some(Kind::Int64),
        _ => None,
    };
    if let Some(kind) = kind
        && cfg!(target_endian = "little")
    {
        let numel: usize = t.shape.dims().iter().map(|&d| d as usize).product();
        if t.bytes.len() != numel * kind.elt_size_in_bytes() {
            return Err(TorchError::Config(
                "a node tensor's bytes do not match its shape",
            ));
        }
        return Ok(Tensor::f_from_data_size(&t.bytes, &dims, kind)?);
    }
    let flat = match t.to_i64() {
        Some(tokens) => Tensor::f_from_slice(&tokens)?,
        None => Tensor::f_from_slice(&t.to_f32())?,
    };
    Ok(flat.f_reshape(dims.as_slice())?)
}

/// A libtorch tensor as an f32 node tensor (at most four dimensions, each below 2^32).
pub fn to_node(t: &Tensor) -> Result<NodeTensor, TorchError> {
    let flat = t.f_detach()?.f_to_kind(Kind::Float)?.f_contiguous()?;
    node_bytes(&flat, DType::F32)
}

/// An i64 libtorch tensor (TEXT tokens) as a node tensor.
pub fn tokens_to_node(t: &Tensor) -> Result<NodeTensor, TorchError> {
    if t.f_kind()? != Kind::Int64 {
        return Err(TorchError::DType("tokens (i64)"));
    }
    node_bytes(&t.f_contiguous()?, DType::I64)
}

/// `t` (contiguous, of the kind of `dtype`: f32 or i64) as a node tensor: its little-endian
/// bytes, copied once on a little-endian host.
fn node_bytes(t: &Tensor, dtype: DType) -> Result<NodeTensor, TorchError> {
    let dims = dims_u32(t)?;
    let shape = Shape::new(&dims).ok_or(TorchError::Config("more than four dimensions"))?;
    let numel = t.numel();
    let bytes = if cfg!(target_endian = "little") {
        let mut bytes = vec![0u8; numel * t.f_kind()?.elt_size_in_bytes()];
        t.f_copy_data_u8(&mut bytes, numel)?;
        bytes
    } else if dtype == DType::I64 {
        let values: Vec<i64> = Vec::try_from(t.f_flatten(0, -1)?)?;
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    } else {
        let values: Vec<f32> = Vec::try_from(t.f_flatten(0, -1)?)?;
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    };
    Ok(NodeTensor::new(dtype, shape, bytes)?)
}

/// Whether a node tensor holds floats (the dtype of a response or a gradient).
pub fn is_float(t: &NodeTensor) -> bool {
    t.dtype != DType::I64
}

fn dims_u32(t: &Tensor) -> Result<Vec<u32>, TorchError> {
    t.size()
        .iter()
        .map(|&d| u32::try_from(d))
        .collect::<Result<_, _>>()
        .map_err(|_| TorchError::Config("a dimension does not fit in u32"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_keep_every_bit() {
        let values: Vec<f32> = (0..2 * 3 * 4)
            .map(|i| f32::from_bits(0x3f80_0000u32.wrapping_mul(i as u32 + 7) ^ (i as u32)))
            .chain([f32::NAN, -0.0, f32::INFINITY, f32::MIN_POSITIVE / 2.0])
            .collect();
        let node = NodeTensor::from_f32(&[4, 7], &values).unwrap();
        let t = to_tch(&node).unwrap();
        assert_eq!(t.size(), [4, 7]);
        let back: Vec<f32> = Vec::try_from(t.flatten(0, -1)).unwrap();
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(
            bits(&back),
            bits(&node.to_f32()),
            "the wire's values, bit for bit"
        );
        assert_eq!(to_node(&t).unwrap(), node, "and back to the same bytes");
        // A transposed (non-contiguous) tensor goes out in its logical order.
        let tr = to_node(&t.tr()).unwrap();
        let logical: Vec<f32> = Vec::try_from(t.tr().contiguous().flatten(0, -1)).unwrap();
        assert_eq!(bits(&tr.to_f32()), bits(&logical));

        let tokens = NodeTensor::from_i64(&[2, 3], &[0, 255, -1, i64::MAX, 7, 9]).unwrap();
        let t = to_tch(&tokens).unwrap();
        assert_eq!(t.kind(), Kind::Int64);
        assert_eq!(tokens_to_node(&t).unwrap(), tokens);
        assert!(
            tokens_to_node(&t.to_kind(Kind::Float)).is_err(),
            "tokens are i64"
        );

        let bf16 = NodeTensor::new(
            DType::Bf16,
            Shape::new(&[2]).unwrap(),
            vec![0x80, 0x3f, 0, 0xc0],
        )
        .unwrap();
        let wide: Vec<f32> = Vec::try_from(to_tch(&bf16).unwrap()).unwrap();
        assert_eq!(wide, [1.0, -2.0], "bf16 widens to f32");
        let short = NodeTensor {
            bytes: vec![0; 12],
            ..node
        };
        assert!(
            to_tch(&short).is_err(),
            "bytes that do not match the shape are refused"
        );
    }
}
