//! Tests of the recurrent family: importers, shape inference and reference values.

use super::*;
use crate::ir::ops::{build, rebuild};

fn t(shape: &[usize], v: Vec<f32>) -> Tensor {
    Tensor::from_vec(shape, v).unwrap()
}
fn make(op: &str, attrs: &[(&str, Attr)], n_out: usize) -> Op {
    let attrs: Attrs = attrs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    build(op, "", 22, "n", &attrs, vec![], n_out).unwrap().0
}
fn run(op: &Op, ins: &[Option<Tensor>]) -> Vec<Tensor> {
    let refs: Vec<Option<&Tensor>> = ins.iter().map(|t| t.as_ref()).collect();
    let n = op.infer(&InferCx { inputs: &ins.iter().map(|t| t.as_ref().map(|t| (ValueType::of(t), None))).collect::<Vec<_>>(), n_outputs: 1 }).unwrap();
    let out = op.eval(&EvalInputs { inputs: &refs, n_outputs: n.len() }).unwrap();
    assert_eq!(n, out.iter().map(ValueType::of).collect::<Vec<_>>(), "infer disagrees with eval");
    out
}
fn close(a: &Tensor, b: &[f64]) {
    let a = a.to_f64_vec().unwrap();
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() < 1e-5, "{a:?} vs {b:?}");
    }
}

#[test]
#[allow(irrefutable_let_patterns)]
fn round_trip() {
    let s = |v: &[&str]| Attr::Strs(v.iter().map(|x| x.to_string()).collect());
    let ops = [
        make("LSTM", &[("hidden_size", Attr::Int(3))], 3),
        make(
            "LSTM",
            &[
                ("direction", Attr::Str("bidirectional".into())),
                ("activations", s(&["HardSigmoid", "Tanh", "affine"])),
                ("activation_alpha", Attr::Floats(vec![0.3, 2.0])),
                ("clip", Attr::Float(5.0)),
                ("input_forget", Attr::Int(1)),
                ("layout", Attr::Int(1)),
            ],
            3,
        ),
        make("GRU", &[("linear_before_reset", Attr::Int(1)), ("direction", Attr::Str("reverse".into()))], 2),
        make("RNN", &[("activations", s(&["LeakyRelu", "ScaledTanh"])), ("direction", Attr::Str("bidirectional".into())), ("activation_beta", Attr::Floats(vec![0.5]))], 2),
    ];
    for op in ops {
        assert_eq!(rebuild(&op, vec![], 2).unwrap(), op);
    }
    let Op::Rnn(r) = make("RNN", &[("activations", s(&["LeakyRelu", "ScaledTanh"])), ("direction", Attr::Str("bidirectional".into())), ("activation_alpha", Attr::Floats(vec![0.1, 2.0]))], 2) else { panic!() };
    assert_eq!(r.activations[0], Act { kind: ActKind::LeakyRelu, alpha: 0.1, beta: 0.0 });
    assert_eq!(r.activations[1], Act { kind: ActKind::ScaledTanh, alpha: 2.0, beta: 1.0 });
}

#[test]
fn bad_attributes() {
    let attrs: Attrs = [("activations".to_string(), Attr::Strs(vec!["Gelu".into()]))].into();
    assert!(build("RNN", "", 22, "n", &attrs, vec![], 2).is_err());
    let attrs: Attrs = [("direction".to_string(), Attr::Str("sideways".into()))].into();
    assert!(build("GRU", "", 22, "n", &attrs, vec![], 2).is_err());
    let attrs: Attrs = [("layout".to_string(), Attr::Int(1))].into();
    assert!(build("GRU", "", 13, "n", &attrs, vec![], 2).is_err(), "layout is not an opset-13 attribute");
}

#[test]
fn rnn_by_hand() {
    // X [2,1,1]; W = 1, R = 0.5, Wb = 0.1, H0 = 0: h1 = tanh(1 + 0.1), h2 = tanh(2 + 0.5 h1 + 0.1).
    let op = make("RNN", &[("hidden_size", Attr::Int(1))], 2);
    let x = t(&[2, 1, 1], vec![1.0, 2.0]);
    let ins = [Some(x), Some(t(&[1, 1, 1], vec![1.0])), Some(t(&[1, 1, 1], vec![0.5])), Some(t(&[1, 2], vec![0.1, 0.0]))];
    let out = run(&op, &ins);
    let h1 = (1.1f64).tanh();
    let h2 = (2.1 + 0.5 * h1).tanh();
    close(&out[0], &[h1, h2]);
    close(&out[1], &[h2]);
    // sequence_lens = 1 stops after the first step; Y is zero beyond.
    let mut ins = ins.to_vec();
    ins.push(Some(Tensor::from_vec(&[1], vec![1i32]).unwrap()));
    let out = run(&op, &ins);
    close(&out[0], &[h1, 0.0]);
    close(&out[1], &[h1]);
}

#[test]
fn reverse_and_layout() {
    // A reverse RNN with identity-ish Affine activation: h_t = x_t + h_{t+1}.
    let attrs = [
        ("direction", Attr::Str("bidirectional".into())),
        ("activations", Attr::Strs(vec!["Affine".into()])),
        ("activation_alpha", Attr::Floats(vec![1.0, 1.0])),
        ("activation_beta", Attr::Floats(vec![0.0, 0.0])),
        ("layout", Attr::Int(1)),
    ];
    let op = make("RNN", &attrs, 2);
    // batch 1, seq 3, input 1 (layout 1).
    let x = t(&[1, 3, 1], vec![1.0, 2.0, 3.0]);
    let ones = t(&[2, 1, 1], vec![1.0, 1.0]);
    let out = run(&op, &[Some(x), Some(ones.clone()), Some(ones)]);
    // Y [batch, seq, dirs, hidden]: forward prefix sums 1,3,6; reverse suffix sums 6,5,3.
    close(&out[0], &[1.0, 6.0, 3.0, 5.0, 6.0, 3.0]);
    close(&out[1], &[6.0, 6.0]);
}

#[test]
fn lstm_and_gru_match_numpy() {
    // Values from the ONNX reference implementation (onnx.reference) for the same inputs.
    let x = t(&[1, 2, 2], vec![1.0, 2.0, -1.0, 0.5]);
    let w = |g: usize, i: usize| t(&[1, g, i], (0..g * i).map(|k| 0.1 * ((k % 5) as f32) - 0.2).collect());
    let lstm = make("LSTM", &[("hidden_size", Attr::Int(2))], 3);
    let out = run(&lstm, &[Some(x.clone()), Some(w(8, 2)), Some(w(8, 2))]);
    close(&out[1], &[0.035582885, -0.05134957, 0.011423102, -0.07780061]);
    close(&out[2], &[0.079209156, -0.10852367, 0.026849123, -0.14929697]);
    let gru = make("GRU", &[("hidden_size", Attr::Int(2)), ("linear_before_reset", Attr::Int(1))], 2);
    let out = run(&gru, &[Some(x), Some(w(6, 2)), Some(w(6, 2)), Some(t(&[1, 12], vec![0.1; 12]))]);
    close(&out[1], &[0.3143236, -0.09734599, 0.060536373, 0.13051966]);
}

#[test]
fn shape_errors() {
    let op = make("RNN", &[("hidden_size", Attr::Int(2))], 2);
    let x = t(&[1, 1, 1], vec![1.0]);
    let bad_w = t(&[1, 3, 1], vec![0.0; 3]);
    let r = t(&[1, 2, 2], vec![0.0; 4]);
    let refs = [Some(&x), Some(&bad_w), Some(&r)];
    assert!(op.eval(&EvalInputs { inputs: &refs, n_outputs: 2 }).is_err());
    let w = t(&[1, 2, 1], vec![0.0; 2]);
    let lens = Tensor::from_vec(&[1], vec![5i64]).unwrap();
    let refs = [Some(&x), Some(&w), Some(&r), None, Some(&lens)];
    assert!(op.eval(&EvalInputs { inputs: &refs, n_outputs: 2 }).is_err(), "sequence_lens beyond seq_length");
}

#[test]
fn lstm_options_match_onnxruntime() {
    // Bidirectional, sequence_lens [3, 1], peepholes, initial states; expected values from
    // onnxruntime 1.x (CPU), once plain and once with clip = 0.5 and input_forget = 1.
    let x = t(&[3, 2, 2], vec![0.27, -0.46, -0.92, -0.97, 0.63, 0.83, 0.21, 0.46, 0.09, 0.87, 0.63, -0.99]);
    let w = t(&[2, 8, 2], vec![0.71, -0.93, 0.46, -0.65, 0.73, 0.08, -0.40, -0.15, -0.94, -0.75, 0.34, 0.29, 0.23, -0.23, 0.99, 0.96, 0.37, 0.30, 0.38, -0.22, -0.73, 0.44, 0.05, -0.38, -0.03, 0.78, 0.87, -0.28, 0.14, -0.36, 0.19, -0.32]);
    let r = t(&[2, 8, 2], vec![-0.22, 0.78, -0.55, 0.25, -0.83, 0.67, 0.57, -0.52, 0.75, -0.88, -0.33, -0.70, -0.10, 0.59, -0.54, -0.90, -0.19, -0.60, -0.82, 0.16, -0.40, 0.34, -0.60, 0.88, -0.27, -0.79, 0.26, 0.85, -0.12, 0.91, -0.00, -0.15]);
    let b = t(&[2, 16], vec![0.24, 0.99, 0.90, -0.08, 0.52, -0.01, 0.06, 0.57, -0.17, 0.47, 0.42, 0.86, -0.77, 0.46, 0.85, 0.94, -0.97, 0.73, 0.96, 0.91, -0.70, 0.95, 0.78, 0.64, -0.04, -0.54, 0.60, 0.85, -0.47, 0.08, -0.11, 0.86]);
    let p = t(&[2, 6], vec![-0.92, 0.46, 0.23, -0.94, 0.44, -0.97, 0.52, 0.03, 0.86, -0.87, 0.68, -0.87]);
    let h0 = t(&[2, 2, 2], vec![-0.31, -0.14, 0.93, 0.12, -0.48, -0.52, 0.78, -0.55]);
    let c0 = t(&[2, 2, 2], vec![-0.75, -0.42, 0.17, 0.11, 0.62, 0.12, -0.42, -0.17]);
    let lens = Tensor::from_vec(&[2], vec![3i32, 1]).unwrap();
    let ins = [Some(x), Some(w), Some(r), Some(b), Some(lens), Some(h0), Some(c0), Some(p)];
    let op = make("LSTM", &[("hidden_size", Attr::Int(2)), ("direction", Attr::Str("bidirectional".into()))], 3);
    let out = run(&op, &ins);
    close(&out[0], &[0.2823153, 0.2467945, 0.2375152, -0.44139, 0.1944087, 0.6355574, -0.005121157, 0.1520167, 0.3047511, 0.2859286, 0.0, 0.0, 0.2822652, 0.4946813, 0.0, 0.0, 0.2507765, 0.3205406, 0.0, 0.0, 0.3092234, 0.353332, 0.0, 0.0]);
    close(&out[1], &[0.2507765, 0.3205406, 0.2375152, -0.44139, 0.1944087, 0.6355574, -0.005121157, 0.1520167]);
    close(&out[2], &[0.3189891, 1.136856, 0.51709, -0.532598, 0.2458993, 1.193418, -0.006516654, 0.2143815]);
    let op = make("LSTM", &[("hidden_size", Attr::Int(2)), ("direction", Attr::Str("bidirectional".into())), ("clip", Attr::Float(0.5)), ("input_forget", Attr::Int(1))], 3);
    let out = run(&op, &ins);
    close(&out[0], &[0.002797061, 0.079905, 0.1510264, -0.1501793, 0.2330836, 0.25421, -0.09433597, 0.0426648, 0.129327, 0.1659592, 0.0, 0.0, 0.210503, 0.2345916, 0.0, 0.0, 0.184575, 0.2168435, 0.0, 0.0, 0.1729026, 0.1928954, 0.0, 0.0]);
    close(&out[1], &[0.184575, 0.2168435, 0.1510264, -0.1501793, 0.2330836, 0.25421, -0.09433597, 0.0426648]);
    close(&out[2], &[0.3057057, 0.4146473, 0.3198188, -0.2461196, 0.3935958, 0.4336848, -0.1527302, 0.06864996]);
}

#[test]
fn gru_and_rnn_options_match_onnxruntime() {
    // Bidirectional, sequence_lens [2, 3], initial state; expected values from onnxruntime (CPU).
    let x = t(&[3, 2, 2], vec![0.02, 0.90, -0.71, 0.90, -0.38, -0.15, 0.66, -0.18, 0.10, -0.94, 0.51, 0.08]);
    let w = t(&[2, 6, 2], vec![-0.34, 0.58, -0.39, -0.09, -0.73, -0.19, -0.59, -0.48, 0.50, -0.44, -0.03, 0.96, 0.92, 0.45, 0.08, -0.45, -0.68, 0.94, 0.03, -0.77, 0.25, 0.55, 0.23, 0.83]);
    let r = t(&[2, 6, 2], vec![-0.92, 0.06, -0.08, -0.88, 0.28, 0.71, 0.19, -0.48, 0.68, 0.02, 0.02, 0.51, -0.70, 0.64, 0.37, 0.57, -0.62, 0.60, -0.62, -0.84, 0.71, 0.72, 0.75, -0.06]);
    let b = t(&[2, 12], vec![-0.45, -0.99, 0.29, 0.44, 0.67, -0.44, -0.57, 0.28, 0.61, 0.93, -0.70, -0.04, 0.79, -0.15, 0.18, -0.95, 0.35, 0.84, 0.65, 0.77, 0.32, -0.51, 0.54, -0.58]);
    let h0 = t(&[2, 2, 2], vec![0.66, -0.87, 0.65, -0.67, -0.25, -0.37, 0.38, -0.64]);
    let lens = Tensor::from_vec(&[2], vec![2i32, 3]).unwrap();
    let ins = [Some(x.clone()), Some(w), Some(r), Some(b), Some(lens.clone()), Some(h0.clone())];
    let op = make("GRU", &[("hidden_size", Attr::Int(2)), ("direction", Attr::Str("bidirectional".into())), ("clip", Attr::Float(0.7))], 2);
    let out = run(&op, &ins);
    close(&out[0], &[0.1052859, -0.3671991, -0.09026606, -0.2482333, 0.1933749, 0.1647823, 0.5374323, 0.2539964, -0.03897587, -0.4995707, 0.1896774, -0.486198, -0.01071818, -0.2435182, 0.5041932, 0.00674729, 0.0, 0.0, 0.229645, -0.5098678, 0.0, 0.0, 0.454448, -0.1760889]);
    close(&out[1], &[-0.03897587, -0.4995707, 0.229645, -0.5098678, 0.1933749, 0.1647823, 0.5374323, 0.2539964]);
    let op = make("GRU", &[("hidden_size", Attr::Int(2)), ("direction", Attr::Str("bidirectional".into())), ("linear_before_reset", Attr::Int(1)), ("activations", Attr::Strs(vec!["HardSigmoid".into(), "Softsign".into(), "Sigmoid".into(), "Elu".into()])), ("activation_alpha", Attr::Floats(vec![0.3, 0.5])), ("activation_beta", Attr::Floats(vec![0.4]))], 2);
    let out = run(&op, &ins);
    close(&out[0], &[0.1600782, -0.308614, -0.09760515, -0.2195546, 0.05132578, 0.6766098, 0.7798821, 0.6833695, 0.1118166, -0.3927376, 0.405343, -0.3913174, -0.1162499, -0.04778646, 0.4930527, 0.2306511, 0.0, 0.0, 0.4018355, -0.3663857, 0.0, 0.0, 0.4419149, 0.003674209]);
    close(&out[1], &[0.1118166, -0.3927376, 0.4018355, -0.3663857, 0.05132578, 0.6766098, 0.7798821, 0.6833695]);
    let w = t(&[2, 2, 2], vec![-0.21, -0.99, -0.48, -0.16, -0.79, 0.27, -0.24, 0.45]);
    let r = t(&[2, 2, 2], vec![0.31, -0.14, 0.73, 0.26, 0.62, -0.32, 0.09, -0.61]);
    let b = t(&[2, 4], vec![0.99, -0.51, -0.49, -0.85, -0.48, 0.53, 0.40, -0.74]);
    let ins = [Some(x), Some(w), Some(r), Some(b), Some(lens), Some(h0)];
    let op = make("RNN", &[("hidden_size", Attr::Int(2)), ("direction", Attr::Str("bidirectional".into())), ("activations", Attr::Strs(vec!["Relu".into(), "LeakyRelu".into()])), ("activation_alpha", Attr::Floats(vec![0.2]))], 2);
    let out = run(&op, &ins);
    close(&out[0], &[0.0, 0.0, 0.05340004, 0.0, 0.230514, 0.19277, 0.6716823, 0.4173282, 0.7283, 0.0, 0.556154, 0.0, 0.1431, 0.01689997, -0.1387231, -0.1055956, 0.0, 0.0, 0.4861078, 0.0, 0.0, 0.0, -0.004180002, 0.1282]);
    close(&out[1], &[0.7283, 0.0, 0.4861078, 0.0, 0.230514, 0.19277, 0.6716823, 0.4173282]);
    let op = make("RNN", &[("hidden_size", Attr::Int(2)), ("direction", Attr::Str("bidirectional".into())), ("activations", Attr::Strs(vec!["ThresholdedRelu".into(), "ScaledTanh".into()])), ("activation_alpha", Attr::Floats(vec![0.1, 1.5])), ("activation_beta", Attr::Floats(vec![0.7]))], 2);
    let out = run(&op, &ins);
    close(&out[0], &[0.0, 0.0, 0.0, 0.0, 0.243904, 0.2012755, 0.4758554, 0.6218135, 0.7283, 0.0, 0.5396, 0.0, 0.1497545, 0.01774406, -0.6867841, -0.5352954, 0.0, 0.0, 0.480976, 0.0, 0.0, 0.0, -0.02194351, 0.1342497]);
    close(&out[1], &[0.7283, 0.0, 0.480976, 0.0, 0.243904, 0.2012755, 0.4758554, 0.6218135]);
    let op = make("RNN", &[("hidden_size", Attr::Int(2)), ("direction", Attr::Str("bidirectional".into())), ("activations", Attr::Strs(vec!["Affine".into(), "Softplus".into()])), ("activation_alpha", Attr::Floats(vec![0.8])), ("activation_beta", Attr::Floats(vec![0.1]))], 2);
    let out = run(&op, &ins);
    close(&out[0], &[0.04496, -0.9064, 0.14272, -0.59032, 0.912043, 0.6123307, 1.249148, 0.7938769, 0.7953069, -0.9851545, 0.6331905, -1.257838, 0.7672548, 0.7016329, 0.4856362, 0.3555282, 0.0, 0.0, 0.6488692, -1.085927, 0.0, 0.0, 0.6827518, 0.7593002]);
    close(&out[1], &[0.7953069, -0.9851545, 0.6488692, -1.085927, 0.912043, 0.6123307, 1.249148, 0.7938769]);
}
