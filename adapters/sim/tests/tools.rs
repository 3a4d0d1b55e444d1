//! The simulator's tools beyond a single run: the paper's figures and the sweep, each through
//! its public function and on small sizes.

use std::path::{Path, PathBuf};

use deepnode_sim::paper::{SECTION_11_A, write_paper_figures};
use deepnode_sim::sweep::{SweepConfig, run_sweep, sweep_table, write_sweep};

fn tmp(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("deepnode-sim-tools-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// A PNG starts with its signature and an SVG with an XML or `<svg` tag.
fn assert_figure(stem: &Path) {
    let png = std::fs::read(stem.with_extension("png")).expect("png written");
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{}: not a PNG",
        stem.display()
    );
    let svg = std::fs::read_to_string(stem.with_extension("svg")).expect("svg written");
    assert!(svg.contains("<svg"), "{}: not an SVG", stem.display());
}

#[test]
fn paper_figures_and_numbers_are_written() {
    let out = tmp("paper");
    let (files, text) = write_paper_figures(&out).unwrap();
    for stem in [
        "consensus_curve",
        "section11_cabal_share",
        "section11_hold_cost",
        "controller_loss",
        "controller_min_allowed_weights",
        "early_bonder_dividends",
    ] {
        assert_figure(&out.join(stem));
        assert!(files.contains(&out.join(stem).with_extension("png")));
    }
    // The report quotes the slope it measured, which is the paper's 5/2.
    let slope: f64 = text
        .split("dc/dt at 0.5 = ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .expect("slope in the report");
    assert!((slope - 2.5).abs() < 1e-3, "slope {slope}");
    let s11: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("section11.json")).unwrap()).unwrap();
    let runs = s11.as_array().unwrap();
    assert_eq!(runs.len(), SECTION_11_A.len());
    for run in runs {
        let a = run["a"].as_f64().unwrap();
        let shares: Vec<f64> = run["cabal_share"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        assert!(
            shares[0] < 1.0 - a,
            "a = {a}: the first epoch lowers the cabal's share"
        );
        assert!(
            shares.windows(2).all(|w| w[1] < w[0]),
            "a = {a}: {shares:?}"
        );
    }
    assert!(text.contains("controller: ") && !text.contains("first L < 0 at epoch never"));
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn sweep_fills_the_grid_and_honest_majorities_shrink_a_cabal() {
    let cfg = SweepConfig {
        nodes: 16,
        epochs: 8,
        shares: vec![0.1, 0.4],
        ..SweepConfig::default()
    };
    let mut seen = 0;
    let cells = run_sweep(&cfg, |_| seen += 1).unwrap();
    // 4 strategies x 2 bond modes x 2 shares, each reported as it finishes.
    assert_eq!((cells.len(), seen), (16, 16));
    for c in &cells {
        assert!((0.0..=1.0).contains(&c.final_share), "{c:?}");
        assert!(c.dividend_yield_vs_honest.is_finite() && c.dividend_yield_vs_honest >= 0.0);
    }
    for c in cells.iter().filter(|c| c.strategy == "cabal") {
        assert!(c.final_share < c.initial_share, "cabal grew: {c:?}");
    }
    let table = sweep_table(&cells, |c| c.final_share);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 9, "header and 8 rows:\n{table}");
    assert!(lines[0].contains("0.10") && lines[0].contains("0.40"));
    let out = tmp("sweep");
    write_sweep(&cells, &out).unwrap();
    assert_figure(&out.join("sweep_final_share"));
    assert_figure(&out.join("sweep_dividend_yield"));
    let csv = std::fs::read_to_string(out.join("sweep.csv")).unwrap();
    assert_eq!(csv.lines().count(), 17, "header and 16 cells");
    std::fs::remove_dir_all(&out).unwrap();
}
