//! ONNX models built with `onnx-protobuf` (rust-protobuf), an implementation independent of
//! neoc's own prost decoder: the hostile graphs ([`hostile`]) and the random graphs of the
//! differential tests ([`random`]) are built with its types and serialised by its encoder,
//! then read back by neoc's loader, so the two implementations meet on every test.

pub mod hostile;
pub mod random;

use onnx_protobuf::{
    AttributeProto, GraphProto, Message, ModelProto, NodeProto, OperatorSetIdProto, TensorProto, TensorShapeProto, TypeProto,
    ValueInfoProto, attribute_proto::AttributeType, tensor_shape_proto, type_proto,
};

/// ONNX element type codes (TensorProto.DataType).
pub mod dt {
    pub const FLOAT: i32 = 1;
    pub const UINT8: i32 = 2;
    pub const INT8: i32 = 3;
    pub const INT32: i32 = 6;
    pub const INT64: i32 = 7;
    pub const BOOL: i32 = 9;
    pub const DOUBLE: i32 = 11;
}

/// An attribute value.
#[derive(Clone, Debug)]
pub enum A {
    I(i64),
    F(f32),
    S(&'static str),
    Is(Vec<i64>),
    Fs(Vec<f32>),
    G(Box<GraphProto>),
    T(Box<TensorProto>),
}

pub fn attr(name: &str, v: A) -> AttributeProto {
    let mut a = AttributeProto::new();
    a.name = name.to_string();
    let ty = match v {
        A::I(i) => {
            a.i = i;
            AttributeType::INT
        }
        A::F(f) => {
            a.f = f;
            AttributeType::FLOAT
        }
        A::S(s) => {
            a.s = s.as_bytes().to_vec();
            AttributeType::STRING
        }
        A::Is(v) => {
            a.ints = v;
            AttributeType::INTS
        }
        A::Fs(v) => {
            a.floats = v;
            AttributeType::FLOATS
        }
        A::G(g) => {
            a.g = protobuf::MessageField::some(*g);
            AttributeType::GRAPH
        }
        A::T(t) => {
            a.t = protobuf::MessageField::some(*t);
            AttributeType::TENSOR
        }
    };
    a.type_ = protobuf::EnumOrUnknown::new(ty);
    a
}

/// A tensor type; `None` dims are symbolic (`dim_param`), and `shape: None` leaves the
/// shape out altogether.
pub fn value_info(name: &str, elem: i32, shape: Option<&[Option<i64>]>) -> ValueInfoProto {
    let mut t = type_proto::Tensor::new();
    t.elem_type = elem;
    if let Some(dims) = shape {
        let mut s = TensorShapeProto::new();
        for d in dims {
            let mut dim = tensor_shape_proto::Dimension::new();
            match d {
                Some(v) => dim.set_dim_value(*v),
                None => dim.set_dim_param("n".to_string()),
            }
            s.dim.push(dim);
        }
        t.shape = protobuf::MessageField::some(s);
    }
    let mut ty = TypeProto::new();
    ty.set_tensor_type(t);
    let mut v = ValueInfoProto::new();
    v.name = name.to_string();
    v.type_ = protobuf::MessageField::some(ty);
    v
}

pub fn tensor_f32(name: &str, dims: &[i64], data: &[f32]) -> TensorProto {
    let mut t = TensorProto::new();
    t.name = name.to_string();
    t.data_type = dt::FLOAT;
    t.dims = dims.to_vec();
    t.raw_data = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    t
}

pub fn tensor_i64(name: &str, dims: &[i64], data: &[i64]) -> TensorProto {
    let mut t = TensorProto::new();
    t.name = name.to_string();
    t.data_type = dt::INT64;
    t.dims = dims.to_vec();
    t.int64_data = data.to_vec();
    t
}

pub fn tensor_i32(name: &str, dims: &[i64], data: &[i32]) -> TensorProto {
    let mut t = TensorProto::new();
    t.name = name.to_string();
    t.data_type = dt::INT32;
    t.dims = dims.to_vec();
    t.int32_data = data.to_vec();
    t
}

pub fn node(op: &str, inputs: &[&str], outputs: &[&str], attrs: Vec<AttributeProto>) -> NodeProto {
    let mut n = NodeProto::new();
    n.op_type = op.to_string();
    n.input = inputs.iter().map(|s| s.to_string()).collect();
    n.output = outputs.iter().map(|s| s.to_string()).collect();
    n.attribute = attrs;
    n
}

/// A graph under construction.
#[derive(Clone, Default)]
pub struct G {
    pub g: GraphProto,
}

impl G {
    pub fn new(name: &str) -> G {
        let mut g = GraphProto::new();
        g.name = name.to_string();
        G { g }
    }
    /// A graph input with static dims.
    pub fn input(mut self, name: &str, elem: i32, dims: &[i64]) -> G {
        let d: Vec<Option<i64>> = dims.iter().map(|&v| Some(v)).collect();
        self.g.input.push(value_info(name, elem, Some(&d)));
        self
    }
    pub fn input_info(mut self, v: ValueInfoProto) -> G {
        self.g.input.push(v);
        self
    }
    /// A graph output (type left for inference: element type 0, no shape).
    pub fn output(mut self, name: &str) -> G {
        self.g.output.push(value_info(name, 0, None));
        self
    }
    pub fn init(mut self, t: TensorProto) -> G {
        self.g.initializer.push(t);
        self
    }
    pub fn node(mut self, op: &str, inputs: &[&str], outputs: &[&str], attrs: Vec<AttributeProto>) -> G {
        self.g.node.push(node(op, inputs, outputs, attrs));
        self
    }
    pub fn push(mut self, n: NodeProto) -> G {
        self.g.node.push(n);
        self
    }
    /// The model at default-domain opset `opset`.
    pub fn model(self, opset: i64) -> ModelProto {
        model_with(self.g, &[("", opset)])
    }
    pub fn bytes(self, opset: i64) -> Vec<u8> {
        encode(&self.model(opset))
    }
}

pub fn model_with(g: GraphProto, opsets: &[(&str, i64)]) -> ModelProto {
    let mut m = ModelProto::new();
    m.ir_version = 10;
    m.producer_name = "neoc-tests".into();
    for (d, v) in opsets {
        let mut o = OperatorSetIdProto::new();
        o.domain = d.to_string();
        o.version = *v;
        m.opset_import.push(o);
    }
    m.graph = protobuf::MessageField::some(g);
    m
}

/// Serialises with rust-protobuf's encoder.
pub fn encode(m: &ModelProto) -> Vec<u8> {
    m.write_to_bytes().expect("rust-protobuf encodes any message it built")
}

/// xorshift64*: a tiny deterministic generator, so every failure reproduces from its seed.
/// Built [`Rng::from_bytes`], it first takes its numbers from the given bytes (8 at a time),
/// so a fuzzer's mutations of the bytes steer every choice of a generator (structure-aware
/// fuzzing), and continues with xorshift once they run out.
#[derive(Clone)]
pub struct Rng {
    state: u64,
    bytes: Vec<u8>,
    pos: usize,
}

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng { state: seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1, bytes: vec![], pos: 0 }
    }
    pub fn from_bytes(bytes: &[u8]) -> Rng {
        Rng { state: 0x9e37_79b9_7f4a_7c15, bytes: bytes.to_vec(), pos: 0 }
    }
    pub fn next(&mut self) -> u64 {
        if self.pos < self.bytes.len() {
            let end = (self.pos + 8).min(self.bytes.len());
            let mut b = [0u8; 8];
            b[..end - self.pos].copy_from_slice(&self.bytes[self.pos..end]);
            self.pos = end;
            return u64::from_le_bytes(b);
        }
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        self.state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in `0..n` (`n` ≥ 1).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in `[lo, hi)`.
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }
    pub fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len())]
    }
}
