//! The CPU backend's kernel language: what every IR op lowers to before code generation.
//!
//! A lowered graph is a list of [`Step`]s run in order. A step is a loop nest that stores
//! one scalar expression per point of its iteration space ([`Loop`]), a loop nest with an
//! accumulator ([`Reduce`]), or a call of a runtime kernel ([`Call`]). Memory is named
//! symbolically ([`Mem`]) until the memory planner gives every temporary an arena offset.
//!
//! Indexing is affine: an [`Access`] is `mem + offset + Σ stride[d] · i[d]` (in elements)
//! over the step's loop indices `i`. Data-dependent addressing (Gather and friends) uses
//! [`Expr::LoadAt`], whose flat element index is itself an expression.
//!
//! Values compute in a small set of types: f16, bf16 and the low-precision floats (f8,
//! f4e2m1) in f32; the 4- and 2-bit integers in i8; everything else in itself. Loads widen
//! exactly and stores narrow (see `codegen` and `lowbit`).
//!
//! A whole lowering has a text form ([`print`], read back by [`parse`]), which
//! `neoc compile --dump-ir after=lower` prints and the `test lower` filetests hold, and a
//! verifier ([`verify`]) that the CPU backend runs after every lowering.

use crate::tensor::DType;

pub mod parse;
pub mod plan;
pub mod print;
pub mod verify;
use crate::tensor::low::RoundMode;
use neoc_runtime::abi::{ArgKind, Kernel, MathOp};

/// A buffer, before memory planning.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Mem {
    /// Graph input `i` (read-only).
    Input(u32),
    /// Graph output `i`.
    Output(u32),
    /// Blob `i` of the weights section (constants and kernel parameter blocks).
    Weight(u32),
    /// Temporary `i`; the planner puts it in the arena.
    Temp(u32),
}

/// An affine view of a buffer: element `i` of the loop nest is at
/// `offset + Σ strides[d] · i[d]` elements from the start of `mem`.
#[derive(Clone, Debug, PartialEq)]
pub struct Access {
    pub mem: Mem,
    pub dtype: DType,
    pub offset: i64,
    /// One stride per loop dimension, in elements.
    pub strides: Vec<i64>,
}

impl Access {
    /// A dense row-major tensor of `shape`, indexed by loop dims of the same shape.
    pub fn dense(mem: Mem, dtype: DType, shape: &[usize]) -> Access {
        Access { mem, dtype, offset: 0, strides: dense_strides(shape) }
    }
}

/// Row-major strides of `shape`, in elements.
pub fn dense_strides(shape: &[usize]) -> Vec<i64> {
    let mut strides = vec![0i64; shape.len()];
    let mut s = 1i64;
    for d in (0..shape.len()).rev() {
        strides[d] = s;
        s *= shape[d] as i64;
    }
    strides
}

/// Strides to read a dense tensor of `shape` broadcast (numpy rules) to `out` (rank of
/// `out` ≥ rank of `shape`): size-1 and missing dims get stride 0.
pub fn broadcast_strides(shape: &[usize], out: &[usize]) -> Vec<i64> {
    let dense = dense_strides(shape);
    let lead = out.len() - shape.len();
    (0..out.len())
        .map(|d| if d < lead || shape[d - lead] == 1 { 0 } else { dense[d - lead] })
        .collect()
}

/// A literal scalar.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Lit {
    F32(f32),
    F64(f64),
    /// An integer (or bool, 0/1) of the given dtype, sign- or zero-extended into i64.
    Int(i64, DType),
}

impl Lit {
    pub fn dtype(self) -> DType {
        match self {
            Lit::F32(_) => DType::F32,
            Lit::F64(_) => DType::F64,
            Lit::Int(_, d) => d,
        }
    }

    /// `v` as a literal of `dtype` (floats round, integers truncate toward zero).
    pub fn of(dtype: DType, v: f64) -> Lit {
        match dtype {
            // f16, bf16 and the low-precision floats compute in f32.
            d if d.is_float() && d != DType::F64 => Lit::F32(v as f32),
            DType::F64 => Lit::F64(v),
            d => Lit::Int(v as i64, d),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnOp {
    Neg,
    Abs,
    Sqrt,
    Floor,
    Ceil,
    Trunc,
    /// Round half to even.
    Nearest,
    /// Logical not (bool) or bitwise not (integers).
    Not,
    IsNaN,
    IsInf { negative: bool, positive: bool },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    /// Floats: IEEE division. Integers: truncating, and `x / 0 = 0` (numpy) instead of a trap.
    Div,
    /// Integers: remainder with the divisor's sign (numpy `mod`); `x % 0 = 0`.
    FloorMod,
    /// Integers: remainder with the dividend's sign (C `%`); `x % 0 = 0`.
    TruncMod,
    /// NaN-propagating for floats.
    Min,
    Max,
    And,
    Or,
    Xor,
    Shl,
    /// Logical for unsigned, arithmetic for signed integers.
    Shr,
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

impl BinOp {
    pub fn is_comparison(self) -> bool {
        matches!(self, BinOp::Eq | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge)
    }
}

/// A scalar expression evaluated at one point of a loop nest.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    Load(Access),
    /// The element at flat index `index` (an i64 expression) of `mem` (dense, `len`
    /// elements). An index outside `0..len` makes the step return [`ERR_INDEX`].
    LoadAt { mem: Mem, dtype: DType, len: i64, index: Box<Expr> },
    /// Loop index `d`, as i64.
    Index(usize),
    Lit(Lit),
    Un(UnOp, Box<Expr>),
    Bin(BinOp, Box<Expr>, Box<Expr>),
    /// `cond ? a : b` (cond is bool).
    Select(Box<Expr>, Box<Expr>, Box<Expr>),
    /// A conversion with ONNX Cast's default options ([`Conversion::cast`]).
    Cast(DType, Box<Expr>),
    /// A conversion with explicit options.
    Convert(Conversion, Box<Expr>),
    /// A runtime math function on f32 or f64.
    Math(MathOp, Box<Expr>, Option<Box<Expr>>),
    /// The accumulator, in a [`Reduce`]'s `finish` expression.
    Acc,
}

/// The target and options of a conversion. The options only matter for the low-precision
/// floats: `saturate` for the f8 types (out-of-range values become ±max instead of inf or
/// NaN), `round_mode` for f8e8m0.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Conversion {
    pub to: DType,
    pub saturate: bool,
    pub round_mode: RoundMode,
}

impl Conversion {
    /// Cast's defaults: saturate, round up (f8e8m0).
    pub fn cast(to: DType) -> Conversion {
        Conversion { to, saturate: true, round_mode: RoundMode::Up }
    }
}

/// Short names for the expressions the lowerings build most, imported by name
/// (`use crate::kernel_ir::build::{bin, int, load}`).
pub mod build {
    use super::{Access, BinOp, Expr, Lit, Mem};
    use crate::tensor::DType;

    /// An i64 literal (indices, offsets, counts).
    pub fn int(v: i64) -> Expr {
        Expr::Lit(Lit::Int(v, DType::I64))
    }
    /// An f64 literal.
    pub fn float(v: f64) -> Expr {
        Expr::Lit(Lit::F64(v))
    }
    pub fn bin(op: BinOp, a: Expr, b: Expr) -> Expr {
        Expr::bin(op, a, b)
    }
    pub fn add(a: Expr, b: Expr) -> Expr {
        Expr::bin(BinOp::Add, a, b)
    }
    pub fn sub(a: Expr, b: Expr) -> Expr {
        Expr::bin(BinOp::Sub, a, b)
    }
    pub fn mul(a: Expr, b: Expr) -> Expr {
        Expr::bin(BinOp::Mul, a, b)
    }
    pub fn div(a: Expr, b: Expr) -> Expr {
        Expr::bin(BinOp::Div, a, b)
    }
    /// Logical and of two bools.
    pub fn and(a: Expr, b: Expr) -> Expr {
        Expr::bin(BinOp::And, a, b)
    }
    /// Logical or of two bools.
    pub fn or(a: Expr, b: Expr) -> Expr {
        Expr::bin(BinOp::Or, a, b)
    }
    /// The element of `mem` at `offset + Σ index·stride`.
    pub fn load(mem: Mem, dtype: DType, offset: i64, strides: Vec<i64>) -> Expr {
        Expr::Load(Access { mem, dtype, offset, strides })
    }
}

/// Error code a step returns when an index read from a tensor is out of range (the
/// runtime's table owns the codes).
pub use neoc_runtime::abi::errors::ERR_INDEX;

impl Expr {
    pub fn lit_f(dtype: DType, v: f64) -> Expr {
        Expr::Lit(Lit::of(dtype, v))
    }
    pub fn un(op: UnOp, a: Expr) -> Expr {
        Expr::Un(op, Box::new(a))
    }
    pub fn bin(op: BinOp, a: Expr, b: Expr) -> Expr {
        Expr::Bin(op, Box::new(a), Box::new(b))
    }
    pub fn select(c: Expr, a: Expr, b: Expr) -> Expr {
        Expr::Select(Box::new(c), Box::new(a), Box::new(b))
    }
    pub fn cast(to: DType, a: Expr) -> Expr {
        Expr::Cast(to, Box::new(a))
    }
    /// A conversion with options: a plain [`Expr::Cast`] when they are Cast's defaults.
    pub fn convert(c: Conversion, a: Expr) -> Expr {
        if c == Conversion::cast(c.to) { Expr::cast(c.to, a) } else { Expr::Convert(c, Box::new(a)) }
    }
    pub fn math(op: MathOp, a: Expr) -> Expr {
        Expr::Math(op, Box::new(a), None)
    }
    pub fn math2(op: MathOp, a: Expr, b: Expr) -> Expr {
        Expr::Math(op, Box::new(a), Some(Box::new(b)))
    }

    /// Visits this expression and every sub-expression, parents first.
    pub fn visit(&self, f: &mut dyn FnMut(&Expr)) {
        f(self);
        match self {
            Expr::LoadAt { index, .. } => index.visit(f),
            Expr::Un(_, a) | Expr::Cast(_, a) | Expr::Convert(_, a) => a.visit(f),
            Expr::Bin(_, a, b) => {
                a.visit(f);
                b.visit(f);
            }
            Expr::Select(c, a, b) => {
                c.visit(f);
                a.visit(f);
                b.visit(f);
            }
            Expr::Math(_, a, b) => {
                a.visit(f);
                if let Some(b) = b {
                    b.visit(f);
                }
            }
            Expr::Load(_) | Expr::Index(_) | Expr::Lit(_) | Expr::Acc => {}
        }
    }

    /// Every memory this expression reads.
    pub fn reads(&self, out: &mut Vec<Mem>) {
        self.visit(&mut |e| match e {
            Expr::Load(a) => out.push(a.mem),
            Expr::LoadAt { mem, .. } => out.push(*mem),
            _ => {}
        });
    }
}

/// `out[i] = value(i)` for every `i` in `dims`.
#[derive(Clone, Debug, PartialEq)]
pub struct Loop {
    pub dims: Vec<usize>,
    pub out: Access,
    pub value: Expr,
}

/// For every outer point `o` in `dims[..n_outer]`: `acc = init`, then for every inner
/// point `r` in `dims[n_outer..]`, `acc = combine(acc, value(o, r))`, and finally
/// `out[o] = finish(acc, o)`. `out`'s strides cover the outer dims only.
#[derive(Clone, Debug, PartialEq)]
pub struct Reduce {
    pub dims: Vec<usize>,
    pub n_outer: usize,
    /// The accumulator's dtype (`value` and `init` have it).
    pub acc: DType,
    pub init: Lit,
    pub combine: BinOp,
    pub value: Expr,
    pub finish: Expr,
    pub out: Access,
}

/// A call of a runtime kernel: an entry of the runtime's kernel table
/// ([`neoc_runtime::abi::Kernel`]), declared there with its signature. The call runs once
/// per point of `batch` (row-major; once when `batch` is empty); each buffer argument
/// advances by its batch strides. Code generators emit it from the declaration alone:
/// `args` holds one argument per declared argument, in order, except the run context,
/// which the code passes itself.
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    pub kernel: Kernel,
    pub batch: Vec<usize>,
    pub args: Vec<CallArg>,
}

/// One argument of a [`Call`].
#[derive(Clone, Debug, PartialEq)]
pub enum CallArg {
    /// The address of `mem` plus `offset` bytes plus `Σ batch_strides[d] · b[d]` bytes at
    /// batch point `b` (a buffer or parameter-block argument).
    Buf { mem: Mem, offset: i64, batch_strides: Vec<i64> },
    /// A null pointer (an optional buffer left out).
    Null,
    /// An integer argument (`usize`, `isize`, `i32` or `u32`, as declared).
    Int(i64),
    F32(f32),
    F64(f64),
}

impl CallArg {
    /// The whole of `mem`, at every batch point.
    pub fn buf(mem: Mem) -> CallArg {
        CallArg::Buf { mem, offset: 0, batch_strides: vec![] }
    }
    /// `mem` if given, else null.
    pub fn opt(mem: Option<Mem>) -> CallArg {
        mem.map_or(CallArg::Null, CallArg::buf)
    }
    pub fn mem(&self) -> Option<Mem> {
        match self {
            CallArg::Buf { mem, .. } => Some(*mem),
            _ => None,
        }
    }
}

impl Call {
    /// `kernel` once, with `args`.
    pub fn new(kernel: Kernel, args: Vec<CallArg>) -> Call {
        Call { kernel, batch: vec![], args }
    }

    /// Copies `bytes` bytes from `src` to `dst` (the runtime's `memcpy`).
    pub fn copy(dst: Mem, src: Mem, bytes: u64) -> Call {
        Call::new(Kernel::Memcpy, vec![CallArg::buf(dst), CallArg::buf(src), CallArg::Int(bytes as i64)])
    }

    /// The declared arguments the call passes (the declaration's, less the context), with
    /// the call's own. Pairs are cut short when the counts differ (the verifier says so).
    pub fn declared_args(&self) -> impl Iterator<Item = (&'static neoc_runtime::abi::Arg, &CallArg)> {
        self.kernel.args().iter().filter(|a| a.kind != ArgKind::Context).zip(&self.args)
    }

    /// (memory read, memory written) by the call, from the declaration's argument roles.
    pub fn mems(&self) -> (Vec<Mem>, Vec<Mem>) {
        let (mut r, mut w) = (vec![], vec![]);
        for (decl, arg) in self.declared_args() {
            if let Some(m) = arg.mem() {
                if decl.kind.reads() {
                    r.push(m);
                }
                if decl.kind.writes() {
                    w.push(m);
                }
            }
        }
        (r, w)
    }
}

/// One unit of work of a lowered graph, run in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    Loop(Loop),
    Reduce(Reduce),
    Call(Call),
}

impl Step {
    /// (memory read, memory written).
    pub fn mems(&self) -> (Vec<Mem>, Vec<Mem>) {
        match self {
            Step::Loop(l) => {
                let mut r = Vec::new();
                l.value.reads(&mut r);
                (r, vec![l.out.mem])
            }
            Step::Reduce(red) => {
                let mut r = Vec::new();
                red.value.reads(&mut r);
                red.finish.reads(&mut r);
                (r, vec![red.out.mem])
            }
            Step::Call(c) => c.mems(),
        }
    }
}
