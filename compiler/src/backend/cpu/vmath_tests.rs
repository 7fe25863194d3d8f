//! The inline math of [`super`] compiled end to end (graph → machine code → runtime) on
//! dense input sweeps, on the vector path and (forced) the scalar path, against f64
//! references, measuring the error in f32 ulps.

use crate::backend::cpu::codegen::SCALAR_ONLY;
use crate::driver::{CompileOptions, compile_and_run};
use crate::ir::parse::parse_graph;
use crate::tensor::Tensor;

/// The spacing of f32 numbers at `r` (an f64 reference inside f32's range); 2^-149 in the
/// subnormal range and at 0.
fn ulp_at(r: f64) -> f64 {
    let a = (r.abs() as f32).max(f32::MIN_POSITIVE);
    let e = a.to_bits() >> 23;
    2f64.powi(e as i32 - 127 - 23).max(2f64.powi(-149))
}

/// About `n` inputs spread evenly over the f32 bit patterns of [-hi, hi] (so every binade is
/// covered, down to the subnormals), and the special values.
fn sweep(hi: f32, n: u32) -> Vec<f32> {
    let top = hi.to_bits();
    let step = (top / (n / 2)).max(1);
    let mut v = Vec::new();
    let mut b = 0u32;
    while b <= top {
        let x = f32::from_bits(b);
        v.push(x);
        v.push(-x);
        b += step;
    }
    v.extend([
        0.0,
        -0.0,
        f32::from_bits(1),
        -f32::from_bits(1),
        f32::MIN_POSITIVE,
        f32::MAX,
        f32::MIN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        -f32::NAN,
        88.72283,
        88.72284,
        -87.33655,
        -103.27893,
        -103.97208,
        -104.0,
        0.625,
        0.921875,
        3.9,
        4.0,
        1e-30,
        1e-7,
    ]);
    // Not a multiple of 4: the vector loop's scalar tail runs too.
    if v.len() % 4 == 0 {
        v.push(0.5);
    }
    v
}

/// Runs `y = op(x)` (text form of the node, e.g. `Exp`) compiled, on the vector or the
/// scalar path.
fn run(op: &str, xs: &[f32], scalar: bool) -> Vec<f32> {
    let n = xs.len();
    let text = format!("graph(%x: f32[{n}]) {{\n  %y = {op}(%x) : f32[{n}]\n  return %y\n}}\n");
    let g = parse_graph(&text).expect("parses");
    let x = Tensor::from_vec(&[n], xs.to_vec()).expect("tensor");
    SCALAR_ONLY.with(|s| s.set(scalar));
    let out = compile_and_run(&g, &[x], &CompileOptions::default());
    SCALAR_ONLY.with(|s| s.set(false));
    let out = out.expect("compiles and runs");
    out[0].to_f64_vec().expect("f32 output").into_iter().map(|v| v as f32).collect()
}

/// The largest error in ulps of `op` against `reference` over `xs`; NaN, infinite and
/// signed-zero results must match exactly.
fn max_ulp(op: &str, xs: &[f32], scalar: bool, reference: &dyn Fn(f64) -> f64) -> f64 {
    let got = run(op, xs, scalar);
    let mut worst = (0.0f64, 0.0f32);
    for (&x, &y) in xs.iter().zip(&got) {
        let r = reference(x as f64);
        if r.is_nan() {
            assert!(y.is_nan(), "{op}({x:e}) = {y:e}, want NaN (scalar: {scalar})");
            continue;
        }
        if r.abs() > f32::MAX as f64 * (1.0 + 2f64.powi(-25)) {
            assert_eq!(y, r as f32, "{op}({x:e}) = {y:e}, want {r:e} (overflow; scalar: {scalar})");
            continue;
        }
        if r == 0.0 {
            assert!(y == 0.0 && y.is_sign_negative() == r.is_sign_negative(), "{op}({x:e}) = {y:e}, want {r:e} (scalar: {scalar})");
            continue;
        }
        let e = (y as f64 - r).abs() / ulp_at(r);
        if e > worst.0 {
            worst = (e, x);
        }
    }
    eprintln!("{op} (scalar: {scalar}): max {:.3} ulp at x = {:e}", worst.0, worst.1);
    worst.0
}

fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 { 1.0 / (1.0 + (-x).exp()) } else { x.exp() / (1.0 + x.exp()) }
}

/// Each op is checked on both paths against its measured bound plus a margin that leaves
/// room for targets without fma (mul + add rounds once more per Horner step). Measured on
/// the development machine (Zen 5, fma): see each bound.
fn check(op: &str, hi: f32, bound: f64, reference: &dyn Fn(f64) -> f64) {
    let xs = sweep(hi, 2_000_000);
    for scalar in [false, true] {
        let e = max_ulp(op, &xs, scalar, reference);
        assert!(e <= bound, "{op}: {e} ulp > {bound} (scalar: {scalar})");
    }
}

// Measured (Zen 5, fma, 2M-point sweeps, vector and scalar paths alike): exp 0.99 ulp,
// sigmoid 2.02, tanh 1.22, erf 1.03 (erf against the runtime's f64 erf). The bounds leave
// about one ulp for targets without fma.
#[test]
fn exp_is_within_2_ulp() {
    check("Exp", 200.0, 2.0, &f64::exp);
}

#[test]
fn sigmoid_is_within_3_ulp() {
    check("Sigmoid", 200.0, 3.0, &sigmoid);
}

#[test]
fn tanh_is_within_3_ulp() {
    check("Tanh", 60.0, 3.0, &f64::tanh);
}

#[test]
fn erf_is_within_2_ulp() {
    check("Erf", 10.0, 2.0, &neoc_runtime::kernels::erf);
}

/// SiLU (Swish) and GELU go through Sigmoid and Erf. GELU's `1 + erf(x/√2)` cancels for
/// x ≪ 0 in any f32 evaluation (the runtime path too), so the error is bounded relative
/// to the largest term, |x|, not to the result.
#[test]
fn swish_and_gelu_follow_their_definitions() {
    let xs = sweep(20.0, 200_000);
    for scalar in [false, true] {
        let got = run("Swish{alpha=1.0f}", &xs, scalar);
        for (&x, &y) in xs.iter().zip(&got) {
            let r = x as f64 * sigmoid(x as f64);
            if r.is_nan() || r.is_infinite() {
                assert!(y.is_nan() || y as f64 == r, "swish({x:e}) = {y:e}, want {r:e}");
                continue;
            }
            // Where sigmoid(x) is subnormal its absolute error (≤ 2^-149) is multiplied by |x|.
            let bound = 4.0 * ulp_at(r) + 2.0 * (x as f64).abs() * 2f64.powi(-149);
            assert!((y as f64 - r).abs() <= bound, "swish({x:e}) = {y:e}, want {r:e}");
        }
        let got = run("Gelu{approximate=\"none\"}", &xs, scalar);
        for (&x, &y) in xs.iter().zip(&got) {
            let x = x as f64;
            let r = 0.5 * x * (1.0 + neoc_runtime::kernels::erf(x / std::f64::consts::SQRT_2));
            if r.is_nan() || r.is_infinite() {
                assert!(y.is_nan() || y as f64 == r, "gelu({x:e}) = {y:e}, want {r:e}");
                continue;
            }
            assert!((y as f64 - r).abs() <= 4.0 * ulp_at(r) + 2.0 * ulp_at(x), "gelu({x:e}) = {y:e}, want {r:e}");
        }
    }
}

/// ReLU and Max/Min with constant and variable operands are compare-and-select now: NaN
/// propagates from either operand, as numpy's maximum/minimum.
#[test]
fn relu_max_min_propagate_nan() {
    let xs = sweep(1e3, 20_000);
    for scalar in [false, true] {
        let got = run("Relu", &xs, scalar);
        for (&x, &y) in xs.iter().zip(&got) {
            if x.is_nan() {
                assert!(y.is_nan(), "relu(NaN) = {y}");
            } else {
                assert_eq!(y, if x < 0.0 { 0.0 } else { x }, "relu({x:e})");
            }
        }
    }
    let n = xs.len();
    let ys: Vec<f32> = xs.iter().rev().copied().collect();
    for (op, f) in [("Max", f32::max as fn(f32, f32) -> f32), ("Min", f32::min)] {
        let text = format!("graph(%a: f32[{n}], %b: f32[{n}]) {{\n  %y = {op}(%a, %b) : f32[{n}]\n  return %y\n}}\n");
        let g = parse_graph(&text).expect("parses");
        let ins = [Tensor::from_vec(&[n], xs.clone()).unwrap(), Tensor::from_vec(&[n], ys.clone()).unwrap()];
        for scalar in [false, true] {
            SCALAR_ONLY.with(|s| s.set(scalar));
            let out = compile_and_run(&g, &ins, &CompileOptions::default());
            SCALAR_ONLY.with(|s| s.set(false));
            let out = out.expect("runs")[0].to_f64_vec().unwrap();
            for ((&a, &b), &y) in xs.iter().zip(&ys).zip(&out) {
                if a.is_nan() || b.is_nan() {
                    assert!(y.is_nan(), "{op}({a}, {b}) = {y}");
                } else {
                    // ±0 ties may give either zero.
                    assert_eq!(y as f32, f(a, b), "{op}({a:e}, {b:e})");
                }
            }
        }
    }
}

/// Runs a one-node graph `%y = {node}(%x)` with input/output element types in text form.
fn run_typed(node: &str, xt: &str, yt: &str, x: Tensor, scalar: bool) -> Tensor {
    let n = x.shape()[0];
    let text = format!("graph(%x: {xt}[{n}]) {{\n  %y = {node}(%x) : {yt}[{n}]\n  return %y\n}}\n");
    let g = parse_graph(&text).expect("parses");
    SCALAR_ONLY.with(|s| s.set(scalar));
    let out = compile_and_run(&g, &[x], &CompileOptions::default());
    SCALAR_ONLY.with(|s| s.set(false));
    out.expect("compiles and runs").remove(0)
}

/// f32 bit patterns: about `n` spread over all of them, plus every f16 and bf16 rounding
/// boundary's neighbourhood near the extremes (overflow, subnormals).
fn f32_patterns(n: u32) -> Vec<f32> {
    let step = u32::MAX / n;
    let mut v: Vec<f32> = (0..n).map(|i| f32::from_bits(i.wrapping_mul(step).wrapping_add(i % 7))).collect();
    for b in [0x477f_e000u32, 0x477f_f000, 0x4780_0000, 0x3380_0000, 0x3300_0000, 0x3880_0000, 0x387f_c000, 0x7f7f_8000, 0x7f7f_7fff] {
        for d in 0..3u32 {
            v.push(f32::from_bits(b + d));
            v.push(f32::from_bits(b - d));
            v.push(-f32::from_bits(b + d));
        }
    }
    v
}

/// f16 and bf16 loads widen exactly and stores round to nearest even, as the `half` crate
/// does (which is exact): compared bit for bit, NaN as NaN.
#[test]
fn f16_and_bf16_conversions_are_exact() {
    use half::{bf16, f16};
    let xs = f32_patterns(1_000_000);
    let same16 = |a: f32, b: f32| (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits();
    let t = run_typed("Cast{to=10}", "f32", "f16", Tensor::from_vec(&[xs.len()], xs.clone()).unwrap(), true);
    let Tensor::F16(h) = t else { panic!("f16 output") };
    for (&x, &y) in xs.iter().zip(h.iter()) {
        assert!(same16(y.to_f32(), f16::from_f32(x).to_f32()), "f16({x:e}) = {y}, want {}", f16::from_f32(x));
    }
    let t = run_typed("Cast{to=16}", "f32", "bf16", Tensor::from_vec(&[xs.len()], xs.clone()).unwrap(), true);
    let Tensor::BF16(h) = t else { panic!("bf16 output") };
    for (&x, &y) in xs.iter().zip(h.iter()) {
        assert!(same16(y.to_f32(), bf16::from_f32(x).to_f32()), "bf16({x:e}) = {y}, want {}", bf16::from_f32(x));
    }
    // Every f16 and bf16 bit pattern widens exactly.
    let all: Vec<u16> = (0..=u16::MAX).collect();
    let hs: Vec<f16> = all.iter().map(|&b| f16::from_bits(b)).collect();
    let t = run_typed("Cast{to=1}", "f16", "f32", Tensor::from_vec(&[hs.len()], hs.clone()).unwrap(), false);
    for (h, y) in hs.iter().zip(t.to_f64_vec().unwrap()) {
        assert!(same16(y as f32, h.to_f32()), "f32(f16 {:#06x}) = {y:e}", h.to_bits());
    }
    let bs: Vec<bf16> = all.iter().map(|&b| bf16::from_bits(b)).collect();
    let t = run_typed("Cast{to=1}", "bf16", "f32", Tensor::from_vec(&[bs.len()], bs.clone()).unwrap(), false);
    for (h, y) in bs.iter().zip(t.to_f64_vec().unwrap()) {
        assert!(same16(y as f32, h.to_f32()), "f32(bf16 {:#06x}) = {y:e}", h.to_bits());
    }
    // f64 → f16 rounds once (through round-to-odd f32): the result is the nearest f16 (ties
    // to even). `half`'s from_f64 is not a usable reference here: it rounds twice (it gives
    // 0.21899414 for 0.2190551759851, just above the midpoint 0.219055175781).
    let ds: Vec<f64> = xs.iter().map(|&x| x as f64 * (1.0 + 2f64.powi(-30))).chain([65519.999999, 65520.0, 2f64.powi(-25) * 1.0000001]).collect();
    let t = run_typed("Cast{to=10}", "f64", "f16", Tensor::from_vec(&[ds.len()], ds.clone()).unwrap(), true);
    let Tensor::F16(h) = t else { panic!("f16 output") };
    for (&x, &y) in ds.iter().zip(h.iter()) {
        if x.is_nan() {
            assert!(y.is_nan(), "f16({x}) = {y}");
            continue;
        }
        if y.is_infinite() {
            assert!(x.abs() >= 65520.0 && y.is_sign_negative() == x.is_sign_negative(), "f16({x:e}) = {y}");
            continue;
        }
        let d = (y.to_f64() - x).abs();
        for nb in [y.to_bits().wrapping_add(1), y.to_bits().wrapping_sub(1)] {
            let n = f16::from_bits(nb);
            if n.is_nan() || (n.to_bits() ^ y.to_bits()) & 0x8000 != 0 {
                continue;
            }
            let dn = (n.to_f64() - x).abs();
            assert!(d < dn || (d == dn && y.to_bits() & 1 == 0), "f16({x:e}) = {y}, but {n} is nearer");
        }
    }
    // Arithmetic on f16 computes in f32 and rounds once at the store.
    let t = run_typed("Sigmoid", "f16", "f16", Tensor::from_vec(&[hs.len()], hs.clone()).unwrap(), false);
    let Tensor::F16(h) = t else { panic!("f16 output") };
    for (x, y) in hs.iter().zip(h.iter()) {
        let want = f16::from_f64(sigmoid(x.to_f64()));
        // 3 ulp of f32 below f16's half ulp: at most one f16 ulp off, in the rare near-tie.
        assert!((y.to_f64() - want.to_f64()).abs() <= (want.to_f64().abs() * 2f64.powi(-10)).max(2f64.powi(-24)) || (y.is_nan() && want.is_nan()), "sigmoid({x}) = {y}, want {want}");
    }
}
