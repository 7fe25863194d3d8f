use super::*;
use crate::ir::ops::build as build_op;
use crate::ir::{Constant, NodeInput};

fn run(op: &Ml, inputs: &[Tensor]) -> Result<Tensor> {
    let consts: Vec<Constant> = inputs.iter().cloned().map(Constant::new).collect();
    let tys: Vec<Option<(ValueType, Option<&Constant>)>> = consts.iter().map(|c| Some((c.ty().clone(), None))).collect();
    let ty = op.infer(&InferCx { inputs: &tys, n_outputs: 1 })?.remove(0);
    let refs: Vec<Option<&Tensor>> = inputs.iter().map(Some).collect();
    let y = op.eval(&EvalInputs { inputs: &refs, n_outputs: 1 })?.remove(0);
    assert_eq!(ty, ValueType::of(&y));
    Ok(y)
}

fn strs(v: &[&str]) -> Tensor {
    Tensor::from_vec(&[v.len()], v.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
}

fn attrs(list: Vec<(&str, Attr)>) -> Attrs {
    list.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

fn import(op: &str, opset: i64, a: &Attrs, x: Option<Tensor>) -> Result<Op> {
    Ok(build_op(op, DOMAIN, opset, "n", a, vec![x.map(NodeInput::Const)], 1)?.0)
}

fn ml(op: Op) -> Ml {
    match op {
        Op::Ml(m) => m,
        other => panic!("not an ml op: {other:?}"),
    }
}

/// The single-tree example of the ONNX TreeEnsemble cases (3.14 is its threshold, not π).
#[allow(clippy::approx_constant)]
fn single_tree() -> Attrs {
    let f64s = |v: &[f64]| Attr::Tensor(Tensor::from_vec(&[v.len()], v.to_vec()).unwrap());
    attrs(vec![
        ("aggregate_function", Attr::Int(1)),
        ("leaf_targetids", Attr::Ints(vec![0, 1, 0, 1])),
        ("leaf_weights", f64s(&[5.23, 12.12, -12.23, 7.21])),
        ("n_targets", Attr::Int(2)),
        ("nodes_falseleafs", Attr::Ints(vec![0, 1, 1])),
        ("nodes_falsenodeids", Attr::Ints(vec![2, 2, 3])),
        ("nodes_featureids", Attr::Ints(vec![0, 0, 0])),
        ("nodes_modes", Attr::Tensor(Tensor::from_vec(&[3], vec![0u8, 0, 0]).unwrap())),
        ("nodes_splits", f64s(&[3.14, 1.2, 4.2])),
        ("nodes_trueleafs", Attr::Ints(vec![0, 1, 1])),
        ("nodes_truenodeids", Attr::Ints(vec![1, 0, 1])),
        ("post_transform", Attr::Int(0)),
        ("tree_roots", Attr::Ints(vec![0])),
    ])
}

fn membership_tree() -> Attrs {
    let f32s = |v: &[f32]| Attr::Tensor(Tensor::from_vec(&[v.len()], v.to_vec()).unwrap());
    let nan = f32::NAN;
    attrs(vec![
        ("leaf_targetids", Attr::Ints(vec![0, 1, 2, 3])),
        ("leaf_weights", f32s(&[1.0, 10.0, 1000.0, 100.0])),
        ("membership_values", f32s(&[1.2, 3.7, 8.0, 9.0, nan, 12.0, 7.0, nan])),
        ("n_targets", Attr::Int(4)),
        ("nodes_falseleafs", Attr::Ints(vec![1, 0, 1])),
        ("nodes_falsenodeids", Attr::Ints(vec![2, 2, 3])),
        ("nodes_featureids", Attr::Ints(vec![0, 0, 0])),
        ("nodes_modes", Attr::Tensor(Tensor::from_vec(&[3], vec![0u8, 6, 6]).unwrap())),
        ("nodes_splits", f32s(&[11.0, 232344.0, nan])),
        ("nodes_trueleafs", Attr::Ints(vec![0, 1, 1])),
        ("nodes_truenodeids", Attr::Ints(vec![1, 0, 1])),
        ("tree_roots", Attr::Ints(vec![0])),
    ])
}

#[test]
fn round_trip_every_kind() {
    let le = attrs(vec![("keys_strings", Attr::Strs(vec!["a".into(), "b".into()])), ("values_int64s", Attr::Ints(vec![1, 2]))]);
    let ops = [
        import("LabelEncoder", 2, &le, None).unwrap(),
        import("TreeEnsemble", 5, &single_tree(), None).unwrap(),
        import("TreeEnsemble", 5, &membership_tree(), None).unwrap(),
        Ml::ArrayFeatureExtractor.into(),
        Ml::Binarizer { threshold: 1.5 }.into(),
    ];
    for op in ops {
        // The text form rebuilds ops in the default domain; these live in ai.onnx.ml.
        let back = build_op(op.name(), DOMAIN, 5, "n", &op.attrs(), vec![], 1).unwrap().0;
        assert_eq!(back, op);
    }
}

#[test]
fn label_encoder_every_opset_form() {
    let x = strs(&["a", "b", "d", "c", "g"]);
    let ints = |v: Vec<i64>| Tensor::from_vec(&[v.len()], v).unwrap();
    let a = attrs(vec![("keys_strings", Attr::Strs(vec!["a".into(), "b".into(), "c".into()])), ("values_int64s", Attr::Ints(vec![0, 1, 2])), ("default_int64", Attr::Int(42))]);
    let op = ml(import("LabelEncoder", 2, &a, None).unwrap());
    assert_eq!(run(&op, &[x.clone()]).unwrap(), ints(vec![0, 1, 42, 2, 42]));
    let a = attrs(vec![("keys_strings", Attr::Strs(vec!["a".into(), "b".into(), "c".into()])), ("values_int64s", Attr::Ints(vec![0, 1, 2]))]);
    let op = ml(import("LabelEncoder", 4, &a, None).unwrap());
    assert_eq!(run(&op, &[x.clone()]).unwrap(), ints(vec![0, 1, -1, 2, -1]));
    // Tensors of other types, with a default tensor.
    let i16s = |v: Vec<i16>| Tensor::from_vec(&[v.len()], v).unwrap();
    let a = attrs(vec![
        ("keys_tensor", Attr::Tensor(strs(&["a", "b", "c"]))),
        ("values_tensor", Attr::Tensor(i16s(vec![0, 1, 2]))),
        ("default_tensor", Attr::Tensor(i16s(vec![42]))),
    ]);
    let op = ml(import("LabelEncoder", 4, &a, None).unwrap());
    assert_eq!(run(&op, &[x.clone()]).unwrap(), i16s(vec![0, 1, 42, 2, 42]));
    assert!(import("LabelEncoder", 2, &a, None).is_err()); // no tensors before opset 4
    // Float keys to strings; -0 finds 0.
    let a = attrs(vec![("keys_floats", Attr::Floats(vec![0.0, 1.5])), ("values_strings", Attr::Strs(vec!["zero".into(), "x".into()]))]);
    let op = ml(import("LabelEncoder", 2, &a, None).unwrap());
    let y = run(&op, &[Tensor::from_vec(&[3], vec![-0.0f32, 1.5, 2.0]).unwrap()]).unwrap();
    assert_eq!(y, strs(&["zero", "x", "_Unused"]));
    // Opset 1: classes_strings, in the direction of the input type.
    let a = attrs(vec![("classes_strings", Attr::Strs(vec!["a".into(), "b".into()])), ("default_string", Attr::Str("?".into()))]);
    let op = ml(import("LabelEncoder", 1, &a, Some(ints(vec![1]))).unwrap());
    assert_eq!(run(&op, &[ints(vec![1, 0, 7])]).unwrap(), strs(&["b", "a", "?"]));
    let op = ml(import("LabelEncoder", 1, &a, Some(strs(&["a"]))).unwrap());
    assert_eq!(run(&op, &[strs(&["b", "z"])]).unwrap(), ints(vec![1, -1]));
    // Wrong input type, mismatched lengths.
    assert!(run(&op, &[ints(vec![1])]).is_err());
    let a = attrs(vec![("keys_int64s", Attr::Ints(vec![1, 2])), ("values_int64s", Attr::Ints(vec![1]))]);
    assert!(import("LabelEncoder", 2, &a, None).is_err());
}

#[test]
fn tree_ensemble_examples() {
    let op = ml(import("TreeEnsemble", 5, &single_tree(), None).unwrap());
    let x = Tensor::from_vec(&[3, 2], vec![1.2, 3.4, -0.12, 1.66, 4.14, 1.77]).unwrap();
    let y = run(&op, &[x]).unwrap();
    assert_eq!(y, Tensor::from_vec(&[3, 2], vec![5.23, 0.0, 5.23, 0.0, 0.0, 12.12]).unwrap());
    let op = ml(import("TreeEnsemble", 5, &membership_tree(), None).unwrap());
    let x = Tensor::from_vec(&[6, 1], vec![1.2f32, 3.4, -0.12, f32::NAN, 12.0, 7.0]).unwrap();
    let y = run(&op, &[x]).unwrap();
    #[rustfmt::skip]
    let want = vec![1.0f32, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 100.0, 0.0, 0.0, 0.0, 100.0, 0.0, 0.0, 1000.0, 0.0, 0.0, 0.0, 1000.0, 0.0, 0.0, 10.0, 0.0, 0.0];
    assert_eq!(y, Tensor::from_vec(&[6, 4], want).unwrap());
    // Too few features, a cycle, a bad index.
    assert!(run(&op, &[Tensor::from_vec(&[1, 0], Vec::<f32>::new()).unwrap()]).is_err());
    let mut a = single_tree();
    a.insert("nodes_truenodeids".into(), Attr::Ints(vec![1, 0, 9]));
    assert!(import("TreeEnsemble", 5, &a, None).is_err());
    let mut a = single_tree();
    a.insert("nodes_trueleafs".into(), Attr::Ints(vec![0, 0, 1]));
    let cyclic = ml(import("TreeEnsemble", 5, &a, None).unwrap());
    assert!(run(&cyclic, &[Tensor::from_vec(&[1, 1], vec![0.0f64]).unwrap()]).is_err());
    let mut a = single_tree();
    a.insert("post_transform".into(), Attr::Int(1));
    assert!(import("TreeEnsemble", 5, &a, None).is_err());
}

#[test]
fn tree_ensemble_aggregates() {
    let mut a = single_tree();
    a.insert("tree_roots".into(), Attr::Ints(vec![0, 2]));
    let x = Tensor::from_vec(&[1, 1], vec![5.0f64]).unwrap();
    // Root 0 sends 5.0 to leaf 3 (7.21, target 1); root 2 to leaf 3 as well.
    for (agg, want) in [(0, [f64::MAX.min(0.0), 7.21]), (1, [0.0, 14.42]), (2, [f64::MAX, 7.21]), (3, [f64::MIN, 7.21])] {
        a.insert("aggregate_function".into(), Attr::Int(agg));
        let op = ml(import("TreeEnsemble", 5, &a, None).unwrap());
        let y = run(&op, &[x.clone()]).unwrap().to_f64_vec().unwrap();
        assert!((y[0] - want[0]).abs() < 1e-9 && (y[1] - want[1]).abs() < 1e-9, "agg {agg}: {y:?}");
    }
}

#[test]
fn array_feature_extractor_and_binarizer() {
    let x = Tensor::from_vec(&[3, 4], (0..12).map(|v| v as f32).collect()).unwrap();
    let idx = Tensor::from_vec(&[2], vec![0i64, 3]).unwrap();
    let y = run(&Ml::ArrayFeatureExtractor, &[x.clone(), idx.clone()]).unwrap();
    assert_eq!(y, Tensor::from_vec(&[3, 2], vec![0.0f32, 3.0, 4.0, 7.0, 8.0, 11.0]).unwrap());
    let v = strs(&["a", "b", "c"]);
    let y = run(&Ml::ArrayFeatureExtractor, &[v, Tensor::from_vec(&[1, 1], vec![2i64]).unwrap()]).unwrap();
    assert_eq!(y, Tensor::from_vec(&[1, 1], vec!["c".to_string()]).unwrap());
    assert!(run(&Ml::ArrayFeatureExtractor, &[x.clone(), Tensor::from_vec(&[1], vec![4i64]).unwrap()]).is_err());
    assert!(run(&Ml::ArrayFeatureExtractor, &[x.clone(), Tensor::from_vec(&[1], vec![-1i64]).unwrap()]).is_err());
    let b = Ml::Binarizer { threshold: 5.0 };
    let y = run(&b, &[x]).unwrap();
    assert_eq!(y.to_f64_vec().unwrap(), (0..12).map(|v| if v > 5 { 1.0 } else { 0.0 }).collect::<Vec<_>>());
    let y = run(&b, &[Tensor::from_vec(&[2], vec![5i64, 6]).unwrap()]).unwrap();
    assert_eq!(y, Tensor::from_vec(&[2], vec![0i64, 1]).unwrap());
    assert!(run(&b, &[strs(&["a"])]).is_err());
}
