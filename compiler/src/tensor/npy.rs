//! Reading and writing NumPy `.npy` files (format versions 1.0–3.0, little-endian, C order).

use super::{DType, Tensor};
use anyhow::{Context, Result, bail};
use std::path::Path;

const MAGIC: &[u8] = b"\x93NUMPY";

fn descr(dtype: DType) -> Result<&'static str> {
    Ok(match dtype {
        DType::F32 => "<f4",
        DType::F64 => "<f8",
        DType::F16 => "<f2",
        DType::I8 => "|i1",
        DType::I16 => "<i2",
        DType::I32 => "<i4",
        DType::I64 => "<i8",
        DType::U8 => "|u1",
        DType::U16 => "<u2",
        DType::U32 => "<u4",
        DType::U64 => "<u8",
        DType::Bool => "|b1",
        other => bail!("{other} tensors cannot be written as .npy"),
    })
}

fn dtype_of(descr: &str) -> Result<DType> {
    Ok(match descr {
        "<f4" => DType::F32,
        "<f8" => DType::F64,
        "<f2" => DType::F16,
        "|i1" | "<i1" => DType::I8,
        "<i2" => DType::I16,
        "<i4" => DType::I32,
        "<i8" => DType::I64,
        "|u1" | "<u1" => DType::U8,
        "<u2" => DType::U16,
        "<u4" => DType::U32,
        "<u8" => DType::U64,
        "|b1" => DType::Bool,
        other => bail!("unsupported .npy dtype '{other}' (only little-endian numbers and bool)"),
    })
}

/// Serialises `t` as a version 1.0 `.npy` file.
pub fn to_bytes(t: &Tensor) -> Result<Vec<u8>> {
    let shape = match t.shape() {
        [] => "()".to_string(),
        [d] => format!("({d},)"),
        s => format!("({})", s.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")),
    };
    let mut header = format!("{{'descr': '{}', 'fortran_order': False, 'shape': {shape}, }}", descr(t.dtype())?);
    // Pad so that the data starts on a 64-byte boundary; the header ends with '\n'.
    let unpadded = MAGIC.len() + 2 + 2 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(unpadded + 64 + t.len() * 8);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&t.to_le_bytes()?);
    Ok(out)
}

/// Parses a `.npy` file.
pub fn from_bytes(b: &[u8]) -> Result<Tensor> {
    if b.len() < 10 || &b[..6] != MAGIC {
        bail!("not a .npy file (bad magic)");
    }
    let (header_len, start): (usize, usize) = match b[6] {
        1 => (u16::from_le_bytes([b[8], b[9]]) as usize, 10),
        2 | 3 => {
            if b.len() < 12 {
                bail!("truncated .npy header");
            }
            (u32::from_le_bytes([b[8], b[9], b[10], b[11]]) as usize, 12)
        }
        v => bail!("unsupported .npy version {v}"),
    };
    let end = start.checked_add(header_len).filter(|&e| e <= b.len()).context("truncated .npy header")?;
    let header = std::str::from_utf8(&b[start..end]).context(".npy header is not text")?;
    let field = |key: &str| -> Result<&str> {
        let i = header.find(&format!("'{key}'")).with_context(|| format!(".npy header lacks '{key}'"))?;
        let rest = header[i + key.len() + 2..].trim_start();
        Ok(rest.strip_prefix(':').context("malformed .npy header")?.trim_start())
    };
    let d = field("descr")?;
    let d = d.strip_prefix('\'').and_then(|s| s.split('\'').next()).context("malformed descr")?;
    let dtype = dtype_of(d)?;
    if field("fortran_order")?.starts_with("True") {
        bail!("Fortran-order .npy files are not supported");
    }
    let s = field("shape")?;
    let s = s.strip_prefix('(').and_then(|s| s.split(')').next()).context("malformed shape")?;
    let shape = s
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| p.parse::<usize>().with_context(|| format!("bad dimension '{p}' in .npy shape")))
        .collect::<Result<Vec<_>>>()?;
    Tensor::from_le_bytes(dtype, &shape, &b[end..])
}

pub fn read(path: &Path) -> Result<Tensor> {
    let b = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    from_bytes(&b).with_context(|| format!("parsing {}", path.display()))
}

pub fn write(path: &Path, t: &Tensor) -> Result<()> {
    std::fs::write(path, to_bytes(t)?).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for t in [
            Tensor::from_vec(&[2, 3], vec![1.0f32, 2., 3., 4., 5., 6.]).unwrap(),
            Tensor::scalar(7i64),
            Tensor::from_vec(&[0, 4], Vec::<u8>::new()).unwrap(),
            Tensor::from_vec(&[3], vec![true, false, true]).unwrap(),
        ] {
            let b = to_bytes(&t).unwrap();
            assert_eq!((b.len() - t.to_le_bytes().unwrap().len()) % 64, 0);
            assert_eq!(from_bytes(&b).unwrap(), t);
        }
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(from_bytes(b"").is_err());
        assert!(from_bytes(b"\x93NUMPY\x01\x00\xff\xff").is_err());
        let mut b = to_bytes(&Tensor::from_vec(&[4], vec![1.0f32; 4]).unwrap()).unwrap();
        b.truncate(b.len() - 1);
        assert!(from_bytes(&b).is_err());
    }
}
