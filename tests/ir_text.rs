//! The IR text form round-trips: every conformance model that imports prints, parses back to
//! an equal graph that verifies, and prints identically again.

use neoc::ir::{parse::parse_graph, verify::verify};
use neoc::onnx::{self, ImportOptions};
use neoc_tests::cases_dir;

#[test]
fn every_imported_node_case_round_trips() {
    let dirs = neoc::conformance::discover(&cases_dir().join("node")).expect("cases");
    let (mut checked, mut failures) = (0, vec![]);
    for d in dirs {
        let Ok(model) = onnx::load(&d.join("model.onnx")) else { continue };
        let g = model.proto.graph.as_ref().expect("graph");
        let mut opts = ImportOptions::default();
        for (j, input) in g.input.iter().enumerate() {
            if let Ok(t) = neoc::conformance::read_pb(&d.join(format!("test_data_set_0/input_{j}.pb"))) {
                opts.input_shapes.insert(input.name.clone().unwrap_or_default(), t.shape().to_vec());
            }
        }
        let Ok(graph) = onnx::import(&model, &opts) else { continue };
        checked += 1;
        let name = d.file_name().unwrap().to_string_lossy().into_owned();
        if let Err(e) = verify(&graph) {
            failures.push(format!("{name}: imported graph does not verify: {e}"));
            continue;
        }
        let text = graph.to_string();
        match parse_graph(&text) {
            Err(e) => failures.push(format!("{name}: parse failed: {e:#}\n{text}")),
            Ok(back) => {
                if let Err(e) = verify(&back) {
                    failures.push(format!("{name}: parsed graph does not verify: {e}"));
                } else if back != graph || back.to_string() != text {
                    failures.push(format!("{name}: round trip changed the graph:\n{text}\n---\n{back}"));
                }
            }
        }
    }
    println!("{checked} imported node cases round-tripped, {} failed", failures.len());
    assert!(checked > 0, "no case imported");
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n\n"));
}

#[test]
fn parse_errors_have_positions() {
    let e = parse_graph("graph(%x: f32[2]) {\n  %y = Nope(%x) : f32[2]\n  return %y\n}").unwrap_err();
    assert!(format!("{e:#}").starts_with("2:"), "{e:#}");
    let e = parse_graph("graph(%x: f99[2]) { return %x }").unwrap_err();
    assert!(format!("{e:#}").contains("unknown dtype"), "{e:#}");
    assert!(parse_graph("graph(%x: f32[2]) { return %y }").is_err());
    assert!(parse_graph("graph(").is_err());
}

#[test]
fn constants_and_outputs_round_trip() {
    let text = "graph(%x: f32[2]) {\n  %c = const f32[2]{0.1,nan}\n  %s = const string[1]{\"a\\\"b\"}\n  %b = const bool[2]{true,false}\n  return %x, %c as \"renamed\", %s, %b\n}";
    let g = parse_graph(text).unwrap();
    assert_eq!(g.to_string(), text);
}
