//! The ledger state and its transition: extrinsics, then an epoch every `tempo` blocks.

use std::collections::BTreeMap;

use deepnode_consensus::{ControllerPolicy, ControllerState, Fx, Params, State, Uid, epoch};
use deepnode_ledger_client::{AccountId, Call, Extrinsic, H256, TxError};
use deepnode_rules::{Candidate, ConfigError, Slot};
use deepnode_types::{BondRow, WeightRow};
use parity_scale_codec::{Decode, Encode};

use crate::block::Event;
use crate::error::GenesisError;

/// Chain rules fixed at genesis.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct ChainConfig {
    /// An epoch runs at the end of every block whose number is a multiple of `tempo` (>= 1).
    pub tempo: u64,
    /// The cap on registered nodes; when full, registration replaces the lowest-ranked node.
    pub max_nodes: u32,
    /// Blocks after its registration during which a node cannot be replaced.
    pub immunity_period: u64,
    /// A node may set weights at most once per this many blocks.
    pub weights_rate_limit: u64,
    /// Most entries in a weights row (also at most `n`).
    pub max_weights_len: u32,
    /// Most extrinsics in one block (the pool holds at most this many).
    pub max_block_extrinsics: u32,
    /// The weights controller that moves `min_allowed_weights` from the loss.
    pub controller: ControllerPolicy,
}

impl Default for ChainConfig {
    /// Tempo 100, 4096 nodes, immunity 100 blocks, weights once per 10 blocks, rows of at
    /// most 4096, 10,000 extrinsics per block, the consensus crate's default controller.
    fn default() -> Self {
        ChainConfig {
            tempo: 100,
            max_nodes: 4096,
            immunity_period: 100,
            weights_rate_limit: 10,
            max_weights_len: 4096,
            max_block_extrinsics: 10_000,
            controller: ControllerPolicy::default(),
        }
    }
}

pub use deepnode_rules::{ACTIVITY_CUTOFF_EPOCHS, default_params};

/// Everything that defines a chain: its rules, the mechanism's parameters and the initial
/// free balances. Its hash (of the genesis block) is the chain id that extrinsics sign.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Genesis {
    /// Chain rules.
    pub config: ChainConfig,
    /// Mechanism parameters; `min_allowed_weights` is the controller's starting value.
    pub params: Params<Fx>,
    /// Initial free balances.
    pub endowments: Vec<(AccountId, u64)>,
}

impl Default for Genesis {
    /// The default chain rules, [`default_params`] for their tempo, no endowments.
    fn default() -> Self {
        let config = ChainConfig::default();
        Genesis {
            params: default_params(config.tempo),
            config,
            endowments: Vec::new(),
        }
    }
}

/// An account's free balance and next nonce.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Encode, Decode)]
pub struct Account {
    /// Raw units not staked.
    pub free: u64,
    /// Extrinsics applied so far; the next must carry this nonce.
    pub nonce: u64,
}

/// A neuron's outputs from the last epoch it took part in (the type `deepnode-types` owns;
/// its SCALE bytes are the store's).
pub use deepnode_types::NeuronStats;

/// A neuron: a registered node's entry at its uid (owner, stake, endpoint, last outputs).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Neuron {
    /// The only account that may act for it.
    pub owner: AccountId,
    /// `stake[i]` of SPEC.md, raw units.
    pub stake: u64,
    /// Block of registration.
    pub registered_at: u64,
    /// Block of its last accepted weights row.
    pub weights_block: Option<u64>,
    /// Its published network endpoint (UTF-8; empty until served).
    pub endpoint: Vec<u8>,
    /// The [`deepnode_wire::Modality`] code it serves (`None` until served).
    pub modality: Option<u8>,
    /// Its outputs from the last epoch.
    pub last: NeuronStats,
}

/// The whole ledger state; its SCALE encoding is hashed into every header.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct LedgerState {
    /// The block being (or last) applied.
    pub block: u64,
    /// Chain rules.
    pub config: ChainConfig,
    /// Mechanism parameters (`min_allowed_weights` is the controller's current value).
    pub params: Params<Fx>,
    /// The controller's memory.
    pub controller: ControllerState,
    /// Epochs run so far.
    pub epochs: u64,
    /// Free balances and nonces.
    pub accounts: BTreeMap<AccountId, Account>,
    /// Neurons by uid.
    pub neurons: Vec<Neuron>,
    /// `weights[uid]`, sorted by uid.
    pub weights: Vec<WeightRow>,
    /// `bonds[uid]`, sorted by uid.
    pub bonds: Vec<BondRow<Fx>>,
}

impl LedgerState {
    /// The state at block 0.
    pub fn genesis(g: &Genesis) -> Result<LedgerState, GenesisError> {
        deepnode_rules::check_config(&g.params, &g.config.controller, g.config.tempo).map_err(
            |e| match e {
                ConfigError::ZeroTempo => GenesisError::ZeroTempo,
                ConfigError::InvalidParams(e) => GenesisError::InvalidParams(e),
                ConfigError::FloorAboveCap { floor, cap } => {
                    GenesisError::FloorAboveCap { floor, cap }
                }
            },
        )?;
        let mut accounts = BTreeMap::new();
        let mut issuance = 0u128;
        for &(who, amount) in &g.endowments {
            issuance += u128::from(amount);
            if accounts
                .insert(
                    who,
                    Account {
                        free: amount,
                        ..Account::default()
                    },
                )
                .is_some()
            {
                return Err(GenesisError::DuplicateEndowment(who));
            }
        }
        if issuance > u128::from(u64::MAX) {
            return Err(GenesisError::IssuanceOverflow(issuance));
        }
        let controller = ControllerState {
            min_allowed_weights: g.params.min_allowed_weights,
            calm_epochs: 0,
        };
        Ok(LedgerState {
            block: 0,
            config: g.config.clone(),
            params: g.params,
            controller,
            epochs: 0,
            accounts,
            neurons: Vec::new(),
            weights: Vec::new(),
            bonds: Vec::new(),
        })
    }

    /// BLAKE2b-256 of the SCALE encoding: the header's `state_root`.
    pub fn root(&self) -> H256 {
        H256::digest(&self.encode())
    }

    /// Free plus staked units over every account and node (minting is the only source).
    pub fn total_issuance(&self) -> u128 {
        let free: u128 = self.accounts.values().map(|a| u128::from(a.free)).sum();
        let staked: u128 = self.neurons.iter().map(|n| u128::from(n.stake)).sum();
        free + staked
    }

    /// The account's next nonce (0 for an unknown account).
    pub fn nonce(&self, who: &AccountId) -> u64 {
        self.accounts.get(who).map_or(0, |a| a.nonce)
    }

    /// Applies an extrinsic whose signature was checked. On error nothing changes; on
    /// success the signer's nonce goes up by one.
    pub fn apply(&mut self, ext: &Extrinsic) -> Result<Vec<Event>, TxError> {
        let expected = self.nonce(&ext.signer);
        if ext.nonce != expected {
            return Err(TxError::BadNonce {
                expected,
                got: ext.nonce,
            });
        }
        let who = ext.signer;
        // Every call validates fully before its first write.
        let events = match &ext.call {
            Call::Register => self.register(who)?,
            &Call::AddStake { uid, amount } => self.add_stake(who, uid, amount)?,
            &Call::RemoveStake { uid, amount } => self.remove_stake(who, uid, amount)?,
            &Call::Transfer { to, amount } => self.transfer(who, to, amount)?,
            Call::SetWeights { uid, weights } => self.set_weights(who, *uid, weights)?,
            Call::Serve {
                uid,
                endpoint,
                modality,
            } => self.serve(who, *uid, endpoint, *modality)?,
        };
        self.accounts.entry(who).or_default().nonce = expected + 1;
        Ok(events)
    }

    fn free(&self, who: &AccountId) -> u64 {
        self.accounts.get(who).map_or(0, |a| a.free)
    }

    /// `who`'s free balance after paying `amount` (checks only, writes nothing): the shared
    /// rule [`deepnode_rules::debit`].
    fn debit(&self, who: &AccountId, amount: u64) -> Result<u64, TxError> {
        Ok(deepnode_rules::debit(self.free(who), amount)?)
    }

    /// `who`'s free balance after receiving `amount` (checks only, writes nothing): the shared
    /// rule [`deepnode_rules::credit`].
    fn credit(&self, who: &AccountId, amount: u64) -> Result<u64, TxError> {
        Ok(deepnode_rules::credit(self.free(who), amount)?)
    }

    /// [`Call::AddStake`]: free balance to the stake of a neuron `who` owns.
    fn add_stake(&mut self, who: AccountId, uid: Uid, amount: u64) -> Result<Vec<Event>, TxError> {
        let i = self.owned(who, uid)?;
        let free = self.debit(&who, amount)?;
        let stake = deepnode_rules::stake_after_add(self.neurons[i].stake, amount)?;
        self.neurons[i].stake = stake;
        self.accounts.entry(who).or_default().free = free;
        Ok(vec![Event::StakeAdded { uid, amount }])
    }

    /// [`Call::RemoveStake`]: stake of a neuron `who` owns back to its free balance.
    fn remove_stake(
        &mut self,
        who: AccountId,
        uid: Uid,
        amount: u64,
    ) -> Result<Vec<Event>, TxError> {
        let i = self.owned(who, uid)?;
        let stake = deepnode_rules::stake_after_remove(self.neurons[i].stake, amount)?;
        let free = self.credit(&who, amount)?;
        self.neurons[i].stake = stake;
        self.accounts.entry(who).or_default().free = free;
        Ok(vec![Event::StakeRemoved { uid, amount }])
    }

    /// [`Call::Transfer`]: free balance from `who` to `to` (to oneself: checked, no change).
    fn transfer(
        &mut self,
        who: AccountId,
        to: AccountId,
        amount: u64,
    ) -> Result<Vec<Event>, TxError> {
        let free = self.debit(&who, amount)?;
        if to != who {
            let credited = self.credit(&to, amount)?;
            self.accounts.entry(who).or_default().free = free;
            self.accounts.entry(to).or_default().free = credited;
        }
        Ok(vec![Event::Transferred {
            from: who,
            to,
            amount,
        }])
    }

    /// [`Call::Serve`]: publishes the endpoint and modality of a neuron `who` owns.
    fn serve(
        &mut self,
        who: AccountId,
        uid: Uid,
        endpoint: &[u8],
        modality: u8,
    ) -> Result<Vec<Event>, TxError> {
        let i = self.owned(who, uid)?;
        deepnode_rules::check_endpoint(endpoint).map_err(TxError::BadEndpoint)?;
        deepnode_wire::Modality::from_code(modality).map_err(|_| TxError::BadModality(modality))?;
        endpoint.clone_into(&mut self.neurons[i].endpoint);
        self.neurons[i].modality = Some(modality);
        Ok(vec![Event::Served { uid }])
    }

    /// The index of node `uid` if `who` owns it.
    fn owned(&self, who: AccountId, uid: Uid) -> Result<usize, TxError> {
        let i = usize::try_from(uid).map_err(|_| TxError::NoSuchNode(uid))?;
        deepnode_rules::check_owner(self.neurons.get(i).map(|n| &n.owner), &who, uid)?;
        Ok(i)
    }

    /// The uid rule ([`deepnode_rules::registration_slot`]): the next free uid while
    /// `n < max_nodes`; when full, the node with the lowest rank from the last epoch among
    /// those past their immunity period (ties: lower stake, then lower uid). The evicted node's
    /// stake goes back to its owner's free balance, and its weights, bonds and the entries of
    /// every other row that name it are cleared, so the newcomer inherits nothing.
    fn register(&mut self, who: AccountId) -> Result<Vec<Event>, TxError> {
        let fresh = Neuron {
            owner: who,
            stake: 0,
            registered_at: self.block,
            weights_block: None,
            endpoint: Vec::new(),
            modality: None,
            last: NeuronStats::default(),
        };
        let candidates = self.neurons.iter().enumerate().filter_map(|(i, n)| {
            Some(Candidate {
                uid: Uid::try_from(i).ok()?,
                registered_at: n.registered_at,
                rank: n.last.rank,
                stake: n.stake,
            })
        });
        let slot = deepnode_rules::registration_slot(
            self.neurons.len(),
            self.config.max_nodes,
            self.block,
            self.config.immunity_period,
            candidates,
        )?;
        let uid = match slot {
            Slot::Append(uid) => {
                self.neurons.push(fresh);
                self.weights.push(Vec::new());
                self.bonds.push(Vec::new());
                return Ok(vec![Event::Registered {
                    uid,
                    owner: who,
                    replaced: None,
                    returned: 0,
                }]);
            }
            Slot::Replace(uid) => uid,
        };
        // The rule picked an existing node, so its uid indexes `neurons`.
        let victim = usize::try_from(uid).map_err(|_| TxError::NoSuchNode(uid))?;
        let old = &self.neurons[victim];
        let (old_owner, returned) = (old.owner, old.stake);
        let credited = self.credit(&old_owner, returned)?;
        self.accounts.entry(old_owner).or_default().free = credited;
        self.neurons[victim] = fresh;
        self.weights[victim].clear();
        self.bonds[victim].clear();
        for row in &mut self.weights {
            deepnode_rules::forget_uid(row, uid);
        }
        for row in &mut self.bonds {
            deepnode_rules::forget_uid(row, uid);
        }
        Ok(vec![Event::Registered {
            uid,
            owner: who,
            replaced: Some(old_owner),
            returned,
        }])
    }

    /// [`Call::SetWeights`]: validates, sorts and stores the row of a neuron `who` owns.
    fn set_weights(
        &mut self,
        who: AccountId,
        uid: Uid,
        row: &[(Uid, u16)],
    ) -> Result<Vec<Event>, TxError> {
        let i = self.owned(who, uid)?;
        deepnode_rules::check_rate_limit(
            self.neurons[i].weights_block,
            self.block,
            self.config.weights_rate_limit,
        )?;
        let n = self.neurons.len();
        let max_len = usize::try_from(self.config.max_weights_len).unwrap_or(usize::MAX);
        let sorted = deepnode_rules::check_weights(&self.params, i, row, n, max_len)?;
        let len = u32::try_from(sorted.len()).unwrap_or(u32::MAX);
        self.weights[i] = sorted;
        self.neurons[i].weights_block = Some(self.block);
        Ok(vec![Event::WeightsSet { uid, len }])
    }

    /// Ends block `self.block`: when it is a multiple of `tempo`, runs one epoch of the
    /// shared consensus crate on the fixed-point path, mints, and lets the controller move
    /// `min_allowed_weights` from the loss.
    pub fn end_block(&mut self) -> Vec<Event> {
        if self.block == 0
            || !self.block.is_multiple_of(self.config.tempo)
            || self.neurons.is_empty()
        {
            return Vec::new();
        }
        let input = self.epoch_input();
        let result = epoch(&input);
        // Give the rows back: the epoch only read them.
        self.weights = input.weights;
        self.bonds = input.bonds;
        let out = match result {
            Ok(out) => out,
            Err(e) => {
                return vec![Event::EpochFailed {
                    reason: e.to_string(),
                }];
            }
        };
        for (i, neuron) in self.neurons.iter_mut().enumerate() {
            neuron.stake = out.stake[i];
            neuron.last = out.stats(i).unwrap_or_default();
        }
        self.bonds = out.bonds;
        let room = deepnode_consensus::row_room(self.neurons.len(), self.params.mask_self_weights);
        self.controller = self.config.controller.next(self.controller, out.loss, room);
        self.params.min_allowed_weights = self.controller.min_allowed_weights;
        self.epochs += 1;
        vec![Event::Epoch {
            index: self.epochs,
            loss: out.loss,
            minted: out.minted.iter().sum(),
            min_allowed_weights: self.params.min_allowed_weights,
        }]
    }

    /// The consensus crate's input for the next epoch. The rows are moved out of `self`
    /// (the caller puts them back), so no row is copied.
    fn epoch_input(&mut self) -> State<Fx> {
        State {
            params: self.params,
            stake: self.neurons.iter().map(|n| n.stake).collect(),
            weights: std::mem::take(&mut self.weights),
            bonds: std::mem::take(&mut self.bonds),
            block: self.block,
            last_update: self.last_updates(),
        }
    }

    /// A copy of the consensus crate's input for the next epoch (for export and tests).
    pub fn to_consensus_state(&self) -> State<Fx> {
        State {
            params: self.params,
            stake: self.neurons.iter().map(|n| n.stake).collect(),
            weights: self.weights.clone(),
            bonds: self.bonds.clone(),
            block: self.block,
            last_update: self.last_updates(),
        }
    }

    /// `last_update[i]` of SPEC.md: the block of node `i`'s last accepted weights row, or of
    /// its registration when it has set none (a newcomer counts as present for one cutoff).
    pub fn last_updates(&self) -> Vec<u64> {
        self.neurons
            .iter()
            .map(|n| n.weights_block.unwrap_or(n.registered_at))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::SigningKey;

    use super::*;
    use deepnode_ledger_client::EndpointError;

    const G: H256 = H256([0; 32]);

    fn key(b: u8) -> SigningKey {
        SigningKey::from_bytes(&[b; 32])
    }

    fn chain(max_nodes: u32) -> LedgerState {
        let mut g = Genesis::default();
        g.config.max_nodes = max_nodes;
        g.config.tempo = 2;
        g.config.immunity_period = 1;
        g.config.weights_rate_limit = 3;
        g.endowments = (1..=4).map(|b| (AccountId::from(&key(b)), 1_000)).collect();
        LedgerState::genesis(&g).expect("valid genesis")
    }

    fn run(s: &mut LedgerState, k: u8, call: Call) -> Result<Vec<Event>, TxError> {
        let who = AccountId::from(&key(k));
        let ext = Extrinsic::sign(&key(k), &G, s.nonce(&who), call);
        s.apply(&ext)
    }

    #[test]
    fn stake_moves_between_balance_and_node_and_issuance_is_kept() {
        let mut s = chain(8);
        s.block = 1;
        run(&mut s, 1, Call::Register).expect("register");
        run(
            &mut s,
            1,
            Call::AddStake {
                uid: 0,
                amount: 600,
            },
        )
        .expect("stake");
        assert_eq!(
            run(
                &mut s,
                1,
                Call::AddStake {
                    uid: 0,
                    amount: 600
                }
            ),
            Err(TxError::InsufficientBalance {
                have: 400,
                need: 600
            })
        );
        assert_eq!(
            run(&mut s, 2, Call::RemoveStake { uid: 0, amount: 1 }),
            Err(TxError::NotOwner(0))
        );
        run(
            &mut s,
            1,
            Call::RemoveStake {
                uid: 0,
                amount: 100,
            },
        )
        .expect("unstake");
        let to = AccountId::from(&key(9));
        run(&mut s, 1, Call::Transfer { to, amount: 500 }).expect("transfer");
        assert_eq!((s.neurons[0].stake, s.free(&to)), (500, 500));
        assert_eq!(s.free(&AccountId::from(&key(1))), 0);
        assert_eq!(s.total_issuance(), 4_000);
    }

    #[test]
    fn a_failed_call_changes_nothing_not_even_the_nonce() {
        let mut s = chain(8);
        let before = s.root();
        let bad = run(&mut s, 1, Call::AddStake { uid: 0, amount: 1 });
        assert_eq!(bad, Err(TxError::NoSuchNode(0)));
        assert_eq!(s.root(), before);
        let who = AccountId::from(&key(1));
        let replay = Extrinsic::sign(&key(1), &G, 0, Call::Register);
        s.apply(&replay).expect("first");
        assert_eq!(
            s.apply(&replay),
            Err(TxError::BadNonce {
                expected: 1,
                got: 0
            })
        );
        assert_eq!(s.nonce(&who), 1);
    }

    #[test]
    fn weights_are_validated_and_rate_limited() {
        let mut s = chain(8);
        s.block = 1;
        for k in 1..=3 {
            run(&mut s, k, Call::Register).expect("register");
        }
        let set = |w: Vec<(Uid, u16)>| Call::SetWeights { uid: 0, weights: w };
        assert!(matches!(
            run(&mut s, 1, set(vec![(5, 1)])),
            Err(TxError::InvalidWeights(
                deepnode_consensus::Error::UidOutOfRange { .. }
            ))
        ));
        assert!(matches!(
            run(&mut s, 1, set(vec![(1, 1), (1, 2)])),
            Err(TxError::InvalidWeights(
                deepnode_consensus::Error::DuplicateUid { .. }
            ))
        ));
        assert!(matches!(
            run(&mut s, 1, set(vec![(1, 0)])),
            Err(TxError::InvalidWeights(
                deepnode_consensus::Error::TooFewWeights { .. }
            ))
        ));
        run(&mut s, 1, set(vec![(2, 1), (1, 3)])).expect("valid row");
        assert_eq!(s.weights[0], vec![(1, 3), (2, 1)], "stored sorted");
        s.block = 3;
        assert_eq!(
            run(&mut s, 1, set(vec![(1, 1)])),
            Err(TxError::RateLimited { last: 1, next: 4 })
        );
        s.block = 4;
        run(&mut s, 1, set(vec![(1, 1)])).expect("after the limit");
    }

    #[test]
    fn epoch_mints_and_full_registry_replaces_the_lowest_rank() {
        let mut s = chain(3);
        s.block = 1;
        for k in 1..=3 {
            run(&mut s, k, Call::Register).expect("register");
            let uid = Uid::from(k - 1);
            run(&mut s, k, Call::AddStake { uid, amount: 100 }).expect("stake");
        }
        // Everyone scores uid 0 and 1; uid 2 gets nothing, so it ranks lowest.
        for k in 1..=3u8 {
            let weights = vec![(0, 1), (1, 1)];
            run(
                &mut s,
                k,
                Call::SetWeights {
                    uid: Uid::from(k - 1),
                    weights,
                },
            )
            .expect("w");
        }
        assert!(s.end_block().is_empty(), "block 1 is not an epoch block");
        s.block = 2;
        let before = s.total_issuance();
        let ev = s.end_block();
        assert!(
            matches!(ev.as_slice(), [Event::Epoch { index: 1, .. }]),
            "{ev:?}"
        );
        let minted: u64 = s.neurons.iter().map(|n| n.last.emission).sum();
        assert!(minted > 0 && minted <= s.params.emission);
        assert_eq!(s.total_issuance(), before + u128::from(minted));
        assert!(s.neurons[2].last.rank < s.neurons[0].last.rank);
        s.block = 3;
        let stake2 = s.neurons[2].stake;
        let ev = run(&mut s, 4, Call::Register).expect("replaces");
        assert_eq!(
            ev,
            vec![Event::Registered {
                uid: 2,
                owner: AccountId::from(&key(4)),
                replaced: Some(AccountId::from(&key(3))),
                returned: stake2,
            }]
        );
        assert!(s.weights.iter().all(|r| r.iter().all(|&(j, _)| j != 2)));
        assert!(s.bonds.iter().all(|r| r.iter().all(|&(j, _)| j != 2)));
        assert_eq!(s.neurons[2].stake, 0);
        // The newcomer is immune for one block: a fifth registration finds nobody to evict
        // except uids 0 and 1, whose rank is higher but who are past immunity.
        s.config.immunity_period = 10;
        assert_eq!(
            run(&mut s, 1, Call::Register),
            Err(TxError::RegistryFull { max: 3 })
        );
    }

    #[test]
    fn endpoints_and_modalities_are_checked() {
        let mut s = chain(2);
        run(&mut s, 1, Call::Register).expect("register");
        let serve = |e: &[u8]| Call::Serve {
            uid: 0,
            endpoint: e.to_vec(),
            modality: 0,
        };
        let bad = |e| Err(TxError::BadEndpoint(e));
        assert_eq!(run(&mut s, 1, serve(b"")), bad(EndpointError::Empty));
        assert_eq!(run(&mut s, 1, serve(&[0xff])), bad(EndpointError::NotUtf8));
        assert_eq!(
            run(&mut s, 1, serve(&[b'a'; 257])),
            bad(EndpointError::TooLong)
        );
        assert_eq!(
            run(&mut s, 1, serve(b"a\nb")),
            bad(EndpointError::ControlCharacters)
        );
        assert_eq!(s.neurons[0].modality, None, "nothing served yet");
        run(&mut s, 1, serve(b"127.0.0.1:7000")).expect("serve");
        assert_eq!(s.neurons[0].endpoint, b"127.0.0.1:7000");
        assert_eq!(s.neurons[0].modality, Some(0));
        // Every code of the wire format's Modality is accepted, nothing else.
        for m in deepnode_wire::Modality::ALL {
            let call = Call::Serve {
                uid: 0,
                endpoint: b"127.0.0.1:7001".to_vec(),
                modality: m.code(),
            };
            run(&mut s, 1, call).expect("serve");
            assert_eq!(s.neurons[0].modality, Some(m.code()));
        }
        let root = s.root();
        let unknown = Call::Serve {
            uid: 0,
            endpoint: b"127.0.0.1:7002".to_vec(),
            modality: 4,
        };
        assert_eq!(run(&mut s, 1, unknown), Err(TxError::BadModality(4)));
        assert_eq!(s.root(), root, "a refused serve changes nothing");
    }
}
