use super::*;
use crate::ir::{NodeInput, ops};
use crate::tensor::{ArrayD, IxDyn};

fn i64s(v: &[i64]) -> Tensor {
    Tensor::from_vec(&[v.len()], v.to_vec()).unwrap()
}

fn f32s(shape: &[usize], v: &[f32]) -> Tensor {
    Tensor::from_vec(shape, v.to_vec()).unwrap()
}

fn iota(shape: &[usize]) -> Tensor {
    let n = shape.iter().product::<usize>();
    Tensor::from_vec(shape, (0..n as i64).collect()).unwrap()
}

/// Runs infer (every input constant) and eval, checks they agree, returns the outputs.
fn run_n(op: &Movement, inputs: &[Option<Tensor>], n_outputs: usize) -> Result<Vec<Tensor>> {
    let consts: Vec<Option<crate::ir::Constant>> = inputs.iter().map(|t| t.clone().map(crate::ir::Constant::new)).collect();
    let tys: Vec<_> = inputs.iter().zip(&consts).map(|(t, c)| t.as_ref().map(|t| (ValueType::of(t), c.as_ref()))).collect();
    let inferred = op.infer(&InferCx { inputs: &tys, n_outputs })?;
    let refs: Vec<_> = inputs.iter().map(|t| t.as_ref()).collect();
    let out = op.eval(&EvalInputs { inputs: &refs, n_outputs })?;
    assert_eq!(inferred, out.iter().map(ValueType::of).collect::<Vec<_>>(), "{op:?}");
    Ok(out)
}

fn run(op: &Movement, inputs: &[Option<Tensor>]) -> Result<Tensor> {
    Ok(run_n(op, inputs, 1)?.remove(0))
}

fn vals(t: &Tensor) -> Vec<i64> {
    t.to_i64_vec().unwrap()
}

#[test]
fn transpose() {
    let x = iota(&[2, 3, 4]);
    let y = run(&Movement::Transpose { perm: None }, &[Some(x.clone())]).unwrap();
    assert_eq!(y.shape(), &[4, 3, 2]);
    assert_eq!(vals(&y)[..4], [0, 12, 4, 16]);
    let y = run(&Movement::Transpose { perm: Some(vec![1, 0, 2]) }, &[Some(x.clone())]).unwrap();
    assert_eq!(y.shape(), &[3, 2, 4]);
    assert_eq!(vals(&y)[..8], [0, 1, 2, 3, 12, 13, 14, 15]);
    assert!(run(&Movement::Transpose { perm: Some(vec![0, 0, 1]) }, &[Some(x.clone())]).is_err());
    assert!(run(&Movement::Transpose { perm: Some(vec![0, 1]) }, &[Some(x)]).is_err());
    let s = Tensor::Str(ArrayD::from_shape_vec(IxDyn(&[1, 2]), vec!["a".to_string(), "b".into()]).unwrap());
    assert_eq!(run(&Movement::Transpose { perm: None }, &[Some(s)]).unwrap().shape(), &[2, 1]);
}

#[test]
fn concat() {
    let a = iota(&[2, 2]);
    let b = Tensor::from_vec(&[2, 1], vec![7i64, 8]).unwrap();
    let y = run(&Movement::Concat { axis: -1 }, &[Some(a.clone()), Some(b.clone())]).unwrap();
    assert_eq!(vals(&y), [0, 1, 7, 2, 3, 8]);
    assert!(run(&Movement::Concat { axis: 0 }, &[Some(a.clone()), Some(b)]).is_err());
    assert!(run(&Movement::Concat { axis: 2 }, &[Some(a.clone())]).is_err());
    assert!(run(&Movement::Concat { axis: 0 }, &[Some(a.clone()), Some(a.cast(DType::I32).unwrap())]).is_err());
    let empty = Tensor::zeros(DType::I64, &[0, 2]).unwrap();
    assert_eq!(run(&Movement::Concat { axis: 0 }, &[Some(empty), Some(a.clone())]).unwrap(), a);
    assert!(run(&Movement::Concat { axis: 0 }, &[Some(a), None]).is_err());
}

#[test]
fn split() {
    let x = iota(&[2, 7]);
    let lens = |ys: &[Tensor]| ys.iter().map(|y| y.shape()[1]).collect::<Vec<_>>();
    let ys = run_n(&Movement::Split { axis: 1, num_outputs: Some(3) }, &[Some(x.clone())], 3).unwrap();
    assert_eq!(lens(&ys), [3, 3, 1]);
    assert_eq!(vals(&ys[2]), [6, 13]);
    let ys = run_n(&Movement::Split { axis: -1, num_outputs: None }, &[Some(x.clone()), Some(i64s(&[2, 0, 5]))], 3).unwrap();
    assert_eq!(lens(&ys), [2, 0, 5]);
    assert_eq!(vals(&ys[2]), [2, 3, 4, 5, 6, 9, 10, 11, 12, 13]);
    let ys = run_n(&Movement::Split { axis: 0, num_outputs: None }, &[Some(x.clone())], 2).unwrap();
    assert_eq!(ys.len(), 2);
    assert!(run_n(&Movement::Split { axis: 1, num_outputs: None }, &[Some(x.clone()), Some(i64s(&[3, 3]))], 2).is_err());
    assert!(run_n(&Movement::Split { axis: 1, num_outputs: Some(2) }, &[Some(x.clone())], 3).is_err());
    assert!(run_n(&Movement::Split { axis: 2, num_outputs: Some(2) }, &[Some(x)], 2).is_err());
}

#[test]
fn slice() {
    let x = iota(&[3, 4]);
    let s = |starts: &[i64], ends: &[i64], axes: Option<&[i64]>, steps: Option<&[i64]>| {
        run(&Movement::Slice, &[Some(x.clone()), Some(i64s(starts)), Some(i64s(ends)), axes.map(i64s), steps.map(i64s)])
    };
    let y = s(&[1, 0], &[2, 3], Some(&[0, 1]), Some(&[1, 2])).unwrap();
    assert_eq!((y.shape(), vals(&y)), (&[1, 2][..], vec![4, 6]));
    let y = s(&[-1], &[i64::MIN], Some(&[-1]), Some(&[-3])).unwrap();
    assert_eq!((y.shape(), vals(&y)), (&[3, 2][..], vec![3, 0, 7, 4, 11, 8]));
    let y = s(&[0], &[1000], None, None).unwrap();
    assert_eq!(y.shape(), &[3, 4]);
    let y = s(&[5], &[10], None, None).unwrap();
    assert_eq!(y.shape(), &[0, 4]);
    assert!(s(&[0], &[1], Some(&[2]), None).is_err());
    assert!(run(&Movement::Slice, &[Some(x.clone()), Some(i64s(&[0]))]).is_err());
    let f = Tensor::from_vec(&[1], vec![0.0f32]).unwrap();
    assert!(run(&Movement::Slice, &[Some(x), Some(f.clone()), Some(f)]).is_err());
}

#[test]
fn tile() {
    let x = iota(&[2, 2]);
    let y = run(&Movement::Tile, &[Some(x.clone()), Some(i64s(&[2, 1]))]).unwrap();
    assert_eq!((y.shape(), vals(&y)), (&[4, 2][..], vec![0, 1, 2, 3, 0, 1, 2, 3]));
    let y = run(&Movement::Tile, &[Some(x.clone()), Some(i64s(&[1, 0]))]).unwrap();
    assert_eq!(y.shape(), &[2, 0]);
    assert!(run(&Movement::Tile, &[Some(x.clone()), Some(i64s(&[2]))]).is_err());
    assert!(run(&Movement::Tile, &[Some(x), Some(i64s(&[1, -1]))]).is_err());
}

#[test]
fn pad() {
    // The spec's examples.
    let x = f32s(&[3, 2], &[1.0, 1.2, 2.3, 3.4, 4.5, 5.7]);
    let pad = |mode, pads: &[i64], value: Option<f32>, axes: Option<&[i64]>| {
        let v = value.map(|v| Tensor::scalar(v));
        run(&Movement::Pad { mode }, &[Some(x.clone()), Some(i64s(pads)), v, axes.map(i64s)]).unwrap()
    };
    let fl = |t: &Tensor| t.to_f64_vec().unwrap().iter().map(|&v| v as f32).collect::<Vec<_>>();
    let y = pad(PadMode::Constant, &[0, 2, 0, 0], None, None);
    assert_eq!((y.shape(), fl(&y)), (&[3, 4][..], vec![0.0, 0.0, 1.0, 1.2, 0.0, 0.0, 2.3, 3.4, 0.0, 0.0, 4.5, 5.7]));
    let y = pad(PadMode::Constant, &[1, 0], Some(9.0), Some(&[-1]));
    assert_eq!(fl(&y), vec![9.0, 1.0, 1.2, 9.0, 2.3, 3.4, 9.0, 4.5, 5.7]);
    let y = pad(PadMode::Reflect, &[0, 2, 0, 0], None, None);
    assert_eq!(fl(&y), vec![1.0, 1.2, 1.0, 1.2, 2.3, 3.4, 2.3, 3.4, 4.5, 5.7, 4.5, 5.7]);
    let y = pad(PadMode::Edge, &[0, 2, 0, 0], None, None);
    assert_eq!(fl(&y), vec![1.0, 1.0, 1.0, 1.2, 2.3, 2.3, 2.3, 3.4, 4.5, 4.5, 4.5, 5.7]);
    let y = pad(PadMode::Wrap, &[2, 1, 1, 1], None, None);
    assert_eq!(y.shape(), &[6, 4]);
    assert_eq!(fl(&y)[..8], [3.4, 2.3, 3.4, 2.3, 5.7, 4.5, 5.7, 4.5]);
    // A value of another type is an error.
    let bad = [Some(x.clone()), Some(i64s(&[0, 0, 0, 0])), Some(Tensor::scalar(1i64))];
    assert!(run(&Movement::Pad { mode: PadMode::Constant }, &bad).is_err());
    // Strings pad with "" (or the given value).
    let s = Tensor::Str(ArrayD::from_elem(IxDyn(&[1]), "a".to_string()));
    let y = run(&Movement::Pad { mode: PadMode::Constant }, &[Some(s.clone()), Some(i64s(&[1, 0]))]).unwrap();
    assert_eq!(y, Tensor::Str(ArrayD::from_shape_vec(IxDyn(&[2]), vec![String::new(), "a".into()]).unwrap()));
    let v = Tensor::Str(ArrayD::from_elem(IxDyn(&[]), "z".to_string()));
    let y = run(&Movement::Pad { mode: PadMode::Constant }, &[Some(s), Some(i64s(&[0, 1])), Some(v)]).unwrap();
    assert_eq!(y, Tensor::Str(ArrayD::from_shape_vec(IxDyn(&[2]), vec!["a".to_string(), "z".into()]).unwrap()));
}

#[test]
fn pad_old_opsets() {
    let mut attrs = Attrs::new();
    attrs.insert("pads".into(), Attr::Ints(vec![1, 0]));
    attrs.insert("value".into(), Attr::Float(2.5));
    attrs.insert("mode".into(), Attr::Str("constant".into()));
    let x = NodeInput::Const(Tensor::from_vec(&[2], vec![1i32, 2]).unwrap());
    let (op, ins) = ops::build("Pad", "", 2, "n", &attrs, vec![Some(x)], 1).unwrap();
    assert_eq!(op, Op::from(Movement::Pad { mode: PadMode::Constant }));
    assert_eq!(ins[1].as_ref().unwrap().konst().unwrap(), &i64s(&[1, 0]));
    assert_eq!(ins[2].as_ref().unwrap().konst().unwrap(), &Tensor::scalar(2i32));
    attrs.insert("mode".into(), Attr::Str("wrap".into()));
    assert!(ops::build("Pad", "", 2, "n", &attrs, vec![], 1).is_err());
    let mut attrs = Attrs::new();
    attrs.insert("mode".into(), Attr::Str("symmetric".into()));
    assert!(ops::build("Pad", "", 19, "n", &attrs, vec![], 1).is_err());
}

#[test]
fn slice_and_split_old_opsets() {
    let mut attrs = Attrs::new();
    attrs.insert("starts".into(), Attr::Ints(vec![1]));
    attrs.insert("ends".into(), Attr::Ints(vec![3]));
    let (op, ins) = ops::build("Slice", "", 9, "n", &attrs, vec![Some(NodeInput::Const(iota(&[4])))], 1).unwrap();
    assert_eq!(op, Op::from(Movement::Slice));
    assert_eq!(ins.len(), 3);
    let mut attrs = Attrs::new();
    attrs.insert("split".into(), Attr::Ints(vec![1, 3]));
    attrs.insert("axis".into(), Attr::Int(0));
    let (op, ins) = ops::build("Split", "", 11, "n", &attrs, vec![Some(NodeInput::Const(iota(&[4])))], 2).unwrap();
    assert_eq!(op, Op::from(Movement::Split { axis: 0, num_outputs: None }));
    assert_eq!(ins[1].as_ref().unwrap().konst().unwrap(), &i64s(&[1, 3]));
    // num_outputs is opset 18.
    let mut attrs = Attrs::new();
    attrs.insert("num_outputs".into(), Attr::Int(2));
    assert!(ops::build("Split", "", 13, "n", &attrs, vec![], 2).is_err());
    assert!(ops::build("Split", "", 18, "n", &attrs, vec![], 2).is_ok());
}

#[test]
fn depth_to_space_and_back() {
    // The spec's CRD example: x[0, c, h, w] = 9c + 3h + w.
    let x: Vec<i64> = (0..8).flat_map(|c| (0..6).map(move |i| 9 * c + i)).collect();
    let x = Tensor::from_vec(&[1, 8, 2, 3], x).unwrap();
    let crd = Movement::DepthToSpace { blocksize: 2, mode: BlockMode::Crd };
    let y = run(&crd, &[Some(x.clone())]).unwrap();
    assert_eq!(y.shape(), &[1, 2, 4, 6]);
    assert_eq!(vals(&y)[..12], [0, 9, 1, 10, 2, 11, 18, 27, 19, 28, 20, 29]);
    let dcr = Movement::DepthToSpace { blocksize: 2, mode: BlockMode::Dcr };
    let y = run(&dcr, &[Some(x.clone())]).unwrap();
    assert_eq!(vals(&y)[..6], [0, 18, 1, 19, 2, 20]);
    // SpaceToDepth inverts DepthToSpace in the same mode.
    for mode in [BlockMode::Dcr, BlockMode::Crd] {
        let y = run(&Movement::DepthToSpace { blocksize: 2, mode }, &[Some(x.clone())]).unwrap();
        let back = run(&Movement::SpaceToDepth { blocksize: 2, mode }, &[Some(y)]).unwrap();
        assert_eq!(back, x, "{mode:?}");
    }
    assert!(run(&Movement::DepthToSpace { blocksize: 3, mode: BlockMode::Dcr }, &[Some(x.clone())]).is_err());
    assert!(run(&Movement::SpaceToDepth { blocksize: 2, mode: BlockMode::Dcr }, &[Some(x)]).is_err());
    assert!(run(&dcr, &[Some(iota(&[4, 1, 1]))]).is_err());
}

#[test]
fn block_mode_by_opset() {
    let mut attrs = Attrs::new();
    attrs.insert("blocksize".into(), Attr::Int(2));
    attrs.insert("mode".into(), Attr::Str("CRD".into()));
    // SpaceToDepth has `mode` from opset 28, DepthToSpace from 11.
    assert!(ops::build("SpaceToDepth", "", 13, "n", &attrs, vec![], 1).is_err());
    let (op, _) = ops::build("SpaceToDepth", "", 28, "n", &attrs, vec![], 1).unwrap();
    assert_eq!(op, Op::from(Movement::SpaceToDepth { blocksize: 2, mode: BlockMode::Crd }));
    assert!(ops::build("DepthToSpace", "", 10, "n", &attrs, vec![], 1).is_err());
    let (op, _) = ops::build("DepthToSpace", "", 13, "n", &attrs, vec![], 1).unwrap();
    assert_eq!(op, Op::from(Movement::DepthToSpace { blocksize: 2, mode: BlockMode::Crd }));
    attrs.insert("blocksize".into(), Attr::Int(0));
    assert!(ops::build("DepthToSpace", "", 13, "n", &attrs, vec![], 1).is_err());
}

#[test]
fn trilu() {
    let x = iota(&[3, 4]);
    let t = |upper, k: Option<i64>| vals(&run(&Movement::Trilu { upper }, &[Some(x.clone()), k.map(Tensor::scalar)]).unwrap());
    assert_eq!(t(true, None), [0, 1, 2, 3, 0, 5, 6, 7, 0, 0, 10, 11]);
    assert_eq!(t(true, Some(-1)), [0, 1, 2, 3, 4, 5, 6, 7, 0, 9, 10, 11]);
    assert_eq!(t(false, None), [0, 0, 0, 0, 4, 5, 0, 0, 8, 9, 10, 0]);
    assert_eq!(t(false, Some(1)), [0, 1, 0, 0, 4, 5, 6, 0, 8, 9, 10, 11]);
    assert_eq!(t(false, Some(-7)), [0; 12]);
    assert_eq!(t(true, Some(i64::MIN)), vals(&x));
    assert!(run(&Movement::Trilu { upper: true }, &[Some(iota(&[3]))]).is_err());
    let k = Tensor::scalar(1.0f32);
    assert!(run(&Movement::Trilu { upper: true }, &[Some(x), Some(k)]).is_err());
}

#[test]
fn reverse_sequence() {
    // The spec's examples.
    let x = iota(&[4, 4]);
    let op = Movement::ReverseSequence { batch_axis: 1, time_axis: 0 };
    let y = run(&op, &[Some(x.clone()), Some(i64s(&[4, 3, 2, 1]))]).unwrap();
    assert_eq!(vals(&y), [12, 9, 6, 3, 8, 5, 2, 7, 4, 1, 10, 11, 0, 13, 14, 15]);
    let op = Movement::ReverseSequence { batch_axis: 0, time_axis: 1 };
    let y = run(&op, &[Some(x.clone()), Some(i64s(&[1, 2, 3, 4]))]).unwrap();
    assert_eq!(vals(&y), [0, 1, 2, 3, 5, 4, 6, 7, 10, 9, 8, 11, 15, 14, 13, 12]);
    assert!(run(&op, &[Some(x.clone()), Some(i64s(&[1, 2, 3]))]).is_err());
    assert!(run(&op, &[Some(x.clone()), Some(i64s(&[1, 2, 3, 5]))]).is_err());
    assert!(run(&op, &[Some(x.clone()), Some(i64s(&[1, 2, 3, -1]))]).is_err());
    assert!(run(&Movement::ReverseSequence { batch_axis: 0, time_axis: 0 }, &[Some(x), Some(i64s(&[1, 2, 3, 4]))]).is_err());
}

#[test]
fn center_crop_pad() {
    let x = iota(&[3, 4]);
    let op = Movement::CenterCropPad { axes: None };
    let y = run(&op, &[Some(x.clone()), Some(i64s(&[1, 6]))]).unwrap();
    assert_eq!((y.shape(), vals(&y)), (&[1, 6][..], vec![0, 4, 5, 6, 7, 0]));
    let op = Movement::CenterCropPad { axes: Some(vec![-1]) };
    let y = run(&op, &[Some(x.clone()), Some(i64s(&[2]))]).unwrap();
    assert_eq!(vals(&y), [1, 2, 5, 6, 9, 10]);
    assert!(run(&op, &[Some(x), Some(i64s(&[2, 2]))]).is_err());
}

#[test]
fn low_types_move_as_codes() {
    let x = Tensor::Low(DType::F8E4M3FN, ArrayD::from_shape_vec(IxDyn(&[2, 2]), vec![1u8, 2, 3, 4]).unwrap());
    let y = run(&Movement::Transpose { perm: None }, &[Some(x.clone())]).unwrap();
    assert_eq!(y, Tensor::Low(DType::F8E4M3FN, ArrayD::from_shape_vec(IxDyn(&[2, 2]), vec![1u8, 3, 2, 4]).unwrap()));
    let y = run(&Movement::Pad { mode: PadMode::Constant }, &[Some(x.clone()), Some(i64s(&[0, 1, 0, 0]))]).unwrap();
    assert_eq!(y.dtype(), DType::F8E4M3FN);
    assert_eq!(y.shape(), &[2, 3]);
    let y = run(&Movement::Concat { axis: 0 }, &[Some(x.clone()), Some(x.clone())]).unwrap();
    assert_eq!(y.shape(), &[4, 2]);
    let u8s = Tensor::from_vec(&[2, 2], vec![1u8, 2, 3, 4]).unwrap();
    assert!(run(&Movement::Concat { axis: 0 }, &[Some(x), Some(u8s)]).is_err());
}

#[test]
fn round_trip() {
    let all = [
        Movement::Transpose { perm: None },
        Movement::Transpose { perm: Some(vec![1, 0]) },
        Movement::Concat { axis: -1 },
        Movement::Split { axis: 1, num_outputs: None },
        Movement::Split { axis: 0, num_outputs: Some(3) },
        Movement::Slice,
        Movement::Tile,
        Movement::Pad { mode: PadMode::Constant },
        Movement::Pad { mode: PadMode::Reflect },
        Movement::Pad { mode: PadMode::Edge },
        Movement::Pad { mode: PadMode::Wrap },
        Movement::DepthToSpace { blocksize: 2, mode: BlockMode::Dcr },
        Movement::DepthToSpace { blocksize: 3, mode: BlockMode::Crd },
        Movement::SpaceToDepth { blocksize: 2, mode: BlockMode::Crd },
        Movement::Trilu { upper: false },
        Movement::Trilu { upper: true },
        Movement::ReverseSequence { batch_axis: 0, time_axis: 1 },
        Movement::CenterCropPad { axes: None },
        Movement::CenterCropPad { axes: Some(vec![0, -1]) },
    ];
    for m in all {
        let op = Op::from(m);
        assert_eq!(ops::rebuild(&op, vec![], 3).unwrap(), op);
    }
}
