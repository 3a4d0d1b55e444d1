//! A node that stops without deregistering: with the activity cutoff and the withhold rule
//! (the ledger's default) it is paid nothing from the first epoch its row is older than the
//! cutoff; without a cutoff it is paid for ever; decaying bonds pay on, less and less. The
//! cutoff leaves section 11 and the sweep as they are (every row there is set each epoch).

use deepnode_sim::departure::{CUTOFF, LEAVE_AT, Rule, claims_unchanged, run_departure};
use deepnode_sim::sweep::SweepConfig;

#[test]
fn withheld_bonds_stop_paying_at_the_cutoff_and_the_others_do_not() {
    let absent_from = LEAVE_AT as usize + CUTOFF as usize;
    let withhold = run_departure(Rule::Withhold).expect("runs");
    // Paid while its row is within the cutoff, nothing once it is older.
    assert!(withhold.dividend_share[absent_from - 1] > 0.0);
    assert!(
        withhold.dividend_share[absent_from..]
            .iter()
            .all(|&d| d == 0.0),
        "{:?}",
        &withhold.dividend_share[absent_from..]
    );
    assert!(
        withhold.incentive_share[LEAVE_AT as usize..]
            .iter()
            .all(|&i| i == 0.0)
    );
    assert_eq!(withhold.first_unpaid_epoch, Some(absent_from as u32));

    let off = run_departure(Rule::Off).expect("runs");
    assert!(off.dividend_share.last().is_some_and(|&d| d > 0.03));
    assert_eq!(off.first_unpaid_epoch, None);
    assert!(off.minted_share_after_leaving > 10.0 * withhold.minted_share_after_leaving);

    let decay = run_departure(Rule::Decay(0.25)).expect("runs");
    assert!(
        decay.dividend_share[absent_from] > 0.0,
        "decaying bonds still pay"
    );
    assert!(decay.minted_share_after_leaving > withhold.minted_share_after_leaving);
    // A node that comes back keeps more of its bonds' pay under withhold than under decay.
    assert!(
        withhold.dividends_after_return_vs_before > 2.0 * decay.dividends_after_return_vs_before
    );
}

#[test]
fn the_cutoff_leaves_section_11_and_the_sweep_unchanged() {
    let cfg = SweepConfig {
        nodes: 20,
        epochs: 20,
        shares: vec![0.3, 0.45],
        ..SweepConfig::default()
    };
    for rule in [Rule::Withhold, Rule::Decay(0.25)] {
        let (same, runs) = claims_unchanged(rule, &cfg).expect("runs");
        assert_eq!(same, runs, "{rule:?}");
    }
}
