//! `neoc_runtime`, the Python package of neoc-runtime (like DLR's `DLRModel`):
//!
//! ```python
//! import numpy as np, neoc_runtime
//! model = neoc_runtime.Model("digits.neo")
//! model.inputs                      # [TensorInfo(name='image', dtype='float32', shape=(1, 1, 8, 8))]
//! out = model.run({"image": x})     # {"probabilities": ndarray}
//! ```
//!
//! Inputs that are already C-contiguous arrays of the right dtype are read in place (zero
//! copy); others are converted once with `numpy.ascontiguousarray`. Outputs are numpy
//! arrays the compiled code writes directly. The GIL is released while the model runs, so
//! Python threads can run one model concurrently. Errors are `neoc_runtime.LoadError`
//! (loading), `ValueError`/`TypeError` (inputs) and `neoc_runtime.RunError` (running).

use numpy::{PyArrayDyn, PyArrayMethods};
use pyo3::exceptions::{PyKeyError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};

use neoc_runtime::{DType, LoadOptions, TensorMut, TensorRef, TensorSig};

pyo3::create_exception!(neoc_runtime, LoadError, pyo3::exceptions::PyException, "The artifact cannot be loaded here.");
pyo3::create_exception!(neoc_runtime, RunError, pyo3::exceptions::PyException, "The model failed while running.");

/// numpy's name for a dtype the package passes, or None.
fn numpy_name(d: DType) -> Option<&'static str> {
    Some(match d {
        DType::F32 => "float32",
        DType::F64 => "float64",
        DType::I8 => "int8",
        DType::I16 => "int16",
        DType::I32 => "int32",
        DType::I64 => "int64",
        DType::U8 => "uint8",
        DType::U16 => "uint16",
        DType::U32 => "uint32",
        DType::U64 => "uint64",
        DType::Bool => "bool",
        _ => return None,
    })
}

/// One input's or output's signature.
#[pyclass(frozen, get_all, module = "neoc_runtime")]
struct TensorInfo {
    name: String,
    /// numpy's name for the dtype ("float32"), or neoc's for dtypes numpy lacks.
    dtype: String,
    shape: Py<PyTuple>,
}

#[pymethods]
impl TensorInfo {
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!("TensorInfo(name={:?}, dtype='{}', shape={})", self.name, self.dtype, self.shape.bind(py).repr()?))
    }
}

fn info(py: Python<'_>, s: &TensorSig) -> PyResult<TensorInfo> {
    Ok(TensorInfo {
        name: s.name.clone(),
        dtype: numpy_name(s.dtype).unwrap_or(s.dtype.name()).to_string(),
        shape: PyTuple::new(py, &s.shape)?.unbind(),
    })
}

/// A loaded artifact.
#[pyclass(frozen, module = "neoc_runtime")]
struct Model {
    inner: neoc_runtime::Model,
}

/// Calls `$f::<T>(args)` with `T` the Rust element type of `$dtype` (u8 for bool, whose
/// bytes the runtime reads as 0/1).
macro_rules! typed {
    ($dtype:expr, $f:ident($($arg:expr),*)) => {
        match $dtype {
            DType::F32 => $f::<f32>($($arg),*),
            DType::F64 => $f::<f64>($($arg),*),
            DType::I8 => $f::<i8>($($arg),*),
            DType::I16 => $f::<i16>($($arg),*),
            DType::I32 => $f::<i32>($($arg),*),
            DType::I64 => $f::<i64>($($arg),*),
            DType::U8 | DType::Bool => $f::<u8>($($arg),*),
            DType::U16 => $f::<u16>($($arg),*),
            DType::U32 => $f::<u32>($($arg),*),
            DType::U64 => $f::<u64>($($arg),*),
            other => Err(PyTypeError::new_err(format!("{other} tensors are not supported by the Python package yet"))),
        }
    };
}

/// An input: the contiguous array (the caller's own when it already fits) as raw bytes.
struct Input<'py> {
    array: Bound<'py, PyAny>,
}

fn as_input<'py>(py: Python<'py>, sig: &TensorSig, value: &Bound<'py, PyAny>) -> PyResult<Input<'py>> {
    let Some(np_name) = numpy_name(sig.dtype) else {
        return Err(PyTypeError::new_err(format!("input '{}' is {}, which the Python package does not pass yet", sig.name, sig.dtype)));
    };
    let np = py.import("numpy")?;
    // No copy when `value` is already a C-contiguous array of this dtype.
    let array = np.call_method1("ascontiguousarray", (value, np_name))?;
    let shape: Vec<usize> = array.getattr("shape")?.extract()?;
    if shape != sig.shape {
        return Err(PyValueError::new_err(format!("input '{}': expected shape {:?}, got {:?}", sig.name, sig.shape, shape)));
    }
    let array = if sig.dtype == DType::Bool { array.call_method1("view", ("uint8",))? } else { array };
    Ok(Input { array })
}

#[pymethods]
impl Model {
    /// Loads an artifact: `Model(path, code_variant=None, threads=None)`. `code_variant`
    /// picks one of a portable artifact's code variants ("x86-64-v3"); by default the
    /// best the CPU supports runs.
    #[new]
    #[pyo3(signature = (path, code_variant=None, threads=None))]
    fn new(path: std::path::PathBuf, code_variant: Option<String>, threads: Option<usize>) -> PyResult<Model> {
        let mut inner = neoc_runtime::Model::load_with(&path, &LoadOptions { code_variant, ..LoadOptions::default() }).map_err(|e| LoadError::new_err(format!("{}: {e}", path.display())))?;
        if let Some(t) = threads {
            inner.set_thread_count(t);
        }
        Ok(Model { inner })
    }

    /// The inputs, in order: a list of TensorInfo(name, dtype, shape).
    #[getter]
    fn inputs(&self, py: Python<'_>) -> PyResult<Vec<TensorInfo>> {
        self.inner.inputs().iter().map(|s| info(py, s)).collect()
    }

    #[getter]
    fn outputs(&self, py: Python<'_>) -> PyResult<Vec<TensorInfo>> {
        self.inner.outputs().iter().map(|s| info(py, s)).collect()
    }

    /// Intra-op threads the model runs with.
    #[getter]
    fn threads(&self) -> usize {
        self.inner.thread_count()
    }

    /// The code variant that runs, or None for an artifact with one code section.
    #[getter]
    fn code_variant(&self) -> Option<String> {
        self.inner.code_variant().map(str::to_string)
    }

    /// The target the artifact was compiled for.
    #[getter]
    fn target(&self) -> String {
        self.inner.metadata().target.clone()
    }

    /// Runs the model. `inputs` is a dict {name: array}, a list in input order, or (for a
    /// model with one input) one array. Returns a dict {output name: numpy array}.
    fn run<'py>(&self, py: Python<'py>, inputs: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyDict>> {
        let sigs = self.inner.inputs();
        // The given values, in signature order.
        let mut values: Vec<Bound<'py, PyAny>> = Vec::with_capacity(sigs.len());
        if let Ok(d) = inputs.cast::<PyDict>() {
            for key in d.keys() {
                let k: String = key.extract()?;
                if !sigs.iter().any(|s| s.name == k) {
                    let known: Vec<String> = sigs.iter().map(|s| format!("'{}'", s.name)).collect();
                    return Err(PyKeyError::new_err(format!("the model has no input '{k}'; its inputs are {}", known.join(", "))));
                }
            }
            for s in sigs {
                values.push(d.get_item(&s.name)?.ok_or_else(|| PyKeyError::new_err(format!("input '{}' is missing", s.name)))?);
            }
        } else if let Ok(l) = inputs.cast::<PyList>() {
            values.extend(l.iter());
        } else if let Ok(t) = inputs.cast::<PyTuple>() {
            values.extend(t.iter());
        } else {
            values.push(inputs.clone());
        }
        if values.len() != sigs.len() {
            return Err(PyValueError::new_err(format!("the model takes {} inputs, got {}", sigs.len(), values.len())));
        }
        let prepared: Vec<Input<'py>> = sigs.iter().zip(&values).map(|(s, v)| as_input(py, s, v)).collect::<PyResult<_>>()?;

        // Outputs: numpy arrays the compiled code writes into.
        let np = py.import("numpy")?;
        let mut outs: Vec<Bound<'py, PyAny>> = Vec::new();
        for s in self.inner.outputs() {
            let Some(name) = numpy_name(s.dtype) else {
                return Err(PyTypeError::new_err(format!("output '{}' is {}, which the Python package does not return yet", s.name, s.dtype)));
            };
            let storage = if s.dtype == DType::Bool { "uint8" } else { name };
            outs.push(np.call_method1("zeros", (PyTuple::new(py, &s.shape)?, storage))?);
        }

        // Borrow every buffer, then run with the GIL released.
        let mut in_guards = Guards::default();
        for (p, s) in prepared.iter().zip(sigs) {
            typed!(s.dtype, hold_read(&mut in_guards, &p.array))?;
        }
        let mut out_guards = Guards::default();
        for (o, s) in outs.iter().zip(self.inner.outputs()) {
            typed!(s.dtype, hold_write(&mut out_guards, o))?;
        }
        let in_views: Vec<TensorRef<'_>> = sigs
            .iter()
            .zip(in_guards.read_slices())
            .map(|(s, b)| TensorRef::new(s.dtype, &s.shape, b))
            .collect::<Result<_, _>>()
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        let mut out_views: Vec<TensorMut<'_>> = self
            .inner
            .outputs()
            .iter()
            .zip(out_guards.write_slices())
            .map(|(s, b)| TensorMut::new(s.dtype, &s.shape, b))
            .collect::<Result<_, _>>()
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        let model = &self.inner;
        py.detach(|| model.run_into(&in_views, &mut out_views)).map_err(|e| match e {
            neoc_runtime::RunError::Code(_) | neoc_runtime::RunError::OutOfMemory { .. } => RunError::new_err(e.to_string()),
            other => PyValueError::new_err(other.to_string()),
        })?;
        drop(out_views);
        drop(in_views);
        drop((in_guards, out_guards));

        let result = PyDict::new(py);
        for (o, s) in outs.into_iter().zip(self.inner.outputs()) {
            let o = if s.dtype == DType::Bool { o.call_method1("view", ("bool",))? } else { o };
            result.set_item(&s.name, o)?;
        }
        Ok(result)
    }

    fn __repr__(&self) -> String {
        let sig = |l: &[TensorSig]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(", ");
        format!("Model(target='{}', inputs=[{}], outputs=[{}])", self.inner.metadata().target, sig(self.inner.inputs()), sig(self.inner.outputs()))
    }
}

/// Something kept alive for a run (a numpy borrow guard).
trait Held {}
impl<T> Held for T {}

/// The numpy borrow guards of the arrays a run reads and writes (rust-numpy tracks them,
/// so a conflicting Rust borrow elsewhere fails instead of racing), and where their data is.
#[derive(Default)]
struct Guards<'py> {
    held: Vec<Box<dyn Held + 'py>>,
    reads: Vec<(*const u8, usize)>,
    writes: Vec<(*mut u8, usize)>,
}

fn hold_read<'py, T: numpy::Element + 'py>(g: &mut Guards<'py>, a: &Bound<'py, PyAny>) -> PyResult<()> {
    let ro = a.cast::<PyArrayDyn<T>>()?.try_readonly()?;
    let s = ro.as_slice()?;
    g.reads.push((s.as_ptr().cast::<u8>(), std::mem::size_of_val(s)));
    g.held.push(Box::new(ro));
    Ok(())
}

fn hold_write<'py, T: numpy::Element + 'py>(g: &mut Guards<'py>, a: &Bound<'py, PyAny>) -> PyResult<()> {
    let mut rw = a.cast::<PyArrayDyn<T>>()?.try_readwrite()?;
    let s = rw.as_slice_mut()?;
    g.writes.push((s.as_mut_ptr().cast::<u8>(), std::mem::size_of_val(s)));
    g.held.push(Box::new(rw));
    Ok(())
}

impl Guards<'_> {
    fn read_slices(&self) -> Vec<&[u8]> {
        // SAFETY: each (ptr, len) is a contiguous numpy buffer whose read-only borrow guard
        // is in `self.held`, so it stays alive and unmoved while `self` is borrowed.
        self.reads.iter().map(|&(p, n)| if n == 0 { &[][..] } else { unsafe { std::slice::from_raw_parts(p, n) } }).collect()
    }

    fn write_slices(&mut self) -> Vec<&mut [u8]> {
        // SAFETY: each (ptr, len) is the contiguous buffer of a distinct, freshly made output
        // array whose exclusive borrow guard is in `self.held`; the slices do not overlap
        // each other or the inputs, and live no longer than the unique borrow of `self`.
        self.writes.iter().map(|&(p, n)| if n == 0 { &mut [][..] } else { unsafe { std::slice::from_raw_parts_mut(p, n) } }).collect()
    }
}

#[pymodule]
#[pyo3(name = "neoc_runtime")]
fn neoc_runtime_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Model>()?;
    m.add_class::<TensorInfo>()?;
    m.add("LoadError", m.py().get_type::<LoadError>())?;
    m.add("RunError", m.py().get_type::<RunError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
