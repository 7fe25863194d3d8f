//! Calls of runtime kernels through the kernel table, emitted from each kernel's
//! declaration (`neoc_runtime::abi::Kernel`) alone: one indirect call per batch point, with
//! buffer arguments advanced by their batch strides; a non-zero status returns at once.

use super::*;

impl StepGen<'_, '_> {
    pub(super) fn emit_call(&mut self, c: &Call) -> Result<()> {
        let declared: Vec<ArgKind> = c.kernel.args().iter().map(|a| a.kind).filter(|k| *k != ArgKind::Context).collect();
        if declared.len() != c.args.len() {
            bail!("call of {}: {} arguments given, {} declared", c.kernel.name(), c.args.len(), declared.len());
        }
        if c.batch.contains(&0) {
            return Ok(());
        }
        let f = self.kernel_fn(c.kernel);
        let sigref = self.b.import_signature(kernel_signature(self.cg.call_conv(), c.kernel));
        // Buffer arguments: their addresses at the first batch point.
        let mut addrs = Vec::new();
        for arg in &c.args {
            if let CallArg::Buf { mem, offset, batch_strides } = arg {
                if batch_strides.len() > c.batch.len() {
                    bail!("call of {}: a buffer has more batch strides than the call has batch dims", c.kernel.name());
                }
                let base = self.bases[mem];
                addrs.push(if *offset != 0 { self.b.ins().iadd_imm_s(base, *offset) } else { base });
            }
        }
        let status = c.kernel.ret() == Ret::Status;
        self.batch_level(c, 0, addrs, &mut |g, addrs| {
            let mut next = addrs.iter();
            let mut vals = Vec::with_capacity(c.args.len() + 1);
            let mut args = c.args.iter();
            for decl in c.kernel.args() {
                if decl.kind == ArgKind::Context {
                    vals.push(g.ctx);
                    continue;
                }
                let arg = args.next().expect("counted above");
                vals.push(match (arg, decl.kind) {
                    (CallArg::Buf { .. }, _) => *next.next().expect("one address per buffer"),
                    (CallArg::Null, _) => g.b.ins().iconst(I64, 0),
                    (CallArg::Int(v), ArgKind::I32 | ArgKind::U32) => g.b.ins().iconst(I32, *v),
                    (CallArg::Int(v), _) => g.b.ins().iconst(I64, *v),
                    (CallArg::F32(v), _) => g.b.ins().f32const(*v),
                    (CallArg::F64(v), _) => g.b.ins().f64const(*v),
                });
            }
            let call = g.b.ins().call_indirect(sigref, f, &vals);
            if status {
                let status = g.b.inst_results(call)[0];
                g.return_if_error(status);
            }
            Ok(())
        })
    }

    fn return_if_error(&mut self, status: Value) {
        let fail = self.b.create_block();
        let ok = self.b.create_block();
        self.b.ins().brif(status, fail, &[], ok, &[]);
        self.b.switch_to_block(fail);
        self.b.ins().return_(&[status]);
        self.b.switch_to_block(ok);
    }

    /// Loops over batch dims `d..`, advancing each buffer address by its batch stride
    /// (missing trailing strides are 0), and runs `body` at every point.
    fn batch_level(&mut self, c: &Call, d: usize, addrs: Vec<Value>, body: &mut dyn FnMut(&mut Self, &[Value]) -> Result<()>) -> Result<()> {
        if d == c.batch.len() {
            return body(self, &addrs);
        }
        let strides: Vec<i64> = c
            .args
            .iter()
            .filter_map(|a| match a {
                CallArg::Buf { batch_strides, .. } => Some(batch_strides.get(d).copied().unwrap_or(0)),
                _ => None,
            })
            .collect();
        self.for_range(0, c.batch[d] as i64, 1, &mut |g, i| {
            let next: Vec<Value> = addrs.iter().zip(&strides).map(|(&p, &s)| g.advance(p, i, s)).collect();
            g.batch_level(c, d + 1, next, body)
        })
    }
}
