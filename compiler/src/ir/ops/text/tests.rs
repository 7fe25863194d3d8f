use super::*;
use crate::ir::ops::rebuild;
use crate::ir::{Constant, NodeInput};

/// Infers (with every input constant) and evaluates; checks that both agree.
fn run(op: &Text, inputs: &[Tensor], n_outputs: usize) -> Result<Vec<Tensor>> {
    let consts: Vec<Constant> = inputs.iter().cloned().map(Constant::new).collect();
    let tys: Vec<Option<(ValueType, Option<&Constant>)>> = consts.iter().map(|c| Some((c.ty().clone(), Some(c)))).collect();
    let types = op.infer(&InferCx { inputs: &tys, n_outputs })?;
    let refs: Vec<Option<&Tensor>> = inputs.iter().map(Some).collect();
    let out = op.eval(&EvalInputs { inputs: &refs, n_outputs })?;
    assert_eq!(types, out.iter().map(ValueType::of).collect::<Vec<_>>());
    Ok(out)
}

fn s(shape: &[usize], v: &[&str]) -> Tensor {
    Tensor::from_vec(shape, v.iter().map(|x| x.to_string()).collect::<Vec<_>>()).unwrap()
}

fn normalizer(case_change: CaseChange, case_sensitive: bool, stopwords: &[&str]) -> Text {
    let stopwords = stopwords.iter().map(|w| w.to_string()).collect();
    Text::StringNormalizer { case_change, case_sensitive, stopwords, locale: String::new() }
}

fn tfidf(min: usize, max: usize, skip: usize, mode: TfIdfMode, weights: Option<Vec<f32>>) -> Text {
    Text::TfIdfVectorizer(Box::new(TfIdf {
        mode,
        min_gram_length: min,
        max_gram_length: max,
        max_skip_count: skip,
        ngram_counts: vec![0, 4],
        ngram_indexes: (0..7).collect(),
        pool: Pool::Ints(vec![2, 3, 5, 4, 5, 6, 7, 8, 6, 7]),
        weights,
    }))
}

#[test]
fn round_trip_every_kind() {
    let x = Some(NodeInput::Const(s(&[1], &["a"])));
    let mut n = normalizer(CaseChange::Upper, true, &["monday"]);
    if let Text::StringNormalizer { locale, .. } = &mut n {
        *locale = "en_US".into();
    }
    let ops = [
        n,
        normalizer(CaseChange::None, false, &[]),
        Text::StringConcat,
        Text::StringSplit { delimiter: Some("-".into()), maxsplit: Some(2) },
        Text::StringSplit { delimiter: None, maxsplit: None },
        Text::RegexFullMatch { pattern: r"a\w+".into() },
        tfidf(1, 2, 5, TfIdfMode::TfIdf, Some(vec![0.5; 7])),
        tfidf(2, 2, 0, TfIdfMode::Tf, None),
    ];
    for op in ops {
        let op: Op = op.into();
        assert_eq!(rebuild(&op, vec![x.clone(), x.clone()], 2).unwrap(), op);
    }
}

#[test]
fn string_normalizer_removes_stop_words_then_changes_case() {
    let days = s(&[4], &["monday", "tuesday", "wednesday", "thursday"]);
    let y = run(&normalizer(CaseChange::Upper, true, &["monday"]), &[days.clone()], 1).unwrap();
    assert_eq!(y[0], s(&[3], &["TUESDAY", "WEDNESDAY", "THURSDAY"]));
    // Case-sensitive: "Monday" is no stop word.
    let two = s(&[1, 3], &["Monday", "tuesday", "monday"]);
    let y = run(&normalizer(CaseChange::None, true, &["monday"]), &[two.clone()], 1).unwrap();
    assert_eq!(y[0], s(&[1, 2], &["Monday", "tuesday"]));
    let y = run(&normalizer(CaseChange::Lower, false, &["MONDAY"]), &[two], 1).unwrap();
    assert_eq!(y[0], s(&[1, 1], &["tuesday"]));
    // Everything removed: one empty string.
    let y = run(&normalizer(CaseChange::Upper, true, &["monday"]), &[s(&[2], &["monday", "monday"])], 1).unwrap();
    assert_eq!(y[0], s(&[1], &[""]));
    // No stop words: the shape is known without the value.
    let op = normalizer(CaseChange::None, true, &[]);
    let tys = [Some((ValueType::new(DType::String, vec![1, 5]), None))];
    assert_eq!(op.infer(&InferCx { inputs: &tys, n_outputs: 1 }).unwrap()[0].shape, vec![1, 5]);
    // With stop words the value decides the shape.
    let op = normalizer(CaseChange::None, true, &["x"]);
    let err = op.infer(&InferCx { inputs: &tys, n_outputs: 1 }).unwrap_err();
    assert!(err.downcast_ref::<crate::ir::NeedsConstant>().is_some());
    assert!(run(&op, &[s(&[2, 2], &["a"; 4])], 1).is_err());
}

#[test]
fn string_concat_broadcasts() {
    let y = run(&Text::StringConcat, &[s(&[3], &["cat", "dog", "的"]), s(&[1], &["s"])], 1).unwrap();
    assert_eq!(y[0], s(&[3], &["cats", "dogs", "的s"]));
    let y = run(&Text::StringConcat, &[s(&[], &["a"]), s(&[], &["b"])], 1).unwrap();
    assert_eq!(y[0], s(&[], &["ab"]));
    assert!(run(&Text::StringConcat, &[s(&[2], &["a", "b"]), s(&[3], &["a", "b", "c"])], 1).is_err());
    assert!(run(&Text::StringConcat, &[s(&[1], &["a"]), Tensor::from_vec(&[1], vec![1i64]).unwrap()], 1).is_err());
}

#[test]
fn string_split_like_python() {
    let op = Text::StringSplit { delimiter: Some("-".into()), maxsplit: None };
    let y = run(&op, &[s(&[2], &["o-n-n--x-", "o-n----nx"])], 2).unwrap();
    assert_eq!(y[0], s(&[2, 6], &["o", "n", "n", "", "x", "", "o", "n", "", "", "", "nx"]));
    assert_eq!(y[1], Tensor::from_vec(&[2], vec![6i64, 6]).unwrap());
    let ws = Text::StringSplit { delimiter: None, maxsplit: None };
    let y = run(&ws, &[s(&[3], &["hello world !", "  hello   world !", " a\t b  "])], 2).unwrap();
    assert_eq!(y[0], s(&[3, 3], &["hello", "world", "!", "hello", "world", "!", "a", "b", ""]));
    assert_eq!(y[1], Tensor::from_vec(&[3], vec![3i64, 3, 2]).unwrap());
    let max = Text::StringSplit { delimiter: None, maxsplit: Some(2) };
    let y = run(&max, &[s(&[2, 2], &["hello world", "def.net", "o n n x", "  the quick brown fox "])], 2).unwrap();
    let want = ["hello", "world", "", "def.net", "", "", "o", "n", "n x", "the", "quick", "brown fox "];
    assert_eq!(y[0], s(&[2, 2, 3], &want));
    let dot = Text::StringSplit { delimiter: Some(".".into()), maxsplit: Some(0) };
    assert_eq!(run(&dot, &[s(&[1], &["a.b"])], 2).unwrap()[0], s(&[1, 1], &["a.b"]));
    let y = run(&ws, &[s(&[0], &[])], 2).unwrap();
    assert_eq!((y[0].shape(), y[1].shape()), (&[0, 0][..], &[0][..]));
    // An empty string with a delimiter is one empty piece; without, none.
    assert_eq!(run(&dot, &[s(&[1], &[""])], 2).unwrap()[1], Tensor::from_vec(&[1], vec![1i64]).unwrap());
    assert_eq!(run(&ws, &[s(&[1], &[" "])], 2).unwrap()[0], s(&[1, 0], &[]));
}

#[test]
fn regex_full_match() {
    let op = Text::RegexFullMatch { pattern: r"www\.[\w.-]+\.\bcom\b".into() };
    let y = run(&op, &[s(&[3], &["www.google.com", "www.facebook.com", "www.bbc.co.uk"])], 1).unwrap();
    assert_eq!(y[0], Tensor::from_vec(&[3], vec![true, true, false]).unwrap());
    let op = Text::RegexFullMatch { pattern: r"(\W|^)[\w.\-]{0,25}@(yahoo|gmail)\.com(\W|$)".into() };
    let x = s(&[2, 2], &["account@gmail.com", "account@hotmail.com", "not email", "account2@yahoo.com"]);
    assert_eq!(run(&op, &[x], 1).unwrap()[0], Tensor::from_vec(&[2, 2], vec![true, false, false, true]).unwrap());
    // A full match, not a search; alternation must cover the whole string.
    let op = Text::RegexFullMatch { pattern: "a|ab".into() };
    assert_eq!(run(&op, &[s(&[2], &["ab", "xab"])], 1).unwrap()[0], Tensor::from_vec(&[2], vec![true, false]).unwrap());
    let mut a = Attrs::new();
    a.insert("pattern".into(), Attr::Str("(unclosed".into()));
    assert!(crate::ir::ops::build("RegexFullMatch", "", 20, "n", &a, vec![], 1).is_err());
}

#[test]
fn tfidf_counts_ngrams_with_skips() {
    let x = Tensor::from_vec(&[12], vec![1i32, 1, 3, 3, 3, 7, 8, 6, 7, 5, 6, 8]).unwrap();
    let f = |op: &Text, x: &Tensor| run(op, &[x.clone()], 1).unwrap()[0].to_f64_vec().unwrap();
    assert_eq!(f(&tfidf(2, 2, 0, TfIdfMode::Tf, None), &x), vec![0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0]);
    assert_eq!(f(&tfidf(2, 2, 5, TfIdfMode::Tf, None), &x), vec![0.0, 0.0, 0.0, 0.0, 1.0, 3.0, 1.0]);
    assert_eq!(f(&tfidf(1, 2, 5, TfIdfMode::Tf, None), &x), vec![0.0, 3.0, 1.0, 0.0, 1.0, 3.0, 1.0]);
    let w = Some(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]);
    assert_eq!(f(&tfidf(1, 2, 5, TfIdfMode::Idf, w.clone()), &x), vec![0.0, 2.0, 3.0, 0.0, 5.0, 6.0, 7.0]);
    assert_eq!(f(&tfidf(1, 2, 5, TfIdfMode::TfIdf, w), &x), vec![0.0, 6.0, 3.0, 0.0, 5.0, 18.0, 7.0]);
    let batch = x.reshape(&[2, 6]).unwrap();
    let y = run(&tfidf(1, 2, 5, TfIdfMode::Tf, None), &[batch], 1).unwrap();
    assert_eq!(y[0].shape(), &[2, 7]);
    assert_eq!(y[0].to_f64_vec().unwrap(), vec![0.0, 3.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 1.0]);
    // String tokens need a string pool.
    assert!(run(&tfidf(1, 2, 5, TfIdfMode::Tf, None), &[s(&[1], &["a"])], 1).is_err());
    let strs = Text::TfIdfVectorizer(Box::new(TfIdf {
        mode: TfIdfMode::Tf,
        min_gram_length: 1,
        max_gram_length: 1,
        max_skip_count: 0,
        ngram_counts: vec![0],
        ngram_indexes: vec![1, 0],
        pool: Pool::Strs(vec!["a".into(), "b".into()]),
        weights: None,
    }));
    assert_eq!(f(&strs, &s(&[3], &["b", "b", "c"])), vec![2.0, 0.0]);
}
