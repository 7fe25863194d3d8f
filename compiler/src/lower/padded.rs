//! Padded copies of N-d tensors (`planes` planes of NC(D)HW data), for the loop forms of
//! convolution and pooling ([`super::Caps::SELF_CONTAINED`]): in the copy every window tap
//! of the output lies inside the buffer, so the loop nests read it with plain affine
//! accesses, padding reading the fill value.

use neoc_runtime::abi::Kernel;

use super::Lw;
use crate::kernel_ir::{Access, Call, CallArg, Expr, Lit, Loop, Mem, Step, dense_strides};
use crate::tensor::DType;

/// Extra elements after a padded copy's last plane. Vector code may compute a row's last
/// partial vector in full lanes (storing only the valid ones), reading up to three
/// windows' strides past the row; the code generator does so only where those reads stay
/// inside the buffer, which this slack makes true for the copies made here.
pub(super) const SLACK: usize = 16;

/// The extent of a window scan along one dim: `out` windows `stride` apart, each reaching
/// `(kernel - 1)·dilation + 1` positions.
pub(super) fn reach(out: usize, kernel: usize, stride: usize, dilation: usize) -> usize {
    if out == 0 { 0 } else { (out - 1) * stride + (kernel - 1) * dilation + 1 }
}

/// A temporary holding f32 `x` (`planes` dense planes of `in_sp`) inside planes of `ext`
/// (the input starting `pb[s]` positions into dim `s`, cut where `ext` ends), `fill`
/// everywhere else, and [`SLACK`] more fill elements at the end. Returns it and the
/// dense strides of its planes.
pub(super) fn padded(lw: &mut Lw, x: Mem, planes: usize, in_sp: &[usize], pb: &[usize], ext: &[usize], fill: f32) -> (Mem, Vec<i64>) {
    let plane: usize = ext.iter().product();
    let total = planes * plane + SLACK;
    let t = lw.temp_bytes(4 * total as u64);
    if fill.to_bits() == 0 {
        lw.push(Step::Call(Call::new(Kernel::Memset, vec![CallArg::buf(t), CallArg::Int(0), CallArg::Int(4 * total as i64)])));
    } else {
        lw.push(Step::Loop(Loop { dims: vec![total], out: Access::dense(t, DType::F32, &[total]), value: Expr::Lit(Lit::F32(fill)) }));
    }
    let es = dense_strides(ext);
    let copy: Vec<usize> = (0..in_sp.len()).map(|s| in_sp[s].min(ext[s].saturating_sub(pb[s]))).collect();
    if planes > 0 && !copy.contains(&0) {
        let offset: i64 = (0..in_sp.len()).map(|s| pb[s] as i64 * es[s]).sum();
        let mut dims = vec![planes];
        dims.extend(&copy);
        let mut out_strides = vec![plane as i64];
        out_strides.extend(&es);
        let mut src = vec![planes];
        src.extend(in_sp);
        let value = Expr::Load(Access::dense(x, DType::F32, &src));
        lw.push(Step::Loop(Loop { dims, out: Access { mem: t, dtype: DType::F32, offset, strides: out_strides }, value }));
    }
    (t, es)
}
