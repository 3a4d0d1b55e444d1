//! Who may call the node: accounts whose neuron holds enough stake in the last metagraph.

use std::collections::HashMap;
use std::sync::RwLock;

use deepnode_ledger_client::MetagraphView;

use crate::transport::AccountKey;
use crate::{Admission, NodeError};

/// Admits callers whose account owns a neuron with at least `floor` stake, as of the last
/// metagraph the node read.
pub struct MetagraphAdmission {
    floor: u64,
    stake: RwLock<HashMap<AccountKey, u64>>,
}

impl MetagraphAdmission {
    /// Nobody admitted until [`MetagraphAdmission::update`].
    pub fn new(floor: u64) -> MetagraphAdmission {
        MetagraphAdmission {
            floor,
            stake: RwLock::default(),
        }
    }

    /// Takes each account's largest neuron stake from `mg`.
    pub fn update(&self, mg: &MetagraphView) {
        let mut map = HashMap::new();
        for n in &mg.nodes {
            if let Ok(key) = parse_key(&n.key) {
                let s = map.entry(key).or_insert(0u64);
                *s = (*s).max(n.stake);
            }
        }
        if let Ok(mut m) = self.stake.write() {
            *m = map;
        }
    }
}

impl Admission for MetagraphAdmission {
    fn admit(&self, account: &AccountKey) -> bool {
        self.stake
            .read()
            .is_ok_and(|m| m.get(account).is_some_and(|&s| s >= self.floor))
    }
}

pub(super) fn parse_key(hex: &str) -> Result<AccountKey, NodeError> {
    hex.parse::<deepnode_ledger_client::AccountId>()
        .map(|a| a.0)
        .map_err(|e| NodeError::Ledger(format!("metagraph key {hex}: {e}")))
}

#[cfg(test)]
mod tests {
    use deepnode_ledger_client::{MetagraphView, NeuronView, StatsBits};

    use super::*;

    fn neuron(uid: usize, key: [u8; 32], stake: u64) -> NeuronView {
        NeuronView {
            bits: StatsBits {
                consensus: "0".into(),
                dividends: "0".into(),
                incentive: "0".into(),
                rank: "0".into(),
                trust: "0".into(),
            },
            consensus: 0.0,
            dividends: 0.0,
            emission: 0,
            endpoint: String::new(),
            incentive: 0.0,
            modality: None,
            key: deepnode_ledger_client::AccountId(key).to_string(),
            rank: 0.0,
            registered_at: 0,
            stake,
            trust: 0.0,
            uid,
            weights_block: None,
        }
    }

    #[test]
    fn admission_follows_the_metagraph_and_the_stake_floor() {
        let a = MetagraphAdmission::new(100);
        let mut mg = MetagraphView {
            block: 1,
            epochs: 0,
            max_weights_len: 8,
            min_allowed_weights: 1,
            n: 3,
            nodes: vec![
                neuron(0, [1; 32], 50),
                neuron(1, [1; 32], 150),
                neuron(2, [2; 32], 99),
            ],
            tempo: 10,
            weights_rate_limit: 1,
        };
        assert!(!a.admit(&[1; 32]), "nobody before the first metagraph");
        a.update(&mg);
        // An account counts with its largest neuron.
        assert!(a.admit(&[1; 32]));
        assert!(!a.admit(&[2; 32]), "under the floor");
        assert!(!a.admit(&[3; 32]), "not in the metagraph");
        // Deregistered: gone at the next refresh.
        mg.nodes.truncate(1);
        a.update(&mg);
        assert!(!a.admit(&[1; 32]));
    }
}
