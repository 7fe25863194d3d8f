//! The blocked GEMM's micro-kernels, one file per ISA, and what they share: the [`Tile`]
//! of C a kernel stores into, and the portable kernel.
//!
//! A micro-kernel computes one `MR × cols` tile of C (`cols ≤ NT`, the kernel's tile
//! width, a multiple of [`NR`]) as `Σ_p a[p·MR + r] · b[s·kc·NR + p·NR + j % NR]` over
//! `kc` steps, where `a` is one packed A panel (MR rows, column after column) and strip
//! `s = j / NR` is one of the B panel's NR-wide strips, the strips of a KC slice lying
//! one after another (`kc·NR` floats each). So every kernel reads the same packed B,
//! whatever its own width: B packed ahead of time does not depend on the ISA it runs on.
//! Each kernel sums a C element's k products in k order, from zero.

use super::blocked_gemm::NR;

#[cfg(target_arch = "x86_64")]
pub(super) mod avx2;
#[cfg(target_arch = "x86_64")]
pub(super) mod avx512;

/// Where a micro-kernel's tile goes, and how: `C = alpha·acc + beta·C`, C not read when
/// beta is 0.
#[derive(Clone, Copy)]
pub(super) struct Tile {
    pub(super) c: *mut f32,
    pub(super) rsc: isize,
    pub(super) csc: isize,
    /// Rows of the tile inside C (at most the kernel's MR).
    pub(super) rows: usize,
    /// Columns of the tile inside C (at most the kernel's NT).
    pub(super) cols: usize,
    pub(super) alpha: f32,
    pub(super) beta: f32,
}

impl Tile {
    /// Stores `acc` (element (r, j) at `acc[r·ld + j]`) element by element, rounding as
    /// the vector stores do (`alpha·acc`, then `+ beta·c`), so a C element does not
    /// depend on where its tile falls.
    ///
    /// # Safety
    /// The tile's `rows × cols` corner lies inside C, writable; `acc` holds `rows` rows
    /// of `ld ≥ cols` floats.
    #[inline(always)]
    pub(super) unsafe fn store_scalar(&self, acc: &[f32], ld: usize) {
        for r in 0..self.rows {
            for j in 0..self.cols {
                // SAFETY: (r, j) is inside the tile's corner, inside C.
                unsafe {
                    let cij = self.c.offset(r as isize * self.rsc + j as isize * self.csc);
                    let v = self.alpha * acc[r * ld + j];
                    *cij = if self.beta == 0.0 { v } else { v + self.beta * *cij };
                }
            }
        }
    }
}

/// The portable micro-kernel, `MR × NR`.
///
/// # Safety
/// `a` holds kc·MR floats, `b` kc·NR; the tile (at most MR × NR) lies inside C.
pub(super) unsafe fn micro_portable<const MR: usize>(kc: usize, a: *const f32, b: *const f32, tile: Tile) {
    let mut acc = [[0f32; NR]; MR];
    for p in 0..kc {
        // SAFETY: p < kc, inside the panel and the strip.
        let (ap, bp) = unsafe { (std::slice::from_raw_parts(a.add(p * MR), MR), std::slice::from_raw_parts(b.add(p * NR), NR)) };
        for r in 0..MR {
            for j in 0..NR {
                acc[r][j] += ap[r] * bp[j];
            }
        }
    }
    // SAFETY: the caller's promise; `acc` is MR rows of NR floats.
    unsafe { tile.store_scalar(acc.as_flattened(), NR) }
}
