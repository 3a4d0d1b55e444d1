//! `deepnode sim` through the real binary: a run writes its files and prints the summary, the
//! same seed gives the same metrics, and a bad scenario is one line on stderr with exit code 2.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn deepnode(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_deepnode"))
        .args(args)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
        .output()
        .expect("the deepnode binary runs")
}

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("deepnode-sim-cli-{}-{name}", std::process::id()))
}

#[test]
fn sim_runs_a_scenario_and_is_deterministic() {
    let (a, b) = (temp("a"), temp("b"));
    let run = |dir: &Path| {
        deepnode(&[
            "sim",
            "adapters/sim/scenarios/honest_vs_cabal.toml",
            "--out",
            dir.to_str().unwrap(),
            "--epochs",
            "5",
            "--seed",
            "9",
            "--no-plots",
        ])
    };
    let out = run(&a);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("cabal") && stdout.contains("share@end"),
        "{stdout}"
    );
    assert!(run(&b).status.success());
    let metrics = |d: &Path| std::fs::read(d.join("metrics.csv")).unwrap();
    assert_eq!(metrics(&a), metrics(&b));
    assert_eq!(String::from_utf8_lossy(&metrics(&a)).lines().count(), 6);
    // The final state is a valid `deepnode epoch` input.
    let replay = deepnode(&["epoch", a.join("final_state.json").to_str().unwrap()]);
    assert!(
        replay.status.success(),
        "{}",
        String::from_utf8_lossy(&replay.stderr)
    );
    for d in [a, b] {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[test]
fn bad_scenario_is_one_line_and_exit_code_2() {
    let path = temp("bad.toml");
    std::fs::write(
        &path,
        "epochs = 3\n[emission]\nfixed = 10\n[[groups]]\nname = \"a\"\ncount = 1\nstake = 1\n\
         quality = { dist = \"constant\", value = 1.0 }\nstrategy = { kind = \"selfish\" }\n\
         colour = \"red\"\n",
    )
    .unwrap();
    let out = deepnode(&[
        "sim",
        path.to_str().unwrap(),
        "--out",
        temp("o").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.contains("bad.toml:10") && err.contains("groups.colour"),
        "{err}"
    );
    let missing = deepnode(&["sim", "no/such.toml", "--out", "x"]);
    assert_eq!(missing.status.code(), Some(2));
    let _ = std::fs::remove_file(path);
}
