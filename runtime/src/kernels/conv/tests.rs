//! The conv kernel against a plain nested-loop reference in f64, over random shapes and
//! parameters on every path, plus the error codes.

use super::super::epilogue::Act;
use super::super::epilogue::tests::{act_f64, all_acts};
use super::super::test_util::{Rng, ctx, gamma};
use super::*;
use crate::abi::Activation;

/// Sentinel written around buffers to catch writes outside them.
const GUARD: f32 = -7777.25;
const GUARD_LEN: usize = 16;

/// A valid conv with everything 1 or 0, to be filled in.
fn base(spatial: u32) -> ConvParams {
    ConvParams {
        spatial,
        group: 1,
        batch: 1,
        c_in: 1,
        c_out: 1,
        in_size: [1; 3],
        out_size: [1; 3],
        kernel: [1; 3],
        stride: [1; 3],
        dilation: [1; 3],
        pad_begin: [0; 3],
        act: 0,
        weight_layout: 0,
        act_alpha: 0.0,
        act_beta: 0.0,
        scratch_bytes: 0,
    }
}

/// Each output as (conv + bias + residual, Σ|terms|), by plain loops over the ABI's own
/// arrays (unused trailing entries are 1 and 0, so three nested spatial loops do for
/// every `spatial`).
fn reference(p: &ConvParams, x: &[f32], w: &[f32], bias: Option<&[f32]>, residual: Option<&[f32]>) -> Vec<(f64, f64)> {
    let u = |a: [u64; 3]| a.map(|v| v as usize);
    let (is, os, k, s, d, pb) = (u(p.in_size), u(p.out_size), u(p.kernel), u(p.stride), u(p.dilation), u(p.pad_begin));
    let (ci, co, g) = (p.c_in as usize, p.c_out as usize, p.group as usize);
    let (cig, cog) = (ci / g, co / g);
    let mut out = Vec::new();
    for b in 0..p.batch as usize {
        for o in 0..co {
            for z in 0..os[0] {
                for yy in 0..os[1] {
                    for xx in 0..os[2] {
                        let (mut acc, mut mag) = (0f64, 0f64);
                        for c in 0..cig {
                            let ic = o / cog * cig + c;
                            for kz in 0..k[0] {
                                for ky in 0..k[1] {
                                    for kx in 0..k[2] {
                                        let pos = |o: usize, kk: usize, i: usize| (o * s[i] + kk * d[i]) as i64 - pb[i] as i64;
                                        let (iz, iy, ix) = (pos(z, kz, 0), pos(yy, ky, 1), pos(xx, kx, 2));
                                        if iz < 0 || iy < 0 || ix < 0 || iz >= is[0] as i64 || iy >= is[1] as i64 || ix >= is[2] as i64 {
                                            continue;
                                        }
                                        let xi = (((b * ci + ic) * is[0] + iz as usize) * is[1] + iy as usize) * is[2] + ix as usize;
                                        let wi = (((o * cig + c) * k[0] + kz) * k[1] + ky) * k[2] + kx;
                                        let t = x[xi] as f64 * w[wi] as f64;
                                        acc += t;
                                        mag += t.abs();
                                    }
                                }
                            }
                        }
                        let yi = out.len();
                        for extra in [bias.map(|v| v[o]), residual.map(|r| r[yi])].into_iter().flatten() {
                            acc += extra as f64;
                            mag += (extra as f64).abs();
                        }
                        out.push((acc, mag));
                    }
                }
            }
        }
    }
    out
}

/// Options of one run.
#[derive(Clone, Copy, Debug)]
struct Run {
    threads: usize,
    bias: bool,
    residual: bool,
    /// residual == y.
    in_place: bool,
}

/// Runs the kernel with exactly `conv_scratch_bytes` of scratch and checks every output
/// against the reference, and that nothing outside y and the scratch is written.
///
/// Tolerance: the kernel's pre-activation value is a sum of the kdim products plus bias
/// and residual, added in some order in f32, so it is within γ_{kdim+2}·Σ|terms| of the
/// exact sum (see `gamma`). The activations' slopes are at most 1.5 (HardSwish at 3;
/// Silu's is 1.1) and their f32 evaluation (exp, a division, a product) adds a few ulp
/// of the result: 8 ulp allowed.
fn check(rng: &mut Rng, mut p: ConvParams, run: Run) {
    let g = Geometry::new(&p).unwrap_or_else(|e| panic!("{p:?}: {e}"));
    p.scratch_bytes = conv_scratch_bytes(&p);
    let (x_len, y_len) = ((p.batch * p.c_in) as usize * g.in_len, (p.batch * p.c_out) as usize * g.out_len);
    let x = rng.values(x_len);
    let w = rng.values(p.c_out as usize * g.kdim);
    let bias = rng.values(p.c_out as usize);
    let residual = rng.values(y_len);
    let (bias, residual) = (run.bias.then_some(&bias[..]), (run.residual || run.in_place).then_some(&residual[..]));
    let want = reference(&p, &x, &w, bias, residual);
    // Layout 0, then layouts 4 and 1 (12- and 6-row panels) with the packed weights where
    // the packer takes `p`.
    let packed = pack_conv_weights(&p, &w);
    assert_eq!(packed.is_some(), matches!(g.path, Path::Pointwise { .. } | Path::Im2col { .. }), "{p:?}");
    let mut layouts = vec![(p, w.clone())];
    let (mut layout_4, mut layout_1) = (p, p);
    (layout_4.weight_layout, layout_1.weight_layout) = (packed::LAYOUT, 1);
    layouts.extend(packed.map(|w| (layout_4, w)));
    layouts.extend(packed::pack_conv_weights_as(&p, &w, 1).map(|w| (layout_1, w)));
    // And layout 2 (channel-blocked) for depthwise convs, with its own scratch size.
    let blocked = pack_depthwise_weights(&p, &w);
    assert_eq!(blocked.is_some(), g.cig == 1 && g.cog == 1, "{p:?}");
    let mut blocked_p = ConvParams { weight_layout: 2, ..p };
    blocked_p.scratch_bytes = conv_scratch_bytes(&blocked_p);
    layouts.extend(blocked.map(|w| (blocked_p, w)));
    // And layout 3 (Winograd) where it applies, with its own tolerance (below).
    let winograd = pack_winograd_weights(&p, &w);
    let winograd_m = winograd::tile_size(&g);
    assert_eq!(winograd.is_some(), winograd_m.is_some(), "{p:?}");
    let mut winograd_p = ConvParams { weight_layout: winograd::LAYOUT, ..p };
    winograd_p.scratch_bytes = conv_scratch_bytes(&winograd_p);
    let winograd_mag = winograd_m.map(|m| winograd_magnitudes(&p, &x, &w, bias, residual, m));
    layouts.extend(winograd.map(|w| (winograd_p, w)));
    for (p, w) in layouts {
        let mut y = vec![GUARD; y_len + 2 * GUARD_LEN];
        if run.in_place {
            y[GUARD_LEN..GUARD_LEN + y_len].copy_from_slice(residual.unwrap());
        }
        let scratch_len = p.scratch_bytes as usize / 4;
        let mut scratch = vec![GUARD; scratch_len + GUARD_LEN];
        let y_ptr = y[GUARD_LEN..].as_mut_ptr();
        let r_ptr = if run.in_place { y_ptr as *const f32 } else { residual.map_or(std::ptr::null(), |r| r.as_ptr()) };
        let context = ctx(run.threads);
        // SAFETY: buffers of the sizes the parameters describe; scratch of scratch_bytes.
        let code = unsafe {
            conv(&context, &p, x.as_ptr(), w.as_ptr(), bias.map_or(std::ptr::null(), |b| b.as_ptr()), r_ptr, y_ptr, scratch.as_mut_ptr().cast())
        };
        assert_eq!(code, 0, "{p:?} {run:?}");
        let act = Act { kind: activation(p.act).unwrap(), alpha: p.act_alpha, beta: p.act_beta };
        for (i, (&got, &(pre, mag))) in y[GUARD_LEN..GUARD_LEN + y_len].iter().zip(&want).enumerate() {
            let exact = act_f64(act, pre);
            // Winograd: each stage is a fixed linear map, so its f32 result is within
            // γ_n of the same computation on absolute values (Higham, ch. 3), n being the
            // longest chain of roundings: U rounded once, Bᵀ d B two sums of α terms, the
            // GEMM's c_in, Aᵀ M A two of α, bias and residual.
            let pre_tol = match (&winograd_mag, winograd_m) {
                (Some(wm), Some(m)) if p.weight_layout == winograd::LAYOUT => gamma(1 + 4 * (m + 2) + g.c_in + 2) * wm[i],
                _ => gamma(g.kdim + 2) * mag,
            };
            let tol = 1.5 * pre_tol + 8.0 * f64::from(f32::EPSILON) * exact.abs() + 1e-30;
            assert!((got as f64 - exact).abs() <= tol, "{p:?} {run:?} layout {}: y[{i}] = {got}, want {exact} (tol {tol})", p.weight_layout);
        }
        assert!(y[..GUARD_LEN].iter().chain(&y[GUARD_LEN + y_len..]).all(|&v| v == GUARD), "{p:?}: wrote outside y");
        assert!(scratch[scratch_len..].iter().all(|&v| v == GUARD), "{p:?}: wrote past scratch_bytes");
    }
}

/// For each output, the Winograd F(m×m, 3×3) computation of its pre-activation value on
/// absolute values — `|Aᵀ| [Σ_c (|G| |g_c| |G|ᵀ) ⊙ (|Bᵀ| |d_c| |B|)] |A|` plus |bias| and
/// |residual| — in f64: the scale of the kernel's rounding error on layout 3.
fn winograd_magnitudes(p: &ConvParams, x: &[f32], w: &[f32], bias: Option<&[f32]>, residual: Option<&[f32]>, m: usize) -> Vec<f64> {
    let tr = winograd::Transforms::of(m);
    let a = tr.alpha;
    let (ci, co) = (p.c_in as usize, p.c_out as usize);
    let ([h, wd], [oh, ow], [ph, pw]) = ([p.in_size[0], p.in_size[1]].map(|v| v as usize), [p.out_size[0], p.out_size[1]].map(|v| v as usize), [p.pad_begin[0], p.pad_begin[1]].map(|v| v as usize));
    let bt = |r: usize, c: usize| f64::from(tr.bt[r][c]).abs();
    let at = |r: usize, c: usize| f64::from(tr.at[r][c]).abs();
    // |U| for every (o, c): α×α.
    let u: Vec<f64> = (0..co * ci)
        .flat_map(|oc| {
            let f = &w[oc * 9..][..9];
            (0..a * a).map(move |rc| {
                let (r, c) = (rc / a, rc % a);
                (0..3).flat_map(|k| (0..3).map(move |l| tr.g[r][k].abs() * f64::from(f[k * 3 + l]).abs() * tr.g[c][l].abs())).sum::<f64>()
            })
        })
        .collect();
    let mut out = Vec::new();
    for b in 0..p.batch as usize {
        let mut plane = vec![0f64; co * oh * ow];
        for ty in 0..oh.div_ceil(m) {
            for tx in 0..ow.div_ceil(m) {
                // |V| of the tile for every input channel.
                let v: Vec<f64> = (0..ci)
                    .flat_map(|c| {
                        let d = move |r: usize, j: usize| {
                            let (iy, ix) = ((ty * m + r).wrapping_sub(ph), (tx * m + j).wrapping_sub(pw));
                            if iy < h && ix < wd { f64::from(x[((b * ci + c) * h + iy) * wd + ix]).abs() } else { 0.0 }
                        };
                        (0..a * a).map(move |rc| {
                            let (r, cc) = (rc / a, rc % a);
                            (0..a).flat_map(|k| (0..a).map(move |l| bt(r, k) * d(k, l) * bt(cc, l))).sum::<f64>()
                        })
                    })
                    .collect();
                for o in 0..co {
                    let mut mm = vec![0f64; a * a];
                    for c in 0..ci {
                        for xi in 0..a * a {
                            mm[xi] += u[(o * ci + c) * a * a + xi] * v[c * a * a + xi];
                        }
                    }
                    for i in 0..m {
                        for j in 0..m {
                            let (oy, ox) = (ty * m + i, tx * m + j);
                            if oy < oh && ox < ow {
                                plane[(o * oh + oy) * ow + ox] = (0..a).flat_map(|r| (0..a).map(move |c| (r, c))).map(|(r, c)| at(i, r) * mm[r * a + c] * at(j, c)).sum();
                            }
                        }
                    }
                }
            }
        }
        for (k, s) in plane.into_iter().enumerate() {
            let o = k / (oh * ow);
            let yi = out.len();
            out.push(s + bias.map_or(0.0, |v| f64::from(v[o]).abs()) + residual.map_or(0.0, |r| f64::from(r[yi]).abs()));
        }
    }
    out
}

/// Random parameters: `spatial` dimensions, and the shape of the groups: "depthwise"
/// (one channel in and out), "direct" (1 to 4 in and out), "pointwise" (1×1, stride 1,
/// no padding, and too many channels for the direct path) or "im2col" (the same
/// channels, any kernel).
fn random_params(rng: &mut Rng, spatial: u32, shape: &str) -> ConvParams {
    let mut p = base(spatial);
    p.batch = rng.range(1, 2);
    let (group, cig, cog) = match shape {
        "depthwise" => (rng.range(1, 5), 1, 1),
        "direct" => (rng.pick(&[1, 1, 2, 3]), rng.range(1, 4), rng.range(1, 4)),
        _ if rng.coin() => (rng.pick(&[1, 1, 2, 3]), rng.range(1, 3), rng.range(5, 6)),
        _ => (rng.pick(&[1, 1, 2]), rng.range(5, 6), rng.range(1, 3)),
    };
    (p.group, p.c_in, p.c_out) = (group as u32, group * cig, group * cog);
    for d in 0..spatial as usize {
        let (k, s, dl, pb, pe) = if shape == "pointwise" {
            (1, 1, rng.range(1, 2), 0, 0)
        } else {
            (rng.range(1, 3), rng.pick(&[1, 1, 2, 3]), rng.range(1, 2), rng.range(0, 2), rng.range(0, 2))
        };
        // Big enough for one window; out_size from the ONNX formula, sometimes one
        // more (a window past the end padding: memory-safe, reads zeros).
        let extent = dl * (k - 1) + 1;
        let input = rng.range(1, 6).max(extent.saturating_sub(pb + pe));
        let out = (input + pb + pe - extent) / s + 1;
        let extra = if shape == "pointwise" { 0 } else { u64::from(rng.range(0, 5) == 0) };
        (p.in_size[d], p.out_size[d], p.kernel[d], p.stride[d], p.dilation[d], p.pad_begin[d]) = (input, out + extra, k, s, dl, pb);
    }
    let act = rng.pick(&all_acts());
    (p.act, p.act_alpha, p.act_beta) = (act.kind as u32, act.alpha, act.beta);
    p
}

fn random_run(rng: &mut Rng) -> Run {
    let residual = rng.coin();
    Run { threads: rng.pick(&[1, 3]), bias: rng.coin(), residual, in_place: !residual && rng.coin() }
}

#[test]
fn matches_reference_on_random_small_convs() {
    let mut rng = Rng::new(42);
    let mut paths = std::collections::HashMap::new();
    for case in 0..600 {
        let spatial = [1, 2, 3][case % 3];
        let shape = ["depthwise", "direct", "pointwise", "im2col"][case / 3 % 4];
        let p = random_params(&mut rng, spatial, shape);
        let run = random_run(&mut rng);
        let path = Geometry::new(&p).unwrap().path;
        *paths.entry(std::mem::discriminant(&path)).or_insert(0) += 1;
        check(&mut rng, p, run);
    }
    // Every path was exercised many times.
    assert_eq!(paths.len(), 3);
    assert!(paths.values().all(|&n| n >= 60), "{paths:?}");
}

#[test]
fn every_activation_with_and_without_bias_and_residual() {
    let mut rng = Rng::new(5);
    for act in all_acts() {
        for shape in ["depthwise", "direct", "pointwise", "im2col"] {
            for (bias, residual, in_place) in [(false, false, false), (true, false, false), (true, true, false), (false, false, true)] {
                let mut p = random_params(&mut rng, 2, shape);
                (p.act, p.act_alpha, p.act_beta) = (act.kind as u32, act.alpha, act.beta);
                check(&mut rng, p, Run { threads: 1, bias, residual, in_place });
            }
        }
    }
}

/// The run-time im2col tile: the busiest thread's share as small as whole tiles of
/// 16-column multiples allow, never wider than the compile-time tile; fewer items than
/// threads kept.
#[test]
fn im2col_tiles_are_balanced_over_the_threads() {
    let geometry = |batch: u64, group: u32, out: u64| {
        let mut p = base(2);
        (p.batch, p.group, p.c_in, p.c_out, p.kernel) = (batch, group, 32 * u64::from(group), 32 * u64::from(group), [3, 3, 1]);
        (p.in_size, p.out_size) = ([out + 2, out + 2, 1], [out, out, 1]);
        Geometry::new(&p).unwrap()
    };
    let g28 = geometry(1, 1, 28);
    assert_eq!(balanced_tile(&g28, 256, 1), 256);
    // 784 columns: tiles of 256, 256, 256 and 16 (512 against 272) become 208, 208,
    // 208 and 160 (416 against 368).
    assert_eq!(balanced_tile(&g28, 256, 2), 208);
    // ResNet-50's stem, 12544 columns in tiles of 432: 15 against 14 and a bit; 400
    // gives 16 against 15 and a bit, fewer columns for the busiest.
    assert_eq!(balanced_tile(&geometry(1, 1, 112), 432, 2), 400);
    // One item: kept whole (the GEMM splits its rows).
    assert_eq!(balanced_tile(&geometry(1, 1, 14), 196, 2), 196);
    assert_eq!(balanced_tile(&geometry(1, 1, 7), 49, 2), 49);
    // Three images of one tile: two threads, two tiles each.
    assert_eq!(balanced_tile(&geometry(3, 1, 10), 100, 2), 64);
    // Already balanced: 2 images of 2 tiles.
    assert_eq!(balanced_tile(&geometry(2, 1, 16), 128, 2), 128);
    // Never wider than the tile, never 0, and never a busier busiest thread.
    for (g, tile) in [(&g28, 256), (&geometry(1, 1, 112), 432), (&geometry(3, 2, 9), 81)] {
        let busiest = |t: usize, threads: usize| (g.batch * g.group * g.out_len.div_ceil(t)).div_ceil(threads) * t;
        for threads in 1..20 {
            let t = balanced_tile(g, tile, threads);
            assert!((1..=tile).contains(&t) && busiest(t, threads) <= busiest(tile, threads), "{threads}: {t}");
        }
    }
}

#[test]
fn multi_tile_convs_on_one_to_many_threads() {
    let mut rng = Rng::new(9);
    // im2col: kdim = 8·3·3 = 72, tile 64Ki/72 → 896 columns: a 40×40 output has two
    // tiles, the second starting mid-row; 2 groups and 2 images make 8 items.
    let mut im2col = base(2);
    (im2col.batch, im2col.group, im2col.c_in, im2col.c_out) = (2, 2, 16, 6);
    (im2col.in_size, im2col.out_size, im2col.kernel, im2col.pad_begin) = ([40, 40, 1], [40, 40, 1], [3, 3, 1], [1, 1, 0]);
    // A big kdim (3·3·3·24 = 648): tiles of MIN_IM2COL_TILE (256) columns over 275
    // 3-D outputs, the second tile starting mid-row.
    let mut deep = base(3);
    (deep.c_in, deep.c_out) = (24, 5);
    (deep.in_size, deep.out_size, deep.kernel, deep.stride) = ([13, 12, 11], [11, 5, 5], [3, 3, 3], [1, 2, 2]);
    // Pointwise: 4 groups over 1500 columns (tiles of 1024).
    let mut pointwise = base(1);
    (pointwise.batch, pointwise.group, pointwise.c_in, pointwise.c_out) = (2, 4, 24, 12);
    (pointwise.in_size, pointwise.out_size) = ([1500, 1, 1], [1500, 1, 1]);
    // Direct, 2 channels in and 3 out per group, with stride 2 and dilation 2.
    let mut depthwise = base(2);
    (depthwise.group, depthwise.c_in, depthwise.c_out) = (3, 6, 9);
    (depthwise.in_size, depthwise.out_size, depthwise.kernel) = ([20, 21, 1], [9, 10, 1], [3, 3, 1]);
    (depthwise.stride, depthwise.dilation, depthwise.pad_begin) = ([2, 2, 1], [2, 2, 1], [1, 2, 0]);
    // One im2col item (a single tile of 144 columns), big enough for its GEMM to split
    // its rows over the threads.
    let mut single = base(2);
    (single.c_in, single.c_out, single.in_size, single.out_size, single.kernel) = (16, 16, [14, 14, 1], [12, 12, 1], [3, 3, 1]);
    const { assert!(16 * 144 * 144 >= super::super::gemm::PARALLEL_MIN_WORK) };
    // Three images of one 49-column tile: two threads take two tiles of 32 and 17
    // columns each (`balanced_tile`).
    let mut narrow = base(2);
    (narrow.batch, narrow.c_in, narrow.c_out, narrow.in_size, narrow.out_size, narrow.kernel) = (3, 16, 16, [9, 9, 1], [7, 7, 1], [3, 3, 1]);
    let path = |p: &ConvParams| Geometry::new(p).unwrap().path;
    assert_eq!(path(&single), Path::Im2col { tile: 144 });
    assert_eq!(path(&narrow), Path::Im2col { tile: 49 });
    assert_eq!(path(&im2col), Path::Im2col { tile: 896 });
    assert_eq!(path(&deep), Path::Im2col { tile: MIN_IM2COL_TILE });
    assert_eq!(path(&pointwise), Path::Pointwise { tile: POINTWISE_TILE });
    assert!(matches!(path(&depthwise), Path::Direct { .. }));
    for p in [im2col, deep, pointwise, depthwise, single, narrow] {
        for threads in [1, 2, 3, 16] {
            let mut p = p;
            p.act = Activation::Relu as u32;
            check(&mut rng, p, Run { threads, bias: true, residual: threads % 2 == 0, in_place: threads == 3 });
        }
    }
}

#[test]
fn direct_with_every_specialised_kernel_and_stride() {
    // 3×3, 5×5 and 7×7 with strides 1 and 2 have their own loops; 2×2, 3×5 and 1×3 the
    // general one. Dilations, pads (up to past the window) and sizes vary, and so does
    // out_size (sometimes one more than the ONNX formula).
    let mut rng = Rng::new(77);
    for case in 0..240 {
        let mut p = base(2);
        // Depthwise, or up to 3 channels in and out per group.
        let (g, cig, cog) = if rng.coin() { (rng.range(1, 3), 1, 1) } else { (rng.range(1, 2), rng.range(1, 3), rng.range(1, 3)) };
        (p.batch, p.group, p.c_in, p.c_out) = (rng.range(1, 2), g as u32, g * cig, g * cog);
        let (kh, kw) = [(3, 3), (5, 5), (7, 7), (2, 2), (3, 5), (1, 3)][case % 6];
        let (s, dl) = ([1, 2][case / 6 % 2], rng.range(1, 2));
        for (d, k) in [(0, kh), (1, kw)] {
            let pad = rng.range(0, 4);
            let extent = dl * (k - 1) + 1;
            let input = rng.range(1, 20).max(extent.saturating_sub(2 * pad));
            let out = (input + 2 * pad - extent) / s + 1 + u64::from(rng.range(0, 4) == 0);
            (p.in_size[d], p.out_size[d], p.kernel[d], p.stride[d], p.dilation[d], p.pad_begin[d]) = (input, out, k, s, dl, pad);
        }
        let act = rng.pick(&all_acts());
        (p.act, p.act_alpha, p.act_beta) = (act.kind as u32, act.alpha, act.beta);
        let run = random_run(&mut rng);
        check(&mut rng, p, run);
    }
}

#[test]
fn scratch_depends_on_parameters_only_and_covers_the_lanes() {
    let mut p = base(2);
    (p.c_in, p.c_out, p.in_size, p.out_size, p.kernel) = (64, 64, [56, 56, 1], [56, 56, 1], [3, 3, 1]);
    p.pad_begin = [1, 1, 0];
    let g = Geometry::new(&p).unwrap();
    let Path::Im2col { tile } = g.path else { panic!("{:?}", g.path) };
    assert_eq!(conv_scratch_bytes(&p), (4 * 576 * tile * MAX_CONV_LANES) as u64);
    // No scratch on the pointwise path.
    p.kernel = [1, 1, 1];
    p.pad_begin = [0; 3];
    assert_eq!(conv_scratch_bytes(&p), 0);
    // Depthwise (direct): a zero-padded plane per lane, wide enough for the windows of
    // all 56 outputs (which here run 2 past the input: out_size is not the ONNX one).
    (p.group, p.c_out, p.kernel) = (64, 64, [3, 3, 1]);
    assert_eq!(Geometry::new(&p).unwrap().path, Path::Direct { padded: [1, 58, 58] });
    assert_eq!(conv_scratch_bytes(&p), (4 * 58 * 58 * MAX_CONV_LANES) as u64);
    p.pad_begin = [1, 1, 0];
    assert_eq!(Geometry::new(&p).unwrap().path, Path::Direct { padded: [1, 58, 58] });
    p.batch = 2;
    p.c_in = 3;
    (p.group, p.c_out) = (3, 3);
    assert_eq!(conv_scratch_bytes(&p), (4 * 58 * 58 * 6) as u64);
}

#[test]
fn bad_parameters_and_buffers_give_error_codes() {
    let good = {
        let mut p = base(2);
        (p.group, p.c_in, p.c_out, p.in_size, p.out_size, p.kernel) = (2, 4, 4, [5, 5, 1], [3, 3, 1], [3, 3, 1]);
        p.scratch_bytes = conv_scratch_bytes(&p);
        p
    };
    assert!(check_conv_params(&good).is_ok());
    type Mutation = (&'static str, fn(&mut ConvParams));
    let bad: Vec<Mutation> = vec![
        ("spatial 0", |p| p.spatial = 0),
        ("spatial 4", |p| p.spatial = 4),
        ("group 0", |p| p.group = 0),
        ("group not dividing c_in", |p| p.group = 3),
        ("group not dividing c_out", |p| p.c_out = 5),
        ("c_in 0", |p| p.c_in = 0),
        ("stride 0", |p| p.stride[1] = 0),
        ("dilation 0", |p| p.dilation[0] = 0),
        ("kernel 0", |p| p.kernel[0] = 0),
        ("in_size 0", |p| p.in_size[1] = 0),
        ("unused entry", |p| p.kernel[2] = 2),
        ("unused pad", |p| p.pad_begin[2] = 1),
        ("activation", |p| p.act = 99),
        ("weight layout", |p| p.weight_layout = 1),
        ("blocked layout with two channels per group", |p| p.weight_layout = 2),
        ("unknown weight layout", |p| p.weight_layout = 3),
        ("huge size", |p| p.in_size[0] = u64::MAX),
        ("huge product", |p| (p.in_size[0], p.in_size[1]) = (1 << 40, 1 << 40)),
    ];
    let (x, w) = (vec![1f32; 200], vec![1f32; 200]);
    let mut y = vec![0f32; 200];
    let mut scratch = vec![0f32; 1000];
    let call = |p: &ConvParams, x: *const f32, y: *mut f32, s: *mut f32| {
        // SAFETY: buffers larger than `good` needs; bad parameters are refused first.
        unsafe { conv(std::ptr::null(), p, x, w.as_ptr(), std::ptr::null(), std::ptr::null(), y, s.cast()) }
    };
    for (what, mutate) in bad {
        let mut p = good;
        mutate(&mut p);
        assert!(check_conv_params(&p).is_err(), "{what}");
        assert_eq!(conv_scratch_bytes(&p), 0, "{what}");
        assert_eq!(call(&p, x.as_ptr(), y.as_mut_ptr(), scratch.as_mut_ptr()), ERR_BAD_CONV_PARAMS, "{what}");
    }
    // SAFETY: a null params pointer is refused.
    assert_eq!(unsafe { conv(std::ptr::null(), std::ptr::null(), x.as_ptr(), w.as_ptr(), std::ptr::null(), std::ptr::null(), y.as_mut_ptr(), std::ptr::null_mut()) }, ERR_BAD_CONV_PARAMS);
    let mut small = good;
    small.scratch_bytes -= 4;
    assert_eq!(call(&small, x.as_ptr(), y.as_mut_ptr(), scratch.as_mut_ptr()), ERR_CONV_BUFFERS);
    assert_eq!(call(&good, std::ptr::null(), y.as_mut_ptr(), scratch.as_mut_ptr()), ERR_CONV_BUFFERS);
    assert_eq!(call(&good, x.as_ptr(), std::ptr::null_mut(), scratch.as_mut_ptr()), ERR_CONV_BUFFERS);
    assert_eq!(call(&good, x.as_ptr(), y.as_mut_ptr(), std::ptr::null_mut()), ERR_CONV_BUFFERS);
    let misaligned = (x.as_ptr() as *const u8).wrapping_add(1) as *const f32;
    assert_eq!(call(&good, misaligned, y.as_mut_ptr(), scratch.as_mut_ptr()), ERR_CONV_BUFFERS);
    assert_eq!(call(&good, x.as_ptr(), y.as_mut_ptr(), scratch.as_mut_ptr()), 0);
    // Empty outputs need no buffers at all.
    for mutate in [|p: &mut ConvParams| p.batch = 0, |p: &mut ConvParams| p.out_size[0] = 0, |p: &mut ConvParams| (p.c_out, p.group) = (0, 1)] {
        let mut p = good;
        mutate(&mut p);
        assert_eq!(call(&p, std::ptr::null(), std::ptr::null_mut(), std::ptr::null_mut()), 0);
    }
}

/// Layout 1 over pointwise shapes whose channels and columns are not multiples of the
/// packed GEMM's tiles (6 rows × 16 or 32 columns, then 8, 4 and 1), with groups, every
/// activation, bias and residual, on one and several threads (`check` runs both layouts).
#[test]
fn packed_pointwise_over_ragged_shapes() {
    let mut rng = Rng::new(77);
    let acts = all_acts();
    for case in 0..120 {
        let mut p = base(2);
        let group = rng.pick(&[1, 1, 2, 3]);
        let (cig, cog) = (rng.range(5, 40), rng.range(1, 40));
        (p.batch, p.group, p.c_in, p.c_out) = (rng.range(1, 2), group as u32, group * cig, group * cog);
        let (h, w) = (rng.range(1, 20), rng.range(1, 70));
        (p.in_size, p.out_size) = ([h, w, 1], [h, w, 1]);
        let act = acts[case % acts.len()];
        (p.act, p.act_alpha, p.act_beta) = (act.kind as u32, act.alpha, act.beta);
        assert!(matches!(Geometry::new(&p).unwrap().path, Path::Pointwise { .. }), "{p:?}");
        let run = random_run(&mut rng);
        check(&mut rng, p, run);
    }
}

/// Weight layouts 1 and 4 for parameters the packer refuses (they are not on a GEMM path)
/// are an error code, never a run over misread weights.
#[test]
fn packed_layout_for_refused_params_is_an_error() {
    let mut im2col = base(2);
    (im2col.c_in, im2col.c_out, im2col.in_size, im2col.out_size, im2col.kernel) = (8, 8, [6, 6, 1], [4, 4, 1], [3, 3, 1]);
    let mut strided = base(2);
    (strided.c_in, strided.c_out, strided.in_size, strided.out_size, strided.stride) = (8, 8, [6, 6, 1], [3, 3, 1], [2, 2, 1]);
    let mut direct = base(2);
    (direct.c_in, direct.c_out, direct.in_size, direct.out_size) = (2, 2, [6, 6, 1], [6, 6, 1]);
    let mut depthwise = base(2);
    (depthwise.group, depthwise.c_in, depthwise.c_out, depthwise.in_size, depthwise.out_size, depthwise.kernel) = (8, 8, 8, [6, 6, 1], [4, 4, 1], [3, 3, 1]);
    let (x, w) = (vec![1f32; 8 * 36], vec![1f32; 8 * 8 * 9]);
    let mut y = vec![0f32; 8 * 36];
    let mut scratch = vec![0f32; 8 * 9 * 36];
    // The GEMM paths (im2col, strided 1×1 on im2col) take layouts 1 and 4.
    for p in [im2col, strided] {
        assert!(pack_conv_weights(&p, &w[..p.c_out as usize * Geometry::new(&p).unwrap().kdim]).is_some(), "{p:?}");
        for layout in [1, packed::LAYOUT] {
            assert!(check_conv_params(&ConvParams { weight_layout: layout, ..p }).is_ok(), "{p:?}");
        }
    }
    for p in [direct, depthwise] {
        assert!(check_conv_params(&p).is_ok());
        assert!(pack_conv_weights(&p, &w[..p.c_out as usize * Geometry::new(&p).unwrap().kdim]).is_none(), "{p:?}");
        for layout in [1, packed::LAYOUT] {
            let p = ConvParams { weight_layout: layout, scratch_bytes: (scratch.len() * 4) as u64, ..p };
            assert!(check_conv_params(&p).is_err(), "{p:?}");
            // SAFETY: buffers larger than p needs; the parameters are refused first.
            let code = unsafe { conv(std::ptr::null(), &p, x.as_ptr(), w.as_ptr(), std::ptr::null(), std::ptr::null(), y.as_mut_ptr(), scratch.as_mut_ptr().cast()) };
            assert_eq!(code, ERR_BAD_CONV_PARAMS, "{p:?}");
        }
    }
    // The packer also refuses weights of the wrong length and params already packed.
    let mut pointwise = base(2);
    (pointwise.c_in, pointwise.c_out, pointwise.in_size, pointwise.out_size) = (8, 8, [6, 6, 1], [6, 6, 1]);
    assert!(pack_conv_weights(&pointwise, &w[..64]).is_some());
    assert!(pack_conv_weights(&pointwise, &w[..63]).is_none());
    assert!(pack_conv_weights(&ConvParams { weight_layout: 1, ..pointwise }, &w[..64]).is_none());
    assert!(check_conv_params(&ConvParams { weight_layout: 2, ..pointwise }).is_err());
    assert!(check_conv_params(&ConvParams { weight_layout: 5, ..pointwise }).is_err());
}

/// Layout 2 (channel-blocked depthwise) over shapes that exercise its strips of 8, 4 and
/// 1 output vectors, several blocks with a partial last one, every kernel size of the
/// models (3×3, 5×5, 7×7) and others, strides 1 to 3, dilations, pads, 1-D to 3-D, every
/// activation, bias and residual, on one and several threads (`check` runs layouts 0 and
/// 2 and compares both with the f64 reference).
#[test]
fn blocked_depthwise_over_ragged_shapes() {
    let mut rng = Rng::new(31);
    let acts = all_acts();
    for case in 0..150 {
        let spatial = [2, 2, 2, 1, 3][case % 5];
        let mut p = base(spatial as u32);
        let c = rng.range(1, 27);
        (p.batch, p.group, p.c_in, p.c_out) = (rng.range(1, 2), c as u32, c, c);
        for d in 0..spatial {
            let last = d + 1 == spatial;
            let k = if spatial == 3 { rng.range(1, 3) } else { rng.pick(&[1, 2, 3, 3, 5, 5, 7]) };
            let (s, dl, pb) = (rng.pick(&[1, 1, 2, 2, 3]), rng.range(1, 2), rng.range(0, 3));
            let extent = dl * (k - 1) + 1;
            let input = rng.range(1, if last { 40 } else { 12 }).max(extent.saturating_sub(2 * pb));
            let out = (input + 2 * pb - extent) / s + 1 + u64::from(rng.range(0, 4) == 0);
            (p.in_size[d], p.out_size[d], p.kernel[d], p.stride[d], p.dilation[d], p.pad_begin[d]) = (input, out, k, s, dl, pb);
        }
        let act = acts[case % acts.len()];
        (p.act, p.act_alpha, p.act_beta) = (act.kind as u32, act.alpha, act.beta);
        let run = random_run(&mut rng);
        check(&mut rng, p, run);
    }
}

/// Layout 3 (Winograd) on F(4,3) and F(2,3) shapes: odd sizes whose last tiles hang over
/// the output, pads 0 to 2, an output one larger than ONNX's (windows over the end
/// padding), channel counts that leave a partial weight panel, batch 2, every activation,
/// bias, residual and in-place residual, on one and three threads. `check` compares
/// layouts 0, 1 and 3 with the f64 reference, layout 3 within the rounding bound of the
/// Winograd computation on absolute values.
#[test]
fn winograd_over_ragged_shapes() {
    let mut rng = Rng::new(53);
    let acts = all_acts();
    let mut seen = [0; 5];
    for case in 0..24 {
        let mut p = base(2);
        (p.batch, p.c_in, p.c_out) = (rng.range(1, 2), rng.range(16, 40), rng.range(16, 40));
        let (h, w) = (rng.range(10, 30), rng.range(10, 30));
        let pad = rng.range(0, 2);
        let extra = u64::from(rng.range(0, 3) == 0);
        (p.in_size, p.kernel, p.pad_begin) = ([h, w, 1], [3, 3, 1], [pad, pad, 0]);
        p.out_size = [h + 2 * pad - 2 + extra, w + 2 * pad - 2, 1];
        let act = acts[case % acts.len()];
        (p.act, p.act_alpha, p.act_beta) = (act.kind as u32, act.alpha, act.beta);
        let Some(m) = winograd::tile_size(&Geometry::new(&p).unwrap()) else { continue };
        seen[m] += 1;
        let run = random_run(&mut rng);
        check(&mut rng, p, run);
    }
    assert!(seen[4] >= 3 && seen[2] >= 3, "both tile sizes: {seen:?}");
}

/// Layout 3 for parameters it does not apply to is refused by the packer and the kernel.
#[test]
fn winograd_layout_for_refused_params_is_an_error() {
    let mut ok = base(2);
    (ok.c_in, ok.c_out, ok.in_size, ok.out_size, ok.kernel, ok.pad_begin) = (16, 16, [24, 24, 1], [24, 24, 1], [3, 3, 1], [1, 1, 0]);
    let w = vec![0.5f32; 16 * 16 * 9];
    assert!(pack_winograd_weights(&ok, &w).is_some());
    assert!(pack_winograd_weights(&ok, &w[1..]).is_none());
    assert!(pack_winograd_weights(&ConvParams { weight_layout: 1, ..ok }, &w).is_none());
    let refused = [
        ConvParams { stride: [2, 2, 1], out_size: [12, 12, 1], ..ok },
        ConvParams { dilation: [2, 2, 1], out_size: [22, 22, 1], ..ok },
        ConvParams { kernel: [5, 5, 1], out_size: [22, 22, 1], ..ok },
        ConvParams { group: 2, ..ok },
        ConvParams { c_in: 8, ..ok },
        ConvParams { in_size: [7, 7, 1], out_size: [7, 7, 1], ..ok },
        ConvParams { spatial: 3, in_size: [2, 24, 24], out_size: [2, 24, 24], kernel: [1, 3, 3], pad_begin: [0, 1, 1], ..ok },
    ];
    for p in refused {
        assert!(check_conv_params(&p).is_ok(), "{p:?}");
        let len = (p.c_out * p.c_in / u64::from(p.group) * p.kernel.iter().product::<u64>()) as usize;
        assert!(pack_winograd_weights(&p, &vec![0.5; len]).is_none(), "{p:?}");
        assert!(check_conv_params(&ConvParams { weight_layout: 3, ..p }).is_err(), "{p:?}");
    }
    assert!(check_conv_params(&ConvParams { weight_layout: 5, ..ok }).is_err());
}
