//! Sliding-window kernels from the runtime's parameter blocks (read from the lowering's
//! weights blobs at compile time, so every size is a constant in the code):
//!
//! - `conv` ([`ConvParams`], ONNX weight layout only: the CUDA backend does not pack):
//!   an implicit GEMM on the tiled GEMM ([`super::gemm`]) per group (`gridDim.z`), with
//!   M = output channels of the group, N = batch × output positions, K = input channels of
//!   the group × kernel taps, B gathered from x with padding read as zero; thin groups
//!   (fewer than [`GEMM_MIN_M`] output channels each, e.g. depthwise) use a direct kernel,
//!   a thread per output. Both apply the runtime's epilogue: `act(conv + bias + residual)`.
//! - `pool` ([`PoolParams`]): a thread per output with the runtime kernel's semantics
//!   (`kernels/pool.rs`): Max keeps the first maximum in window order (`>`), empty windows
//!   give 0 and index −1; Average and Lp sum in f64 and round once.

use anyhow::{Result, bail};
use neoc_runtime::abi::{ConvParams, PoolParams};

use super::Pending;
use super::gemm::{self, Env, Tiled, activation};
use super::nest::{Built, LOOP_BLOCK, NAME, bases};
use super::ptx::{Cls, Kernel, f32_imm, f64_imm};
use crate::kernel_ir::{Call, CallArg, Mem};

/// Groups with fewer output channels than this take the direct kernel.
pub const GEMM_MIN_M: u64 = 16;

fn mem(arg: &CallArg) -> Result<Option<Mem>> {
    match arg {
        CallArg::Null => Ok(None),
        CallArg::Buf { mem, offset: 0, batch_strides } if batch_strides.is_empty() => Ok(Some(*mem)),
        _ => bail!("a window kernel's buffer argument has an offset or batch strides"),
    }
}

/// Row-major decomposition of u32 register `flat` over `dims` (u32 registers).
fn split(k: &mut Kernel, flat: &str, dims: &[u64]) -> Vec<String> {
    let mut rest = flat.to_string();
    let mut out = vec![String::new(); dims.len()];
    for d in (0..dims.len()).rev() {
        if d == 0 {
            out[0] = rest.clone();
            break;
        }
        let (r, q) = (k.reg(Cls::B32), k.reg(Cls::B32));
        k.op(format!("rem.u32 {r}, {rest}, {}", dims[d]));
        k.op(format!("div.u32 {q}, {rest}, {}", dims[d]));
        out[d] = r;
        rest = q;
    }
    out
}

/// Input position `o·stride − pad + t·dilation` along each spatial dim (s32 registers),
/// and a predicate: every position inside the input.
fn taps(k: &mut Kernel, o: &[String], t: &[String], stride: &[u64], pad: &[u64], dil: &[u64], size: &[u64]) -> (Vec<String>, String) {
    let inside = k.reg(Cls::Pred);
    k.op(format!("mov.pred {inside}, 1"));
    let mut pos = vec![];
    for d in 0..o.len() {
        let p = k.reg(Cls::B32);
        k.op(format!("mul.lo.s32 {p}, {}, {}", o[d], stride[d]));
        k.op(format!("sub.s32 {p}, {p}, {}", pad[d]));
        k.op(format!("mad.lo.s32 {p}, {}, {}, {p}", t[d], dil[d]));
        let q = k.reg(Cls::Pred);
        // Unsigned: negative positions are out of range too.
        k.op(format!("setp.lt.u32 {q}, {p}, {}", size[d]));
        k.op(format!("and.pred {inside}, {inside}, {q}"));
        pos.push(p);
    }
    (pos, inside)
}

/// `((plane · size0 + p0) · size1 + p1) …` as a u64 element index.
fn flat_index(k: &mut Kernel, plane: &str, pos: &[String], size: &[u64]) -> String {
    let i = k.reg(Cls::B64);
    k.op(format!("cvt.u64.u32 {i}, {plane}"));
    for (p, s) in pos.iter().zip(size) {
        let w = k.reg(Cls::B64);
        k.op(format!("cvt.s64.s32 {w}, {p}"));
        k.op(format!("mad.lo.s64 {i}, {i}, {s}, {w}"));
    }
    i
}

fn elem_addr(k: &mut Kernel, base: &str, index: &str) -> String {
    let a = k.reg(Cls::B64);
    k.op(format!("mad.lo.s64 {a}, {index}, 4, {base}"));
    a
}

fn dims(a: &[u64; 3], r: usize) -> Vec<u64> {
    a[..r].to_vec()
}

/// The epilogue shared by both conv kernels: `act(v + bias[co] + residual[idx])`, stored.
#[allow(clippy::too_many_arguments)]
fn conv_store(k: &mut Kernel, env: &Env, p: &ConvParams, v: &str, co: &str, out_index: &str, y: Mem, bias: Option<Mem>, residual: Option<Mem>) -> Result<()> {
    let acc = k.reg(Cls::F32);
    k.op(format!("mov.f32 {acc}, {v}"));
    if let Some(b) = bias {
        let (i, t) = (k.reg(Cls::B64), k.reg(Cls::F32));
        k.op(format!("cvt.u64.u32 {i}, {co}"));
        let a = elem_addr(k, &env.bases[&b], &i);
        k.op(format!("ld.global.f32 {t}, [{a}]"));
        k.op(format!("add.rn.f32 {acc}, {acc}, {t}"));
    }
    if let Some(r) = residual {
        let t = k.reg(Cls::F32);
        let a = elem_addr(k, &env.bases[&r], out_index);
        k.op(format!("ld.global.f32 {t}, [{a}]"));
        k.op(format!("add.rn.f32 {acc}, {acc}, {t}"));
    }
    let out = activation(k, &acc, p.act, p.act_alpha, p.act_beta)?;
    let a = elem_addr(k, &env.bases[&y], out_index);
    k.op(format!("st.global.f32 [{a}], {out}"));
    Ok(())
}

/// The runtime's `conv`.
pub(super) fn conv(c: &Call, p: &ConvParams) -> Result<Pending> {
    neoc_runtime::kernels::check_conv_params(p).map_err(|e| anyhow::anyhow!("Conv parameters: {e}"))?;
    if p.weight_layout != 0 {
        bail!("conv weight layout {} is a CPU layout; the cuda backend reads ONNX's", p.weight_layout);
    }
    if !c.batch.is_empty() {
        bail!("a batched conv call");
    }
    let r = p.spatial as usize;
    let (x, w, y) = (mem(&c.args[1])?.expect("x"), mem(&c.args[2])?.expect("w"), mem(&c.args[5])?.expect("y"));
    let (bias, residual) = (mem(&c.args[3])?, mem(&c.args[4])?);
    let g = p.group as u64;
    let (mg, cg) = (p.c_out / g, p.c_in / g);
    let (isz, osz, ksz) = (dims(&p.in_size, r), dims(&p.out_size, r), dims(&p.kernel, r));
    let (stride, dil, pad) = (dims(&p.stride, r), dims(&p.dilation, r), dims(&p.pad_begin, r));
    let os: u64 = osz.iter().product();
    let ks: u64 = ksz.iter().product();
    let mut mems: Vec<Mem> = [Some(x), Some(w), Some(y), bias, residual].into_iter().flatten().collect();
    mems.sort();
    mems.dedup();
    let total = p.batch * p.c_out * os;
    if total >= 1 << 31 || p.batch * p.c_in * isz.iter().product::<u64>() >= 1 << 31 {
        bail!("a convolution this large is not supported by the cuda backend yet");
    }
    // Gathered B element (kk, nn) of group z: x[b, z·cg + ci, pos] or nothing (padding).
    let gather = |k: &mut Kernel, env: &Env, kk: &str, nn: &str| -> Result<(String, Option<String>)> {
        let mut tdims = vec![cg];
        tdims.extend(&ksz);
        let t = split(k, kk, &tdims);
        let mut odims = vec![p.batch];
        odims.extend(&osz);
        let o = split(k, nn, &odims);
        let (pos, inside) = taps(k, &o[1..], &t[1..], &stride, &pad, &dil, &isz);
        let plane = k.reg(Cls::B32);
        k.op(format!("mad.lo.u32 {plane}, {}, {}, {}", o[0], p.c_in, t[0]));
        k.op(format!("mad.lo.u32 {plane}, {}, {cg}, {plane}", env.z));
        let i = flat_index(k, &plane, &pos, &isz);
        Ok((elem_addr(k, &env.bases[&x], &i), Some(inside)))
    };
    if mg >= GEMM_MIN_M {
        let load_a = |k: &mut Kernel, env: &Env, row: &str, col: &str| -> Result<(String, Option<String>)> {
            let (co, i) = (k.reg(Cls::B32), k.reg(Cls::B64));
            k.op(format!("mad.lo.u32 {co}, {}, {mg}, {row}", env.z));
            let c64 = k.reg(Cls::B64);
            k.op(format!("cvt.u64.u32 {i}, {co}"));
            k.op(format!("cvt.u64.u32 {c64}, {col}"));
            k.op(format!("mad.lo.u64 {i}, {i}, {}, {c64}", cg * ks));
            Ok((elem_addr(k, &env.bases[&w], &i), None))
        };
        let store = |k: &mut Kernel, env: &Env, row: &str, col: &str, v: &str| -> Result<()> {
            let o = split(k, col, &[p.batch, os]);
            let co = k.reg(Cls::B32);
            k.op(format!("mad.lo.u32 {co}, {}, {mg}, {row}", env.z));
            let plane = k.reg(Cls::B32);
            k.op(format!("mad.lo.u32 {plane}, {}, {}, {co}", o[0], p.c_out));
            let idx = k.reg(Cls::B64);
            let o1 = k.reg(Cls::B64);
            k.op(format!("cvt.u64.u32 {idx}, {plane}"));
            k.op(format!("cvt.u64.u32 {o1}, {}", o[1]));
            k.op(format!("mad.lo.u64 {idx}, {idx}, {os}, {o1}"));
            conv_store(k, env, p, v, &co, &idx, y, bias, residual)
        };
        let t = Tiled { m: mg, n: p.batch * os, k: cg * ks, batches: g, mems, load_a: &load_a, load_b: &gather, store: &store, a_k_fast: true, b_n_fast: true };
        return Ok(Pending::Kernel { family: "gemm", built: gemm::tiled(&t)? });
    }
    // Direct: a thread per output (b, co, positions).
    let mut k = Kernel::new(mems.len() + 1);
    let (bases, status) = bases(&mut k, &mems);
    let flat = k.global_thread_u32();
    let done = k.label();
    let pd = k.reg(Cls::Pred);
    k.op(format!("setp.ge.u32 {pd}, {flat}, {total}"));
    k.op(format!("@{pd} bra {done}"));
    let mut odims = vec![p.batch, p.c_out];
    odims.extend(&osz);
    let o = split(&mut k, &flat, &odims);
    let grp = k.reg(Cls::B32);
    k.op(format!("div.u32 {grp}, {}, {mg}", o[1]));
    let env = Env { bases, z: grp.clone(), status };
    let acc = k.reg(Cls::F32);
    k.op(format!("mov.f32 {acc}, {}", f32_imm(0.0)));
    let j = k.reg(Cls::B32);
    k.op(format!("mov.u32 {j}, 0"));
    let (top, end) = (k.label(), k.label());
    k.place(&top);
    let pe = k.reg(Cls::Pred);
    k.op(format!("setp.ge.u32 {pe}, {j}, {}", cg * ks));
    k.op(format!("@{pe} bra {end}"));
    let mut tdims = vec![cg];
    tdims.extend(&ksz);
    let t = split(&mut k, &j, &tdims);
    let (pos, inside) = taps(&mut k, &o[2..], &t[1..], &stride, &pad, &dil, &isz);
    let skip = k.label();
    let out = k.reg(Cls::Pred);
    k.op(format!("not.pred {out}, {inside}"));
    k.op(format!("@{out} bra {skip}"));
    let plane = k.reg(Cls::B32);
    k.op(format!("mad.lo.u32 {plane}, {}, {}, {}", o[0], p.c_in, t[0]));
    k.op(format!("mad.lo.u32 {plane}, {grp}, {cg}, {plane}"));
    let xi = flat_index(&mut k, &plane, &pos, &isz);
    let xa = elem_addr(&mut k, &env.bases[&x], &xi);
    let (wi, j64) = (k.reg(Cls::B64), k.reg(Cls::B64));
    k.op(format!("cvt.u64.u32 {wi}, {}", o[1]));
    k.op(format!("cvt.u64.u32 {j64}, {j}"));
    k.op(format!("mad.lo.u64 {wi}, {wi}, {}, {j64}", cg * ks));
    let wa = elem_addr(&mut k, &env.bases[&w], &wi);
    let (xv, wv) = (k.reg(Cls::F32), k.reg(Cls::F32));
    k.op(format!("ld.global.f32 {xv}, [{xa}]"));
    k.op(format!("ld.global.f32 {wv}, [{wa}]"));
    k.op(format!("fma.rn.f32 {acc}, {xv}, {wv}, {acc}"));
    k.place(&skip);
    k.op(format!("add.u32 {j}, {j}, 1"));
    k.op(format!("bra {top}"));
    k.place(&end);
    let idx = k.reg(Cls::B64);
    k.op(format!("cvt.u64.u32 {idx}, {flat}"));
    conv_store(&mut k, &env, p, &acc, &o[1], &idx, y, bias, residual)?;
    k.place(&done);
    k.op("ret");
    let blocks = total.div_ceil(LOOP_BLOCK as u64).max(1) as u32;
    Ok(Pending::Kernel { family: "conv", built: Built { text: k.finish(NAME), mems, grid: [blocks, 1, 1], block: [LOOP_BLOCK, 1, 1] } })
}

/// The runtime's `pool`: a thread per output.
pub fn pool(c: &Call, p: &PoolParams) -> Result<Built> {
    neoc_runtime::kernels::check_pool_params(p).map_err(|e| anyhow::anyhow!("pooling parameters: {e}"))?;
    if !c.batch.is_empty() {
        bail!("a batched pool call");
    }
    let r = p.spatial as usize;
    let (x, y, ind) = (mem(&c.args[1])?.expect("x"), mem(&c.args[2])?.expect("y"), mem(&c.args[3])?);
    let (isz, osz, ksz) = (dims(&p.in_size, r), dims(&p.out_size, r), dims(&p.kernel, r));
    let (stride, dil, pb, pe) = (dims(&p.stride, r), dims(&p.dilation, r), dims(&p.pad_begin, r), dims(&p.pad_end, r));
    let total = p.channels * osz.iter().product::<u64>();
    let ks: u64 = ksz.iter().product();
    if total >= 1 << 31 || p.channels * isz.iter().product::<u64>() >= 1 << 31 {
        bail!("pooling this large is not supported by the cuda backend yet");
    }
    let mut mems: Vec<Mem> = [Some(x), Some(y), ind].into_iter().flatten().collect();
    mems.sort();
    mems.dedup();
    let mut k = Kernel::new(mems.len() + 1);
    let (bases, _status) = bases(&mut k, &mems);
    let flat = k.global_thread_u32();
    let done = k.label();
    let pd = k.reg(Cls::Pred);
    k.op(format!("setp.ge.u32 {pd}, {flat}, {total}"));
    k.op(format!("@{pd} bra {done}"));
    let mut odims = vec![p.channels];
    odims.extend(&osz);
    let o = split(&mut k, &flat, &odims);
    let (best, arg, has) = (k.reg(Cls::F32), k.reg(Cls::B64), k.reg(Cls::Pred));
    let (sum, count, padded) = (k.reg(Cls::F64), k.reg(Cls::B32), k.reg(Cls::B32));
    k.op(format!("mov.f32 {best}, {}", f32_imm(0.0)));
    k.op(format!("mov.s64 {arg}, -1"));
    k.op(format!("mov.pred {has}, 0"));
    k.op(format!("mov.f64 {sum}, {}", f64_imm(0.0)));
    k.op(format!("mov.u32 {count}, 0"));
    k.op(format!("mov.u32 {padded}, 0"));
    let j = k.reg(Cls::B32);
    k.op(format!("mov.u32 {j}, 0"));
    let (top, end) = (k.label(), k.label());
    k.place(&top);
    let pj = k.reg(Cls::Pred);
    k.op(format!("setp.ge.u32 {pj}, {j}, {ks}"));
    k.op(format!("@{pj} bra {end}"));
    let t = split(&mut k, &j, &ksz);
    let (pos, inside) = taps(&mut k, &o[1..], &t, &stride, &pb, &dil, &isz);
    if p.kind == 1 && p.count_include_pad == 1 {
        // Inside the padded input [−pad_begin, in + pad_end): shift by pad_begin.
        let inpad = k.reg(Cls::Pred);
        k.op(format!("mov.pred {inpad}, 1"));
        for d in 0..r {
            let (s, q) = (k.reg(Cls::B32), k.reg(Cls::Pred));
            k.op(format!("add.s32 {s}, {}, {}", pos[d], pb[d]));
            k.op(format!("setp.lt.u32 {q}, {s}, {}", isz[d] + pb[d] + pe[d]));
            k.op(format!("and.pred {inpad}, {inpad}, {q}"));
        }
        let one = k.reg(Cls::B32);
        k.op(format!("selp.u32 {one}, 1, 0, {inpad}"));
        k.op(format!("add.u32 {padded}, {padded}, {one}"));
    }
    let skip = k.label();
    let outside = k.reg(Cls::Pred);
    k.op(format!("not.pred {outside}, {inside}"));
    k.op(format!("@{outside} bra {skip}"));
    let xi = flat_index(&mut k, &o[0], &pos, &isz);
    let xa = elem_addr(&mut k, &bases[&x], &xi);
    let v = k.reg(Cls::F32);
    k.op(format!("ld.global.f32 {v}, [{xa}]"));
    k.op(format!("add.u32 {count}, {count}, 1"));
    match p.kind {
        0 => {
            // Take v when nothing was read yet or v > best.
            let (gt, nh) = (k.reg(Cls::Pred), k.reg(Cls::Pred));
            k.op(format!("setp.gt.f32 {gt}, {v}, {best}"));
            k.op(format!("not.pred {nh}, {has}"));
            k.op(format!("or.pred {gt}, {gt}, {nh}"));
            k.op(format!("selp.f32 {best}, {v}, {best}, {gt}"));
            k.op(format!("selp.b64 {arg}, {xi}, {arg}, {gt}"));
            k.op(format!("mov.pred {has}, 1"));
        }
        1 => {
            let vd = k.reg(Cls::F64);
            k.op(format!("cvt.f64.f32 {vd}, {v}"));
            k.op(format!("add.rn.f64 {sum}, {sum}, {vd}"));
        }
        _ => {
            let (vd, pw) = (k.reg(Cls::F64), k.reg(Cls::F64));
            k.op(format!("cvt.f64.f32 {vd}, {v}"));
            k.op(format!("abs.f64 {vd}, {vd}"));
            k.op(format!("mov.f64 {pw}, {vd}"));
            for _ in 1..p.p {
                k.op(format!("mul.rn.f64 {pw}, {pw}, {vd}"));
            }
            k.op(format!("add.rn.f64 {sum}, {sum}, {pw}"));
        }
    }
    k.place(&skip);
    k.op(format!("add.u32 {j}, {j}, 1"));
    k.op(format!("bra {top}"));
    k.place(&end);
    let out_i = k.reg(Cls::B64);
    k.op(format!("cvt.u64.u32 {out_i}, {flat}"));
    let ya = elem_addr(&mut k, &bases[&y], &out_i);
    let result = match p.kind {
        0 => {
            if let Some(im) = ind {
                let ia = k.reg(Cls::B64);
                k.op(format!("mad.lo.s64 {ia}, {out_i}, 8, {}", bases[&im]));
                k.op(format!("st.global.u64 [{ia}], {arg}"));
            }
            best
        }
        1 => {
            let (n, q, f) = (k.reg(Cls::F64), k.reg(Cls::F64), k.reg(Cls::F32));
            let divisor = if p.count_include_pad == 1 { &padded } else { &count };
            k.op(format!("cvt.rn.f64.u32 {n}, {divisor}"));
            k.op(format!("div.rn.f64 {q}, {sum}, {n}"));
            k.op(format!("cvt.rn.f32.f64 {f}, {q}"));
            f
        }
        _ => {
            let f = k.reg(Cls::F32);
            match p.p {
                1 => k.op(format!("cvt.rn.f32.f64 {f}, {sum}")),
                2 => {
                    let s = k.reg(Cls::F64);
                    k.op(format!("sqrt.rn.f64 {s}, {sum}"));
                    k.op(format!("cvt.rn.f32.f64 {f}, {s}"));
                }
                n => {
                    // (Σ)^(1/p) in f32: within a few ulp of the f64 root.
                    let s = k.reg(Cls::F32);
                    k.op(format!("cvt.rn.f32.f64 {s}, {sum}"));
                    let e = k.reg(Cls::F32);
                    k.op(format!("mov.f32 {e}, {}", f32_imm(1.0 / n as f32)));
                    let root = super::math::emit(&mut k, neoc_runtime::abi::MathOp::Pow, &s, Some(&e))?;
                    k.op(format!("mov.f32 {f}, {root}"));
                }
            }
            f
        }
    };
    k.op(format!("st.global.f32 [{ya}], {result}"));
    k.place(&done);
    k.op("ret");
    let blocks = total.div_ceil(LOOP_BLOCK as u64).max(1) as u32;
    Ok(Built { text: k.finish(NAME), mems, grid: [blocks, 1, 1], block: [LOOP_BLOCK, 1, 1] })
}
