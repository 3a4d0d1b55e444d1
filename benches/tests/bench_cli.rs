//! `deepnode-bench` through the real binary: the epoch's table (both backends, cold and
//! steady; threads and the numpy baseline when asked), the simulator's scale table, and bad
//! input as one line with exit code 2.

use std::path::Path;
use std::process::{Command, Output};

fn bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_deepnode-bench"))
        .args(args)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .output()
        .expect("the deepnode-bench binary runs")
}

#[test]
fn bench_times_both_backends_cold_and_steady() {
    let out = bench(&["epoch", "--n", "64", "--k", "8", "--epochs", "2"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    assert!(text.contains("512 non-zero weights"), "{text}");
    for (backend, run) in [
        ("float", "cold"),
        ("float", "steady"),
        ("fixed", "cold"),
        ("fixed", "steady"),
    ] {
        let line = text
            .lines()
            .find(|l| l.split_whitespace().take(2).eq([backend, run]))
            .unwrap_or_else(|| panic!("no {backend} {run} line in\n{text}"));
        let ms: f64 = line
            .split_whitespace()
            .nth(2)
            .and_then(|x| x.parse().ok())
            .expect("ms");
        assert!(ms > 0.0, "{line}");
    }
    // The float rows are their own baseline.
    for line in text.lines().filter(|l| l.starts_with("float")) {
        assert_eq!(line.split_whitespace().nth(4), Some("1.00x"), "{line}");
    }

    let bad = bench(&["epoch", "--n", "0"]);
    assert_eq!(bad.status.code(), Some(2));
    assert_eq!(String::from_utf8_lossy(&bad.stderr).lines().count(), 1);
}

/// `--yuma3` adds the same network under Yuma 3, both backends, cold and steady, each
/// against the paper's float epoch; without it, no Yuma 3 row.
#[test]
fn bench_yuma3_times_yuma3_beside_the_papers_mechanism() {
    let out = bench(&["epoch", "--n", "64", "--k", "8", "--epochs", "2", "--yuma3"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    for backend in ["float", "fixed", "yuma3/float", "yuma3/fixed"] {
        for run in ["cold", "steady"] {
            let line = text
                .lines()
                .find(|l| l.split_whitespace().take(2).eq([backend, run]))
                .unwrap_or_else(|| panic!("no {backend} {run} line in\n{text}"));
            let ms: f64 = line
                .split_whitespace()
                .nth(2)
                .and_then(|x| x.parse().ok())
                .expect("ms");
            assert!(ms > 0.0, "{line}");
            let ratio = line.split_whitespace().nth(4).expect("vs float");
            assert!(ratio.ends_with('x'), "{line}");
        }
    }
    let plain = bench(&["epoch", "--n", "64", "--k", "8", "--epochs", "1"]);
    let plain = String::from_utf8(plain.stdout).expect("UTF-8");
    assert!(!plain.contains("yuma3"), "{plain}");
}

/// `--threads 2` times one core against two threads, both backends, cold and steady (with
/// the feature `parallel`; without it, a one-line refusal).
#[test]
fn bench_threads_times_one_core_against_the_threads() {
    let out = bench(&[
        "epoch",
        "--n",
        "300",
        "--k",
        "16",
        "--epochs",
        "2",
        "--threads",
        "2",
    ]);
    if !cfg!(feature = "parallel") {
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("--features parallel"), "{err}");
        return;
    }
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    let table: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("one core against 2 threads"))
        .collect();
    assert!(!table.is_empty(), "no threads table in\n{text}");
    for (backend, run) in [
        ("float", "cold"),
        ("float", "steady"),
        ("fixed", "cold"),
        ("fixed", "steady"),
    ] {
        let line = table
            .iter()
            .find(|l| l.split_whitespace().take(2).eq([backend, run]))
            .unwrap_or_else(|| panic!("no {backend} {run} line in\n{text}"));
        let cols: Vec<&str> = line.split_whitespace().collect();
        for ms in &cols[2..4] {
            assert!(ms.parse::<f64>().expect("ms") > 0.0, "{line}");
        }
        let ratio: f64 = cols[4].trim_end_matches('x').parse().expect("speed-up");
        assert!(ratio > 0.0, "{line}");
    }
}

/// The numpy + scipy.sparse baseline runs beside the epoch, the paper's and Yuma 3's, and agrees
/// with the float outputs of each (the bench fails otherwise). Needs python3 with numpy and scipy (`scripts/bench-epoch.sh`
/// installs them), so it is not in the default run: `cargo test -p deepnode-bench -- --ignored`.
#[test]
#[ignore = "needs python3 with numpy and scipy"]
fn bench_runs_the_numpy_baseline_beside_the_epoch() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/baseline/numpy_epoch.py");
    let out = bench(&[
        "epoch",
        "--n",
        "200",
        "--k",
        "16",
        "--epochs",
        "2",
        "--rounds",
        "2",
        "--baseline",
        script,
        "--yuma3",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for run in ["cold", "steady"] {
        let line = text
            .lines()
            .find(|l| l.split_whitespace().take(2).eq(["numpy", run]))
            .unwrap_or_else(|| panic!("no numpy {run} line in\n{text}"));
        let ratio = line.split_whitespace().nth(4).expect("vs float");
        assert!(ratio.ends_with('x'), "{line}");
    }
    assert!(text.contains("numpy and float outputs"), "{text}");
    // The baseline's Yuma 3 beside the crate's, with its own ratio and agreement.
    for run in ["cold", "steady"] {
        let line = text
            .lines()
            .find(|l| l.split_whitespace().take(2).eq(["yuma3/float", run]))
            .unwrap_or_else(|| panic!("no yuma3/float {run} line in\n{text}"));
        let ratio = line.split_whitespace().nth(5).expect("numpy/this");
        assert!(ratio.ends_with('x'), "{line}");
    }
    assert!(text.contains("yuma3/numpy"), "{text}");
    assert!(text.contains("numpy and float Yuma 3 outputs"), "{text}");
}

#[test]
fn sim_reports_first_slowest_and_median_epochs_against_the_targets() {
    let out = bench(&["sim", "--quick"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    let header: Vec<&str> = text
        .lines()
        .next()
        .expect("header")
        .split_whitespace()
        .collect();
    for column in ["first", "slowest", "median", "total", "target"] {
        assert!(header.contains(&column), "{text}");
    }
    // 1/10 of each size: 100,000 x 32 for 3 epochs, bounded per epoch; 1,000 x 256 for 10.
    for (nodes, epochs, bound) in [("100000", "3", "epoch"), ("1000", "10", "total")] {
        let row: Vec<&str> = text
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|r| r.first() == Some(&nodes))
            .unwrap_or_else(|| panic!("no {nodes} row in\n{text}"));
        assert_eq!(row.get(2), Some(&epochs), "{text}");
        let secs: Vec<f64> = row[5..9]
            .iter()
            .map(|x| x.parse().expect("seconds"))
            .collect();
        let (first, slowest, median, total) = (secs[0], secs[1], secs[2], secs[3]);
        assert!(
            first <= slowest && median <= slowest && slowest <= total,
            "{text}"
        );
        assert!(row[9].starts_with(bound), "{text}");
    }
}

#[test]
fn ledger_reports_throughput_and_refuses_an_empty_run() {
    let out = bench(&["ledger", "--extrinsics", "200", "--nodes", "16", "--k", "4"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.stdout.is_empty());
    let bad = bench(&["ledger", "--extrinsics", "0"]);
    assert_eq!(bad.status.code(), Some(2));
    assert_eq!(String::from_utf8_lossy(&bad.stderr).lines().count(), 1);
}
