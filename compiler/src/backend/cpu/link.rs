//! Compiles the functions of a lowered graph and lays them out into one code blob.
//!
//! The code is position-independent. Step functions call nothing but the runtime kernels,
//! through pointers from the run context, so they have no relocations; the entry function
//! calls the step functions directly, and those calls are the only relocations, which we
//! resolve here (PC-relative, so the blob stays position-independent). Any other
//! relocation (a libcall Cranelift chose to emit, say) is an error, never silently
//! shipped.

use anyhow::{Result, bail};
use cranelift_codegen::binemit::Reloc;
use cranelift_codegen::control::ControlPlane;
use cranelift_codegen::ir::{ExternalName, Function};
use cranelift_codegen::isa::TargetIsa;
use cranelift_codegen::{Context, FinalizedRelocTarget};

/// Functions start on this alignment.
const FUNCTION_ALIGN: usize = 16;

pub struct Linked {
    pub code: Vec<u8>,
    /// Cranelift's listing of the machine instructions of each function, when asked for.
    pub listing: Option<String>,
    /// Byte offset of each function (in the order given).
    pub offsets: Vec<usize>,
}

/// Compiles `funcs` (function `i` is named user(0, i)) and links them into one blob.
pub fn compile_and_link(isa: &dyn TargetIsa, funcs: Vec<Function>, want_listing: bool) -> Result<Linked> {
    let mut listing = want_listing.then(String::new);
    let mut code = Vec::new();
    let mut offsets = Vec::new();
    let mut pending: Vec<(usize, Reloc, u32, i64)> = Vec::new(); // (site, kind, target fn, addend)
    let mut ctx = Context::new();
    for (i, func) in funcs.into_iter().enumerate() {
        ctx.clear();
        let names = func.params.user_named_funcs().clone();
        ctx.func = func;
        ctx.set_disasm(want_listing);
        let compiled = ctx
            .compile(isa, &mut ControlPlane::default())
            .map_err(|e| anyhow::anyhow!("cranelift failed on function {i}: {:?}", e.inner))?;
        while code.len() % FUNCTION_ALIGN != 0 {
            code.push(0);
        }
        let start = code.len();
        offsets.push(start);
        code.extend_from_slice(compiled.code_buffer());
        if let (Some(l), Some(text)) = (listing.as_mut(), compiled.vcode.as_ref()) {
            l.push_str(&format!("; function {i} at offset {start}\n{text}\n"));
        }
        for r in compiled.buffer.relocs() {
            let target = match &r.target {
                FinalizedRelocTarget::ExternalName(ExternalName::User(name)) => {
                    names[*name].index
                }
                other => bail!("function {i}: unexpected relocation {:?} to {other:?} (the code must be self-contained)", r.kind),
            };
            pending.push((start + r.offset as usize, r.kind, target, r.addend));
        }
    }
    for (site, kind, target, addend) in pending {
        let Some(&dest) = offsets.get(target as usize) else { bail!("call to unknown function {target}") };
        let delta = dest as i64 + addend - site as i64;
        match kind {
            Reloc::X86CallPCRel4 | Reloc::X86PCRel4 => {
                let v = i32::try_from(delta).map_err(|_| anyhow::anyhow!("code too large for a 32-bit call"))?;
                code[site..site + 4].copy_from_slice(&v.to_le_bytes());
            }
            Reloc::Arm64Call => {
                if delta % 4 != 0 || !(-(1 << 27)..(1 << 27)).contains(&delta) {
                    bail!("aarch64 call out of range ({delta} bytes)");
                }
                let mut insn = u32::from_le_bytes(code[site..site + 4].try_into().expect("4 bytes"));
                insn = (insn & 0xfc00_0000) | (((delta >> 2) as u32) & 0x03ff_ffff);
                code[site..site + 4].copy_from_slice(&insn.to_le_bytes());
            }
            other => bail!("unsupported relocation kind {other:?}"),
        }
    }
    Ok(Linked { code, listing, offsets })
}
