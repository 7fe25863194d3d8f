//! Loop nests and reductions: the affine loops of a [`Loop`] (innermost on f32x4 when it
//! can), the accumulator loops of a [`Reduce`] (its innermost reduced dim on f32x4 lanes
//! when it can), and the tests that decide which loops run on vectors.

use super::*;

impl StepGen<'_, '_> {
    /// A loop as [`Codegen::plan`] left it (collapsed already).
    pub(super) fn emit_loop(&mut self, l: &Loop) -> Result<()> {
        let Loop { dims, out, value } = l;
        if dims.contains(&0) {
            return Ok(());
        }
        let mut accesses = vec![out.clone()];
        collect_loads(value, &mut accesses);
        let addrs = self.start_addrs(&accesses);
        let mut idx = Vec::new();
        self.loop_level(dims, 0, &accesses, addrs, &mut idx, value)
    }

    fn loop_level(&mut self, dims: &[usize], d: usize, accesses: &[Access], addrs: Vec<Value>, idx: &mut Vec<Value>, value: &Expr) -> Result<()> {
        if dims.is_empty() {
            let hoisted = HashMap::new();
            let env = Env { idx, addrs: &addrs, accesses, hoisted: &hoisted, vector: false };
            let v = self.expr(value, &env)?;
            self.store_elem(&accesses[0], v, addrs[0]);
            return Ok(());
        }
        if d + 1 == dims.len() {
            return self.innermost(dims[d], d, accesses, &addrs, idx, value);
        }
        self.for_dim(d, dims[d], &mut |g, i| {
            let next: Vec<Value> =
                accesses.iter().zip(&addrs).map(|(a, &p)| g.advance(p, i, a.strides[d] * esize(a.dtype))).collect();
            idx.push(i);
            g.loop_level(dims, d + 1, accesses, next, idx, value)?;
            idx.pop();
            Ok(())
        })
    }

    fn innermost(&mut self, n: usize, d: usize, accesses: &[Access], addrs: &[Value], idx: &mut Vec<Value>, value: &Expr) -> Result<()> {
        // Loads that do not move along d: once, before the loop.
        let mut hoisted = HashMap::new();
        for (k, a) in accesses.iter().enumerate().skip(1) {
            if a.strides[d] == 0 {
                let v = self.load_elem(a.mem, a.dtype, addrs[k])?;
                hoisted.insert(k, v);
            }
        }
        let n = n as i64;
        let vectorisable = vectorisable(value, accesses, d) && n >= 4 && !scalar_only();
        let vec_end = if vectorisable { n / 4 * 4 } else { 0 };
        if vec_end > 0 {
            // Splat the hoisted scalars once.
            let splats: HashMap<usize, Value> = hoisted.iter().map(|(&k, &v)| (k, self.b.ins().splat(F32X4, v))).collect();
            let unroll = if vec_end >= 8 { 2 } else { 1 };
            let body_end = vec_end / (4 * unroll) * (4 * unroll);
            let chunk = |g: &mut Self, i: Value, lanes: i64| -> Result<()> {
                for u in 0..lanes {
                    let iu = if u == 0 { i } else { g.b.ins().iadd_imm_s(i, 4 * u) };
                    let here: Vec<Value> =
                        accesses.iter().zip(addrs).map(|(a, &p)| g.advance(p, iu, a.strides[d] * esize(a.dtype))).collect();
                    let env = Env { idx, addrs: &here, accesses, hoisted: &splats, vector: true };
                    let v = g.expr(value, &env)?;
                    g.b.ins().store(data_flags(), v, here[0], 0);
                }
                Ok(())
            };
            if body_end > 0 {
                self.for_range(0, body_end, 4 * unroll, &mut |g, i| chunk(g, i, unroll))?;
            }
            if body_end < vec_end {
                self.for_range(body_end, vec_end, 4, &mut |g, i| chunk(g, i, 1))?;
            }
        }
        if vec_end < n {
            let idx_ref: &mut Vec<Value> = idx;
            self.for_range(vec_end, n, 1, &mut |g, i| {
                let here: Vec<Value> =
                    accesses.iter().zip(addrs).map(|(a, &p)| g.advance(p, i, a.strides[d] * esize(a.dtype))).collect();
                idx_ref.push(i);
                let env = Env { idx: idx_ref, addrs: &here, accesses, hoisted: &hoisted, vector: false };
                let v = g.expr(value, &env);
                idx_ref.pop();
                let v = v?;
                g.store_elem(&accesses[0], v, here[0]);
                Ok(())
            })?;
        }
        Ok(())
    }

    pub(super) fn emit_reduce(&mut self, r: &Reduce) -> Result<()> {
        if r.dims[..r.n_outer].contains(&0) {
            return Ok(());
        }
        let mut accesses = vec![r.out.clone()];
        // Pad the output's strides with zeros over the reduced dims.
        accesses[0].strides.resize(r.dims.len(), 0);
        collect_loads(&r.value, &mut accesses);
        collect_loads(&r.finish, &mut accesses);
        let addrs = self.start_addrs(&accesses);
        let var = self.b.declare_var(clif_type(r.acc)?);
        self.acc_var = Some((var, r.acc));
        let mut idx = Vec::new();
        self.reduce_level(r, 0, &accesses, addrs, &mut idx)
    }

    fn reduce_level(&mut self, r: &Reduce, d: usize, accesses: &[Access], addrs: Vec<Value>, idx: &mut Vec<Value>) -> Result<()> {
        let (var, acc_ty) = self.acc_var.expect("set by emit_reduce");
        if d == r.n_outer {
            let init = self.lit(r.init)?;
            self.b.def_var(var, init);
        }
        if d == r.dims.len() {
            let hoisted = HashMap::new();
            let env = Env { idx, addrs: &addrs, accesses, hoisted: &hoisted, vector: false };
            let v = self.expr(&r.value, &env)?;
            let acc = self.b.use_var(var);
            let next = self.binary(r.combine, acc, v, acc_ty)?;
            self.b.def_var(var, next);
        } else if d + 1 == r.dims.len() && d >= r.n_outer && self.reduce_vector(r, d, accesses, &addrs, idx)? {
            // The innermost reduced dim ran on f32x4 lanes.
        } else {
            self.for_dim(d, r.dims[d], &mut |g, i| {
                let next: Vec<Value> =
                    accesses.iter().zip(&addrs).map(|(a, &p)| g.advance(p, i, a.strides[d] * esize(a.dtype))).collect();
                idx.push(i);
                g.reduce_level(r, d + 1, accesses, next, idx)?;
                idx.pop();
                Ok(())
            })?;
        }
        if d == r.n_outer {
            let hoisted = HashMap::new();
            let env = Env { idx, addrs: &addrs, accesses, hoisted: &hoisted, vector: false };
            let v = self.expr(&r.finish, &env)?;
            self.store_elem(&accesses[0], v, addrs[0]);
        }
        Ok(())
    }

    /// The innermost reduced dim `d` of `r` on f32x4: four lanes accumulate from the
    /// combine's identity, are combined with each other and then into the accumulator, and
    /// the last `n mod 4` points run scalar. Applies (returns true) to f32 sums, maxima and
    /// minima whose value is lane-wise with every load contiguous or invariant along `d`;
    /// sums then add in a different order than the scalar loop (within the usual f32
    /// summation bound), maxima and minima give the same result (NaN propagating).
    fn reduce_vector(&mut self, r: &Reduce, d: usize, accesses: &[Access], addrs: &[Value], idx: &mut Vec<Value>) -> Result<bool> {
        let n = r.dims[d] as i64;
        let (var, acc_ty) = self.acc_var.expect("set by emit_reduce");
        let identity = match r.combine {
            BinOp::Add => 0.0,
            BinOp::Max => f32::NEG_INFINITY,
            BinOp::Min => f32::INFINITY,
            _ => return Ok(false),
        };
        let mut loads = Vec::new();
        r.value.visit(&mut |e| {
            if let Expr::Load(a) = e {
                loads.push(a.clone());
            }
        });
        let lane_wise = loads.iter().all(|a| a.dtype == DType::F32 && matches!(a.strides[d], 0 | 1)) && vector_value(&r.value);
        if acc_ty != DType::F32 || n < 8 || !lane_wise || scalar_only() {
            return Ok(false);
        }
        // Loads of the value that do not move along d: once, splat.
        let mut splats = HashMap::new();
        for (k, a) in accesses.iter().enumerate().skip(1) {
            if a.strides[d] == 0 && loads.contains(a) {
                let v = self.load_elem(a.mem, a.dtype, addrs[k])?;
                splats.insert(k, self.b.ins().splat(F32X4, v));
            }
        }
        let lanes = self.b.declare_var(F32X4);
        let start = vmath::f32_const(&mut self.b, identity, true);
        self.b.def_var(lanes, start);
        let vec_end = n / 4 * 4;
        self.for_range(0, vec_end, 4, &mut |g, i| {
            let here: Vec<Value> = accesses.iter().zip(addrs).map(|(a, &p)| g.advance(p, i, a.strides[d] * esize(a.dtype))).collect();
            let env = Env { idx, addrs: &here, accesses, hoisted: &splats, vector: true };
            let v = g.expr(&r.value, &env)?;
            let acc = g.b.use_var(lanes);
            let next = g.combine_lanes(r.combine, acc, v)?;
            g.b.def_var(lanes, next);
            Ok(())
        })?;
        let acc = self.b.use_var(lanes);
        let l: Vec<Value> = (0..4).map(|k| self.b.ins().extractlane(acc, k)).collect();
        let low = self.binary(r.combine, l[0], l[1], acc_ty)?;
        let high = self.binary(r.combine, l[2], l[3], acc_ty)?;
        let all = self.binary(r.combine, low, high, acc_ty)?;
        let cur = self.b.use_var(var);
        let next = self.binary(r.combine, cur, all, acc_ty)?;
        self.b.def_var(var, next);
        self.for_range(vec_end, n, 1, &mut |g, i| {
            let here: Vec<Value> = accesses.iter().zip(addrs).map(|(a, &p)| g.advance(p, i, a.strides[d] * esize(a.dtype))).collect();
            idx.push(i);
            let hoisted = HashMap::new();
            let env = Env { idx, addrs: &here, accesses, hoisted: &hoisted, vector: false };
            let v = g.expr(&r.value, &env);
            idx.pop();
            let acc = g.b.use_var(var);
            let next = g.binary(r.combine, acc, v?, acc_ty)?;
            g.b.def_var(var, next);
            Ok(())
        })?;
        Ok(true)
    }

    /// `acc ∘ v` lane-wise on f32x4 for a reduction's combine (Add, Max or Min), with
    /// Max and Min NaN-propagating like the scalar combine.
    fn combine_lanes(&mut self, op: BinOp, acc: Value, v: Value) -> Result<Value> {
        if matches!(op, BinOp::Max | BinOp::Min) && self.cg.isa.name() == "x64" {
            // As `expr` does for Max/Min: take v when it is strictly better, or NaN.
            let better = if op == BinOp::Max { vmath::less(&mut self.b, acc, v) } else { vmath::less(&mut self.b, v, acc) };
            let v_nan = self.b.ins().fcmp(FloatCC::Unordered, v, v);
            let take = self.b.ins().bor(better, v_nan);
            return Ok(vmath::select(&mut self.b, take, v, acc, true));
        }
        self.binary(op, acc, v, DType::F32)
    }
}

/// Whether the innermost loop (dim `d`) can run on f32x4: f32 everywhere, the store and
/// every moving load contiguous, and only ops with a vector form.
fn vectorisable(e: &Expr, accesses: &[Access], d: usize) -> bool {
    if accesses.iter().any(|a| a.dtype != DType::F32) || accesses[0].strides[d] != 1 {
        return false;
    }
    if accesses.iter().skip(1).any(|a| a.strides[d] != 0 && a.strides[d] != 1) {
        return false;
    }
    vector_value(e)
}

/// An f32 expression with a lane-wise vector form.
fn vector_value(e: &Expr) -> bool {
    match e {
        Expr::Load(_) | Expr::Lit(Lit::F32(_)) => true,
        Expr::Un(op, a) => {
            matches!(op, UnOp::Neg | UnOp::Abs | UnOp::Sqrt | UnOp::Floor | UnOp::Ceil | UnOp::Trunc | UnOp::Nearest)
                && vector_value(a)
        }
        Expr::Bin(op, a, b) => {
            matches!(op, BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Min | BinOp::Max)
                && vector_value(a)
                && vector_value(b)
        }
        Expr::Select(c, a, b) => vector_mask(c) && vector_value(a) && vector_value(b),
        Expr::Math(op, a, None) => vmath::inline(*op) && vector_value(a),
        _ => false,
    }
}

/// A condition with a vector form: a lane mask from a comparison of f32 values.
fn vector_mask(e: &Expr) -> bool {
    match e {
        Expr::Bin(op, a, b) => op.is_comparison() && vector_value(a) && vector_value(b),
        Expr::Un(UnOp::IsNaN, a) => vector_value(a),
        _ => false,
    }
}

/// Drops size-1 dims and merges dims that are contiguous for every access (when the
/// expression does not use loop indices).
pub(super) fn collapse(l: &Loop) -> (Vec<usize>, Access, Expr) {
    let mut uses_index = false;
    l.value.visit(&mut |e| uses_index |= matches!(e, Expr::Index(_) | Expr::LoadAt { .. }));
    if uses_index {
        return (l.dims.clone(), l.out.clone(), l.value.clone());
    }
    let mut accesses = vec![l.out.clone()];
    collect_loads(&l.value, &mut accesses);
    // Groups of original dims that become one.
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for d in 0..l.dims.len() {
        if l.dims[d] == 1 {
            continue;
        }
        if let Some(last) = groups.last_mut() {
            let p = *last.last().expect("non-empty");
            if accesses.iter().all(|a| a.strides[p] == a.strides[d] * l.dims[d] as i64) {
                last.push(d);
                continue;
            }
        }
        groups.push(vec![d]);
    }
    let dims: Vec<usize> = groups.iter().map(|g| g.iter().map(|&d| l.dims[d]).product()).collect();
    let remap = |a: &Access| Access {
        mem: a.mem,
        dtype: a.dtype,
        offset: a.offset,
        strides: groups.iter().map(|g| a.strides[*g.last().expect("non-empty")]).collect(),
    };
    let value = map_loads(&l.value, &remap);
    (dims, remap(&l.out), value)
}

pub(super) fn map_loads(e: &Expr, f: &dyn Fn(&Access) -> Access) -> Expr {
    let m = |x: &Expr| Box::new(map_loads(x, f));
    match e {
        Expr::Load(a) => Expr::Load(f(a)),
        Expr::LoadAt { mem, dtype, len, index } => Expr::LoadAt { mem: *mem, dtype: *dtype, len: *len, index: m(index) },
        Expr::Un(op, a) => Expr::Un(*op, m(a)),
        Expr::Bin(op, a, b) => Expr::Bin(*op, m(a), m(b)),
        Expr::Select(c, a, b) => Expr::Select(m(c), m(a), m(b)),
        Expr::Cast(t, a) => Expr::Cast(*t, m(a)),
        Expr::Convert(c, a) => Expr::Convert(*c, m(a)),
        Expr::Math(op, a, b) => Expr::Math(*op, m(a), b.as_ref().map(|b| m(b))),
        Expr::Index(_) | Expr::Lit(_) | Expr::Acc => e.clone(),
    }
}
