//! The reduce family (ReduceSum, ReduceMean, ReduceMax, ReduceMin, ReduceProd, ReduceL1,
//! ReduceL2, ReduceLogSum, ReduceLogSumExp, ReduceSumSquare): one reduction over the axes
//! ([`super::reduction`]). On bool, max is `any` and min is `all`.

use anyhow::{Result, bail};
use neoc_runtime::abi::MathOp;

use super::Lw;
use super::reduction::{highest, lowest, space};
use crate::kernel_ir::{Access, BinOp, Expr, Lit, Loop, Step, UnOp};
use crate::ir::ops::reduce::{Plan, Reduce, ReduceKind};
use crate::ir::{NodeId, OpImpl};
use crate::tensor::DType;

pub(super) fn lower(lw: &mut Lw, id: NodeId, r: &Reduce) -> Result<()> {
    let x = lw.input(id, 0)?;
    let xt = lw.ty(x).clone();
    let axes = lw.const_ints(id, 1, "axes")?;
    let t = xt.dtype;
    let (axes, _) = match r.plan(&xt.shape, axes)? {
        Plan::Identity => return lw.alias(id, 0, x),
        Plan::Reduce { axes, out_shape } => (axes, out_shape),
    };
    let sp = space(&xt.shape, &axes);
    let xm = lw.mem(x)?;
    let v = sp.load(xm, t);
    let float = t.is_float();
    let need_float = |what: &str| -> Result<()> {
        if !float {
            bail!("{what} on {} is not supported by the {backend} backend", t.name(), backend = lw.caps.backend);
        }
        Ok(())
    };
    let zero = Lit::of(t, 0.0);
    let sq = |v: Expr| Expr::bin(BinOp::Mul, v.clone(), v);
    // Bool: max is `any` and min is `all` (the empty set gives false and true).
    if t == DType::Bool {
        let (init, combine) = match r.kind {
            ReduceKind::Max => (Lit::Int(0, t), BinOp::Or),
            ReduceKind::Min => (Lit::Int(1, t), BinOp::And),
            _ => bail!("{} of bool is not supported by the {backend} backend", r.name(), backend = lw.caps.backend),
        };
        let out = lw.out(id, 0);
        lw.push(sp.step(t, init, combine, v, Expr::Acc, out, t));
        return Ok(());
    }
    let (init, combine, value, finish) = match r.kind {
        ReduceKind::Sum => (zero, BinOp::Add, v, Expr::Acc),
        ReduceKind::Mean => (zero, BinOp::Add, v, Expr::bin(BinOp::Div, Expr::Acc, Expr::Lit(Lit::of(t, sp.count as f64)))),
        ReduceKind::Max => (lowest(t), BinOp::Max, v, Expr::Acc),
        ReduceKind::Min => (highest(t), BinOp::Min, v, Expr::Acc),
        ReduceKind::Prod => (Lit::of(t, 1.0), BinOp::Mul, v, Expr::Acc),
        ReduceKind::L1 => (zero, BinOp::Add, Expr::un(UnOp::Abs, v), Expr::Acc),
        ReduceKind::L2 => {
            need_float("ReduceL2")?;
            (zero, BinOp::Add, sq(v), Expr::un(UnOp::Sqrt, Expr::Acc))
        }
        ReduceKind::SumSquare => (zero, BinOp::Add, sq(v), Expr::Acc),
        ReduceKind::LogSum => {
            need_float("ReduceLogSum")?;
            (zero, BinOp::Add, v, Expr::math(MathOp::Log, Expr::Acc))
        }
        ReduceKind::LogSumExp => {
            need_float("ReduceLogSumExp")?;
            // log(Σ exp(x − m)) + m with m the max, so exp cannot overflow (x = 124 gave
            // +inf); m is taken as 0 where it is ±inf or NaN (m − m is NaN), where the
            // shift itself would make a NaN, so those lines give what the plain sum gives.
            let tmax = sp.stat_temp(lw, t);
            lw.push(sp.step(t, lowest(t), BinOp::Max, sp.load(xm, t), Expr::Acc, tmax, t));
            let shift = |m: Expr| Expr::select(Expr::un(UnOp::IsNaN, Expr::bin(BinOp::Sub, m.clone(), m.clone())), Expr::Lit(zero), m);
            let out = lw.out(id, 0);
            let shifted = Expr::bin(BinOp::Sub, v, shift(sp.stat(tmax, t)));
            lw.push(sp.step(t, zero, BinOp::Add, Expr::math(MathOp::Exp, shifted), Expr::math(MathOp::Log, Expr::Acc), out, t));
            let at = |mem| Expr::Load(Access::dense(mem, t, &sp.kept));
            let value = Expr::bin(BinOp::Add, at(out), shift(at(tmax)));
            lw.push(Step::Loop(Loop { dims: sp.kept.clone(), out: Access::dense(out, t, &sp.kept), value }));
            return Ok(());
        }
    };
    let out = lw.out(id, 0);
    lw.push(sp.step(t, init, combine, value, finish, out, t));
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::lower::test_util::run_both;
    use crate::ir::parse::parse_graph;
    use crate::tensor::Tensor;

    /// Bool ReduceMax ("any") and ReduceMin ("all") against the reference evaluator, over
    /// each axis, all axes and the empty set (false for max, true for min): exact.
    #[test]
    fn bool_max_and_min_match_the_reference() {
        let x = Tensor::from_vec(&[3, 2], vec![true, false, false, false, true, true]).unwrap();
        let empty = Tensor::from_vec(&[2, 0], Vec::<bool>::new()).unwrap();
        for op in ["ReduceMax", "ReduceMin"] {
            for (axes, out, input) in [("{0}", "[1,2]", &x), ("{1}", "[3,1]", &x), ("{0,1}", "[1,1]", &x), ("{1}", "[2,1]", &empty)] {
                let ty = format!("bool{:?}", input.shape()).replace(' ', "");
                let text = format!(
                    "graph(%x: {ty}) {{\n  %a = const i64[{}]{axes}\n  %y = {op}{{keepdims=1}}(%x, %a) : bool{out}\n  return %y\n}}",
                    axes.matches(',').count() + 1
                );
                let g = parse_graph(&text).expect("parses");
                let want = crate::eval::run(&g, std::slice::from_ref(input)).expect("reference");
                let got = crate::driver::compile_and_run(&g, std::slice::from_ref(input), &Default::default()).expect("compiles and runs");
                assert_eq!(got, want, "{text}");
            }
        }
    }

    /// f32 ReduceMax/Min/Sum over the last axis run on four lanes plus a scalar tail (13 =
    /// 3·4 + 1). Max and min are exact, NaN propagating wherever the NaN sits (a lane, the
    /// tail, or nowhere) and ±inf kept; the sum adds in another order: every value is a
    /// multiple of 1/8 below 16, so every partial sum is exact in f32 and it is exact too.
    #[test]
    fn f32_reductions_on_lanes_match_the_reference() {
        let mut x: Vec<f32> = (0..5 * 13).map(|v| ((v * 29) % 41) as f32 * 0.125 - 2.5).collect();
        x[13 + 2] = f32::NAN; // row 1: in a lane
        x[2 * 13 + 12] = f32::NAN; // row 2: in the tail
        x[3 * 13 + 5] = f32::INFINITY;
        x[3 * 13 + 9] = f32::NEG_INFINITY; // row 3: both infinities (sum NaN)
        x[4 * 13 + 7] = f32::NEG_INFINITY;
        let x = Tensor::from_vec(&[5, 13], x).unwrap();
        for op in ["ReduceMax", "ReduceMin", "ReduceSum"] {
            let text = format!("graph(%x: f32[5,13]) {{\n  %a = const i64[1]{{1}}\n  %y = {op}{{keepdims=0}}(%x, %a) : f32[5]\n  return %y\n}}");
            let (got, want) = run_both(&text, std::slice::from_ref(&x));
            let (g, w) = (got[0].to_f64_vec().unwrap(), want[0].to_f64_vec().unwrap());
            for (a, b) in g.iter().zip(&w) {
                assert!(a == b || a.is_nan() && b.is_nan(), "{op}: {g:?} vs {w:?}");
            }
        }
    }
}
