//! The devnet's chain: its genesis and its members' wallets.

use deepnode_consensus::Fx;
use deepnode_ledger::{Genesis, Wallet};

use crate::error::DevnetError;
use crate::scenario::Scenario;

/// A wallet seed: the scenario seed and the node's index.
pub fn wallet_seed(seed: u64, index: usize) -> [u8; 32] {
    let mut s = [0x5eu8; 32];
    s[..8].copy_from_slice(&seed.to_le_bytes());
    s[8..16].copy_from_slice(&(index as u64).to_le_bytes());
    s
}

/// The devnet's genesis: the ledger's defaults for its tempo (the activity cutoff on, at
/// `deepnode_ledger::ACTIVITY_CUTOFF_EPOCHS` epochs; the bonds of absent nodes pay nothing),
/// with the scenario's emission, trust threshold and mechanism ([`Scenario::bond_mode`]; a
/// scenario that fails its check is refused).
pub fn genesis(sc: &Scenario, wallets: &[Wallet]) -> Result<Genesis, DevnetError> {
    let mut g = Genesis::default();
    g.config.tempo = sc.tempo;
    g.params = deepnode_ledger::default_params(sc.tempo);
    g.config.weights_rate_limit = (sc.tempo / 2).max(1);
    // Cabal and copier rows hold one peer by design; a controller asking for more would
    // refuse them (it never asks for more than a row can hold, n - 1, but 1 is the story).
    g.config.controller.cap = 1;
    g.params.min_allowed_weights = 1;
    g.params.emission = sc.emission;
    // Nobody trusts itself, and dust weights buy no trust (SPEC.md §5, steps 2 and 4).
    g.params.mask_self_weights = true;
    g.params.trust_threshold = Fx::from_f64(sc.trust_threshold);
    if let Some(kappa) = sc.kappa {
        g.params.kappa = Fx::from_f64(kappa);
    }
    g.params.bonds = sc.bond_mode().map_err(DevnetError::Input)?;
    g.endowments = wallets
        .iter()
        .map(|w| (w.account(), sc.stake.saturating_mul(2)))
        .collect();
    Ok(g)
}

#[cfg(test)]
mod tests {
    use deepnode_consensus::{BondMode, Mechanism, epoch};
    use deepnode_ledger::LedgerState;

    use super::*;
    use crate::scenario::DEFAULT;

    fn wallets(sc: &Scenario) -> Vec<Wallet> {
        (0..sc.nodes())
            .map(|i| Wallet::from_seed(wallet_seed(sc.seed, i)))
            .collect()
    }

    /// The scenario's mechanism reaches the genesis, which the ledger accepts; everything else
    /// in the genesis is the paper scenario's. A chain of it runs the mechanism: an epoch of
    /// its state under Yuma 3 gives other bonds than under the paper's rule.
    #[test]
    fn the_scenarios_mechanism_is_the_genesis_bond_rule() {
        let paper = Scenario::parse(DEFAULT).expect("default");
        let yuma3 = Scenario::parse(&DEFAULT.replace(
            "mechanism = \"paper\"",
            "mechanism = \"yuma3\"\n\
             liquid_alpha = { alpha_low = 0.1, alpha_high = 0.3, steepness = 10 }",
        ))
        .expect("yuma3");
        let gp = genesis(&paper, &wallets(&paper)).expect("paper genesis");
        let gy = genesis(&yuma3, &wallets(&yuma3)).expect("yuma3 genesis");
        assert_eq!(gp.params.bonds.mechanism(), Mechanism::Paper);
        assert!(
            matches!(
                gy.params.bonds,
                BondMode::Yuma3 {
                    liquid_alpha: Some(_),
                    ..
                }
            ),
            "{:?}",
            gy.params.bonds
        );
        let mut same = gy.clone();
        same.params.bonds = gp.params.bonds;
        assert_eq!(same, gp, "only the bond rule differs");
        let ledger = LedgerState::genesis(&gy).expect("the ledger accepts it");
        assert_eq!(ledger.params.bonds, gy.params.bonds);

        // Three nodes with stake and rows that disagree: the two rules bond differently.
        let mut state = ledger.to_consensus_state();
        state.stake = vec![600, 300, 100];
        state.weights = vec![
            vec![(1, 60_000), (2, 5_000)],
            vec![(0, 30_000)],
            vec![(0, 1)],
        ];
        state.bonds = vec![Vec::new(); 3];
        state.block = 1;
        state.last_update = vec![1; 3];
        let y = epoch(&state).expect("yuma3 epoch");
        state.params.bonds = gp.params.bonds;
        let p = epoch(&state).expect("paper epoch");
        assert_ne!(y.bonds, p.bonds);
    }

    /// `kappa` reaches the genesis's parameters; absent, the ledger's default stays.
    #[test]
    fn the_scenarios_kappa_is_the_genesis_kappa() {
        let sc = Scenario::parse(DEFAULT).expect("default");
        let default = genesis(&sc, &wallets(&sc)).expect("genesis");
        assert_eq!(
            default.params.kappa,
            deepnode_ledger::default_params(sc.tempo).kappa
        );
        let low = Scenario::parse(&DEFAULT.replace("mechanism = \"paper\"", "kappa = 0.3"))
            .expect("kappa = 0.3");
        let g = genesis(&low, &wallets(&low)).expect("genesis");
        assert_eq!(g.params.kappa, Fx::from_f64(0.3));
        assert_ne!(g.params.kappa, default.params.kappa);
    }

    /// A scenario that fails its check (built in code, not parsed) gets no genesis.
    #[test]
    fn an_unchecked_bad_mechanism_gets_no_genesis() {
        let mut sc = Scenario::parse(DEFAULT).expect("default");
        sc.bonds_penalty = Some(0.5);
        let e = genesis(&sc, &wallets(&sc)).expect_err("paper takes no bonds_penalty");
        assert!(matches!(e, DevnetError::Input(_)), "{e}");
        assert!(e.to_string().contains("bonds_penalty"), "{e}");
    }
}
