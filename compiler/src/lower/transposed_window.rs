//! The tap arithmetic of the scatter-shaped window ops (ConvTranspose, Col2Im, MaxUnpool),
//! which are lowered as gathers.
//!
//! Each of these ops adds (or writes) every input element into the output positions its
//! window covers. The kernel language has no scatter store, so every output position instead
//! gathers the inputs that reach it: along a spatial axis with stride `s`, dilation `d` and
//! begin pad `p`, output position `o` receives tap `k` of input position
//! `i = (o + p - k·d) / s` when that division is exact and `0 <= i < n`. The reductions run
//! over the taps (and, for ConvTranspose, the input channels of the group), so the work is
//! the op's own (times the stride product for the skipped taps), never quadratic in the
//! image.

use crate::kernel_ir::build::{add, and, int};
use crate::kernel_ir::{BinOp, Expr};

/// `a·b` (`a` itself when `b` is 1).
pub(super) fn mul(a: Expr, b: i64) -> Expr {
    if b == 1 { a } else { Expr::bin(BinOp::Mul, a, int(b)) }
}

/// Σ terms (0 when empty).
pub(super) fn sum(terms: impl IntoIterator<Item = Expr>) -> Expr {
    terms.into_iter().reduce(add).unwrap_or(int(0))
}

/// One spatial axis of a transposed window: output position `o` and tap `k` (loop index
/// expressions) read input position `(o + pad - k·dil) / stride` of an axis of `n`.
/// Returns (valid, input position); the position is only meaningful when valid.
pub(super) fn transposed_axis(o: Expr, k: Expr, pad: i64, dil: i64, stride: i64, n: i64) -> (Expr, Expr) {
    let num = add(add(o, int(pad)), Expr::bin(BinOp::Mul, k, int(-dil)));
    let mut valid = and(Expr::bin(BinOp::Ge, num.clone(), int(0)), Expr::bin(BinOp::Lt, num.clone(), int(n * stride)));
    if stride != 1 {
        valid = and(valid, Expr::bin(BinOp::Eq, Expr::bin(BinOp::FloorMod, num.clone(), int(stride)), int(0)));
    }
    let pos = if stride == 1 { num } else { Expr::bin(BinOp::Div, num, int(stride)) };
    (valid, pos)
}
