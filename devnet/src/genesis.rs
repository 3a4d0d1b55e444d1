//! The devnet's chain: its genesis and its members' wallets.

use deepnode_consensus::Fx;
use deepnode_ledger::{Genesis, Wallet};

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
/// with the scenario's emission and trust threshold.
pub fn genesis(sc: &Scenario, wallets: &[Wallet]) -> Genesis {
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
    g.endowments = wallets
        .iter()
        .map(|w| (w.account(), sc.stake.saturating_mul(2)))
        .collect();
    g
}
