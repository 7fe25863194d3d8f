use super::*;
use crate::ir::{Constant, NodeInput, ops};
use crate::tensor::f16;

fn f32s(shape: &[usize], v: &[f32]) -> Tensor {
    Tensor::from_vec(shape, v.to_vec()).unwrap()
}

fn i64s(v: &[i64]) -> Tensor {
    Tensor::from_vec(&[v.len()], v.to_vec()).unwrap()
}

/// f32 values 0, 1, 2, ... in `shape`.
fn iota(shape: &[usize]) -> Tensor {
    let n = shape.iter().product::<usize>();
    Tensor::from_vec(shape, (0..n).map(|v| v as f32).collect()).unwrap()
}

fn build(op_type: &str, opset: i64, attrs: &[(&str, Attr)], inputs: &[Option<Tensor>]) -> Result<Spatial> {
    let attrs: Attrs = attrs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    let ins = inputs.iter().map(|t| t.clone().map(NodeInput::Const)).collect();
    match ops::build(op_type, "", opset, "test", &attrs, ins, 1)?.0 {
        Op::Spatial(s) => Ok(s),
        o => panic!("{o:?}"),
    }
}

/// Runs infer (every input constant) and eval, checks that they agree, returns the output.
fn run(op: &Spatial, inputs: &[Option<Tensor>]) -> Result<Tensor> {
    let consts: Vec<_> = inputs.iter().map(|i| i.as_ref().map(|t| Constant::new(t.clone()))).collect();
    let tys: Vec<_> = consts.iter().map(|c| c.as_ref().map(|c| (c.ty().clone(), Some(c)))).collect();
    let types = op.infer(&InferCx { inputs: &tys, n_outputs: 1 })?;
    let refs: Vec<_> = inputs.iter().map(|i| i.as_ref()).collect();
    let out = op.eval(&EvalInputs { inputs: &refs, n_outputs: 1 })?.remove(0);
    assert_eq!(ValueType::of(&out), types[0], "{} infer and eval disagree", op.name());
    Ok(out)
}

fn close(t: &Tensor, want: &[f64], tol: f64) {
    let got = t.to_f64_vec().unwrap();
    assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() <= tol * (1.0 + w.abs()), "{got:?} vs {want:?}");
    }
}

#[test]
fn round_trips() {
    let x4 = Some(f32s(&[1, 1, 2, 2], &[0.0; 4]));
    let cases: Vec<(&str, i64, Vec<(&str, Attr)>, Vec<Option<Tensor>>)> = vec![
        ("GridSample", 16, vec![("mode", Attr::Str("bicubic".into())), ("padding_mode", Attr::Str("border".into()))], vec![]),
        ("GridSample", 20, vec![("mode", Attr::Str("nearest".into())), ("align_corners", Attr::Int(1))], vec![]),
        ("GridSample", 22, vec![("padding_mode", Attr::Str("reflection".into()))], vec![]),
        ("AffineGrid", 20, vec![("align_corners", Attr::Int(1))], vec![]),
        ("Col2Im", 18, vec![("strides", Attr::Ints(vec![2, 1]))], vec![None, Some(i64s(&[5, 5])), Some(i64s(&[2, 2]))]),
        ("RoiAlign", 10, vec![("mode", Attr::Str("max".into())), ("output_height", Attr::Int(3))], vec![]),
        ("RoiAlign", 16, vec![("sampling_ratio", Attr::Int(2)), ("spatial_scale", Attr::Float(0.25))], vec![]),
        ("DeformConv", 19, vec![("pads", Attr::Ints(vec![1, 1, 0, 0])), ("group", Attr::Int(1))], vec![x4.clone(), x4.clone()]),
        ("DeformConv", 22, vec![("kernel_shape", Attr::Ints(vec![2, 2])), ("offset_group", Attr::Int(1))], vec![x4.clone(), x4]),
        ("NonMaxSuppression", 10, vec![], vec![]),
        ("NonMaxSuppression", 11, vec![("center_point_box", Attr::Int(1))], vec![]),
        ("TensorScatter", 24, vec![("mode", Attr::Str("circular".into())), ("axis", Attr::Int(2))], vec![]),
        ("SwiGLU", 28, vec![("alpha", Attr::Float(1.702))], vec![]),
    ];
    for (op_type, opset, attrs, ins) in cases {
        let op: Op = build(op_type, opset, &attrs, &ins).unwrap().into();
        let ins: Vec<_> = ins.into_iter().map(|t| t.map(NodeInput::Const)).collect();
        assert_eq!(ops::rebuild(&op, ins, 1).unwrap(), op, "{op_type}");
    }
    // Every importer's op kind is covered above.
    for imp in IMPORTERS {
        assert!(["GridSample", "AffineGrid", "Col2Im", "RoiAlign", "DeformConv", "NonMaxSuppression", "TensorScatter", "SwiGLU"].contains(&imp.op_type));
    }
}

#[test]
fn import_rejects_bad_attributes() {
    assert!(build("GridSample", 20, &[("mode", Attr::Str("area".into()))], &[]).is_err());
    assert!(build("GridSample", 20, &[("align_corners", Attr::Int(2))], &[]).is_err());
    assert!(build("RoiAlign", 16, &[("coordinate_transformation_mode", Attr::Str("x".into()))], &[]).is_err());
    assert!(build("TensorScatter", 24, &[("mode", Attr::Str("ring".into()))], &[]).is_err());
    assert!(build("Col2Im", 18, &[("pads", Attr::Ints(vec![1]))], &[None, Some(i64s(&[5, 5])), Some(i64s(&[2, 2]))]).is_err());
    // SwiGLU exists from opset 28 only.
    assert!(build("SwiGLU", 27, &[], &[]).is_err());
    // RoiAlign 10 has no coordinate_transformation_mode: it is always output_half_pixel.
    let op = build("RoiAlign", 10, &[], &[]).unwrap();
    assert!(matches!(op, Spatial::RoiAlign { half_pixel: false, .. }));
}

/// Values from the ONNX reference implementation (X 1x1x2x3, five grid points in and out of
/// range) for every mode, padding mode and align_corners.
#[test]
fn grid_sample_matches_reference() {
    let x = f32s(&[1, 1, 2, 3], &[1.0, 2.0, 4.0, -3.0, 5.0, 0.5]);
    let grid = f32s(&[1, 1, 5, 2], &[-1.7, -1.2, 0.3, 0.9, 1.6, 0.1, -0.4, 2.9, 0.5, -0.5]);
    #[rustfmt::skip]
    let table: &[(Interp, Padding, bool, [f64; 5])] = &[
        (Interp::Nearest, Padding::Zeros, false, [0.0, 5.0, 0.0, 0.0, 4.0]),
        (Interp::Nearest, Padding::Zeros, true, [0.0, 5.0, 0.0, 0.0, 4.0]),
        (Interp::Nearest, Padding::Border, false, [1.0, 5.0, 0.5, -3.0, 4.0]),
        (Interp::Nearest, Padding::Border, true, [1.0, 5.0, 0.5, 5.0, 4.0]),
        (Interp::Nearest, Padding::Reflection, false, [2.0, 5.0, 0.5, 1.0, 4.0]),
        (Interp::Nearest, Padding::Reflection, true, [2.0, 5.0, 5.0, 2.0, 4.0]),
        (Interp::Linear, Padding::Zeros, false, [0.0, 1.7850003242492676, 0.0, 0.0, 3.5]),
        (Interp::Linear, Padding::Zeros, true, [0.2699999511241913, 3.5975000858306885, 0.8300001621246338, 0.08999991416931152, 2.9375]),
        (Interp::Linear, Padding::Border, false, [1.0, 2.9750003814697266, 1.8999998569488525, 0.20000028610229492, 3.5]),
        (Interp::Linear, Padding::Border, true, [1.0, 3.5975000858306885, 2.075000047683716, 1.8000000715255737, 2.9375]),
        (Interp::Linear, Padding::Reflection, false, [1.5500000715255737, 2.9750003814697266, 2.6599998474121094, 1.4000000953674316, 3.5]),
        (Interp::Linear, Padding::Reflection, true, [1.790000081062317, 3.5975000858306885, 3.0199999809265137, 1.6100000143051147, 2.9375]),
        (Interp::Cubic, Padding::Zeros, false, [-0.03909246250987053, 2.4212043285369873, -0.23760008811950684, 0.0, 4.00390625]),
        (Interp::Cubic, Padding::Zeros, true, [0.3006364107131958, 4.742109298706055, 0.8087987303733826, 0.0863928347826004, 3.97698974609375]),
        (Interp::Cubic, Padding::Border, false, [1.0, 3.9092204570770264, 1.8579988479614258, 0.42800116539001465, 3.58203125]),
        (Interp::Cubic, Padding::Border, true, [1.0, 4.549515247344971, 2.0533432960510254, 2.3820009231567383, 3.185791015625]),
        (Interp::Cubic, Padding::Reflection, false, [1.2642847299575806, 3.9689714908599854, 3.0059096813201904, 1.3908793926239014, 3.58203125]),
        (Interp::Cubic, Padding::Reflection, true, [1.4933717250823975, 4.401901721954346, 3.4682583808898926, 1.3274931907653809, 3.24951171875]),
    ];
    for &(mode, padding, align_corners, want) in table {
        let op = Spatial::GridSample { mode, padding, align_corners };
        let y = run(&op, &[Some(x.clone()), Some(grid.clone())]).unwrap();
        assert_eq!(y.shape(), &[1, 1, 1, 5]);
        close(&y, &want, 1e-5);
    }
}

#[test]
fn grid_sample_nearest_moves_any_dtype_and_checks_shapes() {
    let x = Tensor::from_vec(&[1, 2, 3], vec![7i64, 8, 9, -1, -2, -3]).unwrap();
    let grid = f32s(&[1, 2, 1], &[-1.0, 1.0]);
    let op = Spatial::GridSample { mode: Interp::Nearest, padding: Padding::Border, align_corners: true };
    let y = run(&op, &[Some(x.clone()), Some(grid.clone())]).unwrap();
    assert_eq!(y, Tensor::from_vec(&[1, 2, 2], vec![7i64, 9, -1, -3]).unwrap());
    // Linear needs a float X; mismatched shapes are errors, not panics.
    let lin = Spatial::GridSample { mode: Interp::Linear, padding: Padding::Zeros, align_corners: false };
    assert!(run(&lin, &[Some(x.clone()), Some(grid.clone())]).is_err());
    assert!(run(&op, &[Some(x.clone()), Some(f32s(&[1, 2, 2], &[0.0; 4]))]).is_err());
    assert!(run(&op, &[Some(x), Some(f32s(&[2, 2, 1], &[0.0; 4]))]).is_err());
    // Empty output.
    let y = run(&lin, &[Some(f32s(&[1, 1, 3], &[1.0, 2.0, 3.0])), Some(f32s(&[1, 0, 1], &[]))]).unwrap();
    assert_eq!(y.shape(), &[1, 1, 0]);
}

#[test]
fn affine_grid_identity_is_the_base_grid() {
    let theta = f32s(&[1, 2, 3], &[1.0, 0.0, 0.0, 0.0, 1.0, 0.0]);
    let op = Spatial::AffineGrid { align_corners: true };
    let y = run(&op, &[Some(theta.clone()), Some(i64s(&[1, 3, 2, 3]))]).unwrap();
    assert_eq!(y.shape(), &[1, 2, 3, 2]);
    close(&y, &[-1.0, -1.0, 0.0, -1.0, 1.0, -1.0, -1.0, 1.0, 0.0, 1.0, 1.0, 1.0], 1e-7);
    let op = Spatial::AffineGrid { align_corners: false };
    let y = run(&op, &[Some(theta.clone()), Some(i64s(&[1, 3, 1, 2]))]).unwrap();
    close(&y, &[-0.5, 0.0, 0.5, 0.0], 1e-7);
    // A translation in 3-D.
    let t3 = f32s(&[1, 3, 4], &[1.0, 0.0, 0.0, 0.5, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, -1.0]);
    let y = run(&Spatial::AffineGrid { align_corners: true }, &[Some(t3), Some(i64s(&[1, 1, 2, 1, 2]))]).unwrap();
    assert_eq!(y.shape(), &[1, 2, 1, 2, 3]);
    close(&y, &[-0.5, 0.0, -2.0, 1.5, 0.0, -2.0, -0.5, 0.0, 0.0, 1.5, 0.0, 0.0], 1e-7);
    assert!(run(&op, &[Some(theta), Some(i64s(&[2, 3, 1, 2]))]).is_err());
}

#[test]
fn col2im_matches_spec_example() {
    let x = f32s(&[1, 5, 5], &[1., 6., 11., 16., 21., 2., 7., 12., 17., 22., 3., 8., 13., 18., 23., 4., 9., 14., 19., 24., 5., 0., 15., 20., 25.]);
    let inputs = [Some(x), Some(i64s(&[5, 5])), Some(i64s(&[1, 5]))];
    let op = build("Col2Im", 18, &[], &inputs).unwrap();
    let y = run(&op, &inputs).unwrap();
    assert_eq!(y.shape(), &[1, 1, 5, 5]);
    let want: Vec<f64> = (1..=25).map(|v| if v == 10 { 0.0 } else { v as f64 }).collect();
    close(&y, &want, 0.0);
}

#[test]
fn col2im_overlaps_add_and_ints_wrap() {
    // Two 1-D blocks of 2 with stride 1 over 3 pixels: the middle pixel gets both.
    let x = Tensor::from_vec(&[1, 2, 2], vec![100i8, 100, 100, 2]).unwrap();
    let inputs = [Some(x), Some(i64s(&[3])), Some(i64s(&[2]))];
    let op = build("Col2Im", 18, &[], &inputs).unwrap();
    let y = run(&op, &inputs).unwrap();
    assert_eq!(y, Tensor::from_vec(&[1, 1, 3], vec![100i8, -56, 2]).unwrap());
    // Padding drops the entries that land outside; a wrong block count is an error.
    let x = f32s(&[1, 2, 3], &[1., 2., 3., 4., 5., 6.]);
    let inputs = [Some(x), Some(i64s(&[3])), Some(i64s(&[2]))];
    let op = build("Col2Im", 18, &[("pads", Attr::Ints(vec![1, 0]))], &inputs).unwrap();
    close(&run(&op, &inputs).unwrap(), &[2.0 + 4.0, 3.0 + 5.0, 6.0], 0.0);
    let bad = [Some(f32s(&[1, 2, 4], &[0.0; 8])), Some(i64s(&[3])), Some(i64s(&[2]))];
    assert!(run(&build("Col2Im", 18, &[], &bad).unwrap(), &bad).is_err());
}

/// Values from the ONNX reference implementation.
#[test]
fn roi_align_matches_reference() {
    let xv: Vec<f32> = (0..20).map(|v| (v % 7) as f32 - 2.0).collect();
    let x = f32s(&[1, 1, 4, 5], &xv);
    let rois = f32s(&[2, 4], &[0.5, 0.2, 3.7, 2.9, 1.0, 1.0, 1.2, 1.1]);
    let bi = Tensor::from_vec(&[2], vec![0i64, 0]).unwrap();
    #[rustfmt::skip]
    let table: &[(bool, bool, [f64; 8])] = &[
        (true, false, [0.1170843243598938, -0.22257816791534424, 2.612762451171875, 1.0578126907348633, 0.5574999451637268, 0.6474999189376831, 0.7824999690055847, 0.872499942779541]),
        (true, true, [2.2940499782562256, 0.5912503004074097, 3.1088500022888184, 1.8140623569488525, 0.75204998254776, 0.9041500091552734, 0.8321499824523926, 1.0004500150680542]),
        (false, false, [1.4965813159942627, -0.6456254124641418, 1.8855905532836914, 2.5506248474121094, 2.9574999809265137, 0.48249998688697815, 2.4825000762939453, 1.7574999332427979]),
        (false, true, [2.944350004196167, 0.500762403011322, 1.1319749355316162, 2.7111494541168213, 2.890000104904175, 1.190000057220459, 1.190000057220459, 1.2674999237060547]),
    ];
    for &(half_pixel, max, want) in table {
        let op = Spatial::RoiAlign { half_pixel, max, output_height: 2, output_width: 2, sampling_ratio: 0, spatial_scale: 0.9 };
        let y = run(&op, &[Some(x.clone()), Some(rois.clone()), Some(bi.clone())]).unwrap();
        assert_eq!(y.shape(), &[2, 1, 2, 2]);
        close(&y, &want, 1e-5);
    }
    let op = Spatial::RoiAlign { half_pixel: true, max: false, output_height: 1, output_width: 1, sampling_ratio: 0, spatial_scale: 1.0 };
    let bad = Tensor::from_vec(&[2], vec![0i64, 1]).unwrap();
    assert!(run(&op, &[Some(x), Some(rois), Some(bad)]).is_err());
}

/// Values from the ONNX reference implementation (groups, offset groups, mask, bias,
/// padding, strides and dilations all in play).
#[test]
fn deform_conv_matches_reference() {
    let x: Vec<f32> = (0..32).map(|v| (v % 5) as f32 - 1.5).collect();
    let off: Vec<f32> = (0..64).map(|v| ((v as f32 * 0.37) % 3.0) - 1.4).collect();
    let mask: Vec<f32> = (0..32).map(|v| (v as f32 * 0.29) % 1.0).collect();
    let inputs = [
        Some(f32s(&[1, 2, 4, 4], &x)),
        Some(f32s(&[2, 1, 2, 2], &[1., -2., 0.5, 3., 2., 1., -1., 0.25])),
        Some(f32s(&[1, 16, 2, 2], &off)),
        Some(f32s(&[2], &[0.5, -1.0])),
        Some(f32s(&[1, 8, 2, 2], &mask)),
    ];
    let attrs = [
        ("group", Attr::Int(2)),
        ("offset_group", Attr::Int(2)),
        ("pads", Attr::Ints(vec![1, 1, 1, 1])),
        ("strides", Attr::Ints(vec![2, 2])),
        ("dilations", Attr::Ints(vec![2, 2])),
    ];
    let op = build("DeformConv", 22, &attrs, &inputs).unwrap();
    let y = run(&op, &inputs).unwrap();
    assert_eq!(y.shape(), &[1, 2, 2, 2]);
    let want = [3.677600860595703, 2.4380276203155518, 0.9209355711936951, 0.5570324659347534, -1.0081995725631714, -0.9828208684921265, -1.7311012744903564, 0.7635688781738281];
    close(&y, &want, 1e-5);
    // A wrong offset shape is an error.
    let mut bad = inputs.clone();
    bad[2] = Some(f32s(&[1, 8, 2, 2], &off[..32]));
    assert!(run(&op, &bad).is_err());
}

#[test]
fn deform_conv_without_offsets_is_a_convolution() {
    // 1-D: X [1, 2, 3], kernel [1, -1], zero offsets: y[i] = x[i] - x[i+1].
    let inputs = [Some(f32s(&[1, 1, 3], &[1.0, 2.0, 4.0])), Some(f32s(&[1, 1, 2], &[1.0, -1.0])), Some(f32s(&[1, 2, 2], &[0.0; 4]))];
    let op = build("DeformConv", 19, &[], &inputs).unwrap();
    close(&run(&op, &inputs).unwrap(), &[-1.0, -2.0], 0.0);
    // A half-pixel offset on the second tap of the first output interpolates x[1] and x[2].
    let mut moved = inputs.clone();
    moved[2] = Some(f32s(&[1, 2, 2], &[0.0, 0.0, 0.5, 0.0]));
    close(&run(&op, &moved).unwrap(), &[1.0 - 3.0, -2.0], 0.0);
}

fn nms_boxes() -> Tensor {
    #[rustfmt::skip]
    let b = [0.0, 0.0, 1.0, 1.0, 0.0, 0.1, 1.0, 1.1, 0.0, -0.1, 1.0, 0.9, 0.0, 10.0, 1.0, 11.0, 0.0, 10.1, 1.0, 11.1, 0.0, 100.0, 1.0, 101.0];
    f32s(&[1, 6, 4], &b)
}

#[test]
fn nms_matches_spec_examples() {
    let scores = f32s(&[1, 1, 6], &[0.9, 0.75, 0.6, 0.95, 0.5, 0.3]);
    let op = Spatial::NonMaxSuppression { center_point_box: false };
    let ins = |max: i64, score: f32| {
        vec![Some(nms_boxes()), Some(scores.clone()), Some(i64s(&[max])), Some(f32s(&[1], &[0.5])), Some(f32s(&[1], &[score]))]
    };
    let y = run(&op, &ins(3, 0.0)).unwrap();
    assert_eq!(y, Tensor::from_vec(&[3, 3], vec![0i64, 0, 3, 0, 0, 0, 0, 0, 5]).unwrap());
    let y = run(&op, &ins(3, 0.4)).unwrap();
    assert_eq!(y, Tensor::from_vec(&[2, 3], vec![0i64, 0, 3, 0, 0, 0]).unwrap());
    let y = run(&op, &ins(2, 0.0)).unwrap();
    assert_eq!(y.shape(), &[2, 3]);
    // Without max_output_boxes_per_class nothing is selected.
    let y = run(&op, &[Some(nms_boxes()), Some(scores.clone())]).unwrap();
    assert_eq!(y.shape(), &[0, 3]);
    // Center-point format: (x_center, y_center, width, height).
    #[rustfmt::skip]
    let c = f32s(&[1, 6, 4], &[0.5, 0.5, 1.0, 1.0, 0.5, 0.6, 1.0, 1.0, 0.5, 0.4, 1.0, 1.0, 0.5, 10.5, 1.0, 1.0, 0.5, 10.6, 1.0, 1.0, 0.5, 100.5, 1.0, 1.0]);
    let mut cin = ins(3, 0.0);
    cin[0] = Some(c);
    let y = run(&Spatial::NonMaxSuppression { center_point_box: true }, &cin).unwrap();
    assert_eq!(y, Tensor::from_vec(&[3, 3], vec![0i64, 0, 3, 0, 0, 0, 0, 0, 5]).unwrap());
    // Shapes that do not fit are errors.
    let mut bad = ins(3, 0.0);
    bad[1] = Some(f32s(&[1, 1, 5], &[0.0; 5]));
    assert!(run(&op, &bad).is_err());
}

#[test]
fn nms_needs_constant_inputs() {
    let op = Spatial::NonMaxSuppression { center_point_box: false };
    let tys = vec![Some((ValueType::new(DType::F32, vec![1, 6, 4]), None)), Some((ValueType::new(DType::F32, vec![1, 1, 6]), None))];
    let err = op.infer(&InferCx { inputs: &tys, n_outputs: 1 }).unwrap_err();
    assert!(err.downcast_ref::<crate::ir::NeedsConstant>().is_some(), "{err}");
}

#[test]
fn tensor_scatter_linear_and_circular() {
    let past = iota(&[2, 4, 2]);
    let upd = f32s(&[2, 2, 2], &[-1., -2., -3., -4., -5., -6., -7., -8.]);
    let wi = Tensor::from_vec(&[2], vec![1i64, 3]).unwrap();
    let op = build("TensorScatter", 24, &[("mode", Attr::Str("circular".into()))], &[]).unwrap();
    let y = run(&op, &[Some(past.clone()), Some(upd.clone()), Some(wi.clone())]).unwrap();
    close(&y, &[0., 1., -1., -2., -3., -4., 6., 7., -7., -8., 10., 11., 12., 13., -5., -6.], 0.0);
    // Linear mode rejects writes past the end; without write_indices it writes at 0.
    let lin = build("TensorScatter", 24, &[("axis", Attr::Int(1))], &[]).unwrap();
    assert!(run(&lin, &[Some(past.clone()), Some(upd.clone()), Some(wi)]).is_err());
    let y = run(&lin, &[Some(past.clone()), Some(upd.clone()), None]).unwrap();
    close(&y, &[-1., -2., -3., -4., 4., 5., 6., 7., -5., -6., -7., -8., 12., 13., 14., 15.], 0.0);
    // Any element type moves; the batch axis cannot be the sequence axis.
    let s = Tensor::from_vec(&[1, 2], vec!["a".to_string(), "b".into()]).unwrap();
    let u = Tensor::from_vec(&[1, 1], vec!["z".to_string()]).unwrap();
    let y = run(&Spatial::TensorScatter { circular: false, axis: -1 }, &[Some(s.clone()), Some(u.clone()), Some(i64s(&[1]))]).unwrap();
    assert_eq!(y, Tensor::from_vec(&[1, 2], vec!["a".to_string(), "z".into()]).unwrap());
    assert!(run(&Spatial::TensorScatter { circular: false, axis: 0 }, &[Some(s), Some(u), None]).is_err());
    assert!(run(&lin, &[Some(past), Some(iota(&[2, 2, 3])), None]).is_err());
}

#[test]
fn swiglu_values() {
    let a = f32s(&[2], &[1.0, -2.0]);
    let b = f32s(&[2], &[3.0, 0.5]);
    let y = run(&Spatial::SwiGlu { alpha: 1.0 }, &[Some(a.clone()), Some(b.clone())]).unwrap();
    let s = |v: f64| v / (1.0 + (-v).exp());
    close(&y, &[s(1.0) * 3.0, s(-2.0) * 0.5], 1e-6);
    let y = run(&Spatial::SwiGlu { alpha: 0.5 }, &[Some(a.clone()), Some(b)]).unwrap();
    let s = |v: f64| v / (1.0 + (-0.5 * v).exp());
    close(&y, &[s(1.0) * 3.0, s(-2.0) * 0.5], 1e-6);
    let h = Tensor::from_vec(&[1], vec![f16::from_f32(2.0)]).unwrap();
    let y = run(&Spatial::SwiGlu { alpha: 1.0 }, &[Some(h.clone()), Some(h)]).unwrap();
    assert_eq!(y.dtype(), DType::F16);
    close(&y, &[2.0 * 2.0 / (1.0 + (-2.0f64).exp())], 1e-3);
    // No broadcasting.
    assert!(run(&Spatial::SwiGlu { alpha: 1.0 }, &[Some(a), Some(f32s(&[1], &[1.0]))]).is_err());
}
