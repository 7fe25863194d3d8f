//! Constant values in the graph. Initializers loaded from a model keep their raw bytes (a
//! slice of the memory-mapped file) and decode into a [`Tensor`] only when something reads
//! them, so loading copies no weights.

use crate::ir::ValueType;
use crate::tensor::Tensor;
use anyhow::Result;
use bytes::Bytes;
use std::sync::{Arc, OnceLock};

#[derive(Clone)]
pub struct Constant(Arc<Inner>);

struct Inner {
    ty: ValueType,
    raw: Option<Bytes>,
    tensor: OnceLock<std::result::Result<Tensor, String>>,
}

impl Constant {
    pub fn new(t: Tensor) -> Constant {
        let ty = ValueType::of(&t);
        let cell = OnceLock::new();
        let _ = cell.set(Ok(t));
        Constant(Arc::new(Inner { ty, raw: None, tensor: cell }))
    }

    /// A constant backed by little-endian raw bytes; decoded on first use. The caller has
    /// checked that the byte count matches the type.
    pub fn from_raw(ty: ValueType, raw: Bytes) -> Constant {
        Constant(Arc::new(Inner { ty, raw: Some(raw), tensor: OnceLock::new() }))
    }

    pub fn ty(&self) -> &ValueType {
        &self.0.ty
    }

    /// The raw little-endian bytes, when the constant came from raw data.
    pub fn raw(&self) -> Option<&Bytes> {
        self.0.raw.as_ref()
    }

    pub fn tensor(&self) -> Result<&Tensor> {
        let r = self.0.tensor.get_or_init(|| {
            let raw = self.0.raw.as_ref().expect("a constant has a tensor or raw bytes");
            Tensor::from_le_bytes(self.0.ty.dtype, &self.0.ty.shape, raw).map_err(|e| e.to_string())
        });
        r.as_ref().map_err(|e| anyhow::anyhow!("decoding constant: {e}"))
    }

    /// Whether the decoded tensor has been materialised (for the zero-copy loading test).
    pub fn is_materialised(&self) -> bool {
        self.0.tensor.get().is_some()
    }
}

impl PartialEq for Constant {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
            || (self.ty() == other.ty() && matches!((self.tensor(), other.tensor()), (Ok(a), Ok(b)) if a == b))
    }
}

impl std::fmt::Debug for Constant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Constant({})", self.ty())
    }
}
