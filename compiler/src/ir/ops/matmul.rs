//! Matrix products: MatMul, Gemm, Einsum.
//!
//! - MatMul: <https://onnx.ai/onnx/operators/onnx__MatMul.html>. Numpy `matmul` semantics:
//!   1-D operands get a dimension prepended (A) or appended (B) that is removed again, batch
//!   dimensions broadcast. Opset 1; 9 adds integer types; 13 bfloat16. No semantic change.
//! - Gemm: <https://onnx.ai/onnx/operators/onnx__Gemm.html>. `Y = alpha * A' * B' + beta * C`.
//!   Opsets 1 and 6 carry a `broadcast` attribute (0: C must have the output's shape);
//!   opset 7 makes C unidirectionally broadcastable; opset 11 makes C optional; 13 bf16.
//! - Einsum: <https://onnx.ai/onnx/operators/onnx__Einsum.html>. Opset 12. Implicit and
//!   explicit output, repeated indices (diagonals), ellipsis broadcasting, summation.
//!
//! Floats accumulate in `f64` and are rounded once; integers accumulate in wrapping `i64`
//! arithmetic, which equals numpy's wrapping arithmetic in the output type.

use crate::ir::shape::broadcast;
use crate::ir::{Attr, Attrs, EvalInputs, InferCx, Importer, NodeCtx, Op, OpImpl, ValueType};
use crate::tensor::{ArrayD, DType, IxDyn, Tensor};
use anyhow::{Result, bail};

#[derive(Clone, Debug, PartialEq)]
pub enum MatMul {
    MatMul,
    Gemm { alpha: f32, beta: f32, trans_a: bool, trans_b: bool },
    /// The equation with whitespace removed (parsed again where it is used).
    Einsum { equation: String },
}

fn import_matmul(_ctx: &mut NodeCtx) -> Result<Op> {
    Ok(MatMul::MatMul.into())
}

fn import_gemm(ctx: &mut NodeCtx) -> Result<Op> {
    let alpha = ctx.float("alpha", 1.0)?;
    let beta = ctx.float("beta", 1.0)?;
    let trans_a = ctx.int("transA", 0)? != 0;
    let trans_b = ctx.int("transB", 0)? != 0;
    if ctx.opset < 7 {
        // broadcast = 0: C must already have the output's shape; with that checked the
        // broadcasting form computes the same thing.
        if ctx.int("broadcast", 0)? == 0
            && let (Some(a), Some(b), Some(c)) = (ctx.input(0), ctx.input(1), ctx.input(2))
        {
            let (a, b, c) = (a.ty(), b.ty(), c.ty());
            if a.rank() == 2 && b.rank() == 2 {
                let m = if trans_a { a.shape[1] } else { a.shape[0] };
                let n = if trans_b { b.shape[0] } else { b.shape[1] };
                if c.shape != [m, n] {
                    bail!("Gemm with broadcast=0: C has shape {:?}, expected [{m}, {n}]", c.shape);
                }
            }
        }
    }
    Ok(MatMul::Gemm { alpha, beta, trans_a, trans_b }.into())
}

fn import_einsum(ctx: &mut NodeCtx) -> Result<Op> {
    let eq = ctx.opt_string("equation")?.ok_or_else(|| anyhow::anyhow!("Einsum needs an 'equation'"))?;
    let equation: String = eq.chars().filter(|c| !c.is_whitespace()).collect();
    parse_equation(&equation)?;
    Ok(MatMul::Einsum { equation }.into())
}

pub const IMPORTERS: &[Importer] = &[
    Importer { op_type: "MatMul", domain: "", since: 1, build: import_matmul },
    Importer { op_type: "Gemm", domain: "", since: 1, build: import_gemm },
    Importer { op_type: "Einsum", domain: "", since: 12, build: import_einsum },
    Importer { op_type: "Einsum", domain: "", since: 28, build: import_einsum },
];

impl OpImpl for MatMul {
    fn name(&self) -> &'static str {
        match self {
            MatMul::MatMul => "MatMul",
            MatMul::Gemm { .. } => "Gemm",
            MatMul::Einsum { .. } => "Einsum",
        }
    }

    fn attrs(&self) -> Attrs {
        let mut a = Attrs::new();
        match self {
            MatMul::MatMul => {}
            MatMul::Gemm { alpha, beta, trans_a, trans_b } => {
                a.insert("alpha".into(), Attr::Float(*alpha));
                a.insert("beta".into(), Attr::Float(*beta));
                a.insert("transA".into(), Attr::Int(*trans_a as i64));
                a.insert("transB".into(), Attr::Int(*trans_b as i64));
            }
            MatMul::Einsum { equation } => {
                a.insert("equation".into(), Attr::Str(equation.clone()));
            }
        }
        a
    }

    fn infer(&self, cx: &InferCx) -> Result<Vec<ValueType>> {
        match self {
            MatMul::MatMul => {
                let (a, b) = (cx.ty(0)?, cx.ty(1)?);
                check_dtypes("MatMul", &[a.dtype, b.dtype])?;
                Ok(vec![ValueType::new(a.dtype, matmul_shape(&a.shape, &b.shape)?.0)])
            }
            MatMul::Gemm { trans_a, trans_b, .. } => {
                let (a, b) = (cx.ty(0)?, cx.ty(1)?);
                let mut dts = vec![a.dtype, b.dtype];
                let c = cx.opt_ty(2);
                if let Some(c) = c {
                    dts.push(c.dtype);
                }
                check_dtypes("Gemm", &dts)?;
                let (m, _, n) = gemm_dims(&a.shape, &b.shape, *trans_a, *trans_b)?;
                if let Some(c) = c {
                    check_gemm_c(&c.shape, m, n)?;
                }
                Ok(vec![ValueType::new(a.dtype, vec![m, n])])
            }
            MatMul::Einsum { equation } => {
                let eq = parse_equation(equation)?;
                let tys: Vec<&ValueType> = (0..cx.n_inputs()).map(|i| cx.ty(i)).collect::<Result<_>>()?;
                let dts: Vec<DType> = tys.iter().map(|t| t.dtype).collect();
                check_dtypes("Einsum", &dts)?;
                let shapes: Vec<&[usize]> = tys.iter().map(|t| t.shape.as_slice()).collect();
                let plan = eq.bind(&shapes)?;
                Ok(vec![ValueType::new(dts[0], plan.out_shape())])
            }
        }
    }

    fn eval(&self, inputs: &EvalInputs) -> Result<Vec<Tensor>> {
        match self {
            MatMul::MatMul => {
                let (a, b) = (inputs.req(0)?, inputs.req(1)?);
                check_dtypes("MatMul", &[a.dtype(), b.dtype()])?;
                let out = if a.dtype().is_float() { matmul::<f64>(a, b)? } else { matmul::<i64>(a, b)? };
                Ok(vec![out])
            }
            MatMul::Gemm { alpha, beta, trans_a, trans_b } => {
                let (a, b, c) = (inputs.req(0)?, inputs.req(1)?, inputs.opt(2));
                let mut dts = vec![a.dtype(), b.dtype()];
                dts.extend(c.map(|c| c.dtype()));
                check_dtypes("Gemm", &dts)?;
                let args = (a, b, c, *alpha as f64, *beta as f64, *trans_a, *trans_b);
                let out = if a.dtype().is_float() { gemm::<f64>(args)? } else { gemm::<i64>(args)? };
                Ok(vec![out])
            }
            MatMul::Einsum { equation } => {
                let eq = parse_equation(equation)?;
                let ts: Vec<&Tensor> = (0..inputs.len()).map(|i| inputs.req(i)).collect::<Result<_>>()?;
                let dts: Vec<DType> = ts.iter().map(|t| t.dtype()).collect();
                check_dtypes("Einsum", &dts)?;
                let out = if dts[0].is_float() { einsum::<f64>(&eq, &ts)? } else { einsum::<i64>(&eq, &ts)? };
                Ok(vec![out])
            }
        }
    }
}

/// All operands must share one numeric (non-8-bit-float) dtype.
fn check_dtypes(op: &str, dts: &[DType]) -> Result<()> {
    let Some(&d) = dts.first() else { bail!("{op} needs at least one input") };
    if let Some(o) = dts.iter().find(|&&o| o != d) {
        bail!("{op}: inputs have different dtypes ({d} and {o})");
    }
    if !d.is_numeric() || d.is_low() {
        bail!("{op}: dtype {d} is not supported");
    }
    Ok(())
}

/// The accumulator type: `f64` for floats, wrapping `i64` for integers.
trait Acc: Copy + Default {
    fn load(t: &Tensor) -> Result<Vec<Self>>;
    fn store(dtype: DType, shape: &[usize], v: Vec<Self>) -> Result<Tensor>;
    fn add(self, o: Self) -> Self;
    fn mul(self, o: Self) -> Self;
    fn one() -> Self;
    fn to_f64(self) -> f64;
    fn from_f64(v: f64) -> Self;
}

impl Acc for f64 {
    fn load(t: &Tensor) -> Result<Vec<f64>> {
        super::conv::spatial::load_f64(t)
    }
    fn store(dtype: DType, shape: &[usize], v: Vec<f64>) -> Result<Tensor> {
        Tensor::from_f64_array(dtype, ArrayD::from_shape_vec(IxDyn(shape), v)?)
    }
    fn add(self, o: f64) -> f64 {
        self + o
    }
    fn mul(self, o: f64) -> f64 {
        self * o
    }
    fn one() -> f64 {
        1.0
    }
    fn to_f64(self) -> f64 {
        self
    }
    fn from_f64(v: f64) -> f64 {
        v
    }
}

impl Acc for i64 {
    fn load(t: &Tensor) -> Result<Vec<i64>> {
        super::conv::spatial::load_i64(t)
    }
    fn store(dtype: DType, shape: &[usize], v: Vec<i64>) -> Result<Tensor> {
        Tensor::from_vec(shape, v)?.cast(dtype)
    }
    fn add(self, o: i64) -> i64 {
        self.wrapping_add(o)
    }
    fn mul(self, o: i64) -> i64 {
        self.wrapping_mul(o)
    }
    fn one() -> i64 {
        1
    }
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn from_f64(v: f64) -> i64 {
        v as i64
    }
}

/// The output shape of numpy `matmul`, and the operands' shapes as (batch, m, k) / (batch, k, n).
#[allow(clippy::type_complexity)]
fn matmul_shape(a: &[usize], b: &[usize]) -> Result<(Vec<usize>, [usize; 3], [usize; 3], Vec<usize>)> {
    if a.is_empty() || b.is_empty() {
        bail!("MatMul: operands must have rank >= 1, got shapes {a:?} and {b:?}");
    }
    let a2: Vec<usize> = if a.len() == 1 { vec![1, a[0]] } else { a.to_vec() };
    let b2: Vec<usize> = if b.len() == 1 { vec![b[0], 1] } else { b.to_vec() };
    let (ab, am) = a2.split_at(a2.len() - 2);
    let (bb, bm) = b2.split_at(b2.len() - 2);
    if am[1] != bm[0] {
        bail!("MatMul: inner dimensions differ for shapes {a:?} and {b:?}");
    }
    let batch = broadcast(ab, bb).map_err(|e| anyhow::anyhow!("MatMul: {e}"))?;
    let mut out = batch.clone();
    if a.len() > 1 {
        out.push(am[0]);
    }
    if b.len() > 1 {
        out.push(bm[1]);
    }
    Ok((out, [0, am[0], am[1]], [0, bm[0], bm[1]], batch))
}

/// Row-major strides of `shape` seen as broadcast to `to` (0 where it broadcasts).
fn bcast_strides(shape: &[usize], to: &[usize]) -> Vec<usize> {
    let mut s = vec![0; to.len()];
    let mut acc = 1;
    for i in (0..shape.len()).rev() {
        let j = to.len() - shape.len() + i;
        s[j] = if shape[i] == 1 { 0 } else { acc };
        acc *= shape[i];
    }
    s
}

fn matmul<A: Acc>(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let (out_shape, [_, m, k], [_, _, n], batch) = matmul_shape(a.shape(), b.shape())?;
    let (av, bv) = (A::load(a)?, A::load(b)?);
    let ab = &a.shape()[..a.rank().saturating_sub(2)];
    let bb = &b.shape()[..b.rank().saturating_sub(2)];
    let (sa, sb) = (bcast_strides(ab, &batch), bcast_strides(bb, &batch));
    let nb: usize = batch.iter().product();
    let mut out = vec![A::default(); nb * m * n];
    let mut idx = vec![0usize; batch.len()];
    for bi in 0..nb {
        let ao: usize = idx.iter().zip(&sa).map(|(i, s)| i * s).sum::<usize>() * m * k;
        let bo: usize = idx.iter().zip(&sb).map(|(i, s)| i * s).sum::<usize>() * k * n;
        let o = &mut out[bi * m * n..(bi + 1) * m * n];
        matmul_block(&av[ao..ao + m * k], &bv[bo..bo + k * n], m, k, n, o);
        for d in (0..idx.len()).rev() {
            idx[d] += 1;
            if idx[d] < batch[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    A::store(a.dtype(), &out_shape, out)
}

/// `out += a * b` for row-major `a` (m x k) and `b` (k x n).
fn matmul_block<A: Acc>(a: &[A], b: &[A], m: usize, k: usize, n: usize, out: &mut [A]) {
    for i in 0..m {
        let row = &mut out[i * n..(i + 1) * n];
        for p in 0..k {
            let x = a[i * k + p];
            for (r, &y) in row.iter_mut().zip(&b[p * n..(p + 1) * n]) {
                *r = r.add(x.mul(y));
            }
        }
    }
}

/// The transpose of a row-major `rows` x `cols` matrix.
fn transpose<A: Acc>(v: &[A], rows: usize, cols: usize) -> Vec<A> {
    let mut t = Vec::with_capacity(v.len());
    for c in 0..cols {
        t.extend((0..rows).map(|r| v[r * cols + c]));
    }
    t
}

/// (M, K, N) of a Gemm, checking that A and B are matrices with matching inner dimensions.
fn gemm_dims(a: &[usize], b: &[usize], ta: bool, tb: bool) -> Result<(usize, usize, usize)> {
    if a.len() != 2 || b.len() != 2 {
        bail!("Gemm: A and B must be matrices, got shapes {a:?} and {b:?}");
    }
    let (m, k) = if ta { (a[1], a[0]) } else { (a[0], a[1]) };
    let (kb, n) = if tb { (b[1], b[0]) } else { (b[0], b[1]) };
    if k != kb {
        bail!("Gemm: inner dimensions differ (A {a:?} transA={ta}, B {b:?} transB={tb})");
    }
    Ok((m, k, n))
}

fn check_gemm_c(c: &[usize], m: usize, n: usize) -> Result<()> {
    match broadcast(c, &[m, n]) {
        Ok(s) if s == [m, n] => Ok(()),
        _ => bail!("Gemm: C of shape {c:?} does not broadcast to [{m}, {n}]"),
    }
}

type GemmArgs<'a> = (&'a Tensor, &'a Tensor, Option<&'a Tensor>, f64, f64, bool, bool);

fn gemm<A: Acc>((a, b, c, alpha, beta, ta, tb): GemmArgs) -> Result<Tensor> {
    let (m, k, n) = gemm_dims(a.shape(), b.shape(), ta, tb)?;
    // A' as m x k, row-major; B' as k x n, or B as n x k when transposed (rows of B are then
    // the columns of B', so every output is a dot product of two contiguous rows).
    let (av, bv) = (A::load(a)?, A::load(b)?);
    let av = if ta { transpose(&av, k, m) } else { av };
    let mut out = vec![A::default(); m * n];
    if tb {
        for i in 0..m {
            let arow = &av[i * k..(i + 1) * k];
            for j in 0..n {
                out[i * n + j] = arow.iter().zip(&bv[j * k..(j + 1) * k]).fold(A::default(), |s, (&x, &y)| s.add(x.mul(y)));
            }
        }
    } else {
        matmul_block(&av, &bv, m, k, n, &mut out);
    }
    // The reference skips C entirely when beta is 0.
    let c = match c {
        Some(c) if beta != 0.0 => {
            check_gemm_c(c.shape(), m, n)?;
            let cs = bcast_strides(c.shape(), &[m, n]);
            Some((A::load(c)?, cs))
        }
        _ => None,
    };
    // Exact arithmetic when no scaling is needed (keeps integers exact), otherwise via f64.
    let exact = alpha == 1.0 && (c.is_none() || beta == 1.0);
    for i in 0..m {
        for j in 0..n {
            let y = &mut out[i * n + j];
            let cv = c.as_ref().map(|(cv, cs)| cv[i * cs[0] + j * cs[1]]);
            *y = match (exact, cv) {
                (true, None) => *y,
                (true, Some(cv)) => y.add(cv),
                (false, cv) => A::from_f64(alpha * y.to_f64() + cv.map_or(0.0, |cv| beta * cv.to_f64())),
            };
        }
    }
    A::store(a.dtype(), &[m, n], out)
}

/// One subscript of an Einsum term.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Label {
    Char(u8),
    Ellipsis,
}

#[derive(Debug)]
pub(crate) struct Equation {
    inputs: Vec<Vec<Label>>,
    output: Vec<Label>,
}

fn parse_term(term: &str) -> Result<Vec<Label>> {
    let bytes = term.as_bytes();
    let mut out = vec![];
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            c if c.is_ascii_alphabetic() => {
                out.push(Label::Char(c));
                i += 1;
            }
            b'.' if bytes[i..].starts_with(b"...") => {
                if out.contains(&Label::Ellipsis) {
                    bail!("Einsum: term '{term}' has more than one ellipsis");
                }
                out.push(Label::Ellipsis);
                i += 3;
            }
            _ => bail!("Einsum: invalid subscript in term '{term}'"),
        }
    }
    Ok(out)
}

pub(crate) fn parse_equation(eq: &str) -> Result<Equation> {
    let (lhs, rhs) = match eq.split_once("->") {
        Some((l, r)) => (l, Some(r)),
        None => (eq, None),
    };
    let inputs: Vec<Vec<Label>> = lhs.split(',').map(parse_term).collect::<Result<_>>()?;
    let output = match rhs {
        Some(r) => {
            let out = parse_term(r)?;
            for (i, l) in out.iter().enumerate() {
                if out[..i].contains(l) {
                    bail!("Einsum: output subscript {l:?} repeats in '{eq}'");
                }
                if let Label::Char(_) = l
                    && !inputs.iter().any(|t| t.contains(l))
                {
                    bail!("Einsum: output subscript {l:?} does not appear in an input of '{eq}'");
                }
            }
            out
        }
        None => {
            // Implicit: the ellipsis first, then the letters that appear once, in code order.
            let mut out = vec![];
            if inputs.iter().any(|t| t.contains(&Label::Ellipsis)) {
                out.push(Label::Ellipsis);
            }
            let mut letters: Vec<u8> = inputs.iter().flatten().filter_map(|l| match l {
                Label::Char(c) => Some(*c),
                Label::Ellipsis => None,
            }).collect();
            letters.sort_unstable();
            for (i, &c) in letters.iter().enumerate() {
                let once = (i == 0 || letters[i - 1] != c) && letters.get(i + 1) != Some(&c);
                if once {
                    out.push(Label::Char(c));
                }
            }
            out
        }
    };
    Ok(Equation { inputs, output })
}

/// An Einsum bound to operand shapes: loop variables (output ones first) with their sizes,
/// and for each operand the stride of each variable (0 where it is absent or broadcast).
pub(crate) struct Plan {
    pub(crate) sizes: Vec<usize>,
    pub(crate) n_out: usize,
    pub(crate) strides: Vec<Vec<usize>>,
}

impl Plan {
    pub(crate) fn out_shape(&self) -> Vec<usize> {
        self.sizes[..self.n_out].to_vec()
    }
}

impl Equation {
    pub(crate) fn bind(&self, shapes: &[&[usize]]) -> Result<Plan> {
        if shapes.len() != self.inputs.len() {
            bail!("Einsum: the equation has {} operands but {} inputs were given", self.inputs.len(), shapes.len());
        }
        // Ellipsis dims of each operand, broadcast together (right-aligned).
        let mut ell_shape: Vec<usize> = vec![];
        let mut ell_ranks = vec![];
        for (term, shape) in self.inputs.iter().zip(shapes) {
            let letters = term.iter().filter(|l| **l != Label::Ellipsis).count();
            let has_ell = term.contains(&Label::Ellipsis);
            if shape.len() < letters || (!has_ell && shape.len() != letters) {
                bail!("Einsum: operand of shape {shape:?} does not match its subscripts ({} letters)", letters);
            }
            let er = shape.len() - letters;
            let pos = term.iter().position(|l| *l == Label::Ellipsis).unwrap_or(0);
            ell_shape = broadcast(&ell_shape, &shape[pos..pos + er]).map_err(|e| anyhow::anyhow!("Einsum: {e}"))?;
            ell_ranks.push(er);
        }
        // Variables: output labels first, then summed letters, then summed ellipsis dims.
        let mut vars: Vec<Label> = vec![];
        let mut sizes: Vec<usize> = vec![];
        let e = ell_shape.len();
        // Variable index of ellipsis dim j is ell_var + j.
        let mut ell_var = None;
        let push_label = |l: Label, vars: &mut Vec<Label>, sizes: &mut Vec<usize>, ell_var: &mut Option<usize>| match l {
            Label::Ellipsis => {
                *ell_var = Some(vars.len());
                for &d in &ell_shape {
                    vars.push(Label::Ellipsis);
                    sizes.push(d);
                }
            }
            c => {
                vars.push(c);
                sizes.push(1);
            }
        };
        for &l in &self.output {
            push_label(l, &mut vars, &mut sizes, &mut ell_var);
        }
        let n_out = vars.len();
        let mut summed: Vec<Label> = self.inputs.iter().flatten().copied().filter(|l| !vars.contains(l)).collect();
        summed.sort_by_key(|l| match l {
            Label::Char(c) => *c as u16,
            Label::Ellipsis => 1000,
        });
        summed.dedup();
        for l in summed {
            push_label(l, &mut vars, &mut sizes, &mut ell_var);
        }
        // Letter sizes: equal across occurrences, or 1 (broadcast).
        let mut strides = vec![];
        for ((term, shape), &er) in self.inputs.iter().zip(shapes).zip(&ell_ranks) {
            let mut dims: Vec<(usize, usize)> = vec![]; // (variable, dim size) per axis
            for l in term {
                match l {
                    Label::Ellipsis => {
                        let base = ell_var.unwrap_or(0) + e - er;
                        for j in 0..er {
                            dims.push((base + j, 0));
                        }
                    }
                    c => dims.push((vars.iter().position(|v| v == c).unwrap_or(0), 0)),
                }
            }
            for (d, s) in dims.iter_mut().zip(shape.iter()) {
                d.1 = *s;
            }
            let mut st = vec![0usize; vars.len()];
            let mut acc = 1;
            for &(v, d) in dims.iter().rev() {
                if vars[v] != Label::Ellipsis {
                    if sizes[v] == 1 {
                        sizes[v] = d;
                    } else if d != 1 && d != sizes[v] {
                        bail!("Einsum: subscript {:?} has sizes {} and {d}", vars[v], sizes[v]);
                    }
                }
                if d != 1 {
                    st[v] += acc;
                }
                acc *= d;
            }
            strides.push(st);
        }
        Ok(Plan { sizes, n_out, strides })
    }
}

fn einsum<A: Acc>(eq: &Equation, ts: &[&Tensor]) -> Result<Tensor> {
    let shapes: Vec<&[usize]> = ts.iter().map(|t| t.shape()).collect();
    let plan = eq.bind(&shapes)?;
    let data: Vec<Vec<A>> = ts.iter().map(|t| A::load(t)).collect::<Result<_>>()?;
    let out_shape = plan.out_shape();
    let n_out: usize = out_shape.iter().product();
    let total: usize = plan.sizes.iter().product();
    let inner: usize = plan.sizes[plan.n_out..].iter().product();
    let mut out = vec![A::default(); n_out];
    let nv = plan.sizes.len();
    let mut idx = vec![0usize; nv];
    let mut offs = vec![0usize; ts.len()];
    for flat in 0..total {
        let mut p = A::one();
        for (d, &o) in data.iter().zip(&offs) {
            p = p.mul(d[o]);
        }
        let oi = flat / inner;
        out[oi] = out[oi].add(p);
        // Advance the odometer, keeping every operand's offset in step.
        for v in (0..nv).rev() {
            idx[v] += 1;
            for (o, st) in offs.iter_mut().zip(&plan.strides) {
                *o += st[v];
            }
            if idx[v] < plan.sizes[v] {
                break;
            }
            for (o, st) in offs.iter_mut().zip(&plan.strides) {
                *o -= st[v] * idx[v];
            }
            idx[v] = 0;
        }
    }
    A::store(ts[0].dtype(), &out_shape, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::NodeInput;
    use crate::ir::ops::{build, rebuild};

    fn t32(shape: &[usize], v: Vec<f32>) -> Tensor {
        Tensor::from_vec(shape, v).unwrap()
    }

    fn run(op: &MatMul, ins: &[&Tensor]) -> Tensor {
        let opts: Vec<Option<&Tensor>> = ins.iter().map(|t| Some(*t)).collect();
        let out = op.eval(&EvalInputs { inputs: &opts, n_outputs: 1 }).unwrap();
        let tys: Vec<Option<(ValueType, Option<&crate::ir::Constant>)>> = ins.iter().map(|t| Some((ValueType::of(t), None))).collect();
        let inf = op.infer(&InferCx { inputs: &tys, n_outputs: 1 }).unwrap();
        assert_eq!(inf[0], ValueType::of(&out[0]));
        out.into_iter().next().unwrap()
    }

    fn import(op_type: &str, opset: i64, attrs: Attrs, ins: &[&Tensor]) -> Result<MatMul> {
        let inputs = ins.iter().map(|t| Some(NodeInput::Const((*t).clone()))).collect();
        match build(op_type, "", opset, "n", &attrs, inputs, 1)?.0 {
            Op::MatMul(m) => Ok(m),
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn round_trip() {
        let ops = [
            MatMul::MatMul,
            MatMul::Gemm { alpha: 0.5, beta: 2.0, trans_a: true, trans_b: false },
            MatMul::Einsum { equation: "...ij,jk->...ik".into() },
        ];
        for op in ops {
            let op: Op = op.into();
            assert_eq!(rebuild(&op, vec![], 1).unwrap(), op);
        }
    }

    #[test]
    fn matmul_shapes_and_values() {
        let a = t32(&[2, 3], vec![1., 2., 3., 4., 5., 6.]);
        let b = t32(&[3, 2], vec![7., 8., 9., 10., 11., 12.]);
        assert_eq!(run(&MatMul::MatMul, &[&a, &b]), t32(&[2, 2], vec![58., 64., 139., 154.]));
        let v = t32(&[3], vec![1., 0., -1.]);
        assert_eq!(run(&MatMul::MatMul, &[&a, &v]), t32(&[2], vec![-2., -2.]));
        assert_eq!(run(&MatMul::MatMul, &[&v, &v]), t32(&[], vec![2.]));
        let bb = t32(&[2, 1, 3, 2], (0..12).map(|x| x as f32).collect());
        let out = run(&MatMul::MatMul, &[&a, &bb]);
        assert_eq!(out.shape(), &[2, 1, 2, 2]);
        assert!(MatMul::MatMul.eval(&EvalInputs { inputs: &[Some(&a), Some(&a)], n_outputs: 1 }).is_err());
    }

    #[test]
    fn matmul_integers_wrap() {
        let a = Tensor::from_vec(&[1, 2], vec![i32::MAX, 1]).unwrap();
        let b = Tensor::from_vec(&[2, 1], vec![2i32, 3]).unwrap();
        assert_eq!(run(&MatMul::MatMul, &[&a, &b]), Tensor::from_vec(&[1, 1], vec![i32::MAX.wrapping_mul(2).wrapping_add(3)]).unwrap());
    }

    #[test]
    fn gemm_attributes() {
        let a = t32(&[3, 2], vec![1., 2., 3., 4., 5., 6.]); // transposed: 2x3
        let b = t32(&[2, 3], vec![1., 0., 0., 0., 1., 0.]); // transposed: 3x2
        let c = t32(&[1], vec![10.]);
        let mut at = Attrs::new();
        at.insert("transA".into(), Attr::Int(1));
        at.insert("transB".into(), Attr::Int(1));
        at.insert("alpha".into(), Attr::Float(2.0));
        at.insert("beta".into(), Attr::Float(0.5));
        let op = import("Gemm", 13, at, &[&a, &b, &c]).unwrap();
        // A' = [[1,3,5],[2,4,6]], B' = [[1,0],[0,1],[0,0]] -> A'B' = [[1,3],[2,4]]
        assert_eq!(run(&op, &[&a, &b, &c]), t32(&[2, 2], vec![7., 11., 9., 13.]));
        assert_eq!(run(&op, &[&a, &b]), t32(&[2, 2], vec![2., 6., 4., 8.]));
        let bad = t32(&[3], vec![1., 2., 3.]);
        assert!(op.eval(&EvalInputs { inputs: &[Some(&a), Some(&b), Some(&bad)], n_outputs: 1 }).is_err());
        // Opset 6 with broadcast=0 rejects a C that is not the output's shape.
        let mut at = Attrs::new();
        at.insert("broadcast".into(), Attr::Int(0));
        assert!(import("Gemm", 6, at, &[&a, &t32(&[2, 3], vec![0.; 6]), &c]).is_err());
    }

    #[test]
    fn einsum_equations() {
        let eq = |s: &str| {
            let mut at = Attrs::new();
            at.insert("equation".into(), Attr::Str(s.into()));
            import("Einsum", 12, at, &[]).unwrap()
        };
        let x = t32(&[2, 3], vec![1., 2., 3., 4., 5., 6.]);
        assert_eq!(run(&eq("ij->ji"), &[&x]), t32(&[3, 2], vec![1., 4., 2., 5., 3., 6.]));
        assert_eq!(run(&eq("ij->i"), &[&x]), t32(&[2], vec![6., 15.]));
        assert_eq!(run(&eq("ij"), &[&x]), x);
        assert_eq!(run(&eq("ji"), &[&x]), t32(&[3, 2], vec![1., 4., 2., 5., 3., 6.]));
        assert_eq!(run(&eq("ij,ij"), &[&x, &x]), t32(&[], vec![91.]));
        let sq = t32(&[2, 2, 2], vec![1., 2., 3., 4., 5., 6., 7., 8.]);
        assert_eq!(run(&eq("...ii ->...i"), &[&sq]), t32(&[2, 2], vec![1., 4., 5., 8.]));
        assert_eq!(run(&eq("bii"), &[&sq]), t32(&[2], vec![5., 13.]));
        assert_eq!(run(&eq("bij, bjk -> bik"), &[&sq, &sq]).shape(), &[2, 2, 2]);
        let s = t32(&[], vec![3.]);
        assert_eq!(run(&eq("->"), &[&s]), s);
        assert!(eq("i,j").eval(&EvalInputs { inputs: &[Some(&x)], n_outputs: 1 }).is_err());
        let mut at = Attrs::new();
        at.insert("equation".into(), Attr::Str("i->j".into()));
        assert!(import("Einsum", 12, at, &[]).is_err());
    }
}
