//! The pallet against the two other implementations of the same rules:
//! 1. every conformance vector that is a valid ledger state, set up through the pallet's calls:
//!    after one epoch its stored outputs equal `deepnode epoch --backend fixed` (the CLI's
//!    `parse_state`, `epoch`, `render_output`) bit for bit, and every epoch of the vector equals
//!    its expected fixed-point bits;
//! 2. generated sequences of signed calls applied to the embedded ledger (`deepnode-ledger`'s
//!    `LedgerState`) and to the mock runtime: same outcome for each call, and the same stakes,
//!    weights, bonds, outputs, controller and balances after every block.

use std::collections::BTreeMap;
use std::path::PathBuf;

use deepnode_consensus::{ControllerPolicy, Departed, EpochOutput, Fx, Params, State, Uid, Weight};
use deepnode_contract::{Backend, parse_state, render_output};
use deepnode_ledger::{AccountId, Call, Extrinsic, Genesis, H256, LedgerState, TxError, Wallet};
use deepnode_rules::RuleError;
use frame_support::BoundedVec;
use frame_support::traits::fungible::Inspect;
use proptest::prelude::*;
use serde_json::{Value, json};
use sp_runtime::DispatchError;

use crate::mock::{Balances, DeepNode, Rules, RuntimeOrigin, Test, new_test_ext, start_block};
use crate::{
    BondEntries, Bonds, Controller, Epochs, Error, MechanismParams, Neurons, NodeCount,
    WeightEntries, Weights,
};

/// The pallet's stored outputs of the last epoch over `n` nodes, as the epoch returns them.
fn stored_output(n: u32, loss: Fx) -> EpochOutput<Fx> {
    let neurons: Vec<_> = (0..n)
        .map(|u| Neurons::<Test>::get(u).expect("uid < n"))
        .collect();
    EpochOutput {
        rank: neurons.iter().map(|x| x.last.rank).collect(),
        trust: neurons.iter().map(|x| x.last.trust).collect(),
        consensus: neurons.iter().map(|x| x.last.consensus).collect(),
        incentive: neurons.iter().map(|x| x.last.incentive).collect(),
        dividends: neurons.iter().map(|x| x.last.dividends).collect(),
        loss,
        minted: neurons.iter().map(|x| x.last.emission).collect(),
        stake: neurons.iter().map(|x| x.stake).collect(),
        bonds: (0..n).map(|u| Bonds::<Test>::get(u).into_inner()).collect(),
    }
}

/// The vectors' fixed-point expectation format: reals as decimal strings of their bits.
fn fixed_json(out: &EpochOutput<Fx>) -> Value {
    let bits = |v: &[Fx]| {
        v.iter()
            .map(|x| x.to_bits().to_string())
            .collect::<Vec<_>>()
    };
    json!({
        "rank": bits(&out.rank),
        "trust": bits(&out.trust),
        "consensus": bits(&out.consensus),
        "incentive": bits(&out.incentive),
        "dividends": bits(&out.dividends),
        "loss": out.loss.to_bits().to_string(),
        "minted": out.minted,
        "stake": out.stake,
        "bonds": out.bonds.iter().map(|r| {
            r.iter().map(|&(u, b)| json!([u, b.to_bits().to_string()])).collect::<Vec<_>>()
        }).collect::<Vec<_>>(),
    })
}

/// The loss of the last `Epoch` event.
fn last_loss() -> Fx {
    crate::mock::System::events()
        .into_iter()
        .rev()
        .find_map(|r| match r.event {
            crate::mock::RuntimeEvent::DeepNode(crate::Event::Epoch { loss, .. }) => Some(loss),
            _ => None,
        })
        .expect("an epoch ran")
}

/// Why `state` is not one the ledger could hold, if it is not: a weights row a node could not
/// have set (`validate_row`), or a bonds row an epoch could not have written.
fn not_a_ledger_state(state: &State<Fx>) -> Option<String> {
    let n = state.stake.len();
    if n == 0 || n > 4096 {
        return Some(format!("{n} nodes"));
    }
    for (i, row) in state.weights.iter().enumerate() {
        if !row.is_empty()
            && let Err(e) = deepnode_rules::check_weights(&state.params, i, row, n, n)
        {
            return Some(format!("weights row {i}: {e}"));
        }
    }
    for (i, row) in state.bonds.iter().enumerate() {
        if let Err(e) = deepnode_consensus::canonicalize("bonds", i, row, n) {
            return Some(format!("bonds row {i}: {e}"));
        }
        if row.iter().any(|&(_, b)| b < Fx::ZERO) {
            return Some(format!("bonds row {i}: negative"));
        }
    }
    None
}

/// Sets `state` up in the mock through the calls (register, add_stake, set_weights; bonds,
/// which no call sets, written as earlier epochs leave them), at block 1 with tempo 1.
fn set_up(state: &State<Fx>) {
    let n = u32::try_from(state.stake.len()).expect("n fits");
    for (i, &stake) in state.stake.iter().enumerate() {
        let who = u64::try_from(i).expect("small") + 1;
        let uid = Uid::try_from(i).expect("small");
        DeepNode::register(RuntimeOrigin::signed(who)).expect("register");
        if stake > 0 {
            DeepNode::add_stake(RuntimeOrigin::signed(who), uid, stake).expect("stake");
        }
    }
    for (i, row) in state.weights.iter().enumerate() {
        if !row.is_empty() {
            let who = u64::try_from(i).expect("small") + 1;
            let uid = Uid::try_from(i).expect("small");
            let row = BoundedVec::truncate_from(row.clone());
            DeepNode::set_weights(RuntimeOrigin::signed(who), uid, row).expect("valid row");
        }
    }
    let mut entries = 0u32;
    for (i, row) in state.bonds.iter().enumerate() {
        let sorted =
            deepnode_consensus::canonicalize("bonds", i, row, state.stake.len()).expect("checked");
        entries += u32::try_from(sorted.len()).expect("small");
        Bonds::<Test>::insert(
            Uid::try_from(i).expect("small"),
            BoundedVec::truncate_from(sorted),
        );
    }
    BondEntries::<Test>::put(entries);
    // The rows' last updates, written as the calls would have left them at those blocks.
    for (i, &block) in state.last_update.iter().enumerate() {
        let uid = Uid::try_from(i).expect("small");
        Neurons::<Test>::mutate(uid, |x| {
            if let Some(x) = x {
                x.weights_block = Some(block);
            }
        });
    }
    assert_eq!(NodeCount::<Test>::get(), n);
}

/// The pallet block whose `on_initialize` runs epoch `e` of a vector (tempo 1): its epoch
/// closes the block before, which is the vector's `block + e` where the vector sets
/// `last_update`, and `e + 1` otherwise.
fn epoch_block(state: &State<Fx>, e: u64) -> u64 {
    if state.last_update.is_empty() {
        e + 2
    } else {
        state.block + e + 1
    }
}

fn vectors() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../conformance/vectors/epoch");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("the conformance vectors")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_valid_ledger_state_among_the_vectors_matches_the_cli_bit_for_bit() {
    let mut ran = Vec::new();
    let mut skipped = Vec::new();
    for path in vectors() {
        let v: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("JSON");
        let id = v["id"].as_str().expect("id").to_owned();
        let state = parse_state::<Fx>(&v["input"].to_string())
            .unwrap_or_else(|e| panic!("{id}: {e}: {}", v["input"]));
        if let Some(why) = not_a_ledger_state(&state) {
            skipped.push(format!("{id}: {why}"));
            continue;
        }
        // `deepnode epoch --backend fixed` on the same input.
        let cli = render_output(
            Backend::Fixed,
            &deepnode_consensus::epoch(&state).expect("ok"),
        );
        let n = u32::try_from(state.stake.len()).expect("n fits");
        let rules = Rules {
            max_nodes: n,
            max_weights_len: n,
            tempo: 1,
            params: state.params,
            endowments: state
                .stake
                .iter()
                .enumerate()
                .map(|(i, &s)| (u64::try_from(i).expect("small") + 1, u128::from(s) + 1))
                .collect(),
            ..Rules::default()
        };
        let expected = v["expected"]["fixed"]
            .as_array()
            .expect("fixed expectations");
        new_test_ext(&rules).execute_with(|| {
            set_up(&state);
            for (e, want) in expected.iter().enumerate() {
                start_block(epoch_block(&state, u64::try_from(e).expect("small")));
                assert_eq!(
                    Epochs::<Test>::get(),
                    u64::try_from(e).expect("small") + 1,
                    "{id}"
                );
                let got = stored_output(n, last_loss());
                if e == 0 {
                    assert_eq!(
                        render_output(Backend::Fixed, &got),
                        cli,
                        "{id}: against the CLI"
                    );
                }
                assert_eq!(&fixed_json(&got), want, "{id}: epoch {}", e + 1);
            }
        });
        ran.push(id);
    }
    eprintln!(
        "ran {} vectors; skipped {}: {skipped:#?}",
        ran.len(),
        skipped.len()
    );
    assert!(
        ran.len() >= 55,
        "most vectors are ledger states: ran {ran:?}"
    );
}

/// A call of the generated sequences: the ledger's calls, with the pallet's `serve` modality.
#[derive(Clone, Debug)]
enum Op {
    Register,
    AddStake(Uid, u64),
    RemoveStake(Uid, u64),
    SetWeights(Uid, Vec<(Uid, Weight)>),
    Serve(Uid, Vec<u8>, u8),
    Transfer(u64, u64),
}

/// A generated chain: its rules and blocks of `(signer, op)`.
#[derive(Clone, Debug)]
struct Case {
    max_nodes: u32,
    max_weights_len: u32,
    tempo: u64,
    immunity_period: u64,
    weights_rate_limit: u64,
    params: Params<Fx>,
    controller: ControllerPolicy,
    blocks: Vec<Vec<(u64, Op)>>,
}

const ACCOUNTS: u64 = 4;

fn op() -> impl Strategy<Value = Op> {
    let uid = 0..6u32;
    let amount = prop_oneof![Just(0u64), 1..700u64];
    let endpoint = prop_oneof![
        Just(b"127.0.0.1:7000".to_vec()),
        Just(b"[::1]:9".to_vec()),
        Just(Vec::new()),
        Just(vec![0xff]),
        Just(b"a\nb".to_vec()),
        Just(vec![b'a'; 257]),
    ];
    let row = proptest::collection::vec((0..7u32, 0..3u16), 0..8);
    prop_oneof![
        3 => Just(Op::Register),
        3 => (uid.clone(), amount.clone()).prop_map(|(u, a)| Op::AddStake(u, a)),
        2 => (uid.clone(), amount).prop_map(|(u, a)| Op::RemoveStake(u, a)),
        4 => (uid.clone(), row).prop_map(|(u, r)| Op::SetWeights(u, r)),
        // Codes 0..=3 are modalities; 4 and 5 are refused by both.
        1 => (uid, endpoint, 0..6u8).prop_map(|(u, e, m)| Op::Serve(u, e, m)),
        1 => (1..=ACCOUNTS, 1..600u64).prop_map(|(to, a)| Op::Transfer(to, a)),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    let rules = (1..=5u32, 1..=6u32, 1..=3u64, 0..=3u64, 0..=3u64);
    let params = (
        1..=2u32,
        any::<bool>(),
        prop_oneof![Just(None), Just(Some(3u64))],
        (
            prop_oneof![Just(0u64), 1..=4u64],
            prop_oneof![Just(None), Just(Some(1u64)), Just(Some(2u64))],
        ),
    );
    let controller = (0..=2u32, 1..=3u32, 0..=2u32);
    let block = proptest::collection::vec((1..=ACCOUNTS, op()), 0..6);
    (
        rules,
        params,
        controller,
        proptest::collection::vec(block, 1..12),
    )
        .prop_map(
            |(
                (max_nodes, max_weights_len, tempo, immunity_period, weights_rate_limit),
                p,
                c,
                blocks,
            )| {
                let (min_allowed_weights, mask_self_weights, ema, (cutoff, decay)) = p;
                let params = Params {
                    min_allowed_weights,
                    mask_self_weights,
                    bonds: match ema {
                        None => deepnode_consensus::BondMode::Cumulative,
                        Some(tenths) => deepnode_consensus::BondMode::Ema {
                            alpha: Fx::from_ratio(u128::from(tenths), 10),
                        },
                    },
                    activity_cutoff: cutoff,
                    departed: match decay {
                        None => Departed::Withhold,
                        Some(quarters) => Departed::Decay {
                            rate: Fx::from_ratio(u128::from(quarters), 4),
                        },
                    },
                    ..Params::default()
                };
                let controller = ControllerPolicy {
                    step: c.0,
                    cap: c.1.max(1),
                    floor: 1,
                    relax_after: c.2,
                };
                Case {
                    max_nodes,
                    max_weights_len,
                    tempo,
                    immunity_period,
                    weights_rate_limit,
                    params,
                    controller,
                    blocks,
                }
            },
        )
}

const ENDOWMENT: u64 = 1_000;

fn wallet(a: u64) -> Wallet {
    Wallet::from_seed([u8::try_from(a).expect("small"); 32])
}

/// The pallet's error for a call the ledger refused with `e`.
fn pallet_error(e: &TxError) -> DispatchError {
    let rule = match *e {
        TxError::NoSuchNode(uid) => RuleError::NoSuchNode(uid),
        TxError::NotOwner(uid) => RuleError::NotOwner(uid),
        TxError::ZeroAmount => RuleError::ZeroAmount,
        TxError::InsufficientBalance { have, need } => {
            RuleError::InsufficientBalance { have, need }
        }
        TxError::InsufficientStake { have, need } => RuleError::InsufficientStake { have, need },
        TxError::Overflow => RuleError::Overflow,
        TxError::RegistryFull { max } => RuleError::RegistryFull { max },
        TxError::InvalidWeights(e) => RuleError::InvalidWeights(e),
        TxError::RateLimited { last, next } => RuleError::RateLimited { last, next },
        TxError::BadEndpoint(e) => RuleError::BadEndpoint(e),
        TxError::BadModality(_) => return Error::<Test>::BadModality.into(),
        ref other => panic!("the ledger refused a call for a non-rule reason: {other}"),
    };
    Error::<Test>::from(rule).into()
}

/// Applies `op` signed by `who` to the mock; `None` when the call cannot even be encoded for
/// the pallet (a row or endpoint over its bound).
fn dispatch(who: u64, op: &Op) -> Option<Result<(), DispatchError>> {
    let o = RuntimeOrigin::signed(who);
    Some(match op {
        Op::Register => DeepNode::register(o),
        &Op::AddStake(uid, a) => DeepNode::add_stake(o, uid, a),
        &Op::RemoveStake(uid, a) => DeepNode::remove_stake(o, uid, a),
        Op::SetWeights(uid, row) => {
            DeepNode::set_weights(o, *uid, BoundedVec::try_from(row.clone()).ok()?)
        }
        Op::Serve(uid, e, m) => DeepNode::serve(o, *uid, BoundedVec::try_from(e.clone()).ok()?, *m),
        &Op::Transfer(to, a) => Balances::transfer_allow_death(o, to, u128::from(a)),
    })
}

fn ledger_call(op: &Op) -> Call {
    match op.clone() {
        Op::Register => Call::Register,
        Op::AddStake(uid, amount) => Call::AddStake { uid, amount },
        Op::RemoveStake(uid, amount) => Call::RemoveStake { uid, amount },
        Op::SetWeights(uid, weights) => Call::SetWeights { uid, weights },
        Op::Serve(uid, endpoint, modality) => Call::Serve {
            uid,
            endpoint,
            modality,
        },
        Op::Transfer(to, amount) => Call::Transfer {
            to: wallet(to).account(),
            amount,
        },
    }
}

/// The mock's state equals the ledger's: nodes (owner, stake, registration, last weights
/// block, endpoint, outputs), rows, parameters, controller, epochs, balances, issuance.
fn assert_same(ledger: &LedgerState, accounts: &BTreeMap<AccountId, u64>) {
    let n = u32::try_from(ledger.neurons.len()).expect("small");
    assert_eq!(NodeCount::<Test>::get(), n);
    let mut staked = 0u128;
    let (mut w_entries, mut b_entries) = (0u32, 0u32);
    for (i, l) in ledger.neurons.iter().enumerate() {
        let uid = Uid::try_from(i).expect("small");
        let p = Neurons::<Test>::get(uid).expect("same uids");
        assert_eq!(Some(&p.owner), accounts.get(&l.owner), "uid {uid} owner");
        assert_eq!(
            (p.stake, p.registered_at, p.weights_block),
            (l.stake, l.registered_at, l.weights_block),
            "uid {uid}"
        );
        assert_eq!(
            p.endpoint.as_slice(),
            l.endpoint.as_slice(),
            "uid {uid} endpoint"
        );
        // The pallet stores code 0 until a node serves; the ledger stores none.
        assert_eq!(p.modality, l.modality.unwrap_or(0), "uid {uid} modality");
        let last = (
            p.last.rank,
            p.last.trust,
            p.last.consensus,
            p.last.incentive,
            p.last.dividends,
            p.last.emission,
        );
        let want = (
            l.last.rank,
            l.last.trust,
            l.last.consensus,
            l.last.incentive,
            l.last.dividends,
            l.last.emission,
        );
        assert_eq!(last, want, "uid {uid} outputs");
        assert_eq!(
            Weights::<Test>::get(uid).into_inner(),
            ledger.weights[i],
            "uid {uid} weights"
        );
        assert_eq!(
            Bonds::<Test>::get(uid).into_inner(),
            ledger.bonds[i],
            "uid {uid} bonds"
        );
        staked += u128::from(l.stake);
        w_entries += u32::try_from(ledger.weights[i].len()).expect("small");
        b_entries += u32::try_from(ledger.bonds[i].len()).expect("small");
    }
    assert_eq!(
        (WeightEntries::<Test>::get(), BondEntries::<Test>::get()),
        (w_entries, b_entries)
    );
    assert_eq!(MechanismParams::<Test>::get(), ledger.params);
    assert_eq!(Controller::<Test>::get(), ledger.controller);
    assert_eq!(Epochs::<Test>::get(), ledger.epochs);
    for (account, &who) in accounts {
        let free = ledger.accounts.get(account).map_or(0, |a| a.free);
        assert_eq!(Balances::balance(&who), u128::from(free), "account {who}");
    }
    assert_eq!(Balances::balance(&DeepNode::account()), staked);
    assert_eq!(Balances::total_issuance(), ledger.total_issuance());
}

fn run_case(c: &Case) {
    let mut genesis = Genesis::default();
    genesis.config.max_nodes = c.max_nodes;
    genesis.config.max_weights_len = c.max_weights_len;
    genesis.config.tempo = c.tempo;
    genesis.config.immunity_period = c.immunity_period;
    genesis.config.weights_rate_limit = c.weights_rate_limit;
    genesis.config.controller = c.controller;
    genesis.params = c.params;
    genesis.endowments = (1..=ACCOUNTS)
        .map(|a| (wallet(a).account(), ENDOWMENT))
        .collect();
    let mut ledger = LedgerState::genesis(&genesis).expect("valid genesis");
    let accounts: BTreeMap<AccountId, u64> =
        (1..=ACCOUNTS).map(|a| (wallet(a).account(), a)).collect();
    let rules = Rules {
        max_nodes: c.max_nodes,
        max_weights_len: c.max_weights_len,
        tempo: c.tempo,
        immunity_period: c.immunity_period,
        weights_rate_limit: c.weights_rate_limit,
        params: c.params,
        controller: c.controller,
        endowments: (1..=ACCOUNTS).map(|a| (a, u128::from(ENDOWMENT))).collect(),
    };
    let chain = H256([0; 32]);
    new_test_ext(&rules).execute_with(|| {
        start_block(1);
        for (b, calls) in c.blocks.iter().enumerate() {
            // The mock is at block `block` already: the end of the previous one started it.
            let block = u64::try_from(b).expect("small") + 1;
            ledger.block = block;
            for (who, op) in calls {
                let w = wallet(*who);
                let nonce = ledger.nonce(&w.account());
                let ext = Extrinsic::sign(w.key(), &chain, nonce, ledger_call(op));
                let l = ledger.apply(&ext);
                match (dispatch(*who, op), &l, op) {
                    (None, Err(_), _) => {}
                    (None, Ok(_), _) => panic!("the ledger took {op:?}, over the pallet's bound"),
                    (Some(p), _, Op::Transfer(..)) => {
                        assert_eq!(p.is_ok(), l.is_ok(), "block {block}: {op:?}: {l:?} {p:?}")
                    }
                    (Some(p), Ok(_), _) => assert_eq!(p, Ok(()), "block {block}: {op:?}"),
                    (Some(p), Err(e), _) => {
                        assert_eq!(p, Err(pallet_error(e)), "block {block}: {op:?}: {e}")
                    }
                }
            }
            ledger.end_block();
            start_block(block + 1);
            assert_same(&ledger, &accounts);
        }
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn the_ledger_and_the_pallet_agree_on_every_call_sequence(c in case()) {
        run_case(&c);
    }
}

/// A fixed sequence with replacements, rate limits and several epochs (so the proptest is not
/// the only witness of those paths).
#[test]
fn a_full_set_several_epochs_and_a_replacement_agree() {
    let mut blocks = Vec::new();
    blocks.push(
        (1..=3)
            .map(|a| (a, Op::Register))
            .chain((1..=3).map(|a| (a, Op::AddStake(u32::try_from(a).expect("small") - 1, 300))))
            .collect(),
    );
    blocks.push(
        (1..=3)
            .map(|a| {
                (
                    a,
                    Op::SetWeights(u32::try_from(a).expect("small") - 1, vec![(0, 1), (1, 2)]),
                )
            })
            .collect(),
    );
    blocks.push(vec![]);
    blocks.push(vec![
        (4, Op::Register),
        (1, Op::SetWeights(0, vec![(2, 1)])),
    ]);
    blocks.push(vec![(3, Op::RemoveStake(2, 1)), (4, Op::AddStake(2, 10))]);
    blocks.push(vec![(4, Op::SetWeights(2, vec![(0, 1)]))]);
    blocks.push(vec![]);
    let c = Case {
        max_nodes: 3,
        max_weights_len: 3,
        tempo: 2,
        immunity_period: 1,
        weights_rate_limit: 2,
        params: Params::default(),
        controller: ControllerPolicy::default(),
        blocks,
    };
    run_case(&c);
}
