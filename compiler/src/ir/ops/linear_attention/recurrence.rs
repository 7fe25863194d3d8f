//! The LinearAttention recurrence, token by token, on row-major `f64` data.
//!
//! Per batch `b` and KV head `h` the state `S` is a `d_k × d_v` matrix. For each token `t`:
//! 1. gated rules: `S *= exp(g_t)` (row `d` scaled by `exp(g_t[d])`, or all by one value);
//! 2. delta rules: `v_t <- β_t · (v_t − Sᵀ k_t)` (with the already decayed `S`);
//! 3. `S += k_t ⊗ v_t`;
//! 4. every query head `j` of the group reading head `h` (`j / group == h`) outputs
//!    `scale · q_tᵀ S`.

use anyhow::{Result, bail};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpdateRule {
    Linear,
    Gated,
    Delta,
    GatedDelta,
}

impl UpdateRule {
    pub fn parse(s: &str) -> Option<UpdateRule> {
        Some(match s {
            "linear" => UpdateRule::Linear,
            "gated" => UpdateRule::Gated,
            "delta" => UpdateRule::Delta,
            "gated_delta" => UpdateRule::GatedDelta,
            _ => return None,
        })
    }
    pub fn name(self) -> &'static str {
        match self {
            UpdateRule::Linear => "linear",
            UpdateRule::Gated => "gated",
            UpdateRule::Delta => "delta",
            UpdateRule::GatedDelta => "gated_delta",
        }
    }
    /// Uses the `decay` input.
    pub fn gating(self) -> bool {
        matches!(self, UpdateRule::Gated | UpdateRule::GatedDelta)
    }
    /// Uses the `beta` input.
    pub fn delta(self) -> bool {
        matches!(self, UpdateRule::Delta | UpdateRule::GatedDelta)
    }
}

/// The validated sizes of one LinearAttention call.
#[derive(Debug)]
pub struct Geometry {
    rule: UpdateRule,
    b: usize,
    t: usize,
    hq: usize,
    hkv: usize,
    dk: usize,
    dv: usize,
    /// `decay` holds one value per key dim (`[B, T, H_kv*d_k]`) rather than per head.
    decay_per_key: bool,
    /// `beta` holds one value per KV head (`[B, T, H_kv]`) rather than one shared (`[B, T, 1]`).
    beta_per_head: bool,
}

const OP: &str = "LinearAttention";

impl Geometry {
    /// Checks the input shapes (`[query, key, value]`, then the optional ones).
    pub fn new(
        rule: UpdateRule,
        hq: usize,
        hkv: usize,
        [q, k, v]: [&[usize]; 3],
        past: Option<&[usize]>,
        decay: Option<&[usize]>,
        beta: Option<&[usize]>,
    ) -> Result<Geometry> {
        if hq == 0 || hkv == 0 || hq % hkv != 0 {
            bail!("{OP}: q_num_heads ({hq}) must be a positive multiple of kv_num_heads ({hkv})");
        }
        let rank3 = |name: &str, s: &[usize]| -> Result<[usize; 3]> {
            match s {
                &[a, b, c] => Ok([a, b, c]),
                _ => bail!("{OP}: {name} must be rank 3 (B, T, H*D), got shape {s:?}"),
            }
        };
        let [b, t, qd] = rank3("query", q)?;
        let [kb, kt, kd] = rank3("key", k)?;
        let [vb, vt, vd] = rank3("value", v)?;
        if qd % hq != 0 {
            bail!("{OP}: query last dim {qd} is not divisible by q_num_heads {hq}");
        }
        let dk = qd / hq;
        if vd % hkv != 0 {
            bail!("{OP}: value last dim {vd} is not divisible by kv_num_heads {hkv}");
        }
        let dv = vd / hkv;
        if [kb, kt, kd] != [b, t, hkv * dk] {
            bail!("{OP}: key shape {k:?} must be [{b}, {t}, {}] (kv_num_heads * d_k)", hkv * dk);
        }
        if [vb, vt] != [b, t] {
            bail!("{OP}: value shape {v:?} must start with [{b}, {t}] like query");
        }
        let rule_name = rule.name();
        let mut decay_per_key = false;
        match (rule.gating(), decay) {
            (true, None) => bail!("{OP}: update_rule '{rule_name}' requires the decay input"),
            (false, Some(_)) => bail!("{OP}: update_rule '{rule_name}' forbids the decay input"),
            (true, Some(s)) => {
                let [db, dt, dl] = rank3("decay", s)?;
                if [db, dt] != [b, t] {
                    bail!("{OP}: decay shape {s:?} must start with [{b}, {t}]");
                }
                if dl == hkv {
                    decay_per_key = false;
                } else if dl == hkv * dk {
                    decay_per_key = true;
                } else {
                    bail!("{OP}: decay last dim {dl} must be kv_num_heads ({hkv}) or kv_num_heads*d_k ({})", hkv * dk);
                }
            }
            (false, None) => {}
        }
        let mut beta_per_head = false;
        match (rule.delta(), beta) {
            (true, None) => bail!("{OP}: update_rule '{rule_name}' requires the beta input"),
            (false, Some(_)) => bail!("{OP}: update_rule '{rule_name}' forbids the beta input"),
            (true, Some(s)) => {
                let [bb, bt, bl] = rank3("beta", s)?;
                if [bb, bt] != [b, t] {
                    bail!("{OP}: beta shape {s:?} must start with [{b}, {t}]");
                }
                if bl == hkv {
                    beta_per_head = true;
                } else if bl != 1 {
                    bail!("{OP}: beta last dim {bl} must be kv_num_heads ({hkv}) or 1");
                }
            }
            (false, None) => {}
        }
        if let Some(s) = past {
            if s != [b, hkv, dk, dv] {
                bail!("{OP}: past_state shape {s:?} must be [{b}, {hkv}, {dk}, {dv}]");
            }
        }
        Ok(Geometry { rule, b, t, hq, hkv, dk, dv, decay_per_key, beta_per_head })
    }

    pub fn output_shape(&self) -> Vec<usize> {
        vec![self.b, self.t, self.hq * self.dv]
    }

    pub fn state_shape(&self) -> Vec<usize> {
        vec![self.b, self.hkv, self.dk, self.dv]
    }

    /// Runs the recurrence. The slices hold exactly the elements of the shapes checked by
    /// [`Geometry::new`]; `scale` 0 selects `1/sqrt(d_k)`. Returns (output, present_state).
    #[allow(clippy::too_many_arguments)]
    pub fn run(
        &self,
        scale: f32,
        q: &[f64],
        k: &[f64],
        v: &[f64],
        past: Option<&[f64]>,
        decay: Option<&[f64]>,
        beta: Option<&[f64]>,
    ) -> (Vec<f64>, Vec<f64>) {
        let Geometry { rule, b, t, hq, hkv, dk, dv, decay_per_key, beta_per_head } = *self;
        let scale = if scale == 0.0 { 1.0 / (dk as f64).sqrt() } else { scale as f64 };
        let group = hq / hkv;
        let mut out = vec![0.0; b * t * hq * dv];
        let mut states = match past {
            Some(p) => p.to_vec(),
            None => vec![0.0; b * hkv * dk * dv],
        };
        let mut vt = vec![0.0; dv];
        for bi in 0..b {
            for h in 0..hkv {
                let s = &mut states[(bi * hkv + h) * dk * dv..][..dk * dv];
                for ti in 0..t {
                    let row = bi * t + ti; // token index into the [B, T, ...] inputs
                    let kt = &k[(row * hkv + h) * dk..][..dk];
                    vt.copy_from_slice(&v[(row * hkv + h) * dv..][..dv]);
                    if let (true, Some(g)) = (rule.gating(), decay) {
                        for d in 0..dk {
                            let gd = if decay_per_key { g[(row * hkv + h) * dk + d] } else { g[row * hkv + h] };
                            let f = gd.exp();
                            s[d * dv..][..dv].iter_mut().for_each(|x| *x *= f);
                        }
                    }
                    if let (true, Some(bt)) = (rule.delta(), beta) {
                        let beta_t = if beta_per_head { bt[row * hkv + h] } else { bt[row] };
                        for (m, vm) in vt.iter_mut().enumerate() {
                            let retrieved: f64 = (0..dk).map(|d| s[d * dv + m] * kt[d]).sum();
                            *vm = beta_t * (*vm - retrieved);
                        }
                    }
                    for d in 0..dk {
                        for m in 0..dv {
                            s[d * dv + m] += kt[d] * vt[m];
                        }
                    }
                    for j in h * group..(h + 1) * group {
                        let qt = &q[(row * hq + j) * dk..][..dk];
                        let o = &mut out[(row * hq + j) * dv..][..dv];
                        for (m, om) in o.iter_mut().enumerate() {
                            *om = scale * (0..dk).map(|d| qt[d] * s[d * dv + m]).sum::<f64>();
                        }
                    }
                }
            }
        }
        (out, states)
    }
}
