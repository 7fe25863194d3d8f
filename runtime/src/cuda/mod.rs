//! Artifacts for NVIDIA GPUs: the program the CUDA driver runs, and (behind the `cuda`
//! cargo feature) the engine that runs it.
//!
//! A CUDA artifact (format version 6, see [`crate::artifact`]) has no machine code: its
//! cuda section (kind 5) holds a [`Program`]: PTX modules, which the driver compiles for
//! the GPU at load (its JIT cache keeps the result), and the launch sequence, run in order
//! on one stream. Memory is two device allocations: the **arena** (the static memory
//! plan's temporaries, then one slot per graph input and output, then a 4-byte status
//! word) and the **weights** (the artifact's weights section, uploaded once). Every kernel
//! argument is a device pointer into one of them ([`Ptr`]), so the launch sequence holds
//! no host pointer and the whole run can be captured in a CUDA graph.
//!
//! A kernel that finds a run-time error (an index out of range) stores its error code in
//! the status word; the runtime zeroes it before each run and reads it after.
//!
//! # The cuda section (kind 5, 8-byte aligned; versions 6 and 3 only)
//!
//! `str` is a u32 byte length and UTF-8 bytes; `ptr` is `u8 base (0 arena, 1 weights),
//! u64 byte offset`. In order:
//!
//! ```text
//! u32 sm                 the target's compute capability (75 for sm_75)
//! u32 min_sm             the oldest GPU the PTX runs on (the highest `.target` of its modules)
//! str ptx_isa            the highest PTX ISA `.version` of its modules, e.g. "6.0"
//! str precision          "fp32" | "fp16"
//! u64 arena_bytes        the device arena's size
//! u64 status_offset      of the status word (u32) in the arena
//! u32 n, n × u64         input slots' arena offsets, in signature order
//! u32 n, n × u64         output slots' arena offsets
//! u32 n, n × str         PTX modules (ASCII text)
//! u32 n, n × launch      the launch sequence:
//!   u8 0 (kernel)  u32 module, str name, 3 × u32 grid, 3 × u32 block, u32 shared bytes,
//!                  u32 k, k × ptr (the kernel's parameters, each a u64 device pointer)
//!   u8 1 (copy)    ptr dst, ptr src, u64 bytes
//!   u8 2 (fill)    ptr dst, u32 byte value, u64 bytes
//! ```
//! and nothing after. [`Program::validate`] checks every pointer range against the two
//! allocations, module indices, names and launch sizes, so a corrupt section is a load
//! error, never a wild device access by the runtime itself.

use crate::artifact::{FormatError, Reader, TensorSig, put_str, put_u32, put_u64};

#[cfg(feature = "cuda")]
mod device;
#[cfg(feature = "cuda")]
pub use device::{CudaEngine, DeviceInfo, cuda_release_for_ptx, driver_present};

/// Whether this build of the runtime can run CUDA artifacts (the `cuda` cargo feature).
pub const ENABLED: bool = cfg!(feature = "cuda");

/// The runtime feature a CUDA artifact names in its metadata.
pub const RUNTIME_FEATURE: &str = "cuda";

/// The most threads in one block, and the most of the y and z grid dimensions (CUDA's
/// limits on every GPU since sm_30).
pub const MAX_BLOCK_THREADS: u32 = 1024;
pub const MAX_GRID_YZ: u32 = 65535;
/// The most dynamic shared memory one launch may ask for without opting in (48 KiB).
pub const MAX_SHARED_BYTES: u32 = 48 * 1024;

/// Which device allocation a pointer is into.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Base {
    Arena = 0,
    Weights = 1,
}

/// A device pointer: `base + offset` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ptr {
    pub base: Base,
    pub offset: u64,
}

impl Ptr {
    pub fn arena(offset: u64) -> Ptr {
        Ptr { base: Base::Arena, offset }
    }
    pub fn weights(offset: u64) -> Ptr {
        Ptr { base: Base::Weights, offset }
    }
    /// The address, given where the two allocations start.
    pub fn resolve(self, arena: u64, weights: u64) -> u64 {
        match self.base {
            Base::Arena => arena + self.offset,
            Base::Weights => weights + self.offset,
        }
    }
}

/// One entry of the launch sequence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Launch {
    /// A kernel of module `module`, every parameter a u64 device pointer.
    Kernel { module: u32, name: String, grid: [u32; 3], block: [u32; 3], shared: u32, args: Vec<Ptr> },
    /// `bytes` bytes from `src` to `dst` (not overlapping).
    Copy { dst: Ptr, src: Ptr, bytes: u64 },
    /// `bytes` bytes at `dst` set to `value`.
    Fill { dst: Ptr, value: u8, bytes: u64 },
}

/// What a CUDA artifact runs: see the module docs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Program {
    pub sm: u32,
    pub min_sm: u32,
    pub ptx_isa: String,
    pub precision: String,
    pub arena_bytes: u64,
    pub status_offset: u64,
    pub inputs: Vec<u64>,
    pub outputs: Vec<u64>,
    pub modules: Vec<String>,
    pub launches: Vec<Launch>,
}

/// How the section's errors begin.
const SECTION: &str = "cuda section: ";

fn err<T>(msg: impl Into<String>) -> Result<T, FormatError> {
    Err(FormatError::Metadata(format!("{SECTION}{}", msg.into())))
}

impl Program {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Vec::new();
        put_u32(&mut w, self.sm);
        put_u32(&mut w, self.min_sm);
        put_str(&mut w, &self.ptx_isa);
        put_str(&mut w, &self.precision);
        put_u64(&mut w, self.arena_bytes);
        put_u64(&mut w, self.status_offset);
        for list in [&self.inputs, &self.outputs] {
            put_u32(&mut w, list.len() as u32);
            for &o in list {
                put_u64(&mut w, o);
            }
        }
        put_u32(&mut w, self.modules.len() as u32);
        for m in &self.modules {
            put_str(&mut w, m);
        }
        put_u32(&mut w, self.launches.len() as u32);
        for l in &self.launches {
            match l {
                Launch::Kernel { module, name, grid, block, shared, args } => {
                    w.push(0);
                    put_u32(&mut w, *module);
                    put_str(&mut w, name);
                    for v in grid.iter().chain(block) {
                        put_u32(&mut w, *v);
                    }
                    put_u32(&mut w, *shared);
                    put_u32(&mut w, args.len() as u32);
                    for a in args {
                        put_ptr(&mut w, *a);
                    }
                }
                Launch::Copy { dst, src, bytes } => {
                    w.push(1);
                    put_ptr(&mut w, *dst);
                    put_ptr(&mut w, *src);
                    put_u64(&mut w, *bytes);
                }
                Launch::Fill { dst, value, bytes } => {
                    w.push(2);
                    put_ptr(&mut w, *dst);
                    put_u32(&mut w, *value as u32);
                    put_u64(&mut w, *bytes);
                }
            }
        }
        w
    }

    pub fn decode(bytes: &[u8]) -> Result<Program, FormatError> {
        let mut r = Reader::new(bytes, SECTION);
        let sm = r.u32("sm")?;
        let min_sm = r.u32("min_sm")?;
        let ptx_isa = r.str("PTX ISA version")?;
        let precision = r.str("precision")?;
        let arena_bytes = r.u64("arena size")?;
        let status_offset = r.u64("status offset")?;
        let mut lists = [vec![], vec![]];
        for (list, what) in lists.iter_mut().zip(["input slot", "output slot"]) {
            let n = r.count(what, 8)?;
            for _ in 0..n {
                list.push(r.u64(what)?);
            }
        }
        let [inputs, outputs] = lists;
        let n = r.count("module", 4)?;
        let mut modules = Vec::with_capacity(n);
        for i in 0..n {
            modules.push(r.str(&format!("module {i}"))?);
        }
        let n = r.count("launch", 1)?;
        let mut launches = Vec::with_capacity(n);
        for i in 0..n {
            let what = format!("launch {i}");
            let kind = r.u8(&what)?;
            launches.push(match kind {
                0 => {
                    let module = r.u32(&what)?;
                    let name = r.str(&what)?;
                    let mut v = [0u32; 6];
                    for x in v.iter_mut() {
                        *x = r.u32(&what)?;
                    }
                    let shared = r.u32(&what)?;
                    let k = r.count(&what, 9)?;
                    let mut args = Vec::with_capacity(k);
                    for _ in 0..k {
                        args.push(read_ptr(&mut r, &what)?);
                    }
                    Launch::Kernel { module, name, grid: [v[0], v[1], v[2]], block: [v[3], v[4], v[5]], shared, args }
                }
                1 => Launch::Copy { dst: read_ptr(&mut r, &what)?, src: read_ptr(&mut r, &what)?, bytes: r.u64(&what)? },
                2 => {
                    let dst = read_ptr(&mut r, &what)?;
                    let value = r.u32(&what)?;
                    if value > 255 {
                        return err(format!("{what}: fill value {value} is not a byte"));
                    }
                    Launch::Fill { dst, value: value as u8, bytes: r.u64(&what)? }
                }
                k => return err(format!("{what}: unknown kind {k}")),
            });
        }
        r.finish("the last launch")?;
        Ok(Program { sm, min_sm, ptx_isa, precision, arena_bytes, status_offset, inputs, outputs, modules, launches })
    }

    /// Checks the program against the artifact's signatures and its weights section's
    /// length: every pointer range inside its allocation, slots that fit their tensors,
    /// module indices, kernel names, launch sizes within CUDA's limits.
    pub fn validate(&self, inputs: &[TensorSig], outputs: &[TensorSig], weights_len: u64) -> Result<(), FormatError> {
        if !(30..=200).contains(&self.sm) || !(30..=self.sm).contains(&self.min_sm) {
            return err(format!("compute capability sm_{} / oldest sm_{} is not plausible", self.sm, self.min_sm));
        }
        if self.precision != "fp32" && self.precision != "fp16" {
            return err(format!("unknown precision '{}'", self.precision));
        }
        if self.arena_bytes > isize::MAX as u64 {
            return err(format!("arena size {} is too large", self.arena_bytes));
        }
        let in_arena = |offset: u64, len: u64| offset.checked_add(len).is_some_and(|e| e <= self.arena_bytes);
        let in_range = |p: Ptr, len: u64| match p.base {
            Base::Arena => in_arena(p.offset, len),
            Base::Weights => p.offset.checked_add(len).is_some_and(|e| e <= weights_len),
        };
        if !in_arena(self.status_offset, 4) || !self.status_offset.is_multiple_of(4) {
            return err(format!("status word at {} is outside the arena or misaligned", self.status_offset));
        }
        for (what, slots, sigs) in [("input", &self.inputs, inputs), ("output", &self.outputs, outputs)] {
            if slots.len() != sigs.len() {
                return err(format!("{} {what} slots for {} {what}s", slots.len(), sigs.len()));
            }
            for (i, (&o, s)) in slots.iter().zip(sigs).enumerate() {
                if !in_arena(o, s.byte_len() as u64) || !o.is_multiple_of(16) {
                    return err(format!("{what} {i} ('{}'): slot at {o} is outside the arena or not 16-byte aligned", s.name));
                }
            }
        }
        for (i, m) in self.modules.iter().enumerate() {
            if !m.is_ascii() || !m.contains(".version") || !m.contains(".target") {
                return err(format!("module {i} is not PTX text"));
            }
        }
        for (i, l) in self.launches.iter().enumerate() {
            match l {
                Launch::Kernel { module, name, grid, block, shared, args } => {
                    if *module as usize >= self.modules.len() {
                        return err(format!("launch {i}: module {module} does not exist"));
                    }
                    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                        return err(format!("launch {i}: kernel name '{name}' is not an identifier"));
                    }
                    let threads = block.iter().try_fold(1u32, |a, &b| a.checked_mul(b));
                    if grid.contains(&0) || block.contains(&0) || threads.is_none_or(|t| t > MAX_BLOCK_THREADS) || grid[1] > MAX_GRID_YZ || grid[2] > MAX_GRID_YZ || grid[0] > i32::MAX as u32 {
                        return err(format!("launch {i} ({name}): grid {grid:?} and block {block:?} exceed CUDA's limits"));
                    }
                    if *shared > MAX_SHARED_BYTES {
                        return err(format!("launch {i} ({name}): {shared} bytes of shared memory (at most {MAX_SHARED_BYTES})"));
                    }
                    if let Some(a) = args.iter().find(|a| !in_range(**a, 0)) {
                        return err(format!("launch {i} ({name}): argument {a:?} points outside its allocation"));
                    }
                }
                Launch::Copy { dst, src, bytes } => {
                    if dst.base != Base::Arena || !in_range(*dst, *bytes) || !in_range(*src, *bytes) {
                        return err(format!("launch {i}: copy of {bytes} bytes {src:?} -> {dst:?} is out of range (or writes the weights)"));
                    }
                }
                Launch::Fill { dst, bytes, .. } => {
                    if dst.base != Base::Arena || !in_range(*dst, *bytes) {
                        return err(format!("launch {i}: fill of {bytes} bytes at {dst:?} is out of range (or writes the weights)"));
                    }
                }
            }
        }
        Ok(())
    }

    /// The kernel launches' parameter values, given where the arena and the weights start:
    /// what the runtime passes to `cuLaunchKernel` (one u64 per parameter).
    pub fn kernel_args(&self, arena: u64, weights: u64) -> Vec<Vec<u64>> {
        self.launches
            .iter()
            .map(|l| match l {
                Launch::Kernel { args, .. } => args.iter().map(|a| a.resolve(arena, weights)).collect(),
                _ => vec![],
            })
            .collect()
    }
}

fn put_ptr(w: &mut Vec<u8>, p: Ptr) {
    w.push(p.base as u8);
    put_u64(w, p.offset);
}

/// A pointer: a base byte (0 arena, 1 weights) and a u64 offset.
fn read_ptr(r: &mut Reader<'_>, what: &str) -> Result<Ptr, FormatError> {
    let base = match r.u8(what)? {
        0 => Base::Arena,
        1 => Base::Weights,
        b => return err(format!("{what}: unknown pointer base {b}")),
    };
    Ok(Ptr { base, offset: r.u64(what)? })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DType;

    pub(crate) fn sample() -> (Program, Vec<TensorSig>, Vec<TensorSig>) {
        let ins = vec![TensorSig::new("x", DType::F32, [2, 3])];
        let outs = vec![TensorSig::new("y", DType::F32, [2, 3])];
        let p = Program {
            sm: 75,
            min_sm: 70,
            ptx_isa: "6.0".into(),
            precision: "fp32".into(),
            arena_bytes: 256,
            status_offset: 192,
            inputs: vec![64],
            outputs: vec![128],
            modules: vec![".version 6.0\n.target sm_70\n.address_size 64\n".into()],
            launches: vec![
                Launch::Fill { dst: Ptr::arena(192), value: 0, bytes: 4 },
                Launch::Kernel { module: 0, name: "k0".into(), grid: [1, 1, 1], block: [32, 1, 1], shared: 0, args: vec![Ptr::arena(64), Ptr::weights(0), Ptr::arena(128), Ptr::arena(192)] },
                Launch::Copy { dst: Ptr::arena(0), src: Ptr::weights(0), bytes: 24 },
            ],
        };
        (p, ins, outs)
    }

    #[test]
    fn round_trips_and_validates() {
        let (p, ins, outs) = sample();
        let back = Program::decode(&p.encode()).unwrap();
        assert_eq!(back, p);
        back.validate(&ins, &outs, 64).unwrap();
        // Arguments resolve against the two allocations' addresses.
        assert_eq!(p.kernel_args(0x1000, 0x8000)[1], vec![0x1040, 0x8000, 0x1080, 0x10c0]);
    }

    #[test]
    fn every_bad_field_is_an_error() {
        let (p, ins, outs) = sample();
        let bad = |f: &dyn Fn(&mut Program)| {
            let mut q = p.clone();
            f(&mut q);
            q.validate(&ins, &outs, 64).unwrap_err().to_string()
        };
        assert!(bad(&|q| q.status_offset = 254).contains("status word"));
        assert!(bad(&|q| q.inputs[0] = 240).contains("input 0"));
        assert!(bad(&|q| q.outputs.clear()).contains("0 output slots"));
        assert!(bad(&|q| q.launches[1] = Launch::Kernel { module: 3, name: "k".into(), grid: [1; 3], block: [1; 3], shared: 0, args: vec![] }).contains("module 3"));
        assert!(bad(&|q| q.launches[1] = Launch::Kernel { module: 0, name: "k;".into(), grid: [1; 3], block: [1; 3], shared: 0, args: vec![] }).contains("identifier"));
        assert!(bad(&|q| q.launches[1] = Launch::Kernel { module: 0, name: "k".into(), grid: [1; 3], block: [64, 32, 1], shared: 0, args: vec![] }).contains("limits"));
        assert!(bad(&|q| q.launches[1] = Launch::Kernel { module: 0, name: "k".into(), grid: [1; 3], block: [1; 3], shared: 0, args: vec![Ptr::weights(65)] }).contains("outside"));
        assert!(bad(&|q| q.launches[2] = Launch::Copy { dst: Ptr::arena(0), src: Ptr::weights(60), bytes: 8 }).contains("copy"));
        assert!(bad(&|q| q.launches[2] = Launch::Copy { dst: Ptr::weights(0), src: Ptr::arena(0), bytes: 8 }).contains("weights"));
        assert!(bad(&|q| q.launches[0] = Launch::Fill { dst: Ptr::arena(250), value: 0, bytes: 8 }).contains("fill"));
        assert!(bad(&|q| q.precision = "fp8".into()).contains("precision"));
        assert!(bad(&|q| q.min_sm = 80).contains("plausible"));
        // Truncations and trailing bytes.
        let bytes = p.encode();
        for cut in 0..bytes.len() {
            assert!(Program::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Program::decode(&longer).is_err());
    }
}
