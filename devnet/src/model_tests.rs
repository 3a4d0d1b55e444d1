//! The devnet's chain rules without processes or learners: the embedded ledger built from the
//! devnet's own genesis, nodes registered and staked as a devnet run does, and each epoch
//! the rows a node's scores give (`deepnode_node::weights_row`, as the node submits them),
//! applied as signed extrinsics. The scores stand in for the learners' (every learner finds
//! every other running learner useful; noise and lazy nodes get none; a killed node is no
//! longer queried, so no longer scored).

use deepnode_consensus::{ControllerPolicy, Fx, Uid, epoch};
use deepnode_ledger::{ACTIVITY_CUTOFF_EPOCHS, Call, Extrinsic, H256, LedgerState, Wallet};

use crate::genesis::{genesis, wallet_seed};
use crate::roles::Role;
use crate::scenario::{DEFAULT, Scenario};

/// A devnet's chain and its members' wallets and roles, in registration (uid) order.
struct Model {
    ledger: LedgerState,
    wallets: Vec<Wallet>,
    roles: Vec<Role>,
    tempo: u64,
    max_len: usize,
}

impl Model {
    fn new(sc: &Scenario, roles: Vec<Role>, controller: Option<ControllerPolicy>) -> Model {
        let wallets: Vec<Wallet> = (0..roles.len())
            .map(|i| Wallet::from_seed(wallet_seed(sc.seed, i)))
            .collect();
        let mut g = genesis(sc, &wallets).expect("a checked scenario");
        if let Some(c) = controller {
            g.config.controller = c;
        }
        let max_len = g.config.max_weights_len as usize;
        let mut ledger = LedgerState::genesis(&g).expect("the devnet's genesis is valid");
        ledger.block = 1;
        let mut m = Model {
            ledger,
            wallets,
            roles,
            tempo: sc.tempo,
            max_len,
        };
        for i in 0..m.wallets.len() {
            m.send(i, Call::Register).expect("registers");
            let uid = i as Uid;
            m.send(
                i,
                Call::AddStake {
                    uid,
                    amount: sc.stake,
                },
            )
            .expect("stakes");
        }
        m.ledger.end_block();
        m
    }

    fn send(&mut self, i: usize, call: Call) -> Result<(), deepnode_ledger::TxError> {
        let w = &self.wallets[i];
        let nonce = self.ledger.nonce(&w.account());
        let ext = Extrinsic::sign(w.key(), &H256([0; 32]), nonce, call);
        self.ledger.apply(&ext).map(|_| ())
    }

    /// Node `i`'s scores of its peers this epoch (`running[j]`: node j still serves).
    fn scores(&self, i: usize, running: &[bool], dominant: bool) -> Vec<(Uid, f64)> {
        let n = self.roles.len();
        match self.roles[i] {
            Role::Learner | Role::Offline => (0..n)
                .filter(|&j| {
                    j != i && running[j] && matches!(self.roles[j], Role::Learner | Role::Offline)
                })
                .map(|j| {
                    // One peer far above the others when `dominant`, else close scores.
                    let favourite = j == (i + 1) % n;
                    let s = if dominant {
                        if favourite { 1.0 } else { 0.001 }
                    } else {
                        1.0 + 0.1 * ((i * 7 + j * 3) % 5) as f64
                    };
                    (j as Uid, s)
                })
                .collect(),
            Role::Cabal => (0..n)
                .filter(|&j| j != i && self.roles[j] == Role::Cabal && running[j])
                .map(|j| (j as Uid, 1.0))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// One epoch: every running node that sets weights submits its row at the epoch's first
    /// block, then blocks run to the epoch's end. Returns how many rows were refused.
    fn epoch(&mut self, running: &[bool], dominant: bool) -> usize {
        let n = self.roles.len();
        let mut refused = 0;
        for i in 0..n {
            if !running[i] {
                continue;
            }
            let scores = self.scores(i, running, dominant);
            if scores.is_empty() {
                continue;
            }
            let row =
                deepnode_node::weights_row(&scores, &self.ledger.params, i as Uid, n, self.max_len);
            let ok = match row {
                Ok(weights) => self
                    .send(
                        i,
                        Call::SetWeights {
                            uid: i as Uid,
                            weights,
                        },
                    )
                    .is_ok(),
                Err(_) => false,
            };
            if !ok {
                refused += 1;
            }
        }
        for _ in 0..self.tempo {
            self.ledger.block += 1;
            self.ledger.end_block();
        }
        refused
    }
}

/// The default devnet (`examples/devnet.toml`): the learner killed at its `leave` epoch gets
/// no incentive (its peers stop scoring it) and, once its last row is older than the cutoff,
/// no dividends either, to the last epoch; from then its row no longer counts.
#[test]
fn the_killed_node_of_the_default_devnet_stops_earning_within_the_cutoff() {
    let sc = Scenario::parse(DEFAULT).expect("the default scenario");
    let members = sc.members();
    let roles: Vec<Role> = members.iter().map(|m| m.role).collect();
    let (killed, leave) = members
        .iter()
        .find_map(|m| m.leave.map(|(e, _)| (m.index, e)))
        .expect("the default devnet kills a node");
    let mut m = Model::new(&sc, roles, None);
    assert!(
        m.ledger.params.activity_cutoff > 0,
        "the devnet turns the cutoff on"
    );
    let mut running = vec![true; members.len()];
    let mut paid = Vec::new();
    for e in 0..sc.epochs {
        if e == leave {
            running[killed] = false;
        }
        assert_eq!(m.epoch(&running, false), 0, "epoch {e}: a row was refused");
        let last = m.ledger.neurons[killed].last;
        paid.push(last.incentive > Fx::ZERO || last.dividends > Fx::ZERO);
    }
    let leave = leave as usize;
    // Paid while it ran and for a while after (its bonds, its row within the cutoff) ...
    assert!(paid[leave - 1] && paid[leave], "{paid:?}");
    // ... and nothing from at most the cutoff (in epochs) after its last row, to the end.
    let unpaid_from = paid.iter().rposition(|&p| p).map_or(0, |i| i + 1);
    assert!(
        unpaid_from <= leave + ACTIVITY_CUTOFF_EPOCHS as usize,
        "paid until epoch {unpaid_from}, left at {leave}: {paid:?}"
    );
    assert!(unpaid_from < paid.len(), "never stopped: {paid:?}");
    // Its row stops counting: the next epoch's rank and trust are those of the same network
    // with its row removed.
    let state = m.ledger.to_consensus_state();
    let mut without = state.clone();
    without.weights[killed].clear();
    without.params.activity_cutoff = 0;
    let (a, b) = (epoch(&state).expect("ok"), epoch(&without).expect("ok"));
    assert!(
        !state.weights[killed].is_empty(),
        "its last row is still on chain"
    );
    assert_eq!((a.rank, a.trust), (b.rank, b.trust));
}

/// Four learners under the default controller, every epoch with a positive loss (each weights
/// one peer far above the others, and a trust threshold makes the small weights count for
/// nothing): `min_allowed_weights` climbs to what a row can hold (3) and stays there, and
/// every row of 200 epochs is accepted.
#[test]
fn four_learners_under_the_default_controller_always_set_their_rows() {
    let sc = Scenario {
        trust_threshold: 0.05,
        ..Scenario::default()
    };
    let roles = vec![Role::Learner; 4];
    let mut m = Model::new(&sc, roles, Some(ControllerPolicy::default()));
    let running = [true; 4];
    let mut highest = 0;
    for e in 0..200 {
        assert_eq!(m.epoch(&running, true), 0, "epoch {e}: a row was refused");
        highest = highest.max(m.ledger.params.min_allowed_weights);
    }
    assert_eq!(highest, 3, "the controller reached the bound");
    assert_eq!(m.ledger.epochs, 200);
}

/// The Yuma 3 devnet (`examples/devnet-yuma3.toml`): with `kappa = 0.3` the learners earn the
/// whole incentive and the cabal's stake share falls at every epoch; the same network under
/// `kappa = 1/2` mints nothing (every learner's raters, the other learners, hold at most half
/// of the active stake), so the cabal keeps its share.
#[test]
fn the_yuma3_devnet_pays_learners_only_where_kappa_lets_their_raters_decide() {
    let sc = Scenario::parse(include_str!("../../examples/devnet-yuma3.toml")).expect("parses");
    assert_eq!(sc.kappa, Some(0.3));
    let share = |m: &Model, role: Role| {
        let stake = |n: &deepnode_ledger::Neuron| n.stake as f64;
        let total: f64 = m.ledger.neurons.iter().map(stake).sum();
        let of: f64 = (m.ledger.neurons.iter().zip(&m.roles))
            .filter(|(_, r)| **r == role)
            .map(|(n, _)| stake(n))
            .sum();
        of / total
    };
    let members = sc.members();
    let roles: Vec<Role> = members.iter().map(|m| m.role).collect();
    for (kappa, pays) in [(sc.kappa, true), (None, false)] {
        let sc = Scenario {
            kappa,
            ..sc.clone()
        };
        let mut m = Model::new(&sc, roles.clone(), None);
        let running = vec![true; roles.len()];
        let mut cabal = vec![share(&m, Role::Cabal)];
        for e in 0..20 {
            assert_eq!(m.epoch(&running, false), 0, "epoch {e}: a row was refused");
            cabal.push(share(&m, Role::Cabal));
        }
        // The learners and the one that leaves later (all running here).
        let learners: f64 = (m.ledger.neurons.iter().zip(&m.roles))
            .filter(|(_, r)| r.trains())
            .map(|(n, _)| n.last.incentive.to_f64())
            .sum();
        if pays {
            assert!(learners > 0.999, "{learners}");
            assert!(cabal.windows(2).skip(1).all(|w| w[1] < w[0]), "{cabal:?}");
        } else {
            assert_eq!(learners, 0.0);
            assert!(cabal.iter().all(|&c| c == cabal[0]), "{cabal:?}");
        }
    }
}
