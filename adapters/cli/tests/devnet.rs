//! `deepnode devnet` end to end: a ledger and node processes on loopback. With the `torch`
//! (libtorch) and `adversarial` features a small devnet runs and its report must show the
//! paper's claims; without them the command refuses learners, or adversaries, with a one-line
//! reason.

use std::process::{Command, Output};

fn deepnode(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_deepnode"))
        .args(args)
        .output()
        .expect("run deepnode")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn bad_scenarios_exit_2_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "epochs = 3\nspeed = 9\n[[group]]\nrole = \"learner\"\n",
    )
    .unwrap();
    let out = dir.path().join("report");
    let o = deepnode(&[
        "devnet",
        path.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("unknown field") && err.contains("speed"),
        "{err}"
    );
    assert!(!out.exists(), "nothing written for a refused scenario");
    // A directory that is not a devnet report is never overwritten.
    let other = dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("keep.txt"), "mine").unwrap();
    let o = deepnode(&["devnet", "--out", other.to_str().unwrap(), "--epochs", "1"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(other.join("keep.txt")).unwrap(),
        "mine"
    );
}

#[cfg(not(feature = "torch"))]
#[test]
fn without_libtorch_learners_are_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report");
    let o = deepnode(&["devnet", "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("torch"), "{}", stderr(&o));
}

/// Without the feature `adversarial` the devnet's adversaries are refused with a reason.
#[cfg(not(feature = "adversarial"))]
#[test]
fn without_the_adversarial_feature_adversaries_are_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("noise.toml");
    std::fs::write(
        &path,
        "epochs = 2\n[[group]]\nrole = \"noise\"\n[[group]]\nrole = \"lazy\"\n",
    )
    .unwrap();
    let out = dir.path().join("report");
    let o = deepnode(&[
        "devnet",
        path.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("noise") && err.contains("`adversarial` feature"),
        "{err}"
    );
    assert!(!out.exists(), "nothing written for a refused scenario");
}

#[cfg(all(feature = "torch", feature = "adversarial"))]
#[test]
fn a_small_devnet_pays_learners_and_starves_the_cabal() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("small.toml");
    std::fs::write(&scenario, SMALL).unwrap();
    let out = dir.path().join("report");
    let o = deepnode(&[
        "devnet",
        scenario.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    // 1. Learners earn clearly more incentive than the noise and lazy nodes together.
    let (learners, noise_lazy) = (
        s["learner_vs_noise_lazy"][0].as_f64().unwrap(),
        s["learner_vs_noise_lazy"][1].as_f64().unwrap(),
    );
    assert!(
        learners > 2.0 * noise_lazy,
        "{learners} vs {noise_lazy}\n{report}"
    );
    // 2. The cabal's stake share falls at every epoch once honest rows are set.
    assert_eq!(s["cabal_share_falls"], serde_json::json!(true), "{report}");
    // 3. Every submitted row was committed, and the chain verifies (also by the CLI).
    assert!(s["rows"][0].as_u64().unwrap() > 0);
    assert_eq!(s["rows"][1].as_u64(), Some(0), "{report}");
    assert!(s["chain_verified"].as_u64().is_some_and(|b| b > 0));
    let v = deepnode(&[
        "ledger",
        "verify",
        "--data",
        out.join("chain").to_str().unwrap(),
    ]);
    assert!(v.status.success(), "{}", stderr(&v));
    // 4. Every learner does better with its peers than its twin alone on the other domains.
    let gains = s["premise"]["gains"].as_array().unwrap();
    assert_eq!(gains.len(), 3, "{report}");
    for g in gains {
        let others = g["others"][0].as_f64();
        assert!(
            others.is_some_and(|x| x > 0.0),
            "{}: gain on the other domains {others:?}\n{report}",
            g["learner"]
        );
    }
    let ablation = s["premise"]["ablation"].as_array().unwrap();
    assert_eq!(ablation.len(), 9, "three learners on three domains");
    for a in ablation {
        for key in [
            "learner", "domain", "own", "peers", "alone", "student", "zeros",
        ] {
            assert!(!a[key].is_null(), "{key} missing in {a}");
        }
    }
    // The report's parts.
    for f in [
        "report.md",
        "metagraph.csv",
        "metagraph.json",
        "stake_share.png",
        "stake_share.svg",
        "incentive_share.png",
        "weights.png",
        "train_loss.png",
        "valid_loss.svg",
        "gain.png",
        "logs/node-0.log",
    ] {
        assert!(out.join(f).exists(), "{f} missing");
    }
    assert!(report.contains("ratio"));
}

/// Seven nodes, a short tempo: what CI can afford in two or three minutes. The test runs the
/// debug binary, whose learners take about 2.6 steps/s here (release: about 7), so their rows
/// count as informed after 120 steps rather than the default 300.
#[cfg(all(feature = "torch", feature = "adversarial"))]
// Emission 1.4% of the stake per epoch (the default scenario mints 5%): a learner's first row
// waits for five steps of significant benefit, and the debug binary on a loaded machine can
// spend several epochs there, in which the cabal is the only node with a row and takes every
// unit minted. A lower rate shrinks that head start; the claims are judged the same way.
const SMALL: &str = r#"
epochs = 28
tempo = 8
block_ms = 400
seed = 3
emission = 100_000_000
[[group]]
role = "learner"
domain = "fortunes"
[[group]]
role = "learner"
domain = "python"
[[group]]
role = "learner"
domain = "c"
[[group]]
role = "noise"
[[group]]
role = "lazy"
[[group]]
role = "cabal"
count = 2
"#;

/// Whether this test runs as root (network namespaces can be made).
fn root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// The network namespaces of the devnet process `pid`.
fn namespaces_of(pid: u32) -> Vec<String> {
    let o = Command::new("ip").args(["netns", "list"]).output().unwrap();
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(&format!("dnet{pid}-")))
        .map(str::to_owned)
        .collect()
}

/// Four pure-Rust nodes on separate hosts: links with delay, jitter and resets, one node
/// killed and restarted at epoch 1.
const SEPARATE_HOSTS: &str = "epochs = 3\ntempo = 10\nblock_ms = 300\nnetns = true\n\
    [[group]]\nrole = \"projection\"\ncount = 2\n\
    link = { delay_ms = 10, jitter_ms = 2, reset_per_min = 0.5 }\n\
    [[group]]\nrole = \"echo\"\ncount = 2\ncrash = 1\n";

/// On separate hosts a devnet runs, measures its network and leaves none of its namespaces
/// behind, whether it ends or is interrupted (Ctrl-C); where namespaces cannot be made (not
/// root) it says so in one line.
#[test]
fn separate_hosts_run_and_leave_no_namespace_behind() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hosts.toml");
    std::fs::write(&path, SEPARATE_HOSTS).unwrap();
    let out = dir.path().join("report");
    let run = |out: &std::path::Path| {
        Command::new(env!("CARGO_BIN_EXE_deepnode"))
            .args(["devnet", path.to_str().unwrap(), "--out"])
            .arg(out)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    if !root() {
        let o = run(&out).wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
        assert!(stderr(&o).contains("root"), "{}", stderr(&o));
        return;
    }
    let child = run(&out);
    let pid = child.id();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(namespaces_of(pid), Vec::<String>::new());
    let network = std::fs::read_to_string(out.join("network.md")).unwrap();
    assert!(network.contains("| node-2 | 1 | 3 |"), "{network}");
    let links = std::fs::read_to_string(out.join("links/node-0.jsonl")).unwrap();
    assert!(links.lines().count() > 2, "{links}");
    // Interrupted once its namespaces and processes are up.
    let out = dir.path().join("interrupted");
    let child = run(&out);
    let pid = child.id();
    let t = std::time::Instant::now();
    while !out.join("links/node-3.jsonl").exists() {
        assert!(t.elapsed().as_secs() < 60, "no link started");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(!namespaces_of(pid).is_empty());
    let kill = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let o = child.wait_with_output().unwrap();
    assert!(!o.status.success(), "an interrupted run fails");
    assert!(stderr(&o).contains("interrupted"), "{}", stderr(&o));
    assert_eq!(namespaces_of(pid), Vec::<String>::new());
}
