//! Compiles the functions of a lowered graph and lays them out into one code blob.
//!
//! The code is position-independent. Step functions call nothing but the runtime kernels,
//! through pointers from the run context; the entry function calls the step functions
//! directly, and a split step takes its task function's address (to hand it to
//! `parallel_for`). Those are the only relocations, which we resolve here, PC-relative, so
//! the blob stays position-independent:
//!
//! - calls: x86-64 `call rel32`, aarch64 `bl`;
//! - function addresses, which Cranelift emits as loads from a GOT entry (its PIC form).
//!   We have no GOT: like a static linker's relaxation of `R_X86_64_REX_GOTPCRELX` and
//!   `R_AARCH64_LD64_GOT_LO12_NC`, the load becomes an address computation — x86-64
//!   `mov r64, [rip + d]` → `lea r64, [rip + d]`; aarch64 `adrp x, page; ldr x, [x, lo]`
//!   → `adrp x, page; add x, x, lo`. The aarch64 form counts pages, so it needs the code
//!   loaded at a page-aligned address, which the runtime's executable mapping is (the
//!   blob starts the mapping).
//!
//! Any other relocation (a libcall Cranelift chose to emit, say) is an error, never
//! silently shipped.

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
            Reloc::X86GOTPCRel4 => {
                // `REX.W 8B /r` with a RIP-relative ModRM (mod 00, r/m 101) before the
                // displacement: becomes `REX.W 8D /r`, the displacement to the function.
                let ok = site >= 3 && code[site - 3] & 0xf8 == 0x48 && code[site - 2] == 0x8b && code[site - 1] & 0xc7 == 0x05;
                if !ok {
                    bail!("function address at {site}: not a RIP-relative 64-bit mov");
                }
                code[site - 2] = 0x8d;
                let v = i32::try_from(delta).map_err(|_| anyhow::anyhow!("code too large for a 32-bit displacement"))?;
                code[site..site + 4].copy_from_slice(&v.to_le_bytes());
            }
            Reloc::Aarch64AdrGotPage21 => {
                // adrp: the page of the function relative to the page of the site.
                let pages = ((dest as i64 + addend) >> 12) - (site as i64 >> 12);
                if !(-(1 << 20)..(1 << 20)).contains(&pages) {
                    bail!("aarch64 adrp out of range ({pages} pages)");
                }
                let mut insn = read32(&code, site);
                if insn & 0x9f00_0000 != 0x9000_0000 {
                    bail!("function address at {site}: not an adrp");
                }
                let imm = pages as u32 & 0x1f_ffff;
                insn = (insn & 0x9f00_001f) | ((imm & 3) << 29) | ((imm >> 2) << 5);
                code[site..site + 4].copy_from_slice(&insn.to_le_bytes());
            }
            Reloc::Aarch64Ld64GotLo12Nc => {
                // `ldr xt, [xn, #imm]` (64-bit, unsigned offset) → `add xt, xn, #lo12`.
                let insn = read32(&code, site);
                if insn & 0xffc0_0000 != 0xf940_0000 {
                    bail!("function address at {site}: not a 64-bit ldr");
                }
                let lo12 = ((dest as i64 + addend) & 0xfff) as u32;
                let add = 0x9100_0000 | (lo12 << 10) | (insn & 0x3ff);
                code[site..site + 4].copy_from_slice(&add.to_le_bytes());
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

fn read32(code: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(code[at..at + 4].try_into().expect("4 bytes"))
}
