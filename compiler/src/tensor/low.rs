//! Conversions for the low-precision element types held in [`Tensor::Low`](super::Tensor::Low):
//! the 8-bit floats (f8e4m3fn, f8e4m3fnuz, f8e5m2, f8e5m2fnuz, f8e8m0), the 4-bit float
//! f4e2m1 and the 4/2-bit integers (i4, u4, i2, u2).
//!
//! The rules live once, in the runtime ([`neoc_runtime::kernels::lowbit`]), because compiled
//! code calls the same functions: this module re-exports them. A code is one element, unpacked (a 4-bit or 2-bit value in the low bits of its
//! byte); see the runtime module for the semantics (ml_dtypes').

use super::f16;
use neoc_runtime::kernels::lowbit as rt;

pub use neoc_runtime::kernels::lowbit::{RoundMode, decode, decode_int, encode, encode_e8m0, int_code, int_range, is_low_int};

/// `f64` → `f16` with one rounding (to nearest even), as numpy does. (`half`'s `from_f64`
/// drops the low mantissa bits first, which can round a value just above a tie the wrong way.)
pub fn f64_to_f16(v: f64) -> f16 {
    if v.is_nan() {
        return f16::from_f64(v);
    }
    f16::from_bits(rt::f64_to_f16_bits(v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::DType;

    const FLOATS: [DType; 6] =
        [DType::F8E4M3FN, DType::F8E4M3FNUZ, DType::F8E5M2, DType::F8E5M2FNUZ, DType::F4E2M1, DType::F8E8M0];

    fn n_codes(d: DType) -> u32 {
        match d {
            DType::F4E2M1 | DType::I4 | DType::U4 => 16,
            DType::I2 | DType::U2 => 4,
            _ => 256,
        }
    }

    /// The f32 inputs of the encode checksums, mirrored by the Python generator: every f32
    /// whose low 14 bits are 0, 1 or all ones.
    fn samples() -> impl Iterator<Item = f32> {
        (0u32..1 << 18).flat_map(|i| [i << 14, (i << 14) | 1, (i << 14) | 0x3FFF]).map(f32::from_bits)
    }

    fn weight(i: u64) -> u64 {
        i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1
    }

    fn checksum(codes: impl Iterator<Item = u64>) -> u64 {
        codes.enumerate().fold(0u64, |acc, (i, c)| acc.wrapping_add((c + 1).wrapping_mul(weight(i as u64))))
    }

    /// Checksums computed with ml_dtypes 0.6 / onnx 1.23: `saturate_cast` for saturate,
    /// `astype` otherwise, `to_float8e8m0` for e8m0. The generator, in short:
    /// ```text
    /// i = np.arange(1 << 18, dtype=np.uint32) << 14
    /// x = np.stack([i, i | 1, i | 0x3FFF], axis=1).ravel().view(np.float32)
    /// w = (np.arange(n, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)) | 1
    /// checksum = np.sum((codes.astype(np.uint64) + 1) * w, dtype=np.uint64)
    /// ```
    #[test]
    fn encode_matches_ml_dtypes() {
        let expect: &[(DType, bool, u64)] = &[
            (DType::F8E4M3FN, true, 8378045129295975232),
            (DType::F8E4M3FN, false, 17379260668804805632),
            (DType::F8E4M3FNUZ, true, 14203541204705914878),
            (DType::F8E4M3FNUZ, false, 12899404926015330304),
            (DType::F8E5M2, true, 6547123141578803582),
            (DType::F8E5M2, false, 14059106049121185408),
            (DType::F8E5M2FNUZ, true, 3540730425182375038),
            (DType::F8E5M2FNUZ, false, 1057405103773790464),
            (DType::F4E2M1, false, 15672361800710870278),
        ];
        for &(d, sat, want) in expect {
            let got = checksum(samples().map(|v| encode(d, v, sat) as u64));
            assert_eq!(got, want, "{d} saturate={sat}");
        }
        let e8m0: &[(RoundMode, bool, u64)] = &[
            (RoundMode::Up, true, 2794330244371970564),
            (RoundMode::Up, false, 7331091842623044098),
            (RoundMode::Down, true, 3183702678421372928),
            (RoundMode::Nearest, true, 13549587210691934718),
            (RoundMode::Nearest, false, 15049613089006861822),
        ];
        for &(m, sat, want) in e8m0 {
            let got = checksum(samples().map(|v| encode_e8m0(v, sat, m) as u64));
            assert_eq!(got, want, "e8m0 {m:?} saturate={sat}");
        }
    }

    /// NaN decodes to the canonical bits 0xFFFF_FFFF in the checksum.
    #[test]
    fn decode_matches_ml_dtypes() {
        let expect: &[(DType, u64)] = &[
            (DType::F8E4M3FN, 15211141419869097642),
            (DType::F8E4M3FNUZ, 9334635872350268287),
            (DType::F8E5M2, 16675503150502504570),
            (DType::F8E5M2FNUZ, 17693756720524716927),
            (DType::F4E2M1, 14609894465472178656),
            (DType::F8E8M0, 15926619731274685717),
        ];
        for &(d, want) in expect {
            let got = checksum((0..n_codes(d)).map(|c| {
                let v = decode(d, c as u8);
                if v.is_nan() { 0xFFFF_FFFF } else { v.to_bits() as u64 }
            }));
            assert_eq!(got, want, "{d}");
        }
    }

    #[test]
    fn spot_values() {
        assert_eq!(decode(DType::F8E4M3FN, 0x7E), 448.0);
        assert_eq!(decode(DType::F8E4M3FNUZ, 0x7F), 240.0);
        assert_eq!(decode(DType::F8E5M2, 0x7B), 57344.0);
        assert_eq!(decode(DType::F8E5M2, 0x7C), f32::INFINITY);
        assert!(decode(DType::F8E4M3FNUZ, 0x80).is_nan());
        assert_eq!(decode(DType::F4E2M1, 0x7), 6.0);
        assert_eq!(decode(DType::F4E2M1, 0xF), -6.0);
        assert_eq!(decode(DType::F8E8M0, 127), 1.0);
        assert_eq!(decode(DType::I4, 0xF), -1.0);
        assert_eq!(decode(DType::U2, 0x3), 3.0);
        // 464 is the tie between 448 and the NaN code: ties to even (448).
        assert_eq!(encode(DType::F8E4M3FN, 464.0, false), 0x7E);
        assert_eq!(encode(DType::F8E4M3FN, 465.0, false), 0x7F);
        assert_eq!(encode(DType::F8E4M3FN, 1e6, true), 0x7E);
        assert_eq!(encode(DType::F8E5M2, f32::NEG_INFINITY, false), 0xFC);
        assert_eq!(encode(DType::F8E5M2, f32::NAN, false), 0x7E);
        assert_eq!(encode(DType::F8E4M3FNUZ, -0.0, true), 0x00);
        assert_eq!(encode(DType::F4E2M1, 5.0, true), 0x6); // tie between 4 and 6 -> 4 (even)
        assert_eq!(encode(DType::F4E2M1, f32::NAN, true), 0x8);
        assert_eq!(encode(DType::I4, 9.0, true), 7);
        assert_eq!(encode(DType::I4, -2.5, true), 0xE);
        assert_eq!(encode(DType::I4, 9.0, false), 0x9); // wraps to -7
        assert_eq!(encode(DType::U4, -3.0, true), 0);
        assert_eq!(encode(DType::U2, 2.5, true), 2);
        assert_eq!(int_code(DType::I4, -9), 0x7);
        assert_eq!(encode_e8m0(0.124, true, RoundMode::Up), 124);
        assert_eq!(encode_e8m0(1.1, true, RoundMode::Up), 128);
        assert_eq!(encode_e8m0(f32::MAX, true, RoundMode::Up), 0xFE);
        assert_eq!(encode_e8m0(f32::MAX, false, RoundMode::Up), 0xFF);
    }

    #[test]
    fn every_code_round_trips() {
        for d in FLOATS.into_iter().chain([DType::I4, DType::U4, DType::I2, DType::U2]) {
            for c in 0..n_codes(d) {
                let v = decode(d, c as u8);
                if v.is_nan() {
                    continue;
                }
                // 2^-127 is an f32 subnormal, which rounding up takes to 2^-126: check e8m0 with
                // rounding down.
                let back = if d == DType::F8E8M0 { encode_e8m0(v, false, RoundMode::Down) } else { encode(d, v, false) };
                assert_eq!(back as u32, c, "{d} code {c:#x} ({v})");
            }
        }
    }

    #[test]
    fn f64_to_f16_rounds_once() {
        // Just above the tie between 1 and 1 + 2^-10: numpy rounds up.
        assert_eq!(f64_to_f16(1.0 + 2f64.powi(-11) + 2f64.powi(-40)).to_bits(), 0x3C01);
        assert_eq!(f64_to_f16(1.0 + 2f64.powi(-11)).to_bits(), 0x3C00);
        assert_eq!(f64_to_f16(65520.0).to_bits(), 0x7C00);
        assert_eq!(f64_to_f16(-65519.0).to_bits(), 0xFBFF);
        assert_eq!(f64_to_f16(2f64.powi(-25)).to_bits(), 0x0000);
        assert_eq!(f64_to_f16(2f64.powi(-25) * 1.5).to_bits(), 0x0001);
        assert_eq!(f64_to_f16(-0.0).to_bits(), 0x8000);
        assert!(f64_to_f16(f64::NAN).is_nan());
    }
}
