//! Ops that change only the shape of a tensor (the data keeps its row-major order), plus
//! Expand, which broadcasts.
//!
//! Specs and the opset history that matters here:
//! - Reshape <https://onnx.ai/onnx/operators/onnx__Reshape.html>: opset 1 takes `shape` as an
//!   attribute (and the meaningless `consumed_inputs`); opset 5 takes it as input 1; opset 14
//!   adds `allowzero` (a 0 in `shape` is then a real 0 instead of "copy this input dim").
//!   Later versions only add element types. A -1 in `shape` is inferred from the rest.
//! - Flatten <https://onnx.ai/onnx/operators/onnx__Flatten.html>: opset 1 (axis in [0, r]),
//!   opset 11 allows a negative axis (in [-r, r]); later versions add types.
//! - Squeeze <https://onnx.ai/onnx/operators/onnx__Squeeze.html>: opsets 1 and 11 take `axes`
//!   as an attribute (absent or empty: remove every dim of size 1); opset 13 takes it as
//!   input 1 (absent: every dim of size 1; present, even empty: exactly those axes).
//! - Unsqueeze <https://onnx.ai/onnx/operators/onnx__Unsqueeze.html>: opsets 1 and 11 take
//!   `axes` as an attribute, opset 13 as input 1; axes index the *output* shape.
//! - Expand <https://onnx.ai/onnx/operators/onnx__Expand.html>: opset 8; the output shape is
//!   the numpy broadcast of the input shape and `shape` (so a 1 in `shape` keeps the input dim).
//!
//! Normal form: the `shape`/`axes` operand is always input 1.

use crate::ir::shape;
use crate::ir::{Attr, Attrs, EvalInputs, InferCx, Importer, NodeCtx, NodeInput, Op, OpImpl, ValueType};
use crate::tensor::{DType, IxDyn, Tensor};
use crate::try_map_array;
use anyhow::{Result, anyhow, bail};

#[derive(Clone, Debug, PartialEq)]
pub enum Reshape {
    /// Input 1 is the target shape.
    Reshape { allowzero: bool },
    /// `axis` as given (may be negative); resolved against the input rank.
    Flatten { axis: i64 },
    /// Input 1 (optional) lists the axes to remove.
    Squeeze,
    /// Input 1 lists the axes to insert, in output coordinates.
    Unsqueeze,
    /// Input 1 is the shape to broadcast to.
    Expand,
}

impl Reshape {
    /// What input 1 means, for error messages.
    fn operand(&self) -> &'static str {
        match self {
            Reshape::Reshape { .. } | Reshape::Expand => "shape",
            Reshape::Squeeze | Reshape::Unsqueeze => "axes",
            Reshape::Flatten { .. } => "",
        }
    }

    /// The output shape from the input shape and the values of input 1 (if present).
    /// Shared by `infer` and `eval`, so both always agree.
    fn out_shape(&self, x: &[usize], arg: Option<&[i64]>) -> Result<Vec<usize>> {
        let name = self.name();
        let need = || anyhow!("{name}: input 1 ({}) is required", self.operand());
        match self {
            Reshape::Reshape { allowzero } => reshape_target(x, arg.ok_or_else(need)?, *allowzero),
            Reshape::Flatten { axis } => {
                let r = x.len() as i64;
                if *axis < -r || *axis > r {
                    bail!("Flatten: axis {axis} is out of range for rank {r}");
                }
                let a = if *axis < 0 { axis + r } else { *axis } as usize;
                Ok(vec![x[..a].iter().product(), x[a..].iter().product()])
            }
            Reshape::Squeeze => match arg {
                None => Ok(x.iter().copied().filter(|&d| d != 1).collect()),
                Some(list) => {
                    let axes = shape::axes(list, x.len()).map_err(|e| anyhow!("Squeeze: {e}"))?;
                    if let Some(&a) = axes.iter().find(|&&a| x[a] != 1) {
                        bail!("Squeeze: axis {a} of shape {x:?} has size {}, not 1", x[a]);
                    }
                    Ok(x.iter().enumerate().filter(|(i, _)| !axes.contains(i)).map(|(_, &d)| d).collect())
                }
            },
            Reshape::Unsqueeze => {
                let list = arg.ok_or_else(need)?;
                let out_rank = x.len() + list.len();
                let axes = shape::axes(list, out_rank).map_err(|e| anyhow!("Unsqueeze: {e}"))?;
                let mut rest = x.iter();
                // Every output position is either an inserted 1 or the next input dim; the
                // counts match by construction (out_rank = rank + number of distinct axes).
                (0..out_rank)
                    .map(|i| if axes.contains(&i) { Ok(1) } else { rest.next().copied().ok_or_else(|| anyhow!("Unsqueeze: bad axes")) })
                    .collect()
            }
            Reshape::Expand => {
                let dims = arg.ok_or_else(need)?;
                let dims = dims
                    .iter()
                    .map(|&d| usize::try_from(d).map_err(|_| anyhow!("Expand: negative dim {d} in shape {dims:?}")))
                    .collect::<Result<Vec<_>>>()?;
                shape::broadcast(x, &dims).map_err(|e| anyhow!("Expand: {e}"))
            }
        }
    }
}

/// Reshape's target shape: 0 copies the input dim (unless `allowzero`), one -1 is inferred.
fn reshape_target(x: &[usize], spec: &[i64], allowzero: bool) -> Result<Vec<usize>> {
    let total: usize = x.iter().product();
    let mut out = Vec::with_capacity(spec.len());
    let mut infer_at = None;
    for (i, &s) in spec.iter().enumerate() {
        out.push(match s {
            -1 => {
                if infer_at.replace(i).is_some() {
                    bail!("Reshape: shape {spec:?} has more than one -1");
                }
                1
            }
            0 if !allowzero => *x
                .get(i)
                .ok_or_else(|| anyhow!("Reshape: shape {spec:?} copies dim {i} (0) but the input {x:?} has rank {}", x.len()))?,
            s if s >= 0 => s as usize,
            s => bail!("Reshape: invalid dim {s} in shape {spec:?}"),
        });
    }
    if allowzero && infer_at.is_some() && spec.contains(&0) {
        bail!("Reshape: shape {spec:?} has both 0 and -1 with allowzero=1");
    }
    let known = out.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    let Some(known) = known else { bail!("Reshape: shape {spec:?} is too large") };
    if let Some(i) = infer_at {
        if known == 0 || total % known != 0 {
            bail!("Reshape: cannot infer the -1 in {spec:?} for input shape {x:?}");
        }
        out[i] = total / known;
    } else if known != total {
        bail!("Reshape: input shape {x:?} ({total} values) does not fit shape {spec:?} (resolved {out:?})");
    }
    Ok(out)
}

/// Input 1 of an op in this family, as integers (it must have an integer type).
fn int_operand(t: &Tensor, op: &str) -> Result<Vec<i64>> {
    if !t.dtype().is_int() {
        bail!("{op}: input 1 must be an integer tensor, got {}", t.dtype());
    }
    t.to_i64_vec()
}

impl OpImpl for Reshape {
    fn name(&self) -> &'static str {
        match self {
            Reshape::Reshape { .. } => "Reshape",
            Reshape::Flatten { .. } => "Flatten",
            Reshape::Squeeze => "Squeeze",
            Reshape::Unsqueeze => "Unsqueeze",
            Reshape::Expand => "Expand",
        }
    }

    fn attrs(&self) -> Attrs {
        let mut a = Attrs::new();
        match self {
            Reshape::Reshape { allowzero } => {
                a.insert("allowzero".into(), Attr::Int(*allowzero as i64));
            }
            Reshape::Flatten { axis } => {
                a.insert("axis".into(), Attr::Int(*axis));
            }
            Reshape::Squeeze | Reshape::Unsqueeze | Reshape::Expand => {}
        }
        a
    }

    fn infer(&self, cx: &InferCx) -> Result<Vec<ValueType>> {
        let x = cx.ty(0)?;
        let arg = match self {
            Reshape::Flatten { .. } => None,
            _ => match cx.const_input(1, self.operand())? {
                Some(t) => Some(int_operand(t, self.name())?),
                None => None,
            },
        };
        let out = self.out_shape(&x.shape, arg.as_deref())?;
        Ok(vec![ValueType::new(x.dtype, out)])
    }

    fn eval(&self, inputs: &EvalInputs) -> Result<Vec<Tensor>> {
        let x = inputs.req(0)?;
        let arg = match self {
            Reshape::Flatten { .. } => None,
            _ => inputs.opt(1).map(|t| int_operand(t, self.name())).transpose()?,
        };
        let out = self.out_shape(x.shape(), arg.as_deref())?;
        let y = match self {
            Reshape::Expand => try_map_array!(x, a => a
                .broadcast(IxDyn(&out))
                .map(|v| v.as_standard_layout().into_owned())
                .ok_or_else(|| anyhow!("Expand: cannot broadcast {:?} to {out:?}", a.shape()))),
            _ => x.reshape(&out),
        }?;
        Ok(vec![y])
    }
}

fn import_reshape(ctx: &mut NodeCtx) -> Result<Op> {
    if ctx.opset < 5 {
        ctx.ignore(&["consumed_inputs"]);
        ctx.attr_to_input("shape", 1, DType::I64)?;
    }
    let allowzero = if ctx.opset >= 14 { ctx.int("allowzero", 0)? } else { 0 };
    let allowzero = match allowzero {
        0 => false,
        1 => true,
        v => return Err(ctx.unsupported(format!("Reshape allowzero={v} (must be 0 or 1)"))),
    };
    Ok(Reshape::Reshape { allowzero }.into())
}

fn import_flatten(ctx: &mut NodeCtx) -> Result<Op> {
    Ok(Reshape::Flatten { axis: ctx.int("axis", 1)? }.into())
}

/// Before opset 13 `axes` is an attribute. For Squeeze an empty list means "not given".
fn axes_attr_to_input(ctx: &mut NodeCtx) -> Result<()> {
    if ctx.opset < 13 {
        if let Some(axes) = ctx.opt_ints("axes")? {
            if !axes.is_empty() || ctx.op_type == "Unsqueeze" {
                ctx.set_input(1, NodeInput::Const(Tensor::from_vec(&[axes.len()], axes)?));
            }
        }
    }
    Ok(())
}

fn import_squeeze(ctx: &mut NodeCtx) -> Result<Op> {
    axes_attr_to_input(ctx)?;
    Ok(Reshape::Squeeze.into())
}

fn import_unsqueeze(ctx: &mut NodeCtx) -> Result<Op> {
    axes_attr_to_input(ctx)?;
    Ok(Reshape::Unsqueeze.into())
}

fn import_expand(_ctx: &mut NodeCtx) -> Result<Op> {
    Ok(Reshape::Expand.into())
}

pub const IMPORTERS: &[Importer] = &[
    Importer { op_type: "Reshape", domain: "", since: 1, build: import_reshape },
    Importer { op_type: "Flatten", domain: "", since: 1, build: import_flatten },
    Importer { op_type: "Squeeze", domain: "", since: 1, build: import_squeeze },
    Importer { op_type: "Unsqueeze", domain: "", since: 1, build: import_unsqueeze },
    Importer { op_type: "Expand", domain: "", since: 8, build: import_expand },
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::ops;

    fn i64s(v: &[i64]) -> Tensor {
        Tensor::from_vec(&[v.len()], v.to_vec()).unwrap()
    }

    fn iota(shape: &[usize]) -> Tensor {
        let n = shape.iter().product::<usize>();
        Tensor::from_vec(shape, (0..n).map(|v| v as f32).collect()).unwrap()
    }

    /// Runs infer (with every input constant) and eval, checks they agree, returns the output.
    fn run(op: &Reshape, inputs: &[Option<Tensor>]) -> Result<Tensor> {
        let consts: Vec<Option<crate::ir::Constant>> = inputs.iter().map(|t| t.clone().map(crate::ir::Constant::new)).collect();
        let tys: Vec<_> = inputs.iter().zip(&consts).map(|(t, c)| t.as_ref().map(|t| (ValueType::of(t), c.as_ref()))).collect();
        let inferred = op.infer(&InferCx { inputs: &tys, n_outputs: 1 })?;
        let refs: Vec<_> = inputs.iter().map(|t| t.as_ref()).collect();
        let out = op.eval(&EvalInputs { inputs: &refs, n_outputs: 1 })?.remove(0);
        assert_eq!(inferred[0], ValueType::of(&out));
        Ok(out)
    }

    fn shape_of(op: &Reshape, x: &[usize], arg: Option<&[i64]>) -> Result<Vec<usize>> {
        Ok(run(op, &[Some(iota(x)), arg.map(i64s)])?.shape().to_vec())
    }

    #[test]
    fn reshape_zero_and_minus_one() {
        let r = Reshape::Reshape { allowzero: false };
        assert_eq!(shape_of(&r, &[2, 3, 4], Some(&[4, 2, 3])).unwrap(), vec![4, 2, 3]);
        assert_eq!(shape_of(&r, &[2, 3, 4], Some(&[0, -1])).unwrap(), vec![2, 12]);
        assert_eq!(shape_of(&r, &[2, 3, 4], Some(&[-1, 0, 0])).unwrap(), vec![2, 3, 4]);
        assert_eq!(shape_of(&r, &[0, 3], Some(&[3, 0, -1])).unwrap(), vec![3, 3, 0]);
        assert!(shape_of(&r, &[0, 3], Some(&[3, 0])).is_err());
        assert!(shape_of(&r, &[2, 3, 4], Some(&[-1, -1])).is_err());
        assert!(shape_of(&r, &[2, 3, 4], Some(&[5, -1])).is_err());
        assert!(shape_of(&r, &[2, 3, 4], Some(&[0, 0, 0, 0])).is_err());
        assert!(shape_of(&r, &[2, 3, 4], Some(&[-2, 12])).is_err());
        assert!(shape_of(&r, &[2, 3, 4], None).is_err());
        let z = Reshape::Reshape { allowzero: true };
        assert_eq!(shape_of(&z, &[0, 3, 4], Some(&[3, 4, 0])).unwrap(), vec![3, 4, 0]);
        assert!(shape_of(&z, &[2, 3, 4], Some(&[0, -1])).is_err());
        assert!(shape_of(&z, &[0, 3], Some(&[0, -1])).is_err());
        // Data keeps its order.
        let y = run(&r, &[Some(iota(&[2, 3])), Some(i64s(&[3, 2]))]).unwrap();
        assert_eq!(y, iota(&[3, 2]));
    }

    #[test]
    fn flatten_axes() {
        for (axis, want) in [(0, [1, 24]), (1, [2, 12]), (2, [6, 4]), (3, [24, 1]), (-1, [6, 4]), (-3, [1, 24])] {
            assert_eq!(shape_of(&Reshape::Flatten { axis }, &[2, 3, 4], None).unwrap(), want.to_vec(), "axis {axis}");
        }
        assert!(shape_of(&Reshape::Flatten { axis: 4 }, &[2, 3, 4], None).is_err());
        assert!(shape_of(&Reshape::Flatten { axis: -4 }, &[2, 3, 4], None).is_err());
        assert_eq!(shape_of(&Reshape::Flatten { axis: 0 }, &[], None).unwrap(), vec![1, 1]);
    }

    #[test]
    fn squeeze_and_unsqueeze() {
        let s = Reshape::Squeeze;
        assert_eq!(shape_of(&s, &[1, 3, 1, 5], None).unwrap(), vec![3, 5]);
        assert_eq!(shape_of(&s, &[1, 3, 1, 5], Some(&[-2])).unwrap(), vec![1, 3, 5]);
        assert_eq!(shape_of(&s, &[1, 3, 1, 5], Some(&[])).unwrap(), vec![1, 3, 1, 5]);
        assert!(shape_of(&s, &[1, 3, 1, 5], Some(&[1])).is_err());
        assert!(shape_of(&s, &[1, 3], Some(&[2])).is_err());
        assert!(shape_of(&s, &[1, 1], Some(&[0, -2])).is_err());
        let u = Reshape::Unsqueeze;
        assert_eq!(shape_of(&u, &[3, 4, 5], Some(&[0, 4])).unwrap(), vec![1, 3, 4, 5, 1]);
        assert_eq!(shape_of(&u, &[3, 4, 5], Some(&[5, 4, 2])).unwrap(), vec![3, 4, 1, 5, 1, 1]);
        assert_eq!(shape_of(&u, &[3, 4, 5], Some(&[-2])).unwrap(), vec![3, 4, 1, 5]);
        assert!(shape_of(&u, &[3], Some(&[2])).is_err());
        assert!(shape_of(&u, &[3], Some(&[0, 0])).is_err());
        assert!(shape_of(&u, &[3], None).is_err());
    }

    #[test]
    fn expand_broadcasts() {
        let e = Reshape::Expand;
        let x = Tensor::from_vec(&[3, 1], vec![1i32, 2, 3]).unwrap();
        let y = run(&e, &[Some(x.clone()), Some(i64s(&[2, 1, 4]))]).unwrap();
        assert_eq!(y.shape(), &[2, 3, 4]);
        assert_eq!(y.to_i64_vec().unwrap()[..8], [1, 1, 1, 1, 2, 2, 2, 2]);
        let y = run(&e, &[Some(x.clone()), Some(i64s(&[1, 1]))]).unwrap();
        assert_eq!(y, x);
        assert!(run(&e, &[Some(x.clone()), Some(i64s(&[2, 2]))]).is_err());
        assert!(run(&e, &[Some(x), Some(i64s(&[-1]))]).is_err());
        // Every element type moves, the sub-byte ones included.
        let low = Tensor::Low(DType::I4, crate::tensor::ArrayD::from_elem(IxDyn(&[1]), 7u8));
        assert_eq!(run(&e, &[Some(low), Some(i64s(&[3]))]).unwrap().shape(), &[3]);
    }

    #[test]
    fn old_opsets_move_attributes_to_inputs() {
        let mut attrs = Attrs::new();
        attrs.insert("axes".into(), Attr::Ints(vec![0]));
        let x = NodeInput::Const(iota(&[3]));
        let (op, ins) = ops::build("Unsqueeze", "", 11, "n", &attrs, vec![Some(x.clone())], 1).unwrap();
        assert_eq!(op, Op::from(Reshape::Unsqueeze));
        assert_eq!(ins[1].as_ref().unwrap().konst().unwrap(), &i64s(&[0]));
        attrs.insert("axes".into(), Attr::Ints(vec![]));
        let (_, ins) = ops::build("Squeeze", "", 11, "n", &attrs, vec![Some(x.clone())], 1).unwrap();
        assert_eq!(ins.len(), 1, "an empty axes attribute means all axes");
        let mut attrs = Attrs::new();
        attrs.insert("shape".into(), Attr::Ints(vec![1, 3]));
        attrs.insert("consumed_inputs".into(), Attr::Ints(vec![0]));
        let (op, ins) = ops::build("Reshape", "", 1, "n", &attrs, vec![Some(x)], 1).unwrap();
        assert_eq!(op, Op::from(Reshape::Reshape { allowzero: false }));
        assert_eq!(ins[1].as_ref().unwrap().konst().unwrap(), &i64s(&[1, 3]));
        // allowzero is not an attribute before opset 14.
        let mut attrs = Attrs::new();
        attrs.insert("allowzero".into(), Attr::Int(1));
        assert!(ops::build("Reshape", "", 13, "n", &attrs, vec![], 1).is_err());
        attrs.insert("allowzero".into(), Attr::Int(2));
        assert!(ops::build("Reshape", "", 14, "n", &attrs, vec![], 1).is_err());
    }

    #[test]
    fn round_trip() {
        let all = [
            Reshape::Reshape { allowzero: false },
            Reshape::Reshape { allowzero: true },
            Reshape::Flatten { axis: -2 },
            Reshape::Squeeze,
            Reshape::Unsqueeze,
            Reshape::Expand,
        ];
        for r in all {
            let op = Op::from(r);
            assert_eq!(ops::rebuild(&op, vec![], 1).unwrap(), op);
        }
    }
}
