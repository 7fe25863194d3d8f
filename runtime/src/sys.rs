//! Every `unsafe` operation of the runtime, apart from the kernels (which take raw pointers
//! by their nature), lives here, each with the reason it is sound:
//!
//! - viewing plain numeric slices as bytes and back ([`bytes_of`], [`cast_slice`]);
//! - a 64-byte-aligned byte buffer ([`AlignedBuf`]);
//! - memory-mapping an artifact file ([`map_file`]);
//! - copying machine code into anonymous memory, making it read+execute ([`ExecCode`]);
//! - calling the compiled entry point with a [`RunContext`] ([`invoke`]).
//!
//! Trust: an artifact is a program. Its code is executed as it is; the checksum catches
//! corruption, not malice, so load only artifacts you trust (as with a shared library).

use std::fs::File;
use std::io;

use memmap2::{Mmap, MmapMut, MmapOptions};

use crate::abi::{EntryFn, KernelTable, RunContext};
use crate::tensor::{TensorMut, TensorRef};

mod sealed {
    pub trait Sealed {}
}

/// Plain numeric types: every bit pattern is a valid value and there is no padding, so
/// their slices can be reinterpreted as bytes and (when aligned) back.
pub trait Pod: Copy + 'static + sealed::Sealed {}

macro_rules! pod {
    ($($t:ty),*) => { $(impl sealed::Sealed for $t {} impl Pod for $t {})* };
}
pod!(f32, f64, i8, u8, i16, u16, i32, u32, i64, u64);

pub fn bytes_of<T: Pod>(values: &[T]) -> &[u8] {
    // SAFETY: T is plain data without padding; the byte view covers exactly the same memory
    // and lives as long as the borrow of `values`.
    unsafe { std::slice::from_raw_parts(values.as_ptr().cast(), std::mem::size_of_val(values)) }
}

pub fn bytes_of_mut<T: Pod>(values: &mut [T]) -> &mut [u8] {
    // SAFETY: as in `bytes_of`; any bytes written are a valid T since T is Pod.
    unsafe { std::slice::from_raw_parts_mut(values.as_mut_ptr().cast(), std::mem::size_of_val(values)) }
}

/// `bytes` as `&[T]`, or `None` when misaligned or not a whole number of elements.
pub fn cast_slice<T: Pod>(bytes: &[u8]) -> Option<&[T]> {
    let size = std::mem::size_of::<T>();
    if !(bytes.as_ptr() as usize).is_multiple_of(std::mem::align_of::<T>()) || !bytes.len().is_multiple_of(size) {
        return None;
    }
    // SAFETY: alignment and length checked above; every bit pattern is a valid T.
    Some(unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast(), bytes.len() / size) })
}

pub fn cast_slice_mut<T: Pod>(bytes: &mut [u8]) -> Option<&mut [T]> {
    let size = std::mem::size_of::<T>();
    if !(bytes.as_ptr() as usize).is_multiple_of(std::mem::align_of::<T>()) || !bytes.len().is_multiple_of(size) {
        return None;
    }
    // SAFETY: as in `cast_slice`, with the unique borrow carried over.
    Some(unsafe { std::slice::from_raw_parts_mut(bytes.as_mut_ptr().cast(), bytes.len() / size) })
}

#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Block([u8; 64]);

/// A zero-initialised byte buffer whose start is 64-byte aligned.
pub struct AlignedBuf {
    storage: BufStorage,
    len: usize,
}

/// Where an [`AlignedBuf`]'s bytes live: small buffers on the heap, big ones in an
/// anonymous mapping of their own.
enum BufStorage {
    /// Also the empty buffer, whose dangling pointer is 64-byte aligned as every buffer's is.
    Heap(Vec<Block>),
    Mapped(memmap2::MmapMut),
}

/// From this size on an [`AlignedBuf`] is an anonymous mapping: the kernel hands out
/// zero pages as they are first touched, so making a 30 MB arena costs a system call,
/// not a 30 MB memset. (The global allocator cannot do that for us: for an alignment
/// above 16 bytes Rust's `alloc_zeroed` is `posix_memalign` followed by a memset, which
/// took 15% of ResNet-50's load.)
const MAP_FROM_BYTES: usize = 256 << 10;

impl AlignedBuf {
    /// `len` zero bytes; `None` instead of an abort when the memory is not there. Big
    /// buffers are fresh pages from the OS that cost nothing until touched: an arena or a
    /// GEMM workspace that a model uses only in part is only in part resident.
    pub fn zeroed(len: usize) -> Option<AlignedBuf> {
        if len == 0 {
            return Some(AlignedBuf { storage: BufStorage::Heap(Vec::new()), len });
        }
        if len >= MAP_FROM_BYTES {
            // A mapping starts on a page boundary, so it is 64-byte aligned; its pages
            // read as zero.
            let map = memmap2::MmapOptions::new().len(len).map_anon().ok()?;
            // Transparent huge pages where the system gives them on request
            // (`madvise` mode, the usual default): the conv GEMMs read their input
            // planes' rows thousands of bytes apart, one 4 KiB page per row, and a
            // 256-row slice of them missed the first-level TLB on every load. A hint
            // only: refused, the buffer works the same on small pages.
            #[cfg(target_os = "linux")]
            let _ = map.advise(memmap2::Advice::HugePage);
            return Some(AlignedBuf { storage: BufStorage::Mapped(map), len });
        }
        let n = len.div_ceil(64);
        let layout = std::alloc::Layout::array::<Block>(n).ok()?;
        // SAFETY: the layout has a non-zero size (n ≥ 1 blocks of 64 bytes).
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) }.cast::<Block>();
        if ptr.is_null() {
            return None;
        }
        // SAFETY: `ptr` was allocated by the global allocator with the layout of n
        // blocks, which is what a Vec<Block> of capacity n deallocates with; all n
        // blocks are initialised (zero bytes are a valid `Block`).
        let blocks = unsafe { Vec::from_raw_parts(ptr, n, n) };
        Some(AlignedBuf { storage: BufStorage::Heap(blocks), len })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn as_slice(&self) -> &[u8] {
        match &self.storage {
            // SAFETY: the blocks hold at least `len` initialised bytes, contiguously.
            BufStorage::Heap(blocks) => unsafe { std::slice::from_raw_parts(blocks.as_ptr().cast(), self.len) },
            BufStorage::Mapped(map) => &map[..self.len],
        }
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        match &mut self.storage {
            // SAFETY: as in `as_slice`, with a unique borrow.
            BufStorage::Heap(blocks) => unsafe { std::slice::from_raw_parts_mut(blocks.as_mut_ptr().cast(), self.len) },
            BufStorage::Mapped(map) => &mut map[..self.len],
        }
    }
}

impl Default for AlignedBuf {
    fn default() -> Self {
        AlignedBuf { storage: BufStorage::Heap(Vec::new()), len: 0 }
    }
}

impl Clone for AlignedBuf {
    /// A copy in memory of its own (aborts, as `Vec::clone` does, when there is none).
    fn clone(&self) -> Self {
        let mut copy = AlignedBuf::zeroed(self.len).expect("memory for a copy of an AlignedBuf");
        copy.as_mut_slice().copy_from_slice(self.as_slice());
        copy
    }
}

impl PartialEq for AlignedBuf {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for AlignedBuf {}

/// Maps `file` read-only.
pub fn map_file(file: &File) -> io::Result<Mmap> {
    // SAFETY: the mapping is read-only and private to the model. Like every memory-mapped
    // reader, we rely on nobody truncating or rewriting the file while it is loaded (that
    // would fault or change weights under the running code); this is documented on
    // `Model::load`. `populate`: the loader reads every page at once (the checksum), and
    // one prefaulting call costs less than a fault per page (BERT-base's 440 MB loaded in
    // 41.7 ms instead of 49.6).
    unsafe { MmapOptions::new().populate().map(file) }
}

/// Machine code copied into its own anonymous mapping and made read+execute (never
/// writable and executable at once).
pub struct ExecCode {
    map: Mmap,
    len: usize,
}

/// How many code mappings this process has made (tests check that a refused artifact
/// never gets one).
pub static CODE_MAPPINGS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl ExecCode {
    /// Write-xor-execute: the anonymous mapping is read+write while the code is copied in,
    /// then read+execute (`mprotect`), and never writable and executable at once.
    pub fn new(code: &[u8]) -> io::Result<ExecCode> {
        CODE_MAPPINGS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut map = MmapMut::map_anon(code.len().max(1))?;
        map[..code.len()].copy_from_slice(code);
        let map = map.make_exec()?;
        flush_icache(map.as_ptr(), code.len());
        Ok(ExecCode { map, len: code.len() })
    }
}

/// Makes freshly written code visible to instruction fetch. x86 keeps the instruction
/// and data caches coherent, so there is nothing to do.
#[cfg(not(target_arch = "aarch64"))]
fn flush_icache(_start: *const u8, _len: usize) {}

/// aarch64 Linux and others: clean the data cache and invalidate the instruction cache
/// to the point of unification, line by line, as compiler-rt's `__clear_cache` does
/// (honouring CTR_EL0.IDC/DIC, which say a step is unnecessary). The invalidation is
/// broadcast to every core; other threads get the model only through synchronisation
/// that passes through the kernel, which is a context-synchronising event.
#[cfg(all(target_arch = "aarch64", not(target_vendor = "apple")))]
fn flush_icache(start: *const u8, len: usize) {
    use std::arch::asm;
    let start = start as usize;
    let end = start + len;
    // SAFETY: cache maintenance by virtual address on memory we own and have mapped
    // readable; these instructions change no architectural state visible to Rust.
    unsafe {
        let ctr: u64;
        asm!("mrs {}, ctr_el0", out(reg) ctr, options(nomem, nostack, preserves_flags));
        if (ctr >> 28) & 1 == 0 {
            let line = 4usize << ((ctr >> 16) & 15);
            let mut addr = start & !(line - 1);
            while addr < end {
                asm!("dc cvau, {}", in(reg) addr, options(nostack, preserves_flags));
                addr += line;
            }
        }
        asm!("dsb ish", options(nostack, preserves_flags));
        if (ctr >> 29) & 1 == 0 {
            let line = 4usize << (ctr & 15);
            let mut addr = start & !(line - 1);
            while addr < end {
                asm!("ic ivau, {}", in(reg) addr, options(nostack, preserves_flags));
                addr += line;
            }
            asm!("dsb ish", options(nostack, preserves_flags));
        }
        asm!("isb", options(nostack, preserves_flags));
    }
}

/// Apple platforms provide the same operation in libSystem.
#[cfg(all(target_arch = "aarch64", target_vendor = "apple"))]
fn flush_icache(start: *const u8, len: usize) {
    unsafe extern "C" {
        fn sys_icache_invalidate(start: *mut std::ffi::c_void, len: usize);
    }
    // SAFETY: the range is memory we own and have just written.
    unsafe { sys_icache_invalidate(start as *mut _, len) }
}

/// The pointer arrays handed to the code (`inputs` then `outputs`), kept between runs so
/// a run allocates nothing. Empty outside a call.
#[derive(Default)]
pub struct PtrScratch(Vec<*mut u8>);

// SAFETY: the vector is empty whenever it is not inside `invoke`, so no pointer ever
// crosses a thread through it.
unsafe impl Send for PtrScratch {}

impl PtrScratch {
    pub fn with_capacity(n: usize) -> PtrScratch {
        PtrScratch(Vec::with_capacity(n))
    }
}

/// Everything one call of the entry point needs. The caller has checked the tensors
/// against the signatures (count, dtype, shape, alignment) and `entry < code.len()`.
pub struct Call<'c, 'i, 'o> {
    pub entry: usize,
    pub inputs: &'c [TensorRef<'i>],
    pub outputs: &'c mut [TensorMut<'o>],
    pub arena: &'c mut AlignedBuf,
    pub weights: &'c [u8],
    pub kernels: &'static KernelTable,
    pub thread_count: usize,
    pub ptrs: &'c mut PtrScratch,
    /// The run's string heap (`RunContext::strings`), alive for the whole call.
    pub strings: *mut std::ffi::c_void,
    /// The run state's workers, used by no other run meanwhile.
    pub workers: &'c crate::workers::Workers,
}

/// Calls the compiled entry point and returns its status (0 = ok). Profiling, it calls the
/// step functions at `steps` instead (offsets into the code, from the artifact's checked
/// step table) one after another with one context, as the entry does, handing each step's
/// index and wall time to `timed`, and stops at the first non-zero status.
pub fn invoke_each(code: &ExecCode, call: Call<'_, '_, '_>, steps: &[u64], timed: &mut dyn FnMut(usize, std::ops::Range<std::time::Instant>)) -> i32 {
    assert!(call.entry < code.len, "entry offset checked at load");
    assert!(steps.iter().all(|&s| (s as usize) < code.len), "step offsets checked at load");
    let ptrs = &mut call.ptrs.0;
    ptrs.clear();
    ptrs.extend(call.inputs.iter().map(|t| t.bytes().as_ptr().cast_mut()));
    ptrs.extend(call.outputs.iter_mut().map(|t| t.bytes_mut().as_mut_ptr()));
    let ctx = RunContext {
        inputs: ptrs.as_ptr().cast(),
        // SAFETY: `inputs.len() <= ptrs.len()`, so this stays inside (or one past) the vector.
        outputs: unsafe { ptrs.as_ptr().add(call.inputs.len()) },
        arena: call.arena.as_mut_slice().as_mut_ptr(),
        weights: call.weights.as_ptr(),
        kernels: call.kernels,
        thread_count: call.thread_count.max(1),
        strings: call.strings,
        workers: (call.workers as *const crate::workers::Workers).cast(),
    };
    // SAFETY: `entry` lies inside the executable mapping, which holds the artifact's code,
    // compiled for this ISA and calling convention (checked at load) to the contract in
    // `abi`: it reads `inputs.len()` input buffers and writes `outputs.len()` output
    // buffers of exactly the checked sizes, uses at most `arena.len()` bytes of the arena
    // (exclusively ours for this call), reads the weights and calls only through `kernels`.
    // Every pointer in `ctx` stays valid for the whole call: the borrows above outlive it,
    // and the caller keeps the string heap alive and otherwise untouched until we return.
    // Each step function has the entry's signature and contract (the entry only calls them
    // in this order with this context), so the same holds for calling them one by one.
    let call_at = |offset: usize| unsafe {
        // SAFETY: see above: `offset` is the entry's or a step function's, inside the code.
        let f: EntryFn = std::mem::transmute::<*const u8, EntryFn>(code.map.as_ptr().add(offset));
        f(&ctx)
    };
    let mut status = 0;
    if steps.is_empty() {
        status = call_at(call.entry);
    }
    for (i, &offset) in steps.iter().enumerate() {
        let t0 = std::time::Instant::now();
        status = call_at(offset as usize);
        timed(i, t0..std::time::Instant::now());
        if status != 0 {
            break;
        }
    }
    ptrs.clear();
    status
}

#[cfg(test)]
mod tests {
    use super::AlignedBuf;

    /// Every buffer starts 64-byte aligned and reads as zeros: empty (a zero-sized f32
    /// output still needs an aligned pointer), on the heap, and mapped.
    #[test]
    fn buffers_are_aligned_and_zero_whatever_their_size() {
        for len in [0, 1, 63, 64, 4096, super::MAP_FROM_BYTES - 1, super::MAP_FROM_BYTES, 3 << 20] {
            let mut b = AlignedBuf::zeroed(len).unwrap();
            assert_eq!(b.len(), len);
            assert_eq!(b.as_slice().as_ptr() as usize % 64, 0, "len {len}");
            assert_eq!(b.as_mut_slice().as_ptr() as usize % 64, 0, "len {len}");
            assert!(b.as_slice().iter().all(|&v| v == 0), "len {len}");
            if len > 0 {
                b.as_mut_slice()[len - 1] = 7;
                let c = b.clone();
                assert_eq!(c.as_slice()[len - 1], 7);
                assert!(c == b);
            }
        }
        assert_eq!(AlignedBuf::default().as_slice().as_ptr() as usize % 64, 0);
    }
}
