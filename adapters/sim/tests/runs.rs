//! Runs end to end: determinism, backends, replay through the `deepnode epoch` contract,
//! events, the shipped scenarios, and the files a run writes.

use std::path::PathBuf;

use deepnode_consensus::{Fx, epoch};
use deepnode_contract::{parse_state, render_state};
use deepnode_sim::{Backend, RunOptions, Scenario, Simulation, Strategy, run_scenario};

fn scenarios_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios")
}

fn load(name: &str) -> Scenario {
    Scenario::from_file(&scenarios_dir().join(name)).unwrap()
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("deepnode-sim-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn every_shipped_scenario_parses_and_runs_on_both_backends() {
    let mut names: Vec<_> = std::fs::read_dir(scenarios_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    names.sort();
    assert!(names.len() >= 4, "{names:?}");
    for path in names {
        let mut s = Scenario::from_file(&path).unwrap();
        s.epochs = 3;
        for backend in [Backend::Float, Backend::Fixed] {
            let out = tmp("shipped");
            let report =
                run_scenario(s.clone(), backend, &out, &RunOptions::default(), |_| {}).unwrap();
            assert_eq!(report.records.len(), 3, "{}", path.display());
            let total: f64 = report.records[2].groups.iter().map(|g| g.stake_share).sum();
            assert!(
                (total - 1.0).abs() < 1e-9,
                "{}: shares sum {total}",
                path.display()
            );
            let _ = std::fs::remove_dir_all(&out);
        }
    }
}

#[test]
fn same_seed_same_run_other_seed_other_run() {
    let mut s = load("mixed.toml");
    s.epochs = 35;
    let run = |s: Scenario| {
        let mut sim = Simulation::<f64>::new(s).unwrap();
        sim.run(|_| {}).unwrap();
        (sim.records().to_vec(), sim.state().clone())
    };
    let a = run(s.clone());
    assert_eq!(a, run(s.clone()));
    s.seed += 1;
    let b = run(s);
    assert_ne!(a.0, b.0);
}

#[test]
fn fixed_and_float_backends_agree() {
    let mut s = load("honest_vs_cabal.toml");
    s.epochs = 8;
    let mut f = Simulation::<f64>::new(s.clone()).unwrap();
    let mut x = Simulation::<Fx>::new(s).unwrap();
    f.run(|_| {}).unwrap();
    x.run(|_| {}).unwrap();
    for (a, b) in f.records().iter().zip(x.records()) {
        assert!((a.loss - b.loss).abs() < 1e-6, "epoch {}: L", a.epoch);
        for (ga, gb) in a.groups.iter().zip(&b.groups) {
            assert!((ga.stake_share - gb.stake_share).abs() < 1e-6);
            assert!((ga.incentive_share - gb.incentive_share).abs() < 1e-6);
            assert!((ga.dividend_share - gb.dividend_share).abs() < 1e-6);
        }
    }
}

#[test]
fn any_epoch_replays_through_the_epoch_contract() {
    let mut s = load("mixed.toml");
    s.epochs = 45;
    let mut sim = Simulation::<f64>::new(s).unwrap();
    for _ in 0..44 {
        sim.step().unwrap();
    }
    // The input of epoch 44, written in the contract and read back, gives the same epoch.
    let text = render_state(sim.prepare()).to_string();
    let replayed = epoch(&parse_state::<f64>(&text).unwrap()).unwrap();
    let rec = sim.finish().unwrap().clone();
    assert_eq!(replayed.stake, sim.state().stake);
    assert_eq!(replayed.bonds, sim.state().bonds);
    assert_eq!(replayed.minted.iter().sum::<u64>(), rec.minted);
    // And the fixed path reads the same file.
    let fixed = epoch(&parse_state::<Fx>(&text).unwrap()).unwrap();
    assert_eq!(fixed.stake.len(), replayed.stake.len());
}

#[test]
fn events_join_leave_add_stake_and_switch_strategy() {
    let s = load("mixed.toml");
    let idx = |n: &str| s.groups.iter().position(|g| g.name == n).unwrap();
    let (newcomers, cabal, random) = (idx("newcomers"), idx("cabal"), idx("random"));
    let mut sim = Simulation::<f64>::new(s).unwrap();
    sim.run(|_| {}).unwrap();
    let r = sim.records();
    assert_eq!(r[29].groups[newcomers].active, 0);
    assert_eq!(r[29].groups[newcomers].stake, 0);
    assert_eq!(r[30].groups[newcomers].active, 10);
    assert!(r[30].groups[newcomers].stake >= 10 * 2_000_000_000);
    // add_stake: 10 nodes x 5e9 units arrive before epoch 40.
    let before = r[39].groups[cabal].stake;
    assert!(r[40].groups[cabal].stake >= before + 50_000_000_000);
    assert_eq!(r[89].groups[random].active, 5);
    assert_eq!(r[90].groups[random].active, 0);
    assert_eq!(r[90].groups[random].stake, 0);
    let uids = sim.group_uids(random);
    assert!(uids.clone().all(|i| sim.state().weights[i].is_empty()));
    // After the switch to copier the cabal's rows point outside the cabal.
    let cabal_uids = sim.group_uids(cabal);
    let first = cabal_uids.start;
    assert!(
        sim.state().weights[first]
            .iter()
            .any(|&(j, _)| !cabal_uids.contains(&(j as usize)))
    );
    assert!(matches!(
        sim.scenario().groups[cabal].strategy,
        Strategy::Cabal
    ));
}

#[test]
fn a_run_writes_metrics_state_and_figures() {
    let mut s = load("controller.toml");
    s.epochs = 4;
    let step = s.controller.unwrap().step;
    let out = tmp("files");
    let opts = RunOptions {
        plots: true,
        save_states: true,
    };
    let report = run_scenario(s, Backend::Float, &out, &opts, |_| {}).unwrap();
    for f in [
        "metrics.csv",
        "metrics.json",
        "final_state.json",
        "stake_share.png",
        "stake_share.svg",
        "loss.png",
        "loss.svg",
        "consensus_curve.png",
        "consensus_curve.svg",
        "min_allowed_weights.png",
        "states/epoch-00003.json",
    ] {
        let meta = std::fs::metadata(out.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert!(meta.len() > 100, "{f} is nearly empty");
    }
    let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 5);
    assert!(csv.starts_with("epoch,emission,minted,total_stake,loss,min_allowed_weights"));
    assert!(csv.lines().next().unwrap().contains("honest.stake_share"));
    let png = std::fs::read(out.join("loss.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    let svg = std::fs::read_to_string(out.join("stake_share.svg")).unwrap();
    assert!(svg.contains("<svg") && svg.contains("honest"));
    let state = std::fs::read_to_string(out.join("final_state.json")).unwrap();
    let parsed = parse_state::<f64>(&state).unwrap();
    assert_eq!(parsed.stake.len(), 100);
    let last = report.records.last().unwrap();
    assert!(last.loss > 0.0);
    assert_eq!(
        parsed.params.min_allowed_weights,
        last.min_allowed_weights + step
    );
    assert!(report.summary.contains("honest"));
    let _ = std::fs::remove_dir_all(&out);
}
