//! Between the node's wire tensors ([`deepnode_node::Tensor`]) and libtorch tensors.

use deepnode_node::Tensor as NodeTensor;
use deepnode_wire::DType;
use tch::{Kind, Tensor};

use crate::TorchError;

/// A node tensor as a CPU libtorch tensor of the same shape: i64 stays i64 (TEXT tokens);
/// f32, bf16 and f16 become f32 (widening is exact).
pub fn to_tch(t: &NodeTensor) -> Result<Tensor, TorchError> {
    let dims: Vec<i64> = t.shape.dims().iter().map(|&d| i64::from(d)).collect();
    let flat = match t.to_i64() {
        Some(tokens) => Tensor::f_from_slice(&tokens)?,
        None => Tensor::f_from_slice(&t.to_f32())?,
    };
    Ok(flat.f_reshape(dims.as_slice())?)
}

/// A libtorch tensor as an f32 node tensor (at most four dimensions, each below 2^32).
pub fn to_node(t: &Tensor) -> Result<NodeTensor, TorchError> {
    let dims = dims_u32(t)?;
    let values: Vec<f32> = Vec::try_from(
        t.f_detach()?
            .f_to_kind(Kind::Float)?
            .f_contiguous()?
            .f_flatten(0, -1)?,
    )?;
    Ok(NodeTensor::from_f32(&dims, &values)?)
}

/// An i64 libtorch tensor (TEXT tokens) as a node tensor.
pub fn tokens_to_node(t: &Tensor) -> Result<NodeTensor, TorchError> {
    let dims = dims_u32(t)?;
    let values: Vec<i64> = Vec::try_from(t.f_contiguous()?.f_flatten(0, -1)?)?;
    Ok(NodeTensor::from_i64(&dims, &values)?)
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
