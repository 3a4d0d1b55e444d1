//! `deepnode epoch` and `deepnode conformance` through the real binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn deepnode(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_deepnode"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("the deepnode binary runs")
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn temp_file(name: &str, text: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("deepnode-cli-{}-{name}", std::process::id()));
    std::fs::write(&path, text).expect("temp file");
    path
}

#[test]
fn epoch_prints_the_contract_and_matches_the_library() {
    let out = deepnode(&["epoch", "examples/state.json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    for key in [
        "rank",
        "trust",
        "consensus",
        "incentive",
        "dividends",
        "emission",
        "stake",
        "bonds",
    ] {
        assert_eq!(v[key].as_array().map(Vec::len), Some(4), "{key}");
    }
    assert!(v["loss"].is_number());
    let text = std::fs::read_to_string(root().join("examples/state.json")).expect("example");
    let state = deepnode_contract::parse_state::<deepnode_consensus::Fx>(&text).expect("valid");
    let lib = deepnode_consensus::epoch(&state).expect("valid");
    assert_eq!(
        v["bits"]["loss"],
        serde_json::json!(lib.loss.to_bits().to_string())
    );
    assert_eq!(v["emission"], serde_json::json!(lib.minted));
    let minted: u64 = lib.minted.iter().sum();
    assert!(minted <= state.params.emission);

    let float = deepnode(&["epoch", "examples/state.json", "--backend", "float"]);
    assert!(float.status.success());
    let f: serde_json::Value = serde_json::from_slice(&float.stdout).expect("JSON");
    assert_eq!(f["backend"], "float");
    assert!(f.get("bits").is_none());
}

#[test]
fn epoch_runs_yuma_when_the_bond_rule_says_so() {
    let out = deepnode(&["epoch", "examples/state-yuma3.json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    let text = std::fs::read_to_string(root().join("examples/state-yuma3.json")).expect("example");
    let state = deepnode_contract::parse_state::<deepnode_consensus::Fx>(&text).expect("valid");
    assert_eq!(
        state.params.bonds.mechanism(),
        deepnode_consensus::Mechanism::Yuma3
    );
    let lib = deepnode_consensus::epoch(&state).expect("valid");
    assert_eq!(v["emission"], serde_json::json!(lib.minted));
    let bits = |x: &[deepnode_consensus::Fx]| {
        serde_json::json!(
            x.iter()
                .map(|b| b.to_bits().to_string())
                .collect::<Vec<_>>()
        )
    };
    assert_eq!(v["bits"]["consensus"], bits(&lib.consensus));
    assert_eq!(v["bits"]["dividends"], bits(&lib.dividends));
    // The same state under the paper's mechanism gives another result.
    let mut paper = state.clone();
    paper.params.bonds = deepnode_consensus::BondMode::Cumulative;
    assert_ne!(
        deepnode_consensus::epoch(&paper).expect("valid").incentive,
        lib.incentive
    );
    let float = deepnode(&["epoch", "examples/state-yuma3.json", "--backend", "float"]);
    assert!(float.status.success());
    let bad = temp_file(
        "yuma-penalty",
        r#"{"params": {"bonds": {"mode": "yuma", "bonds_moving_average": 0.9, "bonds_penalty": 2}}, "stake": [1]}"#,
    );
    let out = deepnode(&["epoch", bad.to_str().expect("utf-8 path")]);
    std::fs::remove_file(&bad).ok();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bonds_penalty"), "{err}");
}

#[test]
fn bad_input_is_one_line_and_exit_code_2() {
    let cases = [
        ("not-json", "{\"stake\": [1,"),
        ("unknown-key", "{\"stake\": [1], \"stakes\": [2]}"),
        (
            "weight-too-big",
            "{\"stake\": [1], \"weights\": [[[0, 65536]]]}",
        ),
        (
            "uid-out-of-range",
            "{\"stake\": [1], \"weights\": [[[3, 1]]]}",
        ),
        ("kappa", "{\"params\": {\"kappa\": 2}, \"stake\": [1]}"),
        ("no-nodes", "{\"stake\": []}"),
    ];
    for (name, text) in cases {
        let path = temp_file(name, text);
        let out = deepnode(&["epoch", path.to_str().expect("utf-8 path")]);
        std::fs::remove_file(&path).ok();
        assert_eq!(out.status.code(), Some(2), "{name}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim_end().lines().count(), 1, "{name}: {err}");
        assert!(err.starts_with("deepnode: "), "{name}: {err}");
        assert!(out.stdout.is_empty(), "{name}");
    }
    let missing = deepnode(&["epoch", "no/such/file.json"]);
    assert_eq!(missing.status.code(), Some(2));
}

#[test]
fn conformance_command_runs_the_vectors() {
    let out = deepnode(&["conformance", "conformance/vectors"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.trim_end().ends_with("0 failed, 0 skipped"), "{text}");
    for area in ["epoch/", "errors/", "yuma/", "subtensor/"] {
        assert!(text.contains(area), "no {area} vector run: {text}");
    }
    let missing = deepnode(&["conformance", "no/such/dir"]);
    assert_eq!(missing.status.code(), Some(2));
}
