use super::*;
use crate::ir::Constant;
use crate::ir::ops::{build as build_op, rebuild};

/// Infers (with every input constant) and evaluates; checks that both agree.
fn run(op: &Signal, inputs: &[Option<Tensor>]) -> Result<Tensor> {
    let consts: Vec<Option<Constant>> = inputs.iter().map(|t| t.clone().map(Constant::new)).collect();
    let tys: Vec<Option<(ValueType, Option<&Constant>)>> =
        consts.iter().map(|c| c.as_ref().map(|c| (c.ty().clone(), Some(c)))).collect();
    let ty = op.infer(&InferCx { inputs: &tys, n_outputs: 1 })?.remove(0);
    let refs: Vec<Option<&Tensor>> = inputs.iter().map(|t| t.as_ref()).collect();
    let y = op.eval(&EvalInputs { inputs: &refs, n_outputs: 1 })?.remove(0);
    assert_eq!(ty, ValueType::of(&y));
    Ok(y)
}

fn close(y: &Tensor, want: &[f64]) {
    let got = y.to_f64_vec().unwrap();
    assert_eq!(got.len(), want.len(), "got {got:?}, want {want:?}");
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() <= 1e-5, "got {got:?}, want {want:?}");
    }
}

fn t(shape: &[usize], v: &[f32]) -> Option<Tensor> {
    Some(Tensor::from_vec(shape, v.to_vec()).unwrap())
}

fn i(v: i64) -> Option<Tensor> {
    Some(Tensor::scalar(v))
}

const DFT: Signal = Signal::Dft { inverse: false, onesided: false };

#[test]
fn round_trip_every_kind() {
    let x = Some(NodeInput::Const(Tensor::from_vec(&[4, 1], vec![1.0f32; 4]).unwrap()));
    let n = Some(NodeInput::Const(Tensor::scalar(4i64)));
    let ops = [
        (Signal::Dft { inverse: true, onesided: false }, vec![x.clone()]),
        (Signal::Dft { inverse: false, onesided: true }, vec![x.clone(), None, n.clone()]),
        (Signal::Stft { onesided: false }, vec![x.clone(), n.clone()]),
        (Signal::Stft { onesided: true }, vec![x.clone(), n.clone()]),
        (Signal::Window { kind: WindowKind::Hann, periodic: true, dtype: DType::F32 }, vec![n.clone()]),
        (Signal::Window { kind: WindowKind::Hamming, periodic: false, dtype: DType::F64 }, vec![n.clone()]),
        (Signal::Window { kind: WindowKind::Blackman, periodic: true, dtype: DType::I32 }, vec![n.clone()]),
        (Signal::MelWeightMatrix { dtype: DType::F16 }, vec![n.clone(); 5]),
    ];
    for (op, inputs) in ops {
        let op: Op = op.into();
        assert_eq!(rebuild(&op, inputs, 1).unwrap(), op);
    }
}

#[test]
fn dft_opset17_moves_axis_to_input() {
    let x = Some(NodeInput::Const(Tensor::from_vec(&[1, 4, 1], vec![1.0f32; 4]).unwrap()));
    let (op, inputs) = build_op("DFT", "", 17, "n", &Attrs::new(), vec![x.clone()], 1).unwrap();
    assert_eq!(op, Op::from(DFT));
    assert_eq!(inputs[2].as_ref().unwrap().konst().unwrap(), &Tensor::scalar(1i64));
    let mut a = Attrs::new();
    a.insert("axis".into(), Attr::Int(-2));
    let (_, inputs) = build_op("DFT", "", 19, "n", &a, vec![x.clone()], 1).unwrap();
    assert_eq!(inputs[2].as_ref().unwrap().konst().unwrap(), &Tensor::scalar(-2i64));
    // Opset 20 has no axis attribute.
    assert!(build_op("DFT", "", 20, "n", &a, vec![x], 1).is_err());
}

#[test]
fn dft_forward_inverse_and_onesided() {
    let x = t(&[4, 1], &[1.0, 2.0, 3.0, 4.0]);
    let y = run(&DFT, &[x.clone(), None, i(0)]).unwrap();
    close(&y, &[10.0, 0.0, -2.0, 2.0, -2.0, 0.0, -2.0, -2.0]);
    // Inverse of the complex spectrum gives the signal back (imaginary parts 0).
    let inv = Signal::Dft { inverse: true, onesided: false };
    let back = run(&inv, &[Some(y.clone()), None, i(0)]).unwrap();
    close(&back, &[1.0, 0.0, 2.0, 0.0, 3.0, 0.0, 4.0, 0.0]);
    // One-sided forward keeps n/2 + 1 bins; the one-sided inverse rebuilds the real signal.
    let rfft = run(&Signal::Dft { inverse: false, onesided: true }, &[x.clone(), None, i(0)]).unwrap();
    assert_eq!(rfft.shape(), &[3, 2]);
    close(&rfft, &[10.0, 0.0, -2.0, 2.0, -2.0, 0.0]);
    let irfft = run(&Signal::Dft { inverse: true, onesided: true }, &[Some(rfft), None, i(0)]).unwrap();
    assert_eq!(irfft.shape(), &[4, 1]);
    close(&irfft, &[1.0, 2.0, 3.0, 4.0]);
    // dft_length pads with zeros, or truncates.
    close(&run(&DFT, &[x.clone(), i(2), i(0)]).unwrap(), &[3.0, 0.0, -1.0, 0.0]);
    let padded = run(&DFT, &[t(&[2, 1], &[1.0, 1.0]), i(4), i(-2)]).unwrap();
    close(&padded, &[2.0, 0.0, 1.0, -1.0, 0.0, 0.0, 1.0, 1.0]);
}

#[test]
fn dft_along_an_inner_axis() {
    // [2, 2, 1]: transform along axis 0 pairs x[0, j] with x[1, j].
    let x = t(&[2, 2, 1], &[1.0, 2.0, 3.0, 5.0]);
    let y = run(&DFT, &[x, None, i(0)]).unwrap();
    close(&y, &[4.0, 0.0, 7.0, 0.0, -2.0, 0.0, -3.0, 0.0]);
}

#[test]
fn dft_rejects_bad_input() {
    let x = t(&[4, 1], &[1.0; 4]);
    assert!(run(&DFT, &[x.clone(), None, i(1)]).is_err()); // the complex axis
    assert!(run(&DFT, &[x.clone(), None, i(-1)]).is_err());
    assert!(run(&DFT, &[x.clone(), None, i(2)]).is_err());
    assert!(run(&DFT, &[x.clone(), i(0), i(0)]).is_err());
    assert!(run(&DFT, &[t(&[4, 3], &[1.0; 12]), None, i(0)]).is_err());
    assert!(run(&DFT, &[Some(Tensor::from_vec(&[4, 1], vec![1i32; 4]).unwrap()), None, i(0)]).is_err());
    assert!(run(&Signal::Dft { inverse: true, onesided: true }, &[t(&[1, 2], &[1.0, 0.0]), None, i(0)]).is_err());
}

#[test]
fn stft_frames_with_a_window() {
    let x = Some(Tensor::from_vec(&[1, 8, 1], (0..8).map(|v| v as f64).collect()).unwrap());
    let w = Some(Tensor::from_vec(&[4], vec![0.0f64, 0.75, 0.75, 0.0]).unwrap());
    let y = run(&Signal::Stft { onesided: true }, &[x.clone(), i(2), w.clone(), None]).unwrap();
    assert_eq!(y.shape(), &[1, 3, 3, 2]);
    close(&y, &[2.25, 0.0, -1.5, -0.75, 0.75, 0.0, 5.25, 0.0, -3.0, -2.25, 0.75, 0.0, 8.25, 0.0, -4.5, -3.75, 0.75, 0.0]);
    // frame_length without a window: a rectangular window; two-sided output.
    let y = run(&Signal::Stft { onesided: false }, &[x.clone(), i(4), None, i(4)]).unwrap();
    assert_eq!(y.shape(), &[1, 2, 4, 2]);
    close(&y.reshape(&[16]).unwrap(), &[6.0, 0.0, -2.0, 2.0, -2.0, 0.0, -2.0, -2.0, 22.0, 0.0, -2.0, 2.0, -2.0, 0.0, -2.0, -2.0]);
    // Mismatched window and frame_length, oversized frames, bad steps.
    assert!(run(&Signal::Stft { onesided: true }, &[x.clone(), i(2), w.clone(), i(3)]).is_err());
    assert!(run(&Signal::Stft { onesided: true }, &[x.clone(), i(2), None, i(9)]).is_err());
    assert!(run(&Signal::Stft { onesided: true }, &[x, i(0), w, None]).is_err());
}

#[test]
fn windows() {
    let hann = Signal::Window { kind: WindowKind::Hann, periodic: true, dtype: DType::F32 };
    close(&run(&hann, &[i(4)]).unwrap(), &[0.0, 0.5, 1.0, 0.5]);
    let hann_sym = Signal::Window { kind: WindowKind::Hann, periodic: false, dtype: DType::F64 };
    close(&run(&hann_sym, &[i(3)]).unwrap(), &[0.0, 1.0, 0.0]);
    let hamming = Signal::Window { kind: WindowKind::Hamming, periodic: false, dtype: DType::F32 };
    close(&run(&hamming, &[i(3)]).unwrap(), &[2.0 / 23.0, 1.0, 2.0 / 23.0]);
    let blackman = Signal::Window { kind: WindowKind::Blackman, periodic: true, dtype: DType::F32 };
    close(&run(&blackman, &[i(4)]).unwrap(), &[0.0, 0.34, 1.0, 0.34]);
    assert_eq!(run(&hann, &[i(0)]).unwrap().shape(), &[0]);
    assert!(run(&hann, &[i(-1)]).is_err());
    let mut a = Attrs::new();
    a.insert("output_datatype".into(), Attr::Int(8));
    assert!(build_op("HannWindow", "", 17, "n", &a, vec![], 1).is_err());
}

#[test]
fn mel_weight_matrix() {
    let op = Signal::MelWeightMatrix { dtype: DType::F32 };
    let inputs = [Some(Tensor::scalar(4i32)), Some(Tensor::scalar(8i32)), Some(Tensor::scalar(8000i32)), t(&[], &[100.0]), t(&[], &[4000.0])];
    let y = run(&op, &inputs).unwrap();
    assert_eq!(y.shape(), &[5, 4]);
    #[rustfmt::skip]
    let want = [1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0];
    close(&y, &want);
    // An upper edge above the Nyquist frequency lands outside the matrix.
    let mut bad = inputs.clone();
    bad[4] = t(&[], &[40000.0]);
    assert!(run(&op, &bad).is_err());
}
