//! `TensorProto` → IR constants and tensors: raw data (zero-copy), the typed `*_data` fields,
//! sub-byte packing, and external data files.

use super::proto::{TensorProto, tensor_proto::DataLocation};
use crate::ir::{Constant, ValueType, limits};
use crate::tensor::{ArrayD, DType, IxDyn, Tensor, bf16, f16};
use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Where external data files are looked up, and a cache of their memory maps.
#[derive(Default)]
pub struct ExternalData {
    pub base_dir: Option<PathBuf>,
    files: Mutex<HashMap<PathBuf, Bytes>>,
}

impl ExternalData {
    pub fn new(base_dir: Option<PathBuf>) -> Self {
        ExternalData { base_dir, files: Mutex::new(HashMap::new()) }
    }

    fn file(&self, location: &str) -> Result<Bytes> {
        let rel = Path::new(location);
        if rel.is_absolute() || rel.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
            bail!("external data location '{location}' must be a relative path inside the model's folder");
        }
        let base = self.base_dir.as_deref().ok_or_else(|| anyhow!("external data '{location}' needs the model's folder, but the model was not loaded from a file"))?;
        let path = base.join(rel);
        let mut files = self.files.lock().map_err(|_| anyhow!("external data cache poisoned"))?;
        if let Some(b) = files.get(&path) {
            return Ok(b.clone());
        }
        let b = super::load::map_file(&path).with_context(|| format!("external data file '{}'", path.display()))?;
        files.insert(path, b.clone());
        Ok(b)
    }
}

/// The tensor's shape, every dim and the total size checked against [`limits`] (so the
/// byte counts below cannot overflow).
fn shape_of(t: &TensorProto, dtype: DType) -> Result<Vec<usize>> {
    if t.dims.len() > limits::MAX_RANK {
        bail!("rank {} is larger than {}", t.dims.len(), limits::MAX_RANK);
    }
    let s = t.dims.iter().map(|&d| limits::dim_i64(d, "tensor")).collect::<Result<Vec<_>>>().with_context(|| format!("dims {:?}", t.dims))?;
    limits::value_bytes(dtype, &s)?;
    Ok(s)
}

fn dtype_of(t: &TensorProto) -> Result<DType> {
    let code = t.data_type.unwrap_or(0);
    let d = DType::from_onnx_i32(code).ok_or_else(|| anyhow!("unknown tensor data type {code}"))?;
    if d.is_complex() {
        return Err(anyhow::Error::new(crate::ir::Unsupported(format!("tensors of dtype {d}"))));
    }
    Ok(d)
}

/// Bits per element for packed sub-byte types.
fn sub_byte_bits(d: DType) -> Option<usize> {
    match d {
        DType::U4 | DType::I4 | DType::F4E2M1 => Some(4),
        DType::U2 | DType::I2 => Some(2),
        _ => None,
    }
}

fn unpack(d: DType, bits: usize, count: usize, shape: &[usize], packed: &[u8]) -> Result<Tensor> {
    let per = 8 / bits;
    let need = count.div_ceil(per);
    if packed.len() != need {
        bail!("{d} data holds {} bytes, shape {shape:?} needs {need}", packed.len());
    }
    let mask = (1u8 << bits) - 1;
    let codes = (0..count).map(|i| (packed[i / per] >> ((i % per) * bits)) & mask).collect();
    Ok(Tensor::Low(d, ArrayD::from_shape_vec(IxDyn(shape), codes)?))
}

/// Decodes a tensor into an IR constant. Raw data stays a zero-copy slice of `t.raw_data`
/// (or of the external file's memory map) until something reads it.
pub fn to_constant(t: &TensorProto, ext: &ExternalData) -> Result<Constant> {
    let dtype = dtype_of(t)?;
    let shape = shape_of(t, dtype)?;
    let count: usize = shape.iter().product();
    let raw = if t.data_location == Some(DataLocation::External as i32) {
        Some(external_bytes(t, ext)?)
    } else {
        t.raw_data.clone()
    };
    if let Some(raw) = raw {
        if let Some(bits) = sub_byte_bits(dtype) {
            return Ok(Constant::new(unpack(dtype, bits, count, &shape, &raw)?));
        }
        let size = dtype.size_of().ok_or_else(|| anyhow!("{dtype} tensors cannot use raw_data"))?;
        if raw.len() != count * size {
            bail!("raw_data holds {} bytes but {dtype}{shape:?} needs {}", raw.len(), count * size);
        }
        return Ok(Constant::from_raw(ValueType::new(dtype, shape), raw));
    }
    Ok(Constant::new(typed_fields(t, dtype, &shape, count)?))
}

/// Decodes a tensor fully (for test data and attributes).
pub fn to_tensor(t: &TensorProto, ext: &ExternalData) -> Result<Tensor> {
    Ok(to_constant(t, ext)?.tensor()?.clone())
}

fn external_bytes(t: &TensorProto, ext: &ExternalData) -> Result<Bytes> {
    let mut location = None;
    let (mut offset, mut length) = (0usize, None);
    for kv in &t.external_data {
        let v = kv.value.as_deref().unwrap_or("");
        match kv.key.as_deref().unwrap_or("") {
            "location" => location = Some(v.to_string()),
            "offset" => offset = v.parse().with_context(|| format!("external data offset '{v}'"))?,
            "length" => length = Some(v.parse::<usize>().with_context(|| format!("external data length '{v}'"))?),
            _ => {}
        }
    }
    let location = location.ok_or_else(|| anyhow!("external data without a 'location'"))?;
    let file = ext.file(&location)?;
    let end = match length {
        Some(l) => offset.checked_add(l),
        None => Some(file.len()),
    };
    match end {
        Some(end) if offset <= end && end <= file.len() => Ok(file.slice(offset..end)),
        _ => bail!("external data range {offset}..{:?} lies outside '{location}' ({} bytes)", length.map(|l| offset + l), file.len()),
    }
}

fn check_len(field: &str, have: usize, want: usize) -> Result<()> {
    if have != want {
        bail!("{field} holds {have} values, the shape needs {want}");
    }
    Ok(())
}

fn typed_fields(t: &TensorProto, dtype: DType, shape: &[usize], count: usize) -> Result<Tensor> {
    fn arr<T>(shape: &[usize], v: Vec<T>) -> Result<ArrayD<T>> {
        Ok(ArrayD::from_shape_vec(IxDyn(shape), v)?)
    }
    let i32s = &t.int32_data;
    Ok(match dtype {
        DType::F32 => {
            check_len("float_data", t.float_data.len(), count)?;
            Tensor::F32(ArrayD::from_shape_vec(IxDyn(shape), t.float_data.clone())?)
        }
        DType::F64 => {
            check_len("double_data", t.double_data.len(), count)?;
            Tensor::F64(ArrayD::from_shape_vec(IxDyn(shape), t.double_data.clone())?)
        }
        DType::I64 => {
            check_len("int64_data", t.int64_data.len(), count)?;
            Tensor::I64(ArrayD::from_shape_vec(IxDyn(shape), t.int64_data.clone())?)
        }
        DType::U64 => {
            check_len("uint64_data", t.uint64_data.len(), count)?;
            Tensor::U64(ArrayD::from_shape_vec(IxDyn(shape), t.uint64_data.clone())?)
        }
        DType::U32 => {
            check_len("uint64_data", t.uint64_data.len(), count)?;
            Tensor::U32(arr(shape, t.uint64_data.iter().map(|&v| v as u32).collect())?)
        }
        DType::String => {
            check_len("string_data", t.string_data.len(), count)?;
            let v = t.string_data.iter().map(|b| String::from_utf8_lossy(b).into_owned()).collect();
            Tensor::Str(ArrayD::from_shape_vec(IxDyn(shape), v)?)
        }
        DType::I32 | DType::I16 | DType::I8 | DType::U16 | DType::U8 | DType::Bool | DType::F16 | DType::BF16 => {
            check_len("int32_data", i32s.len(), count)?;
            match dtype {
                DType::I32 => Tensor::I32(arr(shape, i32s.clone())?),
                DType::I16 => Tensor::I16(arr(shape, i32s.iter().map(|&v| v as i16).collect())?),
                DType::I8 => Tensor::I8(arr(shape, i32s.iter().map(|&v| v as i8).collect())?),
                DType::U16 => Tensor::U16(arr(shape, i32s.iter().map(|&v| v as u16).collect())?),
                DType::U8 => Tensor::U8(arr(shape, i32s.iter().map(|&v| v as u8).collect())?),
                DType::Bool => Tensor::Bool(arr(shape, i32s.iter().map(|&v| v != 0).collect())?),
                DType::F16 => Tensor::F16(arr(shape, i32s.iter().map(|&v| f16::from_bits(v as u16)).collect())?),
                _ => Tensor::BF16(arr(shape, i32s.iter().map(|&v| bf16::from_bits(v as u16)).collect())?),
            }
        }
        d if d.is_low() => match sub_byte_bits(d) {
            Some(bits) => {
                let packed: Vec<u8> = i32s.iter().map(|&v| v as u8).collect();
                unpack(d, bits, count, shape, &packed)?
            }
            None => {
                check_len("int32_data", i32s.len(), count)?;
                Tensor::Low(d, arr(shape, i32s.iter().map(|&v| v as u8).collect())?)
            }
        },
        other => bail!("cannot decode {other} tensors"),
    })
}

/// Encodes a tensor as a `TensorProto` with raw data (tests and tools).
pub fn from_tensor(name: &str, t: &Tensor) -> Result<TensorProto> {
    let mut p = TensorProto {
        name: Some(name.to_string()),
        data_type: Some(t.dtype().onnx_code() as i32),
        dims: t.shape().iter().map(|&d| d as i64).collect(),
        ..Default::default()
    };
    match t {
        Tensor::Str(a) => p.string_data = a.iter().map(|s| s.clone().into_bytes()).collect(),
        Tensor::Low(d, a) if sub_byte_bits(*d).is_some() => {
            let bits = sub_byte_bits(*d).unwrap_or(8);
            let per = 8 / bits;
            let mut packed = vec![0u8; a.len().div_ceil(per)];
            for (i, c) in a.iter().enumerate() {
                packed[i / per] |= (c & ((1 << bits) - 1)) << ((i % per) * bits);
            }
            p.raw_data = Some(Bytes::from(packed));
        }
        _ => p.raw_data = Some(Bytes::from(t.to_le_bytes()?)),
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proto(dtype: DType, dims: &[i64]) -> TensorProto {
        TensorProto { data_type: Some(dtype.onnx_code() as i32), dims: dims.to_vec(), ..Default::default() }
    }

    #[test]
    fn typed_and_raw_agree() {
        let ext = ExternalData::default();
        let mut a = proto(DType::F32, &[2]);
        a.float_data = vec![1.5, -2.0];
        let t = to_tensor(&a, &ext).unwrap();
        let b = from_tensor("x", &t).unwrap();
        assert_eq!(to_tensor(&b, &ext).unwrap(), t);
    }

    #[test]
    fn int4_unpacks_low_nibble_first() {
        let mut p = proto(DType::I4, &[3]);
        p.raw_data = Some(Bytes::from(vec![0x21u8, 0x0f]));
        let t = to_tensor(&p, &ExternalData::default()).unwrap();
        assert_eq!(t, Tensor::Low(DType::I4, ArrayD::from_shape_vec(IxDyn(&[3]), vec![1, 2, 15]).unwrap()));
        let back = from_tensor("x", &t).unwrap();
        assert_eq!(back.raw_data.unwrap().as_ref(), &[0x21, 0x0f]);
    }

    #[test]
    fn bad_tensors_are_errors() {
        let ext = ExternalData::default();
        let mut p = proto(DType::F32, &[3]);
        p.raw_data = Some(Bytes::from(vec![0u8; 11]));
        assert!(to_constant(&p, &ext).is_err());
        assert!(to_constant(&proto(DType::F32, &[-1]), &ext).is_err());
        assert!(to_constant(&proto(DType::F32, &[i64::MAX, i64::MAX]), &ext).is_err());
        let mut q = proto(DType::F32, &[1]);
        q.data_type = Some(99);
        assert!(to_constant(&q, &ext).is_err());
        let mut e = proto(DType::F32, &[1]);
        e.data_location = Some(DataLocation::External as i32);
        assert!(to_constant(&e, &ext).is_err());
    }
}
