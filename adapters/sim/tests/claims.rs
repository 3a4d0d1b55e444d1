//! The paper's claims, reproduced by running the consensus crate through the simulator and
//! asserting numbers. Populations are small so that the suite stays fast in debug builds.

use std::path::PathBuf;

use deepnode_consensus::{Fx, Params};
use deepnode_sim::paper::section_11;
use deepnode_sim::{Scenario, Simulation, consensus_curve, slope_at};

fn scenario_file(name: &str) -> Scenario {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(name);
    Scenario::from_file(&path).expect("shipped scenario is valid")
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn section_11_on<N: deepnode_consensus::Scalar>(tolerance: f64) {
    for a in [0.55, 0.6, 0.7, 0.9] {
        let mut sim = Simulation::<N>::new(section_11(a, 12)).unwrap();
        sim.run(|_| {}).unwrap();
        let r = sim.records();
        // Epoch 0 against the closed form: every honest node is connected by the other 19
        // (trust 19a/20), every cabal node by the whole cabal (trust 1 - a); ranks sum to the
        // stakes, so the cabal's incentive is (1-a) c_C / ((1-a) c_C + a c_H).
        let (c_h, c_c) = (
            sigmoid(10.0 * (a * 19.0 / 20.0 - 0.5)),
            sigmoid(10.0 * (1.0 - a - 0.5)),
        );
        let expected = (1.0 - a) * c_c / ((1.0 - a) * c_c + a * c_h);
        let got = r[0].groups[1].incentive_share;
        assert!(
            (got - expected).abs() < tolerance,
            "a = {a}: cabal incentive {got} vs closed form {expected}"
        );
        let mut previous = 1.0 - a;
        for rec in r {
            let cabal = &rec.groups[1];
            assert!(
                cabal.stake_share < previous,
                "a = {a}: cabal share rose at epoch {}: {previous} -> {}",
                rec.epoch,
                cabal.stake_share
            );
            // Adding `hold_stake` after the epoch restores the share it had before it.
            let held = (cabal.stake + cabal.hold_stake) as f64
                / (rec.total_stake + cabal.hold_stake) as f64;
            assert!(
                (held - previous).abs() < 1e-9,
                "a = {a}, epoch {}: holding {} gives {held}, not {previous}",
                rec.epoch,
                cabal.hold_stake
            );
            assert!(cabal.hold_stake > 0);
            previous = cabal.stake_share;
        }
        let hold0 = r[0].groups[1].hold_stake as f64 / r[0].emission as f64;
        eprintln!(
            "a = {a}: cabal share {:.4} -> {:.4} in {} epochs; holding it costs {:.3} x emission \
             in epoch 0",
            1.0 - a,
            previous,
            r.len(),
            hold0
        );
    }
}

#[test]
fn section_11_cabal_share_falls_every_epoch_float() {
    section_11_on::<f64>(1e-9);
}

#[test]
fn section_11_cabal_share_falls_every_epoch_fixed() {
    section_11_on::<Fx>(1e-6);
}

#[test]
fn consensus_curve_has_slope_five_halves_at_trust_one_half() {
    // rho = 10, kappa = 0.5 are the defaults; dc/dt = rho/4 = 5/2 at t = kappa.
    for (name, curve) in [
        ("float", consensus_curve(&Params::<f64>::default(), 400)),
        ("fixed", consensus_curve(&Params::<Fx>::default(), 400)),
    ] {
        assert_eq!(curve.len(), 401);
        let (t, c) = curve[200];
        assert!(
            (t - 0.5).abs() < 1e-12 && (c - 0.5).abs() < 1e-9,
            "{name}: c({t}) = {c}"
        );
        let slope = slope_at(&curve, 200).unwrap();
        // Central difference over +-1/400: error rho^3 h^2 / 48 < 2e-4.
        assert!((slope - 2.5).abs() < 2e-4, "{name}: slope {slope}");
        assert!(curve[0].1 < 0.01 && curve[400].1 > 0.99, "{name}: ends");
        assert!(
            curve.windows(2).all(|w| w[1].1 >= w[0].1),
            "{name}: monotone"
        );
    }
}

#[test]
fn controller_drives_a_low_connectivity_network_below_zero_loss() {
    let mut on = scenario_file("controller.toml");
    on.epochs = 50;
    let policy = on.controller.expect("the scenario turns the controller on");
    let mut off = on.clone();
    off.controller = None;
    let mut sim = Simulation::<f64>::new(on).unwrap();
    sim.run(|_| {}).unwrap();
    let r = sim.records();
    assert!(r[0].loss > 0.0, "starts with L = {} > 0", r[0].loss);
    assert_eq!(r[0].min_allowed_weights, 1);
    for w in r.windows(2) {
        if w[0].loss > 0.0 {
            let raised = (w[0].min_allowed_weights + policy.step).min(policy.cap);
            assert_eq!(w[1].min_allowed_weights, raised);
        } else {
            assert_eq!(w[1].min_allowed_weights, w[0].min_allowed_weights);
        }
        // Honest nodes widen their rows to meet it: nothing is rejected.
        assert_eq!(w[1].rejected_rows, 0);
        assert!(w[1].mean_weights_per_row >= f64::from(w[1].min_allowed_weights));
    }
    let crossed = r
        .iter()
        .position(|x| x.loss < 0.0)
        .expect("L falls below 0");
    assert!(r[crossed..].iter().all(|x| x.loss < 0.0), "and stays there");
    eprintln!(
        "L: {:+.4} at epoch 0 -> {:+.4} at epoch {crossed} (min_allowed_weights {})",
        r[0].loss, r[crossed].loss, r[crossed].min_allowed_weights
    );

    // Without the controller the same network keeps L > 0.
    let mut sim = Simulation::<f64>::new(off).unwrap();
    sim.run(|_| {}).unwrap();
    assert!(sim.records().iter().all(|x| x.loss > 0.0));
}

#[test]
fn early_bonder_earns_more_dividends_than_late_bonder() {
    let mut sim = Simulation::<f64>::new(scenario_file("early_bonder.toml")).unwrap();
    sim.run(|_| {}).unwrap();
    let r = sim.records();
    let g = |name: &str| {
        sim.scenario()
            .groups
            .iter()
            .position(|x| x.name == name)
            .unwrap()
    };
    let (early, late, star) = (g("early"), g("late"), g("star"));
    // Before epoch 20 only "early" backs the star, which the majority ignores: low consensus.
    assert!(r[10].groups[star].incentive_share < 0.01);
    // From epoch 20 both back it with the same stake, and the majority recognises it.
    assert!(r[25].groups[star].incentive_share > 0.05);
    let after = &r[20..];
    for rec in after {
        assert!(
            rec.groups[early].dividend_share > rec.groups[late].dividend_share,
            "epoch {}: early {} <= late {}",
            rec.epoch,
            rec.groups[early].dividend_share,
            rec.groups[late].dividend_share
        );
    }
    let sum = |g: usize| {
        after
            .iter()
            .map(|x| x.groups[g].dividend_share)
            .sum::<f64>()
    };
    let ratio = sum(early) / sum(late);
    assert!(ratio > 1.05, "early / late dividends {ratio}");
    assert!(r.last().unwrap().groups[early].stake > r.last().unwrap().groups[late].stake);
    eprintln!("dividends from epoch 20 on: early / late = {ratio:.3}");
}

/// The sweep's sparse-row cabal (honest top-8 rows, a cabal of 0.45): the paper's mechanism
/// lets it take 0.99 of the stake; Yuma 3 (and the original Yuma) clip its votes, below
/// `kappa`, to the honest consensus, so it earns nothing and its share falls.
#[test]
fn yuma_stops_the_sparse_row_cabal_that_the_paper_lets_win() {
    let yuma3 = scenario_file("sparse_cabal_yuma3.toml");
    let mut paper = yuma3.clone();
    paper.params.yuma = None;
    let mut yuma = yuma3.clone();
    yuma.params.yuma = Some(deepnode_consensus::BondMode::Yuma {
        bonds_moving_average: 0.9,
        bonds_penalty: 1.0,
    });
    let cabal_share = |s: Scenario| {
        let mut sim = Simulation::<f64>::new(s).unwrap();
        sim.run(|_| {}).unwrap();
        let last = sim.records().last().expect("epochs ran").groups[1].clone();
        (last.stake_share, last.incentive_share)
    };
    let (paper_share, _) = cabal_share(paper);
    assert!(paper_share > 0.99, "paper: cabal share {paper_share}");
    for (name, s) in [("yuma3", yuma3), ("yuma", yuma)] {
        let (share, incentive) = cabal_share(s);
        assert!(share < 0.01, "{name}: cabal share {share}");
        assert_eq!(incentive, 0.0, "{name}: the cabal earns incentive");
    }
}

/// The sweep against Yuma 3: its first axis is the paper's sweep, cell for cell, and its
/// second runs Yuma 3, where the sparse-row cabal earns nothing.
#[test]
fn the_sweep_against_yuma3_keeps_the_papers_cells() {
    use deepnode_sim::sweep::{SweepConfig, run_sweep};
    let small = SweepConfig {
        nodes: 16,
        epochs: 12,
        shares: vec![0.3, 0.45],
        ..SweepConfig::default()
    };
    let paper = run_sweep(&small, |_| {}).unwrap();
    let against = SweepConfig {
        yuma: Some(deepnode_consensus::BondMode::Yuma3 {
            bonds_moving_average: 0.9,
            bonds_penalty: 0.0,
            liquid_alpha: None,
        }),
        ..small
    };
    let yuma = run_sweep(&against, |_| {}).unwrap();
    let cumulative = |cells: &[deepnode_sim::sweep::SweepCell]| {
        cells
            .iter()
            .filter(|c| c.bonds == "cumulative")
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(cumulative(&paper), cumulative(&yuma));
    let cabal: Vec<_> = yuma
        .iter()
        .filter(|c| c.strategy == "cabal" && c.bonds == "yuma3(0.9, 0)")
        .collect();
    assert_eq!(cabal.len(), 2);
    assert!(
        cabal.iter().all(|c| c.dividend_yield_vs_honest == 0.0),
        "{cabal:?}"
    );
    // The stale-rows attack runs under both mechanisms too.
    for bonds in ["cumulative", "yuma3(0.9, 0)"] {
        let stale = yuma
            .iter()
            .filter(|c| c.strategy == "stale" && c.bonds == bonds)
            .count();
        assert_eq!(stale, 2, "{bonds}");
    }
}
