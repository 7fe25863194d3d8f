//! Running hand-assembled x86-64 code through the runtime: the entry point, the
//! RunContext fields, kernel calls through the table, error codes, input checks and
//! concurrency. The code is System V, so these run on x86-64 Unix.
#![cfg(all(target_arch = "x86_64", unix))]

mod common;

use std::sync::Arc;

use common::{meta, meta_f32x4, write, x86};
use neoc_runtime::{DType, Model, Role, RunError, Tensor, TensorMut, TensorRef, TensorSig};

fn model(code: &[u8]) -> Model {
    Model::from_bytes(&write(meta_f32x4(), code, &[])).unwrap()
}

fn x(v: [f32; 4]) -> Tensor {
    Tensor::from_vec([4], v.to_vec()).unwrap()
}

const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Model>();
};

#[test]
fn xor_eax_ret_is_ok() {
    let out = model(x86::RET_OK).run(&[x([1., 2., 3., 4.])]).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].shape(), &[4]);
}

#[test]
fn nonzero_status_is_a_run_error_with_the_code() {
    let err = model(x86::RET_7).run(&[x([0.; 4])]).unwrap_err();
    assert_eq!(err, RunError::Code(7));
    assert_eq!(err.to_string(), "the compiled code failed with error code 7");
}

#[test]
fn copy16_moves_input_to_output() {
    let m = model(x86::COPY16);
    let out = m.run(&[x([1.5, -2., 3.25, 1e9])]).unwrap();
    assert_eq!(out[0].as_slice::<f32>().unwrap(), &[1.5, -2., 3.25, 1e9]);

    // The same through run_into with caller buffers, and with an unaligned-but-element-
    // aligned view into a larger buffer.
    let data = [0f32, 9., 8., 7., 6.];
    let mut y = [0f32; 4];
    let shape = [4usize];
    m.run_into(&[TensorRef::from_slice(&shape, &data[1..]).unwrap()], &mut [TensorMut::from_slice(&shape, &mut y).unwrap()])
        .unwrap();
    assert_eq!(y, [9., 8., 7., 6.]);
}

#[test]
fn the_context_carries_threads_weights_arena_and_kernels() {
    let mut m = meta(vec![], vec![TensorSig::new("probe", DType::U64, [5])]);
    m.arena_size = 100;
    let weights = 0x0123_4567_89ab_cdefu64.to_le_bytes();
    let mut model = Model::from_bytes(&write(m, x86::PROBE, &[&weights, &[0xee; 3]])).unwrap();
    model.set_thread_count(3);
    let out = model.run(&[]).unwrap();
    let p = out[0].as_slice::<u64>().unwrap();
    assert_eq!(p[0], 3, "thread_count");
    assert_eq!(p[1] % 64, 0, "weights are 64-byte aligned in memory");
    assert_eq!(p[2] % 64, 0, "the arena is 64-byte aligned");
    assert_eq!(p[3], 0x0123_4567_89ab_cdef, "weights read through the arena");
    assert_eq!(p[4], neoc_runtime::abi::KERNEL_ABI_VERSION as u64);

    // The same from a memory-mapped file.
    let path = std::env::temp_dir().join(format!("neoc-runtime-probe-{}.neo", std::process::id()));
    let mut m = meta(vec![], vec![TensorSig::new("probe", DType::U64, [5])]);
    m.arena_size = 8;
    std::fs::write(&path, write(m, x86::PROBE, &[&weights])).unwrap();
    let model = Model::load(&path).unwrap().with_thread_count(1);
    let out = model.run(&[]).unwrap();
    let p = out[0].as_slice::<u64>().unwrap();
    assert_eq!((p[0], p[1] % 64, p[2] % 64, p[3]), (1, 0, 0, 0x0123_4567_89ab_cdef));
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn code_calls_a_kernel_through_the_table() {
    let m = meta(vec![], vec![TensorSig::new("y", DType::U8, [16])]);
    let model = Model::from_bytes(&write(m, x86::MEMSET_CALL, &[])).unwrap();
    let out = model.run(&[]).unwrap();
    assert_eq!(out[0].bytes(), &[0xab; 16]);
}

#[test]
fn code_runs_parallel_for_with_its_own_callback() {
    let m = meta(vec![], vec![TensorSig::new("y", DType::U32, [64])]);
    let want: Vec<u32> = (1..=64).collect();
    for threads in [1, 2, 4, 7] {
        let model = Model::from_bytes(&write(m.clone(), x86::PARALLEL_FOR, &[])).unwrap().with_thread_count(threads);
        let out = model.run(&[]).unwrap();
        assert_eq!(out[0].as_slice::<u32>().unwrap(), want.as_slice(), "{threads} threads");
    }
}

#[test]
fn input_checks_are_clear_errors() {
    let m = model(x86::COPY16);
    let err = m.run(&[]).unwrap_err();
    assert_eq!(err, RunError::Count { role: Role::Input, expected: 1, got: 0 });
    assert_eq!(err.to_string(), "the model takes 1 inputs, got 0");
    assert!(matches!(m.run(&[x([0.; 4]), x([0.; 4])]), Err(RunError::Count { got: 2, .. })));

    let ints = Tensor::from_vec([4], vec![1i32, 2, 3, 4]).unwrap();
    let err = m.run(&[ints]).unwrap_err();
    assert_eq!(err.to_string(), "input 0 ('x'): expected dtype f32, got i32");

    let wide = Tensor::from_vec([1, 4], vec![0f32; 4]).unwrap();
    let err = m.run(&[wide]).unwrap_err();
    assert_eq!(err.to_string(), "input 0 ('x'): expected shape [4], got [1, 4]");

    // Misaligned f32 data (only reachable through raw bytes).
    let raw = [0u8; 17];
    let shape = [4usize];
    let off = if (raw.as_ptr() as usize).is_multiple_of(4) { 1 } else { 0 };
    let view = TensorRef::new(DType::F32, &shape, &raw[off..off + 16]).unwrap();
    assert!(matches!(m.run_views(&[view]), Err(RunError::Misaligned { align: 4, .. })));

    // Outputs are checked as inputs are.
    let xin = x([1.; 4]);
    let two = [2usize];
    let mut wrong = [0f64; 2];
    let err = m.run_into(&[xin.view()], &mut [TensorMut::from_slice(&two, &mut wrong).unwrap()]).unwrap_err();
    assert_eq!(err.to_string(), "output 0 ('y'): expected dtype f32, got f64");
    let two_by_two = [2usize, 2];
    let mut square = [0f32; 4];
    let err = m.run_into(&[xin.view()], &mut [TensorMut::from_slice(&two_by_two, &mut square).unwrap()]).unwrap_err();
    assert_eq!(err.to_string(), "output 0 ('y'): expected shape [4], got [2, 2]");
    assert!(matches!(m.run_into(&[xin.view()], &mut []), Err(RunError::Count { role: Role::Output, .. })));
}

#[test]
fn run_by_name() {
    let mut md = meta(
        vec![TensorSig::new("a", DType::F32, [4]), TensorSig::new("b", DType::F32, [2])],
        vec![TensorSig::new("y", DType::F32, [4])],
    );
    md.arena_size = 0;
    let m = Model::from_bytes(&write(md, x86::COPY16, &[])).unwrap();
    let a = x([1., 2., 3., 4.]);
    let b = Tensor::from_vec([2], vec![5f32, 6.]).unwrap();
    // Given in the other order: the runtime puts `a` first, so COPY16 copies `a`.
    let out = m.run_named(&[("b", b.view()), ("a", a.view())]).unwrap();
    assert_eq!(out[0].as_slice::<f32>().unwrap(), &[1., 2., 3., 4.]);
    assert_eq!(
        m.run_named(&[("a", a.view()), ("c", b.view())]).unwrap_err().to_string(),
        "the model has no input named 'c'; its inputs are 'a', 'b'"
    );
    assert_eq!(m.run_named(&[("a", a.view())]).unwrap_err(), RunError::MissingInput { name: "b".into() });
    assert_eq!(m.run_named(&[("a", a.view()), ("a", a.view())]).unwrap_err(), RunError::DuplicateInput { name: "a".into() });
    assert_eq!(
        m.run_named(&[("a", b.view()), ("b", a.view())]).unwrap_err().to_string(),
        "input 0 ('a'): expected shape [4], got [2]"
    );
}

/// Four threads run the arena round-trip model at once, each with its own data: each
/// gets its own data back (runs sharing an arena would mix them up).
#[test]
fn concurrent_runs_from_four_threads() {
    let m = Arc::new(model(x86::COPY_VIA_ARENA));
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let m = Arc::clone(&m);
            std::thread::spawn(move || {
                for i in 0..300 {
                    let v = [t as f32, i as f32, -(t as f32), 0.5 * i as f32];
                    let out = m.run(&[x(v)]).unwrap();
                    assert_eq!(out[0].as_slice::<f32>().unwrap(), &v, "thread {t} run {i}");
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}
