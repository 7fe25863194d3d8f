//! Control flow: If.
//!
//! Spec: https://onnx.ai/onnx/operators/onnx__If.html (opsets 1, 11, 13, 16, 19, 21, 23).
//! With a constant condition the importer inlines the chosen branch, so an `If` in the IR
//! always has a run-time condition. Its inputs are the condition followed by the outer values
//! the branches read (both branches take all of them, in that order). With static shapes,
//! both branches must produce the same output types. Sequence and optional outputs (opset 16+)
//! are not supported.

use crate::ir::{Attr, Attrs, EvalInputs, Graph, Importer, InferCx, NodeCtx, OpImpl, ValueType};
use crate::tensor::Tensor;
use anyhow::{Result, bail};

#[derive(Clone, Debug, PartialEq)]
pub struct If {
    pub then_branch: Graph,
    pub else_branch: Graph,
}

fn import_if(cx: &mut NodeCtx) -> Result<crate::ir::Op> {
    let then_branch = cx.opt_graph("then_branch")?.ok_or_else(|| anyhow::anyhow!("If needs a then_branch"))?.clone();
    let else_branch = cx.opt_graph("else_branch")?.ok_or_else(|| anyhow::anyhow!("If needs an else_branch"))?.clone();
    for (name, g) in [("then_branch", &then_branch), ("else_branch", &else_branch)] {
        if g.inputs.len() + 1 != cx.inputs.len() {
            bail!("{name} takes {} values, the If node passes {}", g.inputs.len(), cx.inputs.len() - 1);
        }
    }
    Ok(If { then_branch, else_branch }.into())
}

pub const IMPORTERS: &[Importer] = &[Importer { op_type: "If", domain: "", since: 1, build: import_if }];

impl OpImpl for If {
    fn name(&self) -> &'static str {
        "If"
    }

    fn attrs(&self) -> Attrs {
        let mut a = Attrs::new();
        a.insert("then_branch".into(), Attr::Graph(Box::new(self.then_branch.clone())));
        a.insert("else_branch".into(), Attr::Graph(Box::new(self.else_branch.clone())));
        a
    }

    fn infer(&self, cx: &InferCx) -> Result<Vec<ValueType>> {
        let cond = cx.ty(0)?;
        if cond.len() != 1 {
            bail!("If condition must hold one value, it is {cond}");
        }
        for (name, g) in [("then", &self.then_branch), ("else", &self.else_branch)] {
            for (k, (n, ty)) in g.input_types().into_iter().enumerate() {
                let given = cx.ty(k + 1)?;
                if &ty != given {
                    bail!("{name} branch input '{n}' is {ty}, the outer value is {given}");
                }
            }
        }
        let t: Vec<_> = self.then_branch.output_types().into_iter().map(|(_, t)| t).collect();
        let e: Vec<_> = self.else_branch.output_types().into_iter().map(|(_, t)| t).collect();
        if t.len() != e.len() {
            bail!("the branches produce {} and {} outputs", t.len(), e.len());
        }
        for (k, (a, b)) in t.iter().zip(&e).enumerate() {
            if a != b {
                return Err(anyhow::Error::new(crate::ir::Unsupported(format!(
                    "If whose branches produce different types for output {k} ({a} and {b}); static shapes need them equal"
                ))));
            }
        }
        Ok(t)
    }

    fn eval(&self, inputs: &EvalInputs) -> Result<Vec<Tensor>> {
        let cond = inputs.req(0)?.to_i64_vec()?;
        let branch = if cond.first().copied().unwrap_or(0) != 0 { &self.then_branch } else { &self.else_branch };
        let args: Vec<Tensor> = (1..inputs.len()).map(|i| inputs.req(i).cloned()).collect::<Result<_>>()?;
        crate::eval::run(branch, &args)
    }
}
