//! Numbers ↔ strings for Cast, as the ONNX reference does it (numpy `astype(np.str_)` and
//! `astype(<number>)` on string arrays).
//!
//! Floats print like numpy's `str()` of a scalar: the shortest digits that read back to the
//! same value, positional (`"0.5"`, `"3.0"`, `"-0.0"`) when the value is zero or
//! `1e-4 <= |v| < cutoff`, scientific otherwise (`"1e+16"`, `"1.5e-05"`), and `"nan"`,
//! `"inf"`, `"-inf"`. The cutoff is 1e16 for f64, 1e6 for f32 and 1e3 for f16. numpy cannot
//! print bf16 or the low-precision floats; they print like f32 here, with their own shortest
//! digits.

/// Splits Rust's `{:e}` text (`"1.25e-3"`) into significant digits without trailing zeros
/// and the decimal exponent of the first digit.
fn split_sci(text: &str) -> (String, i32) {
    let (mant, exp) = text.split_once('e').unwrap_or((text, "0"));
    let digits: String = mant.chars().filter(|c| c.is_ascii_digit()).collect();
    let digits = match digits.trim_end_matches('0') {
        "" => "0".to_string(),
        d => d.to_string(),
    };
    (digits, exp.parse().unwrap_or(0))
}

/// numpy's `str()` of a float scalar whose exact value is `v` (`kind` says which type holds
/// it, for the shortest digits).
pub fn format_float(v: f64, cutoff: f64, kind: FloatKind) -> String {
    if v.is_nan() {
        return "nan".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf".into() } else { "-inf".into() };
    }
    let sign = if v.is_sign_negative() { "-" } else { "" };
    let a = v.abs();
    // Rust's `{:e}` of an f32 or f64 prints the shortest digits that read back to the value.
    let (digits, exp) = split_sci(&match kind {
        FloatKind::F64 => format!("{a:e}"),
        FloatKind::F32 => format!("{:e}", a as f32),
        FloatKind::Other(bits) => (0..17)
            .map(|p| format!("{a:.p$e}"))
            .find(|s| s.parse::<f64>().is_ok_and(|x| bits(x) == bits(a)))
            .unwrap_or_else(|| format!("{a:e}")),
    });
    let positional = a == 0.0 || (1e-4..cutoff).contains(&a);
    if positional {
        if exp >= 0 {
            let e = exp as usize;
            let int: String = if digits.len() > e {
                digits[..=e].to_string()
            } else {
                format!("{digits}{}", "0".repeat(e + 1 - digits.len()))
            };
            let frac = if digits.len() > e + 1 { &digits[e + 1..] } else { "0" };
            format!("{sign}{int}.{frac}")
        } else {
            format!("{sign}0.{}{digits}", "0".repeat((-exp - 1) as usize))
        }
    } else {
        let mant = if digits.len() > 1 { format!("{}.{}", &digits[..1], &digits[1..]) } else { digits.clone() };
        format!("{sign}{mant}e{exp:+03}")
    }
}

/// How to find the shortest digits of a float.
#[derive(Clone, Copy)]
pub enum FloatKind {
    F64,
    F32,
    /// Another type: a function giving the bits of a value rounded to that type.
    Other(fn(f64) -> u64),
}

/// A string read as a float: plain or scientific notation, `inf`/`infinity`/`nan` in any case
/// with an optional sign, surrounding whitespace ignored (numpy's `float()` rules).
pub fn parse_float(s: &str) -> Option<f64> {
    s.trim().parse::<f64>().ok()
}

/// A string read as an integer (a float string is truncated toward zero, as the spec
/// allows: "100.5" → 100). `None` when it is not a number.
pub fn parse_int(s: &str) -> Option<i128> {
    let t = s.trim();
    if let Ok(v) = t.parse::<i128>() {
        return Some(v);
    }
    let f = parse_float(t)?;
    let f = f.trunc();
    (f.is_finite() && f.abs() < 2f64.powi(64)).then_some(f as i128)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::f16;

    fn f16_bits(v: f64) -> u64 {
        crate::tensor::low::f64_to_f16(v).to_bits() as u64
    }

    #[test]
    fn floats_print_like_numpy() {
        // Expected strings from numpy 2.4 `np.array([...], dtype).astype(np.str_)`.
        let f32_cases: &[(f32, &str)] = &[
            (0.1, "0.1"),
            (1.0, "1.0"),
            (1e16, "1e+16"),
            (1e15, "1e+15"),
            (1.5e-4, "0.00015"),
            (1e-5, "1e-05"),
            (123456789.0, "1.2345679e+08"),
            (-0.0, "-0.0"),
            (3.0, "3.0"),
            (100000.0, "100000.0"),
            (1e6, "1e+06"),
            (999999.9, "999999.9"),
            (123456.7, "123456.7"),
            (1e-4, "1e-04"),
            (0.00011, "0.00011"),
            (3e38, "3e+38"),
            (f32::NAN, "nan"),
            (f32::NEG_INFINITY, "-inf"),
        ];
        for &(v, want) in f32_cases {
            assert_eq!(format_float(v as f64, 1e6, FloatKind::F32), want, "f32 {v}");
        }
        let f64_cases: &[(f64, &str)] = &[
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (123456789.0, "123456789.0"),
            (1.0 / 3.0, "0.3333333333333333"),
            (0.1 + 0.2, "0.30000000000000004"),
            (123456789012345678.0, "1.2345678901234568e+17"),
            (1e-4, "0.0001"),
            (9.9e-5, "9.9e-05"),
        ];
        for &(v, want) in f64_cases {
            assert_eq!(format_float(v, 1e16, FloatKind::F64), want, "f64 {v}");
        }
        let f16_cases: &[(f64, &str)] = &[
            (0.1, "0.1"),
            (65504.0, "6.55e+04"),
            (1e-4, "0.0001"),
            (1e-5, "1e-05"),
            (999.5, "999.5"),
            (1000.0, "1e+03"),
            (12345.0, "1.2344e+04"),
            (6.103515625e-05, "6.104e-05"),
            (5.96e-08, "6e-08"),
        ];
        for &(v, want) in f16_cases {
            let exact = f16::from_bits(f16_bits(v) as u16).to_f64();
            assert_eq!(format_float(exact, 1e3, FloatKind::Other(f16_bits)), want, "f16 {v}");
        }
    }

    #[test]
    fn strings_parse() {
        assert_eq!(parse_float(" 1.5 "), Some(1.5));
        assert_eq!(parse_float("1E8"), Some(1e8));
        assert_eq!(parse_float("+INF"), Some(f64::INFINITY));
        assert_eq!(parse_float("-inf"), Some(f64::NEG_INFINITY));
        assert!(parse_float("NaN").unwrap().is_nan());
        assert_eq!(parse_float("hello"), None);
        assert_eq!(parse_int("-3"), Some(-3));
        assert_eq!(parse_int("+4"), Some(4));
        assert_eq!(parse_int("100.5"), Some(100));
        assert_eq!(parse_int("x"), None);
    }
}
