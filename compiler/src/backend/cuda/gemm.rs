//! The FP32 SIMT GEMM: 64×64 tiles of C per 256-thread block, k in steps of 8 through
//! shared memory, each thread accumulating a 4×4 comb of C (rows `ty + 16i`, columns
//! `tx + 16j`, so a warp's stores and shared-memory reads are contiguous) with FMAs in k
//! order. Operands are read through loaders, so one template serves `sgemm` (any row and
//! column strides, batches on `gridDim.z`, `alpha` and `beta·C`), `sgemm_epilogue` (bias,
//! residual, activation) and convolution as an implicit GEMM (`window.rs`: B gathered
//! from the input on the fly, padding read as zero). Each tile is loaded with the
//! contiguous operand dimension across consecutive threads (coalesced).

use std::collections::HashMap;

use anyhow::{Result, bail};
use neoc_runtime::abi::{Activation, GemmParams};

use super::nest::{Built, NAME, bases};
use super::ptx::{Cls, Kernel, f32_imm};
use crate::kernel_ir::{Call, CallArg, Mem};

pub const TILE: u32 = 64;
pub const TK: u32 = 8;
const THREADS: u32 = 256;

/// What loaders and the store see: buffer bases, the batch index, the status word.
pub struct Env {
    pub bases: HashMap<Mem, String>,
    /// `%ctaid.z` as a u32 register.
    pub z: String,
    pub status: String,
}

/// A loader: (row, col) u32 registers → the element's address and, when some in-range
/// positions read nothing (padding), a predicate that is true where the element exists.
pub type Load<'a> = &'a dyn Fn(&mut Kernel, &Env, &str, &str) -> Result<(String, Option<String>)>;
/// The store: (row, col, accumulated value).
pub type Store<'a> = &'a dyn Fn(&mut Kernel, &Env, &str, &str, &str) -> Result<()>;

/// A tiled GEMM's shape and operands.
pub struct Tiled<'a> {
    pub m: u64,
    pub n: u64,
    pub k: u64,
    /// Batch points (`gridDim.z`).
    pub batches: u64,
    pub mems: Vec<Mem>,
    pub load_a: Load<'a>,
    pub load_b: Load<'a>,
    pub store: Store<'a>,
    /// A is contiguous along k (else along m); B along n (else along k).
    pub a_k_fast: bool,
    pub b_n_fast: bool,
}

/// Emits the tiled kernel.
pub fn tiled(t: &Tiled) -> Result<Built> {
    if t.batches > neoc_runtime::cuda::MAX_GRID_YZ as u64 || t.m.div_ceil(TILE as u64) > neoc_runtime::cuda::MAX_GRID_YZ as u64 {
        bail!("a GEMM of {} batches and {} rows is more than the cuda backend's grid holds", t.batches, t.m);
    }
    if t.m >= 1 << 31 || t.n >= 1 << 31 || t.k >= 1 << 31 {
        bail!("a GEMM of {}×{}×{} is too large for the cuda backend", t.m, t.n, t.k);
    }
    let mut k = Kernel::new(t.mems.len() + 1);
    let (bases, status) = bases(&mut k, &t.mems);
    let (tid, tx, ty, m0, n0, z) = (k.reg(Cls::B32), k.reg(Cls::B32), k.reg(Cls::B32), k.reg(Cls::B32), k.reg(Cls::B32), k.reg(Cls::B32));
    k.op(format!("mov.u32 {tid}, %tid.x"));
    k.op(format!("and.b32 {tx}, {tid}, 15"));
    k.op(format!("shr.u32 {ty}, {tid}, 4"));
    k.op(format!("mov.u32 {n0}, %ctaid.x"));
    k.op(format!("shl.b32 {n0}, {n0}, 6"));
    k.op(format!("mov.u32 {m0}, %ctaid.y"));
    k.op(format!("shl.b32 {m0}, {m0}, 6"));
    k.op(format!("mov.u32 {z}, %ctaid.z"));
    let env = Env { bases, z, status };
    let tile_floats = (TILE * TK) as usize;
    let (sa_name, sb_name) = (k.shared(4 * tile_floats, 16), k.shared(4 * tile_floats, 16));
    let (sa, sb) = (k.reg(Cls::B32), k.reg(Cls::B32));
    k.op(format!("mov.u32 {sa}, {sa_name}"));
    k.op(format!("mov.u32 {sb}, {sb_name}"));
    let acc: Vec<String> = (0..16).map(|_| k.reg(Cls::F32)).collect();
    for a in &acc {
        k.op(format!("mov.f32 {a}, {}", f32_imm(0.0)));
    }
    let k0 = k.reg(Cls::B32);
    k.op(format!("mov.u32 {k0}, 0"));
    let (top, end) = (k.label(), k.label());
    k.place(&top);
    let pend = k.reg(Cls::Pred);
    k.op(format!("setp.ge.u32 {pend}, {k0}, {}", t.k));
    k.op(format!("@{pend} bra {end}"));
    // Load the tiles: 512 elements each, two per thread.
    for (operand, fast, smem) in [(0, t.a_k_fast, &sa), (1, t.b_n_fast, &sb)] {
        for q in 0..(tile_floats as u32 / THREADS) {
            let e = k.reg(Cls::B32);
            k.op(format!("add.u32 {e}, {tid}, {}", q * THREADS));
            // (mn, kk): position along m (or n) and along k inside the tile.
            let (mn, kk) = (k.reg(Cls::B32), k.reg(Cls::B32));
            let k_fast = if operand == 0 { fast } else { !fast };
            if k_fast {
                k.op(format!("and.b32 {kk}, {e}, {}", TK - 1));
                k.op(format!("shr.u32 {mn}, {e}, {}", TK.trailing_zeros()));
            } else {
                k.op(format!("and.b32 {mn}, {e}, {}", TILE - 1));
                k.op(format!("shr.u32 {kk}, {e}, {}", TILE.trailing_zeros()));
            }
            let (g_mn, g_k) = (k.reg(Cls::B32), k.reg(Cls::B32));
            k.op(format!("add.u32 {g_mn}, {}, {mn}", if operand == 0 { &m0 } else { &n0 }));
            k.op(format!("add.u32 {g_k}, {k0}, {kk}"));
            let (p1, p2) = (k.reg(Cls::Pred), k.reg(Cls::Pred));
            k.op(format!("setp.lt.u32 {p1}, {g_mn}, {}", if operand == 0 { t.m } else { t.n }));
            k.op(format!("setp.lt.u32 {p2}, {g_k}, {}", t.k));
            k.op(format!("and.pred {p1}, {p1}, {p2}"));
            let v = k.reg(Cls::F32);
            k.op(format!("mov.f32 {v}, {}", f32_imm(0.0)));
            let skip = k.label();
            let np = k.reg(Cls::Pred);
            k.op(format!("not.pred {np}, {p1}"));
            k.op(format!("@{np} bra {skip}"));
            let (addr, valid) = if operand == 0 { (t.load_a)(&mut k, &env, &g_mn, &g_k)? } else { (t.load_b)(&mut k, &env, &g_k, &g_mn)? };
            match valid {
                Some(p) => k.op(format!("@{p} ld.global.f32 {v}, [{addr}]")),
                None => k.op(format!("ld.global.f32 {v}, [{addr}]")),
            }
            k.place(&skip);
            let s = k.reg(Cls::B32);
            k.op(format!("mad.lo.u32 {s}, {kk}, {TILE}, {mn}"));
            k.op(format!("shl.b32 {s}, {s}, 2"));
            k.op(format!("add.u32 {s}, {s}, {smem}"));
            k.op(format!("st.shared.f32 [{s}], {v}"));
        }
    }
    k.op("bar.sync 0");
    // 8 steps of k: 4 values of A and 4 of B, 16 FMAs.
    let (ra, rb) = (k.reg(Cls::B32), k.reg(Cls::B32));
    k.op(format!("shl.b32 {ra}, {ty}, 2"));
    k.op(format!("shl.b32 {rb}, {tx}, 2"));
    k.op(format!("add.u32 {ra}, {ra}, {sa}"));
    k.op(format!("add.u32 {rb}, {rb}, {sb}"));
    for kk in 0..TK {
        let a: Vec<String> = (0..4)
            .map(|i| {
                let r = k.reg(Cls::F32);
                k.op(format!("ld.shared.f32 {r}, [{ra}+{}]", 4 * (kk * TILE + 16 * i)));
                r
            })
            .collect();
        let b: Vec<String> = (0..4)
            .map(|j| {
                let r = k.reg(Cls::F32);
                k.op(format!("ld.shared.f32 {r}, [{rb}+{}]", 4 * (kk * TILE + 16 * j)));
                r
            })
            .collect();
        for i in 0..4 {
            for j in 0..4 {
                let c = &acc[i * 4 + j];
                k.op(format!("fma.rn.f32 {c}, {}, {}, {c}", a[i], b[j]));
            }
        }
    }
    k.op("bar.sync 0");
    k.op(format!("add.u32 {k0}, {k0}, {TK}"));
    k.op(format!("bra {top}"));
    k.place(&end);
    for i in 0..4u32 {
        for j in 0..4u32 {
            let (row, col) = (k.reg(Cls::B32), k.reg(Cls::B32));
            k.op(format!("add.u32 {row}, {m0}, {ty}"));
            if i > 0 {
                k.op(format!("add.u32 {row}, {row}, {}", 16 * i));
            }
            k.op(format!("add.u32 {col}, {n0}, {tx}"));
            if j > 0 {
                k.op(format!("add.u32 {col}, {col}, {}", 16 * j));
            }
            let (p1, p2) = (k.reg(Cls::Pred), k.reg(Cls::Pred));
            k.op(format!("setp.ge.u32 {p1}, {row}, {}", t.m));
            k.op(format!("setp.ge.u32 {p2}, {col}, {}", t.n));
            k.op(format!("or.pred {p1}, {p1}, {p2}"));
            let skip = k.label();
            k.op(format!("@{p1} bra {skip}"));
            (t.store)(&mut k, &env, &row, &col, &acc[(i * 4 + j) as usize])?;
            k.place(&skip);
        }
    }
    k.op("ret");
    let grid = [t.n.div_ceil(TILE as u64) as u32, t.m.div_ceil(TILE as u64) as u32, t.batches as u32];
    Ok(Built { text: k.finish(NAME), mems: t.mems.clone(), grid, block: [THREADS, 1, 1] })
}

/// The byte offset of batch point `z` (a u32 register) for an operand with per-dim byte
/// `strides` over `batch` dims, as an s64 register.
pub fn batch_offset(k: &mut Kernel, z: &str, batch: &[usize], strides: &[i64]) -> String {
    let off = k.reg(Cls::B64);
    k.op(format!("mov.u64 {off}, 0"));
    let mut rest = z.to_string();
    for d in (0..batch.len()).rev() {
        let (i, q, w) = (k.reg(Cls::B32), k.reg(Cls::B32), k.reg(Cls::B64));
        k.op(format!("rem.u32 {i}, {rest}, {}", batch[d]));
        k.op(format!("div.u32 {q}, {rest}, {}", batch[d]));
        let s = strides.get(d).copied().unwrap_or(0);
        if s != 0 {
            k.op(format!("cvt.u64.u32 {w}, {i}"));
            k.op(format!("mad.lo.s64 {off}, {w}, {s}, {off}"));
        }
        rest = q;
    }
    off
}

/// `base + batch_offset + (row·rs + col·cs)·4` for an f32 matrix.
#[allow(clippy::too_many_arguments)]
pub fn matrix_addr(k: &mut Kernel, env: &Env, mem: Mem, offset: i64, batch: &[usize], bstrides: &[i64], row: &str, col: &str, rs: i64, cs: i64) -> String {
    let off = batch_offset(k, &env.z, batch, bstrides);
    let (r, c, a) = (k.reg(Cls::B64), k.reg(Cls::B64), k.reg(Cls::B64));
    k.op(format!("cvt.u64.u32 {r}, {row}"));
    k.op(format!("cvt.u64.u32 {c}, {col}"));
    k.op(format!("add.s64 {off}, {off}, {offset}"));
    k.op(format!("mad.lo.s64 {off}, {r}, {}, {off}", 4 * rs));
    k.op(format!("mad.lo.s64 {off}, {c}, {}, {off}", 4 * cs));
    k.op(format!("add.s64 {a}, {}, {off}", env.bases[&mem]));
    a
}

/// `act(x)` with the runtime epilogue's formulas (`kernels/epilogue.rs`).
pub fn activation(k: &mut Kernel, x: &str, act: u32, alpha: f32, beta: f32) -> Result<String> {
    let Some(act) = Activation::from_u32(act) else { bail!("unknown activation {act}") };
    let r = k.reg(Cls::F32);
    let p = k.reg(Cls::Pred);
    match act {
        Activation::None => return Ok(x.to_string()),
        Activation::Relu => {
            k.op(format!("setp.lt.f32 {p}, {x}, {}", f32_imm(0.0)));
            k.op(format!("selp.f32 {r}, {}, {x}, {p}", f32_imm(0.0)));
        }
        Activation::Clip => {
            let (t, q) = (k.reg(Cls::F32), k.reg(Cls::Pred));
            k.op(format!("setp.lt.f32 {p}, {x}, {}", f32_imm(alpha)));
            k.op(format!("selp.f32 {t}, {}, {x}, {p}", f32_imm(alpha)));
            k.op(format!("setp.gt.f32 {q}, {t}, {}", f32_imm(beta)));
            k.op(format!("selp.f32 {r}, {}, {t}, {q}", f32_imm(beta)));
        }
        Activation::LeakyRelu => {
            let t = k.reg(Cls::F32);
            k.op(format!("mul.rn.f32 {t}, {x}, {}", f32_imm(alpha)));
            k.op(format!("setp.lt.f32 {p}, {x}, {}", f32_imm(0.0)));
            k.op(format!("selp.f32 {r}, {t}, {x}, {p}"));
        }
        Activation::Sigmoid => return super::math::emit(k, neoc_runtime::abi::MathOp::Sigmoid, x, None),
        Activation::Silu => {
            let s = super::math::emit(k, neoc_runtime::abi::MathOp::Sigmoid, x, None)?;
            k.op(format!("mul.rn.f32 {r}, {x}, {s}"));
        }
        Activation::HardSwish => {
            let t = k.reg(Cls::F32);
            k.op(format!("div.rn.f32 {t}, {x}, {}", f32_imm(6.0)));
            k.op(format!("add.rn.f32 {t}, {t}, {}", f32_imm(0.5)));
            k.op(format!("max.f32 {t}, {t}, {}", f32_imm(0.0)));
            k.op(format!("min.f32 {t}, {t}, {}", f32_imm(1.0)));
            k.op(format!("mul.rn.f32 {r}, {x}, {t}"));
        }
        Activation::Gelu => {
            let (z, t) = (k.reg(Cls::F32), k.reg(Cls::F32));
            k.op(format!("mul.rn.f32 {z}, {x}, {}", f32_imm(std::f32::consts::FRAC_1_SQRT_2)));
            let e = super::math::emit(k, neoc_runtime::abi::MathOp::Erf, &z, None)?;
            k.op(format!("add.rn.f32 {t}, {e}, {}", f32_imm(1.0)));
            k.op(format!("mul.rn.f32 {z}, {x}, {}", f32_imm(0.5)));
            k.op(format!("mul.rn.f32 {r}, {z}, {t}"));
        }
        Activation::GeluTanh => {
            // x · sigmoid(2u), u = √(2/π)·(x + 0.044715·x³), as the CPU epilogue.
            let t = k.reg(Cls::F32);
            k.op(format!("mul.rn.f32 {t}, {x}, {x}"));
            k.op(format!("mul.rn.f32 {t}, {t}, {x}"));
            k.op(format!("mul.rn.f32 {t}, {t}, {}", f32_imm(0.044_715)));
            k.op(format!("add.rn.f32 {t}, {x}, {t}"));
            k.op(format!("mul.rn.f32 {t}, {t}, {}", f32_imm(1.595_769_1)));
            let s = super::math::emit(k, neoc_runtime::abi::MathOp::Sigmoid, &t, None)?;
            k.op(format!("mul.rn.f32 {r}, {x}, {s}"));
        }
    }
    Ok(r)
}

fn buf(arg: &CallArg) -> Result<(Mem, i64, Vec<i64>)> {
    match arg {
        CallArg::Buf { mem, offset, batch_strides } => Ok((*mem, *offset, batch_strides.clone())),
        _ => bail!("a GEMM operand is not a buffer"),
    }
}

fn int(arg: &CallArg) -> Result<i64> {
    match arg {
        CallArg::Int(v) => Ok(*v),
        _ => bail!("a GEMM size or stride is not an integer"),
    }
}

fn f32_arg(arg: &CallArg) -> Result<f32> {
    match arg {
        CallArg::F32(v) => Ok(*v),
        _ => bail!("a GEMM scale is not an f32"),
    }
}

fn mems_of(list: &[Option<Mem>]) -> Vec<Mem> {
    let mut v: Vec<Mem> = list.iter().flatten().copied().collect();
    v.sort();
    v.dedup();
    v
}

/// The runtime's `sgemm`: `C = alpha·A·B + beta·C` at every batch point (C not read when
/// beta is 0).
pub fn sgemm(c: &Call) -> Result<Built> {
    let a = &c.args;
    let (m, n, kk) = (int(&a[0])? as u64, int(&a[1])? as u64, int(&a[2])? as u64);
    let alpha = f32_arg(&a[3])?;
    let (am, ao, ab) = buf(&a[4])?;
    let (rsa, csa) = (int(&a[5])?, int(&a[6])?);
    let (bm, bo, bb) = (buf(&a[7])?.0, buf(&a[7])?.1, buf(&a[7])?.2);
    let (rsb, csb) = (int(&a[8])?, int(&a[9])?);
    let beta = f32_arg(&a[10])?;
    let (cm, co, cb) = buf(&a[11])?;
    let (rsc, csc) = (int(&a[12])?, int(&a[13])?);
    let batch = c.batch.clone();
    let batches: u64 = batch.iter().map(|&d| d as u64).product();
    let load_a = |k: &mut Kernel, env: &Env, r: &str, col: &str| Ok((matrix_addr(k, env, am, ao, &batch, &ab, r, col, rsa, csa), None));
    let load_b = |k: &mut Kernel, env: &Env, r: &str, col: &str| Ok((matrix_addr(k, env, bm, bo, &batch, &bb, r, col, rsb, csb), None));
    let store = |k: &mut Kernel, env: &Env, r: &str, col: &str, v: &str| {
        let addr = matrix_addr(k, env, cm, co, &batch, &cb, r, col, rsc, csc);
        let y = k.reg(Cls::F32);
        k.op(format!("mul.rn.f32 {y}, {v}, {}", f32_imm(alpha)));
        if beta != 0.0 {
            let (old, t) = (k.reg(Cls::F32), k.reg(Cls::F32));
            k.op(format!("ld.global.f32 {old}, [{addr}]"));
            k.op(format!("mul.rn.f32 {t}, {old}, {}", f32_imm(beta)));
            k.op(format!("add.rn.f32 {y}, {y}, {t}"));
        }
        k.op(format!("st.global.f32 [{addr}], {y}"));
        Ok(())
    };
    tiled(&Tiled { m, n, k: kk, batches, mems: mems_of(&[Some(am), Some(bm), Some(cm)]), load_a: &load_a, load_b: &load_b, store: &store, a_k_fast: csa == 1, b_n_fast: csb == 1 })
}

/// The runtime's `sgemm_epilogue`: `C = act(alpha·A·B + bias + residual)`.
pub fn sgemm_epilogue(c: &Call, p: &GemmParams) -> Result<Built> {
    let (am, ao, ab) = buf(&c.args[1])?;
    let (bm, bo, bb) = buf(&c.args[2])?;
    let bias = match &c.args[3] {
        CallArg::Null => None,
        arg => Some(buf(arg)?),
    };
    let residual = match &c.args[4] {
        CallArg::Null => None,
        arg => Some(buf(arg)?),
    };
    let (cm, co, cb) = buf(&c.args[5])?;
    let batch = c.batch.clone();
    let batches: u64 = batch.iter().map(|&d| d as u64).product();
    let load_a = |k: &mut Kernel, env: &Env, r: &str, col: &str| Ok((matrix_addr(k, env, am, ao, &batch, &ab, r, col, p.rsa, p.csa), None));
    let load_b = |k: &mut Kernel, env: &Env, r: &str, col: &str| Ok((matrix_addr(k, env, bm, bo, &batch, &bb, r, col, p.rsb, p.csb), None));
    let store = |k: &mut Kernel, env: &Env, r: &str, col: &str, v: &str| {
        let y = k.reg(Cls::F32);
        k.op(format!("mul.rn.f32 {y}, {v}, {}", f32_imm(p.alpha)));
        for (term, rs, cs) in [(&bias, p.rs_bias, p.cs_bias), (&residual, p.rs_residual, p.cs_residual)] {
            if let Some((m, o, bs)) = term {
                let addr = matrix_addr(k, env, *m, *o, &batch, bs, r, col, rs, cs);
                let t = k.reg(Cls::F32);
                k.op(format!("ld.global.f32 {t}, [{addr}]"));
                k.op(format!("add.rn.f32 {y}, {y}, {t}"));
            }
        }
        let y = activation(k, &y, p.act, p.act_alpha, p.act_beta)?;
        let addr = matrix_addr(k, env, cm, co, &batch, &cb, r, col, p.rsc, p.csc);
        k.op(format!("st.global.f32 [{addr}], {y}"));
        Ok(())
    };
    let mems = mems_of(&[Some(am), Some(bm), bias.as_ref().map(|b| b.0), residual.as_ref().map(|r| r.0), Some(cm)]);
    tiled(&Tiled { m: p.m, n: p.n, k: p.k, batches, mems, load_a: &load_a, load_b: &load_b, store: &store, a_k_fast: p.csa == 1, b_n_fast: p.csb == 1 })
}
