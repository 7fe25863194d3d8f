//! String tensors in compiled code, and the string kernel ([`strings`]).
//!
//! # Design
//!
//! Compiled code never touches string bytes. A string tensor in compiled memory (a graph
//! input or output buffer, an arena temporary) is a dense array of **u64 handles**, one per
//! element, into the run's [`StringHeap`]. Handle 0 is the empty string, so zeroed memory
//! holds empty strings; handle `h > 0` is heap entry `h - 1`. Copying a string tensor
//! (Reshape, Identity, an output copy, a gather of handles) is copying its handles.
//!
//! The heap lives exactly as long as one call of [`crate::Model::run_into`]:
//! - before the call, the runtime adds each input string as a *borrowed* entry (no copy:
//!   it points at the caller's `String`, which the borrow of the inputs keeps alive) and
//!   hands the code arrays of their handles;
//! - string constants (stop words, label-encoder keys, a folded StringSplit result) live in
//!   the weights section inside an `OP_CONST` parameter blob; that op adds them as borrowed
//!   entries pointing into the weights (alive as long as the model) and writes handles;
//! - string ops allocate their results as *owned* entries of the heap;
//! - after the call, the runtime resolves the output handles into new `String`s for the
//!   caller and drops the heap, freeing every result at once.
//!
//! The heap reaches the kernel through [`RunContext::strings`]; compiled code only passes
//! the context along. String ops are one kernel-table entry, [`strings`], taking a
//! parameter blob in the weights (op code, sizes, constants) and up to three buffers.
//!
//! # Safety against bad artifacts
//!
//! Handles are indices, not pointers: [`StringHeap::get`] checks them, so a corrupt handle
//! in an input, the weights or the arena is an error ([`ERR_STRINGS`]), never a wild read.
//! The blob must lie inside the weights section (checked against the heap's copy of the
//! weights' bounds), every length and offset in it is bounds-checked while reading, and
//! string constants must be valid UTF-8. As with every kernel, the buffer pointers
//! themselves are the compiled code's promise (the code is trusted like a shared library);
//! their element counts come from the blob.
//!
//! # Parameter blobs
//!
//! Little-endian. A 16-byte header `u32 op, u32 0, u64 total length` (header included),
//! then the op's fields. `str` is `u64 byte length, bytes` (no padding).
//!
//! ```text
//! OP_CONST      u64 n, n × str                    c: n handles out
//! OP_NORMALIZE  u32 case (0 keep, 1 lower, 2 upper), u32 case_sensitive,
//!               u64 n_stop, n_stop × str, u64 n_in, u64 n_out
//!                                                 a: n_in handles in, c: n_out handles out
//! OP_BINARY     u32 kind (0 concat → handles, 1 equal → bool bytes), u32 rank,
//!               u64 a_len, u64 b_len, rank × u64 dims, rank × u64 a strides,
//!               rank × u64 b strides (elements; 0 broadcasts)
//!                                                 a, b: handles in, c: out
//! OP_REGEX      str pattern, u64 n                a: n handles in, c: n bool bytes out
//!               (needs the `strings-regex` cargo feature, else ERR_STRINGS_FEATURE)
//! OP_LOOKUP     u32 key kind (KEY_*), u32 0, u64 n_keys, n_keys × (key, u64 index), u64 n
//!               key: str for KEY_STRING, else u64 (an integer as i64, a float as the
//!               f64 bits of `v + 0.0`; NaN keys are left out)
//!                                                 a: n keys in, c: n i64 out (the index
//!                                                 of the key, n_keys when absent)
//! ```

use std::ffi::c_void;

use crate::abi::RunContext;

pub use crate::abi::errors::{ERR_STRINGS, ERR_STRINGS_FEATURE, ERR_STRINGS_PARAMS};

pub const OP_CONST: u32 = 1;
pub const OP_NORMALIZE: u32 = 2;
pub const OP_BINARY: u32 = 3;
pub const OP_REGEX: u32 = 4;
pub const OP_LOOKUP: u32 = 5;
/// TfIdfVectorizer; its fields are documented in `kernels::tfidf`.
pub const OP_TFIDF: u32 = 6;

pub const BINARY_CONCAT: u32 = 0;
pub const BINARY_EQUAL: u32 = 1;

pub const KEY_STRING: u32 = 0;
pub const KEY_I64: u32 = 1;
pub const KEY_I32: u32 = 2;
pub const KEY_I16: u32 = 3;
pub const KEY_F32: u32 = 4;
pub const KEY_F64: u32 = 5;

/// Bytes of a blob header.
pub const HEADER_LEN: usize = 16;

/// The cargo features of this crate an artifact may require (listed in its metadata as
/// `runtime_features`), and whether this build has them.
pub const RUNTIME_FEATURES: &[(&str, bool)] = &[("strings-regex", cfg!(feature = "strings-regex")), (crate::cuda::RUNTIME_FEATURE, crate::cuda::ENABLED)];

/// The string op that needs a runtime feature, for the compiler's metadata.
pub const REGEX_FEATURE: &str = "strings-regex";

enum Item<'r> {
    Borrowed(&'r str),
    Owned(Box<str>),
}

/// One run's strings: the inputs (borrowed), constants (borrowed from the weights) and
/// every result (owned). See the module documentation.
pub struct StringHeap<'r> {
    weights: &'r [u8],
    items: Vec<Item<'r>>,
}

impl<'r> StringHeap<'r> {
    /// An empty heap (allocates nothing until a string is added).
    pub fn new(weights: &'r [u8]) -> StringHeap<'r> {
        StringHeap { weights, items: Vec::new() }
    }

    fn push(&mut self, item: Item<'r>) -> u64 {
        self.items.push(item);
        self.items.len() as u64
    }

    /// Adds a string that outlives the run; returns its handle.
    pub fn push_borrowed(&mut self, s: &'r str) -> u64 {
        if s.is_empty() { 0 } else { self.push(Item::Borrowed(s)) }
    }

    /// Adds a result; returns its handle.
    pub fn push_owned(&mut self, s: String) -> u64 {
        if s.is_empty() { 0 } else { self.push(Item::Owned(s.into_boxed_str())) }
    }

    /// The string behind a handle, `None` for a handle that was never given out.
    pub fn get(&self, handle: u64) -> Option<&str> {
        if handle == 0 {
            return Some("");
        }
        let i = usize::try_from(handle - 1).ok()?;
        Some(match self.items.get(i)? {
            Item::Borrowed(s) => s,
            Item::Owned(s) => s,
        })
    }

    /// The blob at `params`: it must start inside the weights and its recorded length
    /// must end inside them.
    fn blob(&self, params: *const u8) -> Option<&'r [u8]> {
        let weights = self.weights;
        let start = (params as usize).checked_sub(weights.as_ptr() as usize)?;
        let rest = weights.get(start..)?;
        let len = usize::try_from(u64::from_le_bytes(rest.get(8..16)?.try_into().ok()?)).ok()?;
        if len < HEADER_LEN {
            return None;
        }
        rest.get(..len)
    }
}

/// A bounds-checked reader over a blob.
pub(super) struct Reader<'r> {
    bytes: &'r [u8],
    pos: usize,
}

pub(super) type Res<T> = Result<T, i32>;

impl<'r> Reader<'r> {
    pub(super) fn take(&mut self, n: usize) -> Res<&'r [u8]> {
        let end = self.pos.checked_add(n).ok_or(ERR_STRINGS_PARAMS)?;
        let s = self.bytes.get(self.pos..end).ok_or(ERR_STRINGS_PARAMS)?;
        self.pos = end;
        Ok(s)
    }
    pub(super) fn u32(&mut self) -> Res<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().map_err(|_| ERR_STRINGS_PARAMS)?))
    }
    pub(super) fn u64(&mut self) -> Res<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().map_err(|_| ERR_STRINGS_PARAMS)?))
    }
    /// A count or size: must fit in usize and, as a count of `unit`-byte items, in memory.
    pub(super) fn len(&mut self, unit: usize) -> Res<usize> {
        let n = usize::try_from(self.u64()?).map_err(|_| ERR_STRINGS_PARAMS)?;
        if n.checked_mul(unit.max(1)).is_none_or(|b| b > isize::MAX as usize) {
            return Err(ERR_STRINGS_PARAMS);
        }
        Ok(n)
    }
    pub(super) fn str(&mut self) -> Res<&'r str> {
        let n = self.len(1)?;
        std::str::from_utf8(self.take(n)?).map_err(|_| ERR_STRINGS_PARAMS)
    }
    pub(super) fn strs(&mut self) -> Res<Vec<&'r str>> {
        let n = self.len(8)?;
        (0..n).map(|_| self.str()).collect()
    }
    pub(super) fn finish(&self) -> Res<()> {
        if self.pos == self.bytes.len() { Ok(()) } else { Err(ERR_STRINGS_PARAMS) }
    }
}

/// Element `i` of a buffer of `T` (no alignment assumed).
///
/// # Safety
/// `p` points to at least `i + 1` elements of `T`.
pub(super) unsafe fn read<T: Copy>(p: *const u8, i: usize) -> T {
    // SAFETY: the caller's promise; unaligned reads need no alignment.
    unsafe { std::ptr::read_unaligned(p.cast::<T>().add(i)) }
}

/// # Safety
/// `p` points to at least `i + 1` writable elements of `T`.
pub(super) unsafe fn write<T: Copy>(p: *mut u8, i: usize, v: T) {
    // SAFETY: the caller's promise.
    unsafe { std::ptr::write_unaligned(p.cast::<T>().add(i), v) }
}

/// The string kernel ([`crate::abi::StringsFn`]).
///
/// # Safety
/// `ctx` is null or a valid context whose `strings` is null or a live [`StringHeap`] used
/// by no one else during the call; the buffers hold as many elements as the blob says.
pub unsafe extern "C" fn strings(ctx: *const RunContext, params: *const u8, a: *const u8, b: *const u8, c: *mut u8) -> i32 {
    if ctx.is_null() {
        return ERR_STRINGS;
    }
    // SAFETY: the caller's promise on `ctx`.
    let heap = unsafe { (*ctx).strings }.cast::<StringHeap<'_>>();
    if heap.is_null() {
        return ERR_STRINGS;
    }
    // SAFETY: a live heap that only this call uses (string ops run one at a time, on the
    // thread that runs the model).
    let heap = unsafe { &mut *heap };
    let Some(blob) = heap.blob(params) else { return ERR_STRINGS_PARAMS };
    // SAFETY: the caller's promise on the buffers.
    match unsafe { dispatch(heap, blob, (a, b, c)) } {
        Ok(()) => 0,
        Err(code) => code,
    }
}

/// # Safety
/// As [`strings`].
unsafe fn dispatch<'r>(heap: &mut StringHeap<'r>, blob: &'r [u8], (a, b, c): (*const u8, *const u8, *mut u8)) -> Res<()> {
    let mut r = Reader { bytes: blob, pos: 0 };
    let op = r.u32()?;
    let _zero = r.u32()?;
    let _len = r.u64()?;
    let need = |p: *const u8, n: usize| if n > 0 && p.is_null() { Err(ERR_STRINGS_PARAMS) } else { Ok(()) };
    // SAFETY (every `read`/`write` below): the buffers hold the counts the blob gives,
    // the caller's promise; indices stay below those counts.
    match op {
        OP_CONST => {
            let values = r.strs()?;
            r.finish()?;
            need(c, values.len())?;
            for (i, s) in values.into_iter().enumerate() {
                let h = heap.push_borrowed(s);
                unsafe { write::<u64>(c, i, h) };
            }
        }
        OP_NORMALIZE => {
            let case = r.u32()?;
            let sensitive = r.u32()? != 0;
            let stops = r.strs()?;
            let (n_in, n_out) = (r.len(8)?, r.len(8)?);
            r.finish()?;
            need(a, n_in)?;
            need(c, n_out)?;
            let fold = |s: &str| if sensitive { s.to_string() } else { s.to_lowercase() };
            let stops: Vec<String> = stops.into_iter().map(fold).collect();
            let mut kept = Vec::new();
            for i in 0..n_in {
                let s = heap.get(unsafe { read::<u64>(a, i) }).ok_or(ERR_STRINGS)?;
                if stops.iter().any(|w| *w == fold(s)) {
                    continue;
                }
                kept.push(match case {
                    0 => s.to_string(),
                    1 => s.to_lowercase(),
                    2 => s.to_uppercase(),
                    _ => return Err(ERR_STRINGS_PARAMS),
                });
            }
            if kept.is_empty() {
                kept.push(String::new());
            }
            if kept.len() != n_out {
                return Err(ERR_STRINGS);
            }
            for (i, s) in kept.into_iter().enumerate() {
                let h = heap.push_owned(s);
                unsafe { write::<u64>(c, i, h) };
            }
        }
        OP_BINARY => {
            let kind = r.u32()?;
            let rank = r.u32()? as usize;
            let (a_len, b_len) = (r.len(8)?, r.len(8)?);
            let mut vecs = [vec![], vec![], vec![]];
            for v in &mut vecs {
                for _ in 0..rank {
                    v.push(r.len(1)?);
                }
            }
            r.finish()?;
            let [dims, sa, sb] = vecs;
            let n = dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d)).ok_or(ERR_STRINGS_PARAMS)?;
            if n > 0 {
                // The last element each side reads must lie inside it.
                let reach = |s: &[usize]| dims.iter().zip(s).try_fold(0usize, |acc, (&d, &s)| acc.checked_add((d - 1).checked_mul(s)?));
                if reach(&sa).is_none_or(|m| m >= a_len) || reach(&sb).is_none_or(|m| m >= b_len) {
                    return Err(ERR_STRINGS_PARAMS);
                }
            }
            need(a, n)?;
            need(b, n)?;
            need(c, n)?;
            let mut idx = vec![0usize; rank];
            for i in 0..n {
                let ia: usize = idx.iter().zip(&sa).map(|(i, s)| i * s).sum();
                let ib: usize = idx.iter().zip(&sb).map(|(i, s)| i * s).sum();
                let x = heap.get(unsafe { read::<u64>(a, ia) }).ok_or(ERR_STRINGS)?;
                let y = heap.get(unsafe { read::<u64>(b, ib) }).ok_or(ERR_STRINGS)?;
                match kind {
                    BINARY_CONCAT => {
                        let s = format!("{x}{y}");
                        let h = heap.push_owned(s);
                        unsafe { write::<u64>(c, i, h) };
                    }
                    BINARY_EQUAL => unsafe { write::<u8>(c, i, (x == y) as u8) },
                    _ => return Err(ERR_STRINGS_PARAMS),
                }
                for d in (0..rank).rev() {
                    idx[d] += 1;
                    if idx[d] < dims[d] {
                        break;
                    }
                    idx[d] = 0;
                }
            }
        }
        OP_REGEX => {
            let pattern = r.str()?;
            let n = r.len(8)?;
            r.finish()?;
            need(a, n)?;
            need(c, n)?;
            let matcher = regex_matcher(pattern)?;
            for i in 0..n {
                let s = heap.get(unsafe { read::<u64>(a, i) }).ok_or(ERR_STRINGS)?;
                unsafe { write::<u8>(c, i, matcher(s) as u8) };
            }
        }
        OP_LOOKUP => {
            let kind = r.u32()?;
            let _zero = r.u32()?;
            let n_keys = r.len(16)?;
            let mut by_str = std::collections::HashMap::new();
            let mut by_bits = std::collections::HashMap::new();
            for _ in 0..n_keys {
                if kind == KEY_STRING {
                    let k = r.str()?;
                    by_str.insert(k, r.u64()?);
                } else {
                    let k = r.u64()?;
                    by_bits.insert(k, r.u64()?);
                }
            }
            let n = r.len(8)?;
            r.finish()?;
            need(a, n)?;
            need(c, n)?;
            let absent = n_keys as u64;
            for i in 0..n {
                let found = unsafe {
                    match kind {
                        KEY_STRING => by_str.get(heap.get(read::<u64>(a, i)).ok_or(ERR_STRINGS)?).copied(),
                        KEY_I64 => by_bits.get(&read::<u64>(a, i)).copied(),
                        KEY_I32 => by_bits.get(&(read::<i32>(a, i) as i64 as u64)).copied(),
                        KEY_I16 => by_bits.get(&(read::<i16>(a, i) as i64 as u64)).copied(),
                        KEY_F32 => float_key(read::<f32>(a, i) as f64).and_then(|k| by_bits.get(&k).copied()),
                        KEY_F64 => float_key(read::<f64>(a, i)).and_then(|k| by_bits.get(&k).copied()),
                        _ => return Err(ERR_STRINGS_PARAMS),
                    }
                };
                unsafe { write::<i64>(c, i, found.unwrap_or(absent) as i64) };
            }
        }
        // SAFETY: the caller's promise on the buffers, passed on.
        OP_TFIDF => unsafe { super::tfidf::tfidf(heap, &mut r, a, c)? },
        _ => return Err(ERR_STRINGS_PARAMS),
    }
    Ok(())
}

/// The lookup key of a float: the bits of `v + 0.0` (so -0 and 0 agree); NaN has none.
pub fn float_key(v: f64) -> Option<u64> {
    if v.is_nan() { None } else { Some((v + 0.0).to_bits()) }
}

#[cfg(feature = "strings-regex")]
fn regex_matcher(pattern: &str) -> Res<impl Fn(&str) -> bool> {
    // RE2 syntax, anchored at both ends: a full match, as RegexFullMatch asks.
    let re = regex::Regex::new(&format!(r"\A(?:{pattern})\z")).map_err(|_| ERR_STRINGS_PARAMS)?;
    Ok(move |s: &str| re.is_match(s))
}

#[cfg(not(feature = "strings-regex"))]
fn regex_matcher(_pattern: &str) -> Res<fn(&str) -> bool> {
    Err(ERR_STRINGS_FEATURE)
}

/// Writes parameter blobs (the compiler's side of the encoding above).
#[derive(Clone, Debug)]
pub struct BlobWriter {
    bytes: Vec<u8>,
}

impl BlobWriter {
    pub fn new(op: u32) -> BlobWriter {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&op.to_le_bytes());
        bytes.extend_from_slice(&0u32.to_le_bytes());
        bytes.extend_from_slice(&0u64.to_le_bytes());
        BlobWriter { bytes }
    }
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.bytes.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.bytes.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn str(&mut self, s: &str) -> &mut Self {
        self.u64(s.len() as u64);
        self.bytes.extend_from_slice(s.as_bytes());
        self
    }
    pub fn strs<S: AsRef<str>>(&mut self, v: &[S]) -> &mut Self {
        self.u64(v.len() as u64);
        for s in v {
            self.str(s.as_ref());
        }
        self
    }
    /// The finished blob, its length stamped into the header.
    pub fn finish(&self) -> Vec<u8> {
        let mut b = self.bytes.clone();
        let len = b.len() as u64;
        b[8..16].copy_from_slice(&len.to_le_bytes());
        b
    }
}

/// A context pointing at `heap` (for tests and for callers that run the kernel directly).
pub fn context_with(heap: &mut StringHeap<'_>) -> RunContext {
    RunContext {
        inputs: std::ptr::null(),
        outputs: std::ptr::null(),
        arena: std::ptr::null_mut(),
        weights: heap.weights.as_ptr(),
        kernels: std::ptr::null(),
        thread_count: 1,
        strings: (heap as *mut StringHeap<'_>).cast::<c_void>(),
        workers: std::ptr::null(),
    }
}

#[cfg(test)]
#[path = "strings_tests.rs"]
mod tests;
