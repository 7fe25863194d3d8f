//! The target registry: docs/targets.md is generated from it (NEOC_BLESS=1 rewrites the
//! file), and every target either compiles the benchmark MobileNetV2 and the BERT-style
//! encoder (the GPU targets through the CUDA backend) or is `planned`/`unsupported` with a
//! reason.
//!
//! Code generation depends only on the ISA and the CPU features Cranelift is allowed to use,
//! so targets that share both (c5, m5, r5 and x86-64-v4, say) are compiled once and the test
//! records which targets each compilation stands for.

use std::collections::BTreeMap;

use neoc::onnx::{self, ImportOptions};
use neoc::target::{Status, Target, registry_markdown};
use neoc_tests::{cases_dir, root};

#[test]
fn docs_targets_md_is_generated_from_the_registry() {
    let path = root().join("docs/targets.md");
    let want = registry_markdown().expect("registry");
    if std::env::var_os("NEOC_BLESS").is_some() {
        std::fs::write(&path, &want).unwrap();
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(have == want, "docs/targets.md is stale: NEOC_BLESS=1 cargo test --release -p neoc-tests --test targets rewrites it");
}

#[test]
fn every_target_that_is_not_supported_says_why() {
    let all = Target::all().unwrap();
    for t in &all {
        match t.status {
            Status::Supported => assert!(t.reason.is_empty(), "{}", t.name),
            _ => {
                assert!(t.reason.len() > 20, "{}: '{}'", t.name, t.reason);
                let e = Target::by_name(&t.name).unwrap_err().to_string();
                assert!(e.contains(&t.status.to_string()) && e.contains(&t.reason), "{}: {e}", t.name);
            }
        }
    }
    // Every Neo name the issue lists is there, under both spellings where Neo has two.
    for n in ["ml_c4", "ml_c5", "ml_c6i", "ml_m4", "ml_m5", "ml_r5", "ml_c6g", "ml_c7g", "ml_m6g", "ml_g4dn", "ml_g5", "ml_p3", "ml_p4d", "ml_p5", "jetson_nano", "jetson_tx2", "jetson_xavier", "jetson_orin", "rasp4b", "imx8mplus", "imx8qm", "x86_64-v2", "x86_64-v3", "x86_64-v4", "aarch64", "ml_inf1", "ml_inf2", "ml_trn1", "rasp3b"] {
        let t = Target::lookup(n).unwrap_or_else(|e| panic!("{e}"));
        if let Some(short) = n.strip_prefix("ml_") {
            assert_eq!(Target::lookup(short).unwrap(), t);
        }
    }
    for n in ["ml_g4dn", "ml_g5", "ml_p3", "ml_p4d", "ml_p5"] {
        assert_eq!(Target::lookup(n).unwrap().status, Status::Supported, "{n}");
    }
    for n in ["jetson_nano", "jetson_orin"] {
        assert_eq!(Target::lookup(n).unwrap().status, Status::Planned, "{n}");
    }
    for n in ["ml_inf1", "ml_trn1", "rasp3b"] {
        assert_eq!(Target::lookup(n).unwrap().status, Status::Unsupported, "{n}");
    }
}

fn import(name: &str, shapes: &[(&str, &[usize])]) -> neoc::ir::Graph {
    let model = onnx::load(&cases_dir().join("models").join(name).join("model.onnx")).expect("model loads");
    let opts = ImportOptions { input_shapes: shapes.iter().map(|(n, s)| (n.to_string(), s.to_vec())).collect(), ..Default::default() };
    onnx::import(&model, &opts).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn every_supported_target_compiles_mobilenet_v2_and_bert() {
    let mobilenet = import("mobilenet_v2", &[("input", &[1, 3, 224, 224])]);
    let bert = import("bert", &[("input_ids", &[1, 16]), ("attention_mask", &[1, 16])]);
    // (ISA, features Cranelift may use, variants) -> the targets it stands for; the GPU
    // targets are one group (the same PTX for every GPU, see backend::cuda).
    let mut groups: BTreeMap<(String, Vec<String>, Vec<String>), Vec<Target>> = BTreeMap::new();
    for t in Target::all().unwrap().into_iter().filter(|t| t.status == Status::Supported) {
        if t.gpu.is_some() {
            groups.entry((t.isa.clone(), vec!["cuda".into()], vec![])).or_default().push(t);
            continue;
        }
        let levels = if t.variants.is_empty() { vec![t.clone()] } else { t.variant_targets().unwrap() };
        let features: Vec<String> = levels.iter().flat_map(|l| neoc::backend::cpu::isa::for_target(l).unwrap_or_else(|e| panic!("{}: {e}", t.name)).features).collect();
        groups.entry((t.isa.clone(), features, t.variants.clone())).or_default().push(t);
    }
    assert!(groups.len() >= 6, "{} distinct code generations", groups.len());
    let opts = neoc::driver::CompileOptions::default();
    for ((isa, _, _), targets) in &groups {
        let t = &targets[0];
        for (model, g) in [("mobilenet_v2", &mobilenet), ("bert", &bert)] {
            let (g, _) = neoc::driver::optimise(g.clone(), t, &opts).expect("optimises");
            let art = neoc::driver::compile(&g, t, &opts).unwrap_or_else(|e| panic!("{model} for {}: {e}", t.name));
            let a = neoc_runtime::Artifact::parse(&art.bytes).expect("artifact parses");
            assert_eq!(a.metadata.isa.as_str(), isa);
            assert_eq!(a.code_variants().len(), t.variants.len(), "{}", t.name);
            assert_eq!(a.cuda_program().is_some(), t.gpu.is_some(), "{}", t.name);
            println!("{model} for {} ({isa}; stands for {}): {} bytes of code", t.name, targets.iter().map(|t| t.name.as_str()).collect::<Vec<_>>().join(", "), art.report.code_bytes);
        }
    }
}
