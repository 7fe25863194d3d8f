//! Calls of runtime kernels through the kernel table: GEMM (per batch point), the GEMM
//! epilogue, convolution, pooling, copies and strings; a non-zero status returns at once.

use super::*;

impl StepGen<'_, '_> {
    pub(super) fn emit_call(&mut self, c: &Call) -> Result<()> {
        match c {
            Call::Gemm { batch, m, n, k, alpha, beta, a, b, c } => self.emit_gemm(batch, [*m, *n, *k], *alpha, *beta, [a, b, c]),
            Call::GemmEpilogue { batch, params, a, b, bias, residual, c, packed_b } => {
                self.emit_gemm_epilogue(batch, *params, [Some(a), Some(b), bias.as_ref(), residual.as_ref(), Some(c)], *packed_b)
            }
            Call::Conv { params, x, w, bias, residual, y, scratch } => {
                let f = self.kernel_fn(abi::KERNEL_TABLE_CONV_OFFSET);
                let sig = self.cg.signature(&[I64; 8], Some(I32));
                let sigref = self.b.import_signature(sig);
                let args = [Some(*params), Some(*x), Some(*w), *bias, *residual, Some(*y), *scratch];
                let mut vals = vec![self.ctx];
                for a in args {
                    vals.push(match a {
                        Some(m) => self.bases[&m],
                        None => self.b.ins().iconst(I64, 0),
                    });
                }
                let call = self.b.ins().call_indirect(sigref, f, &vals);
                let status = self.b.inst_results(call)[0];
                self.return_if_error(status);
                Ok(())
            }
            Call::Pool { params, x, y, indices } => {
                let f = self.kernel_fn(abi::KERNEL_TABLE_POOL_OFFSET);
                let sig = self.cg.signature(&[I64; 5], Some(I32));
                let sigref = self.b.import_signature(sig);
                let ind = match indices {
                    Some(m) => self.bases[m],
                    None => self.b.ins().iconst(I64, 0),
                };
                let vals = [self.ctx, self.bases[params], self.bases[x], self.bases[y], ind];
                let call = self.b.ins().call_indirect(sigref, f, &vals);
                let status = self.b.inst_results(call)[0];
                self.return_if_error(status);
                Ok(())
            }
            Call::Copy { dst, src, bytes } => {
                if *bytes == 0 {
                    return Ok(());
                }
                let f = self.kernel_fn(abi::KERNEL_TABLE_MEMCPY_OFFSET);
                let sig = self.cg.signature(&[I64; 3], None);
                let sigref = self.b.import_signature(sig);
                let n = self.b.ins().iconst(I64, *bytes as i64);
                let vals = [self.bases[dst], self.bases[src], n];
                self.b.ins().call_indirect(sigref, f, &vals);
                Ok(())
            }
            Call::Strings { params, a, b, c } => {
                self.emit_strings(*params, [*a, *b, Some(*c)]);
                Ok(())
            }
        }
    }

    /// `strings(ctx, params, a, b, c)`; absent buffers are null.
    fn emit_strings(&mut self, params: Mem, bufs: [Option<Mem>; 3]) {
        let f = self.kernel_fn(abi::KERNEL_TABLE_STRINGS_OFFSET);
        let sig = self.cg.signature(&[I64; 5], Some(I32));
        let sigref = self.b.import_signature(sig);
        let mut vals = vec![self.ctx, self.bases[&params]];
        for m in bufs {
            vals.push(match m {
                Some(m) => self.bases[&m],
                None => self.b.ins().iconst(I64, 0),
            });
        }
        let call = self.b.ins().call_indirect(sigref, f, &vals);
        let status = self.b.inst_results(call)[0];
        self.return_if_error(status);
    }

    fn return_if_error(&mut self, status: Value) {
        let fail = self.b.create_block();
        let ok = self.b.create_block();
        self.b.ins().brif(status, fail, &[], ok, &[]);
        self.b.switch_to_block(fail);
        self.b.ins().return_(&[status]);
        self.b.switch_to_block(ok);
    }

    fn emit_gemm(&mut self, batch: &[usize], mnk: [usize; 3], alpha: f32, beta: f32, ops: [&Matrix; 3]) -> Result<()> {
        if mnk[0] == 0 || mnk[1] == 0 || batch.contains(&0) {
            return Ok(());
        }
        let f = self.kernel_fn(abi::KERNEL_TABLE_SGEMM_OFFSET);
        let mut params = vec![I64; 4];
        params.push(F32);
        params.extend([I64; 6]);
        params.push(F32);
        params.extend([I64; 3]);
        let sig = self.cg.signature(&params, None);
        let sigref = self.b.import_signature(sig);
        let addrs: Vec<Value> = ops
            .iter()
            .map(|m| {
                let base = self.bases[&m.mem];
                if m.offset != 0 { self.b.ins().iadd_imm_s(base, m.offset * 4) } else { base }
            })
            .collect();
        self.gemm_level(batch, 0, &ops[..], addrs, &mut |g, p| {
            let mut vals = vec![g.ctx];
            for v in mnk {
                vals.push(g.b.ins().iconst(I64, v as i64));
            }
            vals.push(g.b.ins().f32const(alpha));
            for (k, m) in ops.iter().enumerate() {
                if k == 2 {
                    vals.push(g.b.ins().f32const(beta));
                }
                vals.push(p[k]);
                vals.push(g.b.ins().iconst(I64, m.rs));
                vals.push(g.b.ins().iconst(I64, m.cs));
            }
            g.b.ins().call_indirect(sigref, f, &vals);
            Ok(())
        })
    }

    /// `sgemm_epilogue(ctx, params, a, b, bias, residual, c)` at every batch point; absent
    /// matrices are passed as null.
    fn emit_gemm_epilogue(&mut self, batch: &[usize], params: Mem, ops: [Option<&Matrix>; 5], packed_b: bool) -> Result<()> {
        if batch.contains(&0) {
            return Ok(());
        }
        let f = self.kernel_fn(if packed_b { abi::KERNEL_TABLE_SGEMM_PACKED_B_OFFSET } else { abi::KERNEL_TABLE_SGEMM_EPILOGUE_OFFSET });
        let sig = self.cg.signature(&[I64; 7], Some(I32));
        let sigref = self.b.import_signature(sig);
        let present: Vec<&Matrix> = ops.iter().flatten().copied().collect();
        let addrs: Vec<Value> = present
            .iter()
            .map(|m| {
                let base = self.bases[&m.mem];
                if m.offset != 0 { self.b.ins().iadd_imm_s(base, m.offset * 4) } else { base }
            })
            .collect();
        let pbase = self.bases[&params];
        self.gemm_level(batch, 0, &present, addrs, &mut |g, p| {
            let mut vals = vec![g.ctx, pbase];
            let mut next = p.iter();
            for m in ops {
                vals.push(match m {
                    Some(_) => *next.next().expect("one address per present matrix"),
                    None => g.b.ins().iconst(I64, 0),
                });
            }
            let call = g.b.ins().call_indirect(sigref, f, &vals);
            let status = g.b.inst_results(call)[0];
            g.return_if_error(status);
            Ok(())
        })
    }

    fn gemm_level(
        &mut self,
        batch: &[usize],
        d: usize,
        ops: &[&Matrix],
        addrs: Vec<Value>,
        body: &mut dyn FnMut(&mut Self, &[Value]) -> Result<()>,
    ) -> Result<()> {
        if d == batch.len() {
            return body(self, &addrs);
        }
        self.for_range(0, batch[d] as i64, 1, &mut |g, i| {
            let next: Vec<Value> = ops.iter().zip(&addrs).map(|(m, &p)| g.advance(p, i, m.batch_strides[d] * 4)).collect();
            g.gemm_level(batch, d + 1, ops, next, body)
        })
    }
}
