//! String ops compiled and run through the runtime, against the reference evaluator.
//! Outputs are strings, booleans or exact gathers, so they must agree exactly.

use crate::lower::test_util::{Tolerance, same_as_reference};
use crate::ir::parse::parse_graph;
use crate::tensor::Tensor;

fn s(shape: &[usize], v: &[&str]) -> Tensor {
    Tensor::from_vec(shape, v.iter().map(|x| x.to_string()).collect::<Vec<_>>()).unwrap()
}

/// Strings, booleans and exact gathers: equal to the reference.
const TOL: Tolerance = Tolerance::Exact;

const WORDS: &[&str] = &["Monday", "tuesday", "", "MONDAY", "Straße", "日本"];

#[test]
fn normalizer_changes_case() {
    for case in ["NONE", "LOWER", "UPPER"] {
        let text = format!(
            "graph(%x: string[6]) {{\n  %y = StringNormalizer{{case_change_action=\"{case}\", is_case_sensitive=1}}(%x) : string[6]\n  return %y\n}}"
        );
        same_as_reference(&text, &[s(&[6], WORDS)], TOL);
    }
    let text = "graph(%x: string[1,3]) {\n  %y = StringNormalizer{case_change_action=\"UPPER\"}(%x) : string[1,3]\n  return %y\n}";
    same_as_reference(text, &[s(&[1, 3], &["a", "ß", "Ω"])], TOL);
}

#[test]
fn stop_words_on_a_constant_input_fold() {
    let text = "graph(%z: string[1]) {\n  %x = const string[4]{\"monday\",\"Monday\",\"b\",\"MONDAY\"}\n  %y = StringNormalizer{case_change_action=\"LOWER\", stopwords=s[\"monday\"]}(%x) : string[1]\n  %w = StringConcat(%y, %z) : string[1]\n  return %w, %x\n}";
    same_as_reference(text, &[s(&[1], &["!"])], TOL);
}

#[test]
fn concat_and_equal_broadcast() {
    for (op, out) in [("StringConcat", "string"), ("Equal", "bool")] {
        let text = format!("graph(%a: string[2,1], %b: string[3]) {{\n  %y = {op}(%a, %b) : {out}[2,3]\n  return %y\n}}");
        same_as_reference(&text, &[s(&[2, 1], &["x", "日"]), s(&[3], &["x", "", "本"])], TOL);
        let text = format!("graph(%a: string[], %b: string[]) {{\n  %y = {op}(%a, %b) : {out}[]\n  return %y\n}}");
        same_as_reference(&text, &[s(&[], &["ab"]), s(&[], &["ab"])], TOL);
    }
}

#[test]
fn regex_full_match() {
    let text = "graph(%x: string[5]) {\n  %y = RegexFullMatch{pattern=\"[a-z]+@(gmail|yahoo)\\\\.com\"}(%x) : bool[5]\n  return %y\n}";
    same_as_reference(text, &[s(&[5], &["a@gmail.com", "b@yahoo.com", "x@gmail.comm", "", "A@gmail.com"])], TOL);
}

#[test]
fn label_encoder_maps_every_way() {
    let cases = [
        ("string[4]", "keys_tensor=string[3]{\"a\",\"b\",\"a\"}, values_tensor=i64[3]{1,2,3}, default_tensor=i64[1]{-1}", "i64[4]", s(&[4], &["a", "b", "c", ""])),
        ("i64[2,2]", "keys_tensor=i64[2]{5,7}, values_tensor=string[2]{\"five\",\"seven\"}, default_tensor=string[1]{\"?\"}", "string[2,2]", Tensor::from_vec(&[2, 2], vec![7i64, 5, 0, 7]).unwrap()),
        ("f32[3]", "keys_tensor=f32[2]{0,2.5}, values_tensor=f64[2]{10,20}, default_tensor=f64[1]{0.5}", "f64[3]", Tensor::from_vec(&[3], vec![-0.0f32, 2.5, f32::NAN]).unwrap()),
        ("string[3]", "keys_tensor=string[2]{\"x\",\"y\"}, values_tensor=string[2]{\"X\",\"\"}, default_tensor=string[1]{\"none\"}", "string[3]", s(&[3], &["y", "x", "z"])),
    ];
    for (xt, attrs, yt, x) in cases {
        let text = format!("graph(%x: {xt}) {{\n  %y = ai.onnx.ml.LabelEncoder{{{attrs}}}(%x) : {yt}\n  return %y\n}}");
        same_as_reference(&text, &[x], TOL);
    }
}

#[test]
fn string_inputs_pass_through_and_check_dtype() {
    let text = "graph(%x: string[2]) {\n  %y = Identity(%x) : string[2]\n  %a = const i64[1]{0}\n  %z = Unsqueeze(%y, %a) : string[1,2]\n  return %y, %z, %x\n}";
    same_as_reference(text, &[s(&[2], &["a", "b"])], TOL);
    let text = "graph(%x: string[2]) {\n  %y = StringNormalizer{case_change_action=\"UPPER\"}(%x) : string[2]\n  return %y\n}";
    let g = parse_graph(text).unwrap();
    let f = Tensor::from_vec(&[2], vec![1f32, 2.]).unwrap();
    let err = crate::driver::compile_and_run(&g, &[f], &Default::default()).unwrap_err();
    assert!(format!("{err:#}").contains("expected dtype string, got f32"), "{err:#}");
}

#[test]
fn tfidf_counts_like_the_reference() {
    let pool = "ngram_counts=[0,4], ngram_indexes=[0,1,2,3,4,5,6], pool_int64s=[2,3,5,4,5,6,7,8,6,7]";
    let x = Tensor::from_vec(&[2, 6], vec![1i32, 1, 3, 3, 3, 7, 8, 6, 7, 5, 6, 8]).unwrap();
    for (mode, min, max, skip) in [("TF", 2, 2, 0), ("TF", 1, 2, 5), ("IDF", 1, 2, 1), ("TFIDF", 2, 2, 5)] {
        let w = if mode == "TF" { "" } else { ", weights=f[0.5,1,1.5,2,2.5,3,3.5]" };
        let text = format!("graph(%x: i32[2,6]) {{\n  %y = TfIdfVectorizer{{mode=\"{mode}\", min_gram_length={min}, max_gram_length={max}, max_skip_count={skip}, {pool}{w}}}(%x) : f32[2,7]\n  return %y\n}}");
        same_as_reference(&text, std::slice::from_ref(&x), TOL);
    }
    let text = "graph(%x: string[5]) {\n  %y = TfIdfVectorizer{mode=\"TF\", min_gram_length=1, max_gram_length=2, max_skip_count=1, ngram_counts=[0,2], ngram_indexes=[1,0,2], pool_strings=s[\"a\",\"b\",\"a\",\"b\"]}(%x) : f32[3]\n  return %y\n}";
    same_as_reference(text, &[s(&[5], &["a", "b", "x", "b", "a"])], TOL);
}
