//! The C API of neoc-runtime (`include/neoc_runtime.h`, which documents every function).
//!
//! Built as `libneoc_runtime_c.a` and `libneoc_runtime_c.so`. Every function catches panics
//! at the boundary (`catch_unwind`), so nothing unwinds into C: a failure is a status code,
//! and `neoc_last_error()` gives the message of the last failed call on the calling thread.
//! The header is written by hand; `tests/capi.rs` checks that it declares exactly these
//! functions with these types, and compiles and runs `examples/classify.c` against a real
//! artifact.
//!
//! `unsafe` here is only the reading of what C hands over (pointers with lengths), each
//! with the condition the header puts on the caller.

#![allow(clippy::missing_safety_doc)] // the header documents each function's contract

use std::cell::RefCell;
use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};

use neoc_runtime::{LoadError, LoadOptions, Model, RunError, TensorMut, TensorRef, TensorSig};

/// A status code: `NEOC_OK` or one of the `NEOC_ERR_*` values below.
pub type NeocStatus = c_int;
pub const NEOC_OK: NeocStatus = 0;
/// A null pointer, an index out of range, a buffer of the wrong size, a non-UTF-8 string,
/// or inputs that fail the model's checks (count, dtype, shape, alignment).
pub const NEOC_ERR_INVALID_ARGUMENT: NeocStatus = 1;
/// The file cannot be read, or executable memory cannot be mapped.
pub const NEOC_ERR_IO: NeocStatus = 2;
/// Not an artifact, corrupt (checksum), or a format version newer than this runtime.
pub const NEOC_ERR_FORMAT: NeocStatus = 3;
/// The artifact cannot run here: another ISA or calling convention, missing CPU features,
/// a newer kernel ABI, a runtime feature this build lacks, or no such code variant.
pub const NEOC_ERR_INCOMPATIBLE: NeocStatus = 4;
/// The compiled code reported an error while running.
pub const NEOC_ERR_RUN: NeocStatus = 5;
pub const NEOC_ERR_OUT_OF_MEMORY: NeocStatus = 6;
/// Something the C API does not offer: string tensors.
pub const NEOC_ERR_UNSUPPORTED: NeocStatus = 7;
/// A bug in neoc-runtime, caught at the boundary.
pub const NEOC_ERR_PANIC: NeocStatus = 8;

/// A loaded model with the C views of its signatures.
pub struct NeocModel {
    model: Model,
    inputs: Vec<CSig>,
    outputs: Vec<CSig>,
    variant: Option<CString>,
}

struct CSig {
    name: CString,
    shape: Vec<i64>,
    sig: TensorSig,
}

/// Outputs allocated by `neoc_model_run_alloc`.
pub struct NeocOutputs {
    tensors: Vec<neoc_runtime::Tensor>,
}

/// One input's or output's signature. The pointers stay valid while the model lives.
#[repr(C)]
pub struct NeocTensorInfo {
    pub name: *const c_char,
    pub dtype: i32,
    pub rank: usize,
    pub shape: *const i64,
    pub byte_size: usize,
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

type Failure = (NeocStatus, String);

fn set_error(msg: &str) {
    let c = CString::new(msg.replace('\0', " ")).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = c);
}

/// Runs `f`, turning an error or a panic into a status and the thread's last error.
fn guard(f: impl FnOnce() -> Result<(), Failure>) -> NeocStatus {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => NEOC_OK,
        Ok(Err((status, msg))) => {
            set_error(&msg);
            status
        }
        Err(payload) => {
            let what = payload.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| payload.downcast_ref::<String>().cloned()).unwrap_or_default();
            set_error(&format!("internal error in neoc-runtime (please report it): {what}"));
            NEOC_ERR_PANIC
        }
    }
}

fn invalid<T>(msg: impl Into<String>) -> Result<T, Failure> {
    Err((NEOC_ERR_INVALID_ARGUMENT, msg.into()))
}

fn load_failure(e: LoadError) -> Failure {
    let status = match &e {
        LoadError::Io { .. } | LoadError::ExecMemory(_) => NEOC_ERR_IO,
        LoadError::Format(_) => NEOC_ERR_FORMAT,
        LoadError::WrongIsa { .. }
        | LoadError::WrongCallConv { .. }
        | LoadError::MissingCpuFeatures { .. }
        | LoadError::KernelAbiTooNew { .. }
        | LoadError::MissingRuntimeFeature { .. }
        | LoadError::NoSuchVariant { .. }
        | LoadError::Cuda(_) => NEOC_ERR_INCOMPATIBLE,
        LoadError::OutOfMemory { .. } | LoadError::TooMuchMemory { .. } => NEOC_ERR_OUT_OF_MEMORY,
    };
    (status, e.to_string())
}

fn run_failure(e: RunError) -> Failure {
    let status = match &e {
        RunError::Code(_) | RunError::BadStringHandle { .. } | RunError::Cuda(_) => NEOC_ERR_RUN,
        RunError::OutOfMemory { .. } => NEOC_ERR_OUT_OF_MEMORY,
        _ => NEOC_ERR_INVALID_ARGUMENT,
    };
    (status, e.to_string())
}

fn csigs(sigs: &[TensorSig]) -> Vec<CSig> {
    sigs.iter()
        .map(|s| CSig { name: CString::new(s.name.replace('\0', " ")).unwrap_or_default(), shape: s.shape.iter().map(|&d| d as i64).collect(), sig: s.clone() })
        .collect()
}

fn wrap(model: Model) -> Box<NeocModel> {
    let inputs = csigs(model.inputs());
    let outputs = csigs(model.outputs());
    let variant = model.code_variant().and_then(|v| CString::new(v).ok());
    Box::new(NeocModel { model, inputs, outputs, variant })
}

/// A C string argument as UTF-8.
///
/// # Safety
/// `p` is null or points to a NUL-terminated string (the header's contract).
unsafe fn str_arg<'a>(p: *const c_char, what: &str) -> Result<&'a str, Failure> {
    if p.is_null() {
        return invalid(format!("{what} is NULL"));
    }
    // SAFETY: non-null, and NUL-terminated by the caller's contract.
    let s = unsafe { CStr::from_ptr(p) };
    s.to_str().map_err(|_| (NEOC_ERR_INVALID_ARGUMENT, format!("{what} is not UTF-8")))
}

fn out_ptr<T>(out: *mut *mut T) -> Result<(), Failure> {
    if out.is_null() { invalid("the output pointer is NULL") } else { Ok(()) }
}

#[unsafe(no_mangle)]
pub extern "C" fn neoc_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

#[unsafe(no_mangle)]
pub extern "C" fn neoc_last_error() -> *const c_char {
    // The pointer stays valid until the next failing call on this thread replaces it.
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}

#[unsafe(no_mangle)]
pub extern "C" fn neoc_status_name(status: NeocStatus) -> *const c_char {
    let s: &'static str = match status {
        NEOC_OK => "NEOC_OK\0",
        NEOC_ERR_INVALID_ARGUMENT => "NEOC_ERR_INVALID_ARGUMENT\0",
        NEOC_ERR_IO => "NEOC_ERR_IO\0",
        NEOC_ERR_FORMAT => "NEOC_ERR_FORMAT\0",
        NEOC_ERR_INCOMPATIBLE => "NEOC_ERR_INCOMPATIBLE\0",
        NEOC_ERR_RUN => "NEOC_ERR_RUN\0",
        NEOC_ERR_OUT_OF_MEMORY => "NEOC_ERR_OUT_OF_MEMORY\0",
        NEOC_ERR_UNSUPPORTED => "NEOC_ERR_UNSUPPORTED\0",
        NEOC_ERR_PANIC => "NEOC_ERR_PANIC\0",
        _ => "unknown status\0",
    };
    s.as_ptr().cast()
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn neoc_model_load(path: *const c_char, out: *mut *mut NeocModel) -> NeocStatus {
    // SAFETY: the header's contract for this function is that of neoc_model_load_variant.
    unsafe { neoc_model_load_variant(path, std::ptr::null(), out) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn neoc_model_load_variant(path: *const c_char, code_variant: *const c_char, out: *mut *mut NeocModel) -> NeocStatus {
    guard(|| {
        out_ptr(out)?;
        // SAFETY: `path` is a NUL-terminated string (header contract).
        let path = unsafe { str_arg(path, "path") }?;
        let code_variant = if code_variant.is_null() {
            None
        } else {
            // SAFETY: a non-null `code_variant` is a NUL-terminated string (header contract).
            Some(unsafe { str_arg(code_variant, "code_variant") }?.to_string())
        };
        let model = Model::load_with(path, &LoadOptions { code_variant, ..LoadOptions::default() }).map_err(load_failure)?;
        // SAFETY: `out` is non-null (checked) and writable (header contract).
        unsafe { *out = Box::into_raw(wrap(model)) };
        Ok(())
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn neoc_model_load_bytes(data: *const c_void, len: usize, out: *mut *mut NeocModel) -> NeocStatus {
    guard(|| {
        out_ptr(out)?;
        if data.is_null() {
            return invalid("data is NULL");
        }
        // SAFETY: `data` points to `len` readable bytes (header contract); they are copied.
        let bytes = unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) };
        let model = Model::from_bytes(bytes).map_err(load_failure)?;
        // SAFETY: `out` is non-null (checked) and writable (header contract).
        unsafe { *out = Box::into_raw(wrap(model)) };
        Ok(())
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn neoc_model_free(model: *mut NeocModel) {
    if model.is_null() {
        return;
    }
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `model` came from a neoc_model_load* call and is freed once (header contract).
        drop(unsafe { Box::from_raw(model) });
    }));
}

/// The model behind a handle.
///
/// # Safety
/// `model` is null or a live handle from neoc_model_load*.
unsafe fn model_ref<'a>(model: *const NeocModel) -> Result<&'a NeocModel, Failure> {
    // SAFETY: null or live (the caller's contract).
    unsafe { model.as_ref() }.ok_or((NEOC_ERR_INVALID_ARGUMENT, "the model is NULL".into()))
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn neoc_model_input_count(model: *const NeocModel) -> usize {
    // SAFETY: null or live (header contract).
    unsafe { model.as_ref() }.map_or(0, |m| m.inputs.len())
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn neoc_model_output_count(model: *const NeocModel) -> usize {
    // SAFETY: null or live (header contract).
    unsafe { model.as_ref() }.map_or(0, |m| m.outputs.len())
}

fn info(sigs: &[CSig], index: usize, out: *mut NeocTensorInfo, what: &str) -> Result<(), Failure> {
    let Some(s) = sigs.get(index) else {
        return invalid(format!("{what} index {index} is out of range (the model has {})", sigs.len()));
    };
    if out.is_null() {
        return invalid("the info pointer is NULL");
    }
    let info = NeocTensorInfo {
        name: s.name.as_ptr(),
        dtype: s.sig.dtype.onnx_code() as i32,
        rank: s.shape.len(),
        shape: s.shape.as_ptr(),
        byte_size: if s.sig.dtype.is_string() { 0 } else { s.sig.byte_len() },
    };
    // SAFETY: `out` is non-null (checked) and points to a writable neoc_tensor_info (header contract).
    unsafe { out.write(info) };
    Ok(())
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn neoc_model_input_info(model: *const NeocModel, index: usize, out: *mut NeocTensorInfo) -> NeocStatus {
    // SAFETY: null or live (header contract).
    guard(|| info(&unsafe { model_ref(model) }?.inputs, index, out, "input"))
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn neoc_model_output_info(model: *const NeocModel, index: usize, out: *mut NeocTensorInfo) -> NeocStatus {
    // SAFETY: null or live (header contract).
    guard(|| info(&unsafe { model_ref(model) }?.outputs, index, out, "output"))
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn neoc_model_code_variant(model: *const NeocModel) -> *const c_char {
    // SAFETY: null or live (header contract).
    match unsafe { model.as_ref() }.and_then(|m| m.variant.as_ref()) {
        Some(v) => v.as_ptr(),
        None => std::ptr::null(),
    }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn neoc_model_set_threads(model: *mut NeocModel, threads: usize) -> NeocStatus {
    guard(|| {
        // SAFETY: null or live, and not used by another thread during this call (header contract).
        let m = unsafe { model.as_mut() }.ok_or((NEOC_ERR_INVALID_ARGUMENT, "the model is NULL".to_string()))?;
        m.model.set_thread_count(threads);
        Ok(())
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn neoc_model_threads(model: *const NeocModel) -> usize {
    // SAFETY: null or live (header contract).
    unsafe { model.as_ref() }.map_or(0, |m| m.model.thread_count())
}

/// Borrowed input views over the caller's buffers.
///
/// # Safety
/// `inputs` and `sizes` point to `n` entries each, and `inputs[i]` to `sizes[i]` readable
/// bytes that outlive the returned views.
unsafe fn input_views<'a>(m: &'a NeocModel, inputs: *const *const c_void, sizes: *const usize, n: usize) -> Result<Vec<TensorRef<'a>>, Failure> {
    if n != m.inputs.len() {
        return invalid(format!("the model takes {} inputs, got {n}", m.inputs.len()));
    }
    if n > 0 && (inputs.is_null() || sizes.is_null()) {
        return invalid("inputs or input_sizes is NULL");
    }
    let mut views = Vec::with_capacity(n);
    for (i, s) in m.inputs.iter().enumerate() {
        if s.sig.dtype.is_string() {
            return Err((NEOC_ERR_UNSUPPORTED, format!("input {i} ('{}') is a string tensor, which the C API does not pass", s.sig.name)));
        }
        // SAFETY: both arrays hold `n` entries (contract), and i < n.
        let (p, len) = unsafe { (*inputs.add(i), *sizes.add(i)) };
        let want = s.sig.byte_len();
        if len != want || (p.is_null() && want > 0) {
            return invalid(format!("input {i} ('{}'): {len} bytes given, {} needs {want}", s.sig.name, s.sig));
        }
        // SAFETY: `p` points to `len` readable bytes that outlive the views (contract); an
        // empty tensor gets a dangling but aligned empty slice.
        let bytes = if want == 0 { &[][..] } else { unsafe { std::slice::from_raw_parts(p.cast::<u8>(), len) } };
        views.push(TensorRef::new(s.sig.dtype, &s.sig.shape, bytes).map_err(|e| (NEOC_ERR_INVALID_ARGUMENT, format!("input {i}: {e}")))?);
    }
    Ok(views)
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn neoc_model_run(
    model: *const NeocModel,
    inputs: *const *const c_void,
    input_sizes: *const usize,
    n_inputs: usize,
    outputs: *const *mut c_void,
    output_sizes: *const usize,
    n_outputs: usize,
) -> NeocStatus {
    guard(|| {
        // SAFETY: null or live (header contract).
        let m = unsafe { model_ref(model) }?;
        // SAFETY: the input arrays and buffers follow the header's contract.
        let ins = unsafe { input_views(m, inputs, input_sizes, n_inputs) }?;
        if n_outputs != m.outputs.len() {
            return invalid(format!("the model has {} outputs, got {n_outputs}", m.outputs.len()));
        }
        if n_outputs > 0 && (outputs.is_null() || output_sizes.is_null()) {
            return invalid("outputs or output_sizes is NULL");
        }
        let mut outs = Vec::with_capacity(n_outputs);
        for (i, s) in m.outputs.iter().enumerate() {
            if s.sig.dtype.is_string() {
                return Err((NEOC_ERR_UNSUPPORTED, format!("output {i} ('{}') is a string tensor, which the C API does not pass", s.sig.name)));
            }
            // SAFETY: both arrays hold `n_outputs` entries (contract), and i < n_outputs.
            let (p, len) = unsafe { (*outputs.add(i), *output_sizes.add(i)) };
            let want = s.sig.byte_len();
            if len != want || (p.is_null() && want > 0) {
                return invalid(format!("output {i} ('{}'): {len} bytes given, {} needs {want}", s.sig.name, s.sig));
            }
            // SAFETY: `p` points to `len` writable bytes, not aliased by any other buffer
            // of this call, alive for the call (header contract).
            let bytes = if want == 0 { &mut [][..] } else { unsafe { std::slice::from_raw_parts_mut(p.cast::<u8>(), len) } };
            outs.push(TensorMut::new(s.sig.dtype, &s.sig.shape, bytes).map_err(|e| (NEOC_ERR_INVALID_ARGUMENT, format!("output {i}: {e}")))?);
        }
        m.model.run_into(&ins, &mut outs).map_err(run_failure)
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn neoc_model_run_alloc(
    model: *const NeocModel,
    inputs: *const *const c_void,
    input_sizes: *const usize,
    n_inputs: usize,
    out: *mut *mut NeocOutputs,
) -> NeocStatus {
    guard(|| {
        out_ptr(out)?;
        // SAFETY: null or live (header contract).
        let m = unsafe { model_ref(model) }?;
        if let Some(s) = m.outputs.iter().find(|s| s.sig.dtype.is_string()) {
            return Err((NEOC_ERR_UNSUPPORTED, format!("output '{}' is a string tensor, which the C API does not pass", s.sig.name)));
        }
        // SAFETY: the input arrays and buffers follow the header's contract.
        let ins = unsafe { input_views(m, inputs, input_sizes, n_inputs) }?;
        let tensors = m.model.run_views(&ins).map_err(run_failure)?;
        // SAFETY: `out` is non-null (checked) and writable (header contract).
        unsafe { *out = Box::into_raw(Box::new(NeocOutputs { tensors })) };
        Ok(())
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn neoc_outputs_count(outputs: *const NeocOutputs) -> usize {
    // SAFETY: null or live (header contract).
    unsafe { outputs.as_ref() }.map_or(0, |o| o.tensors.len())
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn neoc_outputs_data(outputs: *const NeocOutputs, index: usize, byte_size: *mut usize) -> *const c_void {
    // SAFETY: null or live (header contract).
    let Some(t) = unsafe { outputs.as_ref() }.and_then(|o| o.tensors.get(index)) else {
        set_error(&format!("output index {index} is out of range or the outputs are NULL"));
        return std::ptr::null();
    };
    if !byte_size.is_null() {
        // SAFETY: non-null `byte_size` is writable (header contract).
        unsafe { *byte_size = t.bytes().len() };
    }
    t.bytes().as_ptr().cast()
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn neoc_outputs_free(outputs: *mut NeocOutputs) {
    if outputs.is_null() {
        return;
    }
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: from neoc_model_run_alloc, freed once (header contract).
        drop(unsafe { Box::from_raw(outputs) });
    }));
}
