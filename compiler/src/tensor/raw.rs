//! Little-endian raw byte layout, as in ONNX `raw_data`, `.npy` bodies and artifacts.

use super::{ArrayD, DType, IxDyn, Tensor, bf16, f16};
use anyhow::{Result, bail};

macro_rules! decode_le {
    ($bytes:expr, $shape:expr, $t:ty, $variant:ident) => {{
        const N: usize = std::mem::size_of::<$t>();
        let v: Vec<$t> = $bytes
            .chunks_exact(N)
            .map(|c| <$t>::from_le_bytes(c.try_into().expect("chunk of N bytes")))
            .collect();
        Tensor::$variant(ArrayD::from_shape_vec(IxDyn($shape), v)?)
    }};
}

impl Tensor {
    /// Decodes `bytes` (little-endian, row-major) as `dtype` values of `shape`. The byte count
    /// must match exactly.
    pub fn from_le_bytes(dtype: DType, shape: &[usize], bytes: &[u8]) -> Result<Tensor> {
        let count: usize = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).unwrap_or(usize::MAX);
        if let bits @ (2 | 4) = dtype.bits() {
            return unpack(dtype, bits, count, shape, bytes);
        }
        let Some(size) = dtype.size_of() else {
            bail!("{dtype} tensors have no fixed-size raw layout");
        };
        if dtype.is_complex() {
            bail!("dtype {dtype} is not supported");
        }
        if count.checked_mul(size) != Some(bytes.len()) {
            bail!(
                "raw data holds {} bytes but a {dtype} tensor of shape {shape:?} needs {}",
                bytes.len(),
                count.saturating_mul(size)
            );
        }
        Ok(match dtype {
            DType::F32 => decode_le!(bytes, shape, f32, F32),
            DType::F64 => decode_le!(bytes, shape, f64, F64),
            DType::I8 => decode_le!(bytes, shape, i8, I8),
            DType::I16 => decode_le!(bytes, shape, i16, I16),
            DType::I32 => decode_le!(bytes, shape, i32, I32),
            DType::I64 => decode_le!(bytes, shape, i64, I64),
            DType::U8 => decode_le!(bytes, shape, u8, U8),
            DType::U16 => decode_le!(bytes, shape, u16, U16),
            DType::U32 => decode_le!(bytes, shape, u32, U32),
            DType::U64 => decode_le!(bytes, shape, u64, U64),
            DType::F16 => {
                let v = bytes.chunks_exact(2).map(|c| f16::from_bits(u16::from_le_bytes([c[0], c[1]]))).collect();
                Tensor::F16(ArrayD::from_shape_vec(IxDyn(shape), v)?)
            }
            DType::BF16 => {
                let v = bytes.chunks_exact(2).map(|c| bf16::from_bits(u16::from_le_bytes([c[0], c[1]]))).collect();
                Tensor::BF16(ArrayD::from_shape_vec(IxDyn(shape), v)?)
            }
            d if d.is_low() => Tensor::Low(d, ArrayD::from_shape_vec(IxDyn(shape), bytes.to_vec())?),
            DType::Bool => Tensor::Bool(ArrayD::from_shape_vec(IxDyn(shape), bytes.iter().map(|&b| b != 0).collect())?),
            other => bail!("dtype {other} is not supported"),
        })
    }

    /// The little-endian, row-major bytes of a numeric or bool tensor.
    pub fn to_le_bytes(&self) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(self.len() * self.dtype().size_of().unwrap_or(0));
        match self {
            Tensor::F16(a) => a.iter().for_each(|v| out.extend_from_slice(&v.to_bits().to_le_bytes())),
            Tensor::BF16(a) => a.iter().for_each(|v| out.extend_from_slice(&v.to_bits().to_le_bytes())),
            Tensor::Bool(a) => a.iter().for_each(|&v| out.push(v as u8)),
            Tensor::Str(_) => bail!("string tensors have no raw layout"),
            Tensor::Low(d, a) => match d.bits() {
                8 => out.extend(a.iter().copied()),
                bits @ (2 | 4) => {
                    // ONNX packing: the first element in the low bits of the first byte.
                    let per = 8 / bits;
                    out.resize(a.len().div_ceil(per), 0);
                    for (i, &c) in a.iter().enumerate() {
                        out[i / per] |= (c & ((1 << bits) - 1)) << ((i % per) * bits);
                    }
                }
                _ => bail!("{d} tensors have no raw layout"),
            },
            Tensor::F32(a) => a.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
            Tensor::F64(a) => a.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
            Tensor::I8(a) => a.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
            Tensor::I16(a) => a.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
            Tensor::I32(a) => a.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
            Tensor::I64(a) => a.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
            Tensor::U8(a) => a.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
            Tensor::U16(a) => a.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
            Tensor::U32(a) => a.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
            Tensor::U64(a) => a.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
        }
        Ok(out)
    }
}

/// Packed 4- or 2-bit codes (ONNX packing) as one code per element.
fn unpack(dtype: DType, bits: usize, count: usize, shape: &[usize], bytes: &[u8]) -> Result<Tensor> {
    let per = 8 / bits;
    let need = count.div_ceil(per);
    if bytes.len() != need {
        bail!("raw data holds {} bytes but a {dtype} tensor of shape {shape:?} needs {need}", bytes.len());
    }
    let mask = (1u8 << bits) - 1;
    let codes = (0..count).map(|i| (bytes[i / per] >> ((i % per) * bits)) & mask).collect();
    Ok(Tensor::Low(dtype, ArrayD::from_shape_vec(IxDyn(shape), codes)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_every_supported_dtype() {
        for code in 1..=26 {
            let d = DType::from_onnx_i32(code).unwrap();
            if d.is_complex() || d == DType::String || d.is_low() {
                continue;
            }
            let t = Tensor::from_f64_array(d, ArrayD::from_shape_vec(IxDyn(&[2, 2]), vec![0.0, 1.0, 2.0, 3.0]).unwrap())
                .unwrap();
            let b = t.to_le_bytes().unwrap();
            assert_eq!(Tensor::from_le_bytes(d, &[2, 2], &b).unwrap(), t, "{d}");
        }
    }

    #[test]
    fn sub_byte_types_pack_low_bits_first() {
        let t = Tensor::Low(DType::I4, ArrayD::from_shape_vec(IxDyn(&[5]), vec![1, 2, 15, 8, 7]).unwrap());
        let b = t.to_le_bytes().unwrap();
        assert_eq!(b, vec![0x21, 0x8F, 0x07]);
        assert_eq!(Tensor::from_le_bytes(DType::I4, &[5], &b).unwrap(), t);
        let t = Tensor::Low(DType::U2, ArrayD::from_shape_vec(IxDyn(&[5]), vec![1, 2, 3, 0, 3]).unwrap());
        let b = t.to_le_bytes().unwrap();
        assert_eq!(b, vec![0b0011_1001, 0b11]);
        assert_eq!(Tensor::from_le_bytes(DType::U2, &[5], &b).unwrap(), t);
        assert!(Tensor::from_le_bytes(DType::U4, &[5], &[0u8; 2]).is_err());
    }

    #[test]
    fn wrong_length_is_an_error() {
        assert!(Tensor::from_le_bytes(DType::F32, &[3], &[0u8; 11]).is_err());
        assert!(Tensor::from_le_bytes(DType::F32, &[usize::MAX, 2], &[0u8; 8]).is_err());
    }
}
