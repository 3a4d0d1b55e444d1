//! Every conformance vector passes: fixed bit for bit, float within tolerance.

use std::path::Path;

use deepnode_conformance::run_dir;

#[test]
fn every_vector_passes() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("vectors");
    let report = run_dir(&dir).expect("vectors directory is readable");
    println!("{report}");
    assert!(
        report.cases.len() >= 40,
        "expected at least 40 vectors, found {}",
        report.cases.len()
    );
    assert!(report.all_passed(), "{report}");
}

#[test]
fn a_tampered_vector_fails() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("vectors/epoch");
    let first = std::fs::read_dir(&dir)
        .expect("vectors/epoch exists")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .min()
        .expect("at least one epoch vector");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&first).expect("readable")).expect("JSON");
    let bits = &mut v["expected"]["fixed"][0]["incentive"][0];
    let old: i128 = bits.as_str().expect("bits").parse().expect("i128");
    *bits = serde_json::json!((old + 1).to_string());
    let tmp = std::env::temp_dir().join(format!("deepnode-tampered-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).expect("temp dir");
    std::fs::write(tmp.join("v.json"), v.to_string()).expect("write");
    let report = run_dir(&tmp).expect("readable");
    std::fs::remove_dir_all(&tmp).ok();
    assert_eq!(report.failed(), 1, "{report}");
}
