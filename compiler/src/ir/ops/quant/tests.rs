//! Tests of the quantisation family: importers, shape inference and reference values.

use super::*;
use crate::ir::ops::{build, rebuild};
use crate::tensor::{Elem, f16};

fn t<T: Elem>(shape: &[usize], v: Vec<T>) -> Tensor {
    Tensor::from_vec(shape, v).unwrap()
}
fn make(op: &str, attrs: &[(&str, Attr)], opset: i64) -> Op {
    let attrs: Attrs = attrs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    build(op, "", opset, "n", &attrs, vec![], 1).unwrap().0
}
fn run(op: &Op, ins: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
    let types: Vec<_> = ins.iter().map(|t| t.as_ref().map(|t| (ValueType::of(t), None))).collect();
    let inferred = op.infer(&InferCx { inputs: &types, n_outputs: 1 })?;
    let refs: Vec<Option<&Tensor>> = ins.iter().map(|t| t.as_ref()).collect();
    let out = op.eval(&EvalInputs { inputs: &refs, n_outputs: inferred.len() })?;
    assert_eq!(inferred, out.iter().map(ValueType::of).collect::<Vec<_>>(), "infer disagrees with eval");
    Ok(out)
}
fn check(op: &Op, ins: &[Option<Tensor>], want: &[Tensor]) {
    assert_eq!(run(op, ins).unwrap(), want, "{op:?}");
}

#[test]
fn round_trip() {
    let ops = [
        make("QuantizeLinear", &[("axis", Attr::Int(0)), ("block_size", Attr::Int(4)), ("output_dtype", Attr::Int(3)), ("precision", Attr::Int(1)), ("saturate", Attr::Int(0))], 25),
        make("QuantizeLinear", &[], 10),
        make("DequantizeLinear", &[("axis", Attr::Int(-1)), ("output_dtype", Attr::Int(16))], 25),
        make("DequantizeLinear", &[], 13),
        make("DynamicQuantizeLinear", &[], 11),
        make("MatMulInteger", &[], 10),
        make("QLinearMatMul", &[], 10),
        make("ConvInteger", &[("auto_pad", Attr::Str("SAME_UPPER".into())), ("group", Attr::Int(2)), ("strides", Attr::Ints(vec![2, 2]))], 10),
        make("QLinearConv", &[("pads", Attr::Ints(vec![1, 0, 1, 0])), ("dilations", Attr::Ints(vec![1, 2])), ("kernel_shape", Attr::Ints(vec![3, 3]))], 10),
    ];
    for op in ops {
        assert_eq!(rebuild(&op, vec![], 1).unwrap(), op);
    }
}

#[test]
fn import_errors() {
    let bad = |op: &str, attrs: &[(&str, Attr)], opset: i64| {
        let attrs: Attrs = attrs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        assert!(build(op, "", opset, "n", &attrs, vec![], 1).is_err(), "{op} {attrs:?}");
    };
    bad("QuantizeLinear", &[("axis", Attr::Int(0))], 10);
    bad("QuantizeLinear", &[("output_dtype", Attr::Int(1))], 21);
    bad("QuantizeLinear", &[("block_size", Attr::Int(-1))], 21);
    bad("DequantizeLinear", &[("output_dtype", Attr::Int(3))], 23);
    bad("ConvInteger", &[("auto_pad", Attr::Str("SAME_UPPER".into())), ("pads", Attr::Ints(vec![1, 1]))], 10);
    bad("QLinearConv", &[("group", Attr::Int(0))], 10);
    bad("QLinearConv", &[("strides", Attr::Ints(vec![0]))], 10);
}

#[test]
fn shape_and_type_errors() {
    let q = make("QuantizeLinear", &[("axis", Attr::Int(1))], 21);
    let x = t(&[2, 3], vec![0f32; 6]);
    assert!(run(&q, &[Some(x.clone()), Some(t(&[2], vec![1f32, 1.0]))]).is_err(), "scale does not match axis 1");
    assert!(run(&q, &[Some(x.clone()), Some(t(&[], vec![1f32])), Some(t(&[], vec![1i64]))]).is_err(), "i64 zero point");
    let qb = make("QuantizeLinear", &[("axis", Attr::Int(1)), ("block_size", Attr::Int(2))], 21);
    assert!(run(&qb, &[Some(x.clone()), Some(t(&[2, 1], vec![1f32, 1.0]))]).is_err(), "3 columns need 2 blocks");
    assert!(run(&qb, &[Some(x.clone()), Some(t(&[2, 2], vec![1f32; 4]))]).is_ok());
    let mm = make("MatMulInteger", &[], 10);
    assert!(run(&mm, &[Some(t(&[2, 3], vec![0u8; 6])), Some(t(&[2, 3], vec![0u8; 6]))]).is_err());
    assert!(run(&mm, &[Some(t(&[2, 3], vec![0u8; 6])), Some(t(&[3], vec![0u8; 3])), Some(t(&[3], vec![0u8; 3]))]).is_err());
    assert!(run(&mm, &[Some(t(&[2, 3], vec![0u8; 6])), Some(t(&[3], vec![0u8; 3])), Some(t(&[2], vec![0i8; 2]))]).is_err(), "zero point type");
    let conv = make("ConvInteger", &[], 10);
    assert!(run(&conv, &[Some(t(&[1, 1, 2, 2], vec![0u8; 4])), Some(t(&[1, 1, 3, 3], vec![0u8; 9]))]).is_err(), "kernel larger than input");
    assert!(run(&conv, &[Some(t(&[1, 2, 2], vec![0u8; 4])), Some(t(&[1, 1, 1], vec![0u8; 1]))]).is_err(), "channels");
    let dq = make("DynamicQuantizeLinear", &[], 11);
    assert!(run(&dq, &[Some(t(&[1], vec![1f64]))]).is_err());
    let out = run(&dq, &[Some(t(&[0, 2], Vec::<f32>::new()))]).unwrap();
    assert_eq!(out[1], Tensor::scalar(1f32 / 255.0));
}

#[test]
fn low_integer_types() {
    let q = make("QuantizeLinear", &[("axis", Attr::Int(0))], 25);
    let x = t(&[4], vec![-3.0f32, 1.0, 2.6, 40.0]);
    let zp = Tensor::Low(DType::I4, t(&[1], vec![0x0Fu8]).into_array::<u8>().unwrap());
    let y = run(&q, &[Some(x), Some(t(&[], vec![2f32])), Some(zp.clone())]).unwrap();
    // round(x / 2) - 1 = [-3, -1, 0, 19 -> 7], as 4-bit two's complement codes.
    assert_eq!(y[0], Tensor::Low(DType::I4, t(&[4], vec![0x0Du8, 0x0F, 0x00, 0x07]).into_array::<u8>().unwrap()));
    let dq = make("DequantizeLinear", &[("axis", Attr::Int(0))], 25);
    let y = run(&dq, &[Some(y[0].clone()), Some(t(&[], vec![2f32])), Some(zp)]).unwrap();
    assert_eq!(y[0], t(&[4], vec![-4f32, 0.0, 2.0, 16.0]));
}

#[test]
fn float8_saturation() {
    let low = |d: DType, codes: Vec<u8>| Tensor::Low(d, t(&[codes.len()], codes).into_array::<u8>().unwrap());
    let x = Some(t(&[3], vec![2f32, -1.0, 1e6]));
    let s = Some(t(&[], vec![2f32]));
    // Codes from ml_dtypes: e4m3fn 1.0 = 56, -0.5 = 176, 448 = 126, NaN = 127;
    // e5m2 1.0 = 60, -0.5 = 184, 57344 = 123, inf = 124.
    for (sat, e4, e5) in [(1, 126u8, 123u8), (0, 127, 124)] {
        let q = make("QuantizeLinear", &[("saturate", Attr::Int(sat))], 25);
        let y = run(&q, &[x.clone(), s.clone(), Some(low(DType::F8E4M3FN, vec![0]))]).unwrap();
        assert_eq!(y[0], low(DType::F8E4M3FN, vec![56, 176, e4]), "saturate {sat}");
        let y = run(&q, &[x.clone(), s.clone(), Some(low(DType::F8E5M2, vec![0]))]).unwrap();
        assert_eq!(y[0], low(DType::F8E5M2, vec![60, 184, e5]), "saturate {sat}");
    }
    // f4e2m1 always saturates: 1e6 / 2 -> 6 (code 7).
    let q = make("QuantizeLinear", &[("output_dtype", Attr::Int(23))], 25);
    let y = run(&q, &[x, s]).unwrap();
    assert_eq!(y[0], low(DType::F4E2M1, vec![2, 9, 7]));
    let dq = make("DequantizeLinear", &[], 25);
    let y = run(&dq, &[Some(y[0].clone()), Some(t(&[], vec![f16::from_f32(0.5)]))]).unwrap();
    assert_eq!(y[0], t(&[3], vec![f16::from_f32(0.5), f16::from_f32(-0.25), f16::from_f32(3.0)]));
}

#[test]
fn integer_ops_match_reference() {
    // QLinearConv: group 2, strides, pads, per-channel w, bias: onnx reference
    let op = make("QLinearConv", &[("group", Attr::Int(2)), ("strides", Attr::Ints(vec![2, 1])), ("pads", Attr::Ints(vec![1, 0, 1, 2]))], 10);
    let ins = [
        Some(t(&[1, 4, 3, 4], vec![206u8, 21u8, 45u8, 60u8, 46u8, 204u8, 221u8, 148u8, 10u8, 24u8, 84u8, 110u8, 158u8, 122u8, 67u8, 40u8, 176u8, 187u8, 8u8, 28u8, 115u8, 99u8, 226u8, 131u8, 107u8, 109u8, 169u8, 149u8, 44u8, 188u8, 192u8, 243u8, 200u8, 72u8, 81u8, 165u8, 165u8, 177u8, 221u8, 74u8, 239u8, 0u8, 19u8, 248u8, 240u8, 76u8, 35u8, 80u8])),
        Some(t(&[], vec![0.02f32])),
        Some(t(&[], vec![128u8])),
        Some(t(&[4, 2, 2, 2], vec![10u8, 227u8, 168u8, 149u8, 62u8, 120u8, 48u8, 197u8, 120u8, 7u8, 64u8, 180u8, 132u8, 95u8, 64u8, 23u8, 155u8, 168u8, 132u8, 237u8, 236u8, 52u8, 155u8, 160u8, 63u8, 76u8, 124u8, 189u8, 74u8, 184u8, 166u8, 55u8])),
        Some(t(&[4], vec![0.01f32, 0.02f32, 0.015f32, 0.03f32])),
        Some(t(&[4], vec![120u8, 130u8, 125u8, 128u8])),
        Some(t(&[], vec![0.5f32])),
        Some(t(&[], vec![100u8])),
        Some(t(&[4], vec![100i32, -200i32, 300i32, -400i32])),
    ];
    check(&op, &ins, &[t(&[1, 4, 2, 5], vec![99u8, 95u8, 97u8, 101u8, 100u8, 102u8, 101u8, 96u8, 101u8, 100u8, 90u8, 108u8, 112u8, 108u8, 100u8, 97u8, 90u8, 96u8, 100u8, 100u8, 101u8, 106u8, 102u8, 99u8, 100u8, 111u8, 93u8, 91u8, 110u8, 100u8, 96u8, 97u8, 110u8, 97u8, 100u8, 92u8, 94u8, 105u8, 80u8, 100u8])]);
    // QLinearConv: 1-D, int8, dilations, SAME_LOWER: onnx reference (onnxruntime: ort: [ONNXRuntimeError] : 2 : INVALID_ARGUMENT : Non-zero status code returned while )
    let op = make("QLinearConv", &[("dilations", Attr::Ints(vec![2])), ("auto_pad", Attr::Str("SAME_LOWER".into()))], 10);
    let ins = [
        Some(t(&[1, 2, 5], vec![-30i8, 83i8, 86i8, 39i8, -127i8, 46i8, -71i8, 81i8, 104i8, -19i8])),
        Some(t(&[], vec![0.05f32])),
        Some(t(&[], vec![-3i8])),
        Some(t(&[3, 2, 2], vec![116i8, 65i8, -45i8, 96i8, -30i8, -102i8, 23i8, 88i8, 39i8, -28i8, 102i8, -6i8])),
        Some(t(&[], vec![0.01f32])),
        Some(t(&[], vec![0i8])),
        Some(t(&[], vec![0.2f32])),
        Some(t(&[], vec![5i8])),
    ];
    check(&op, &ins, &[t(&[1, 3, 5], vec![3i8, 26i8, 70i8, -3i8, 5i8, -32i8, 6i8, 7i8, 31i8, 8i8, 0i8, 7i8, -9i8, 44i8, 36i8])]);
    // ConvInteger: SAME_UPPER, strides 2, per-channel w zero points: onnx reference (onnxruntime: ort: [ONNXRuntimeError] : 1 : FAIL : Non-zero status code returned while running Conv)
    let op = make("ConvInteger", &[("auto_pad", Attr::Str("SAME_UPPER".into())), ("strides", Attr::Ints(vec![2, 2]))], 10);
    let ins = [
        Some(t(&[1, 4, 3, 4], vec![206u8, 21u8, 45u8, 60u8, 46u8, 204u8, 221u8, 148u8, 10u8, 24u8, 84u8, 110u8, 158u8, 122u8, 67u8, 40u8, 176u8, 187u8, 8u8, 28u8, 115u8, 99u8, 226u8, 131u8, 107u8, 109u8, 169u8, 149u8, 44u8, 188u8, 192u8, 243u8, 200u8, 72u8, 81u8, 165u8, 165u8, 177u8, 221u8, 74u8, 239u8, 0u8, 19u8, 248u8, 240u8, 76u8, 35u8, 80u8])),
        Some(t(&[3, 4, 2, 2], vec![98u8, 37u8, 54u8, 178u8, 203u8, 74u8, 160u8, 222u8, 37u8, 70u8, 133u8, 143u8, 101u8, 101u8, 32u8, 156u8, 237u8, 50u8, 203u8, 45u8, 11u8, 190u8, 46u8, 191u8, 84u8, 144u8, 239u8, 234u8, 121u8, 52u8, 63u8, 216u8, 150u8, 43u8, 225u8, 245u8, 247u8, 159u8, 248u8, 154u8, 127u8, 247u8, 154u8, 200u8, 86u8, 201u8, 248u8, 13u8])),
        Some(t(&[], vec![7u8])),
        Some(t(&[3], vec![1u8, 2u8, 3u8])),
    ];
    check(&op, &ins, &[t(&[1, 3, 2, 2], vec![242422i32, 200611i32, 71068i32, 88133i32, 241583i32, 284475i32, 76022i32, 83808i32, 391590i32, 278081i32, 114618i32, 152725i32])]);
    // MatMulInteger: batched with per-column b zero point: onnx reference
    let op = make("MatMulInteger", &[], 10);
    let ins = [
        Some(t(&[2, 3, 4], vec![136u8, 94u8, 13u8, 21u8, 68u8, 49u8, 182u8, 54u8, 159u8, 218u8, 126u8, 32u8, 16u8, 75u8, 105u8, 125u8, 77u8, 216u8, 144u8, 246u8, 238u8, 180u8, 6u8, 54u8])),
        Some(t(&[4, 2], vec![190u8, 138u8, 240u8, 180u8, 209u8, 13u8, 75u8, 173u8])),
        Some(t(&[], vec![12u8])),
        Some(t(&[2], vec![3u8, 200u8])),
    ];
    check(&op, &ins, &[t(&[2, 3, 2], vec![43476i32, -9758i32, 57285i32, -37136i32, 101235i32, -35092i32, 42973i32, -21950i32, 104543i32, -39112i32, 83866i32, -17384i32])]);
    // MatMulInteger: matrix-vector, int8: onnx reference
    let op = make("MatMulInteger", &[], 10);
    let ins = [
        Some(t(&[2, 3], vec![33i8, -35i8, -88i8, 22i8, -106i8, 42i8])),
        Some(t(&[3], vec![76i8, 42i8, -112i8])),
    ];
    check(&op, &ins, &[t(&[2], vec![10894i32, -7484i32])]);
    // QLinearMatMul: f16 scales, batched: onnx reference
    let op = make("QLinearMatMul", &[], 21);
    let ins = [
        Some(t(&[2, 3, 4], vec![136u8, 94u8, 13u8, 21u8, 68u8, 49u8, 182u8, 54u8, 159u8, 218u8, 126u8, 32u8, 16u8, 75u8, 105u8, 125u8, 77u8, 216u8, 144u8, 246u8, 238u8, 180u8, 6u8, 54u8])),
        Some(t(&[1], vec![f16::from_f32(0.02999878)])),
        Some(t(&[1], vec![110u8])),
        Some(t(&[4, 2], vec![190u8, 138u8, 240u8, 180u8, 209u8, 13u8, 75u8, 173u8])),
        Some(t(&[1], vec![f16::from_f32(0.020004272)])),
        Some(t(&[1], vec![140u8])),
        Some(t(&[1], vec![f16::from_f32(0.7001953)])),
        Some(t(&[1], vec![90u8])),
    ];
    check(&op, &ins, &[t(&[2, 3, 2], vec![89u8, 97u8, 90u8, 79u8, 107u8, 90u8, 82u8, 90u8, 92u8, 94u8, 98u8, 102u8])]);
    // QLinearMatMul: int8: onnx reference
    let op = make("QLinearMatMul", &[], 10);
    let ins = [
        Some(t(&[2, 3], vec![33i8, -35i8, -88i8, 22i8, -106i8, 42i8])),
        Some(t(&[], vec![0.1f32])),
        Some(t(&[], vec![1i8])),
        Some(t(&[3, 2], vec![5i8, -51i8, 13i8, 45i8, -78i8, -119i8])),
        Some(t(&[], vec![0.05f32])),
        Some(t(&[], vec![-2i8])),
        Some(t(&[], vec![0.3f32])),
        Some(t(&[], vec![-7i8])),
    ];
    check(&op, &ins, &[t(&[2, 2], vec![100i8, 112i8, -83i8, -128i8])]);
}

#[test]
fn quantize_ops_match_reference() {
    // QuantizeLinear: per-axis int8, ties to even, saturation: onnx reference
    let op = make("QuantizeLinear", &[("axis", Attr::Int(0))], 21);
    let ins = [
        Some(t(&[3, 4], vec![-3.5f32, -2.5f32, -1.5f32, -0.5f32, 0.5f32, 1.5f32, 2.5f32, 1000.0f32, -1000.0f32, 0.25f32, 7.75f32, 3.0f32])),
        Some(t(&[3], vec![1.0f32, 0.5f32, 2.0f32])),
        Some(t(&[3], vec![0i8, -3i8, 4i8])),
    ];
    check(&op, &ins, &[t(&[3, 4], vec![-4i8, -2i8, -2i8, 0i8, -2i8, 0i8, 2i8, 127i8, -128i8, 4i8, 8i8, 6i8])]);
    // QuantizeLinear: blocked uint16, axis -1: onnx reference
    let op = make("QuantizeLinear", &[("axis", Attr::Int(-1)), ("block_size", Attr::Int(2))], 21);
    let ins = [
        Some(t(&[3, 4], vec![-3.5f32, -2.5f32, -1.5f32, -0.5f32, 0.5f32, 1.5f32, 2.5f32, 1000.0f32, -1000.0f32, 0.25f32, 7.75f32, 3.0f32])),
        Some(t(&[3, 2], vec![0.1f32, 0.2f32, 0.3f32, 0.4f32, 0.5f32, 0.6f32])),
        Some(t(&[3, 2], vec![1u16, 2u16, 3u16, 4u16, 5u16, 60000u16])),
    ];
    check(&op, &ins, &[t(&[3, 4], vec![0u16, 0u16, 0u16, 0u16, 5u16, 8u16, 10u16, 2504u16, 0u16, 5u16, 60013u16, 60005u16])]);
    // QuantizeLinear: int32 input, default uint8: onnx reference (onnxruntime: ort: [ONNXRuntimeError] : 1 : FAIL : Type Error: Type parameter (T1) of Optype (Quant)
    let op = make("QuantizeLinear", &[], 21);
    let ins = [
        Some(t(&[5], vec![-5i32, 0i32, 7i32, 300i32, 513i32])),
        Some(t(&[], vec![2.0f32])),
    ];
    check(&op, &ins, &[t(&[5], vec![0u8, 0u8, 4u8, 150u8, 255u8])]);
    // QuantizeLinear: f16: onnx reference (onnxruntime: False)
    let op = make("QuantizeLinear", &[], 21);
    let ins = [
        Some(t(&[3, 4], vec![f16::from_f32(-3.5), f16::from_f32(-2.5), f16::from_f32(-1.5), f16::from_f32(-0.5), f16::from_f32(0.5), f16::from_f32(1.5), f16::from_f32(2.5), f16::from_f32(1000.0), f16::from_f32(-1000.0), f16::from_f32(0.25), f16::from_f32(7.75), f16::from_f32(3.0)])),
        Some(t(&[], vec![f16::from_f32(0.30004883)])),
        Some(t(&[], vec![10i16])),
    ];
    check(&op, &ins, &[t(&[3, 4], vec![-2i16, 2i16, 5i16, 8i16, 12i16, 15i16, 18i16, 3342i16, -3322i16, 11i16, 36i16, 20i16])]);
    // DequantizeLinear: blocked int8, uneven last block: onnx reference
    let op = make("DequantizeLinear", &[("axis", Attr::Int(1)), ("block_size", Attr::Int(3))], 21);
    let ins = [
        Some(t(&[2, 5], vec![1i8, 2i8, 3i8, 4i8, 5i8, -6i8, -7i8, -8i8, -9i8, -10i8])),
        Some(t(&[2, 2], vec![0.5f32, 2.0f32, 0.25f32, 1.0f32])),
        Some(t(&[2, 2], vec![1i8, -1i8, 0i8, 3i8])),
    ];
    check(&op, &ins, &[t(&[2, 5], vec![0.0f32, 0.5f32, 1.0f32, 10.0f32, 12.0f32, -1.5f32, -1.75f32, -2.0f32, -12.0f32, -13.0f32])]);
    // DequantizeLinear: int32: onnx reference
    let op = make("DequantizeLinear", &[], 21);
    let ins = [
        Some(t(&[3], vec![-100000i32, 5i32, 2147483647i32])),
        Some(t(&[], vec![0.5f32])),
    ];
    check(&op, &ins, &[t(&[3], vec![-50000.0f32, 2.5f32, 1.0737418e+09f32])]);
    // DequantizeLinear: f16 output_dtype: onnx reference
    let op = make("DequantizeLinear", &[("output_dtype", Attr::Int(10))], 23);
    let ins = [
        Some(t(&[3], vec![1u8, 2u8, 250u8])),
        Some(t(&[], vec![0.1f32])),
        Some(t(&[], vec![3u8])),
    ];
    check(&op, &ins, &[t(&[3], vec![f16::from_f32(-0.19995117), f16::from_f32(-0.099975586), f16::from_f32(24.703125)])]);
    // DynamicQuantizeLinear: all positive: onnx reference
    let op = make("DynamicQuantizeLinear", &[], 11);
    let ins = [
        Some(t(&[2, 2], vec![1.0f32, 2.5f32, 7.3f32, 0.5f32])),
    ];
    check(&op, &ins, &[t(&[2, 2], vec![35u8, 87u8, 255u8, 17u8]), t(&[], vec![0.028627452f32]), t(&[], vec![0u8])]);
}
