//! A devnet's records to its report without processes: the metrics lines a node writes are
//! read back as its records' metrics, and the report's files are written from the records
//! (`metagraph.json` keeps one flat object per node).

use deepnode_devnet::{
    EpochRecord, Mechanism, NodeRecord, Role, Scenario, read_metrics, summarize, write_report,
};
use deepnode_node::life::Status;

fn node(i: usize, role: Role, stake: u64, metrics: Status) -> NodeRecord {
    NodeRecord {
        name: format!("node-{i}"),
        role,
        uid: i,
        alive: true,
        stake,
        rank: 0.25,
        trust: 0.5,
        consensus: 0.5,
        incentive: if role == Role::Learner { 0.4 } else { 0.1 },
        dividends: 0.25,
        emission: 10,
        weights: vec![(((i + 1) % 3) as u32, 65535)],
        metrics,
    }
}

#[test]
fn metrics_lines_become_records_and_the_report_is_written() {
    let dir = tempfile::tempdir().unwrap();
    // A node's metrics file: two lines and a torn third.
    let file = dir.path().join("node-0.jsonl");
    let mut lines = Vec::new();
    for (t, steps) in [(1.0, 10u64), (2.0, 20)] {
        let line = Status {
            t,
            served: 3 * steps,
            steps,
            loss: Some(2.0 - t / 10.0),
            rows_set: 1,
            ..Status::default()
        };
        lines.push(serde_json::to_string(&line).unwrap());
    }
    lines.push("{\"t\": 3.0, \"ser".into());
    std::fs::write(&file, lines.join("\n")).unwrap();
    let trace = read_metrics(&file);
    assert_eq!(trace.len(), 2, "the torn line is skipped");
    assert_eq!((trace[1].steps, trace[1].served), (20, 60));
    assert!(read_metrics(&dir.path().join("missing")).is_empty());

    let epochs: Vec<EpochRecord> = (1..=3)
        .map(|e| EpochRecord {
            epoch: e,
            block: 10 * e,
            t: e as f64,
            nodes: vec![
                node(0, Role::Learner, 100, trace[1].clone()),
                node(1, Role::Noise, 100, Status::default()),
                node(2, Role::Lazy, 100 - e, Status::default()),
            ],
        })
        .collect();
    let sc = Scenario {
        trust_threshold: 0.0,
        seed: 1,
        mechanism: Mechanism::Yuma3,
        kappa: Some(0.3),
        ..Scenario::default()
    };
    let summary = summarize(&sc, &epochs, Some(30), &[], &[]);
    assert_eq!(summary.rows, (1, 0));
    let out = dir.path().join("report");
    std::fs::create_dir(&out).unwrap();
    let md = write_report(
        &out,
        &epochs,
        &summary,
        &[("node-0".into(), trace)],
        "epochs = 3\n",
    )
    .unwrap();
    assert_eq!(md, out.join("report.md"));
    let text = std::fs::read_to_string(&md).unwrap();
    assert!(
        text.contains("seed 1, mechanism `yuma3 (kappa 0.3)`"),
        "the report names the mechanism: {}",
        text.lines().nth(2).unwrap_or_default()
    );
    let summary_json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary_json["mechanism"], "yuma3 (kappa 0.3)");
    for f in [
        "report.md",
        "scenario.toml",
        "summary.json",
        "metagraph.csv",
        "stake_share.png",
        "stake_share.svg",
        "incentive_share.svg",
        "train_loss.svg",
        "valid_loss.svg",
        "gain.svg",
        "weights.png",
        "weights.svg",
    ] {
        assert!(out.join(f).exists(), "{f} missing");
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("metagraph.json")).unwrap())
            .unwrap();
    let first = json[0]["nodes"][0].as_object().unwrap();
    let keys: Vec<&str> = first.keys().map(String::as_str).collect();
    let mut want = vec![
        "name",
        "role",
        "uid",
        "alive",
        "stake",
        "rank",
        "trust",
        "consensus",
        "incentive",
        "dividends",
        "emission",
        "weights",
        "served",
        "refused",
        "answers",
        "failed",
        "rows_set",
        "rows_refused",
        "steps",
        "loss",
    ];
    want.sort_unstable();
    let mut keys = keys;
    keys.sort_unstable();
    assert_eq!(keys, want);
    assert_eq!(first["served"], 60);
    assert_eq!(first["role"], "learner");
    let csv = std::fs::read_to_string(out.join("metagraph.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 3 * 3);
    assert!(
        csv.lines()
            .nth(1)
            .unwrap()
            .starts_with("1,10,node-0,learner,0,true,100,")
    );
}
