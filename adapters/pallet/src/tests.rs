//! The calls, their errors and events, and the epoch, on the mock runtime.

use frame_support::traits::fungible::Inspect;
use frame_support::{BoundedVec, assert_noop, assert_ok};

use crate::mock::{
    Balances, DeepNode, Rules, RuntimeOrigin, System, Test, new_test_ext, start_block,
};
use crate::{BondEntries, Bonds, Error, Event, Neurons, NodeCount, WeightEntries, Weights};

fn origin(a: u64) -> RuntimeOrigin {
    RuntimeOrigin::signed(a)
}

fn row(entries: &[(u32, u16)]) -> crate::WeightsRow<Test> {
    BoundedVec::truncate_from(entries.to_vec())
}

fn endpoint(bytes: &[u8]) -> crate::Endpoint {
    BoundedVec::truncate_from(bytes.to_vec())
}

#[test]
fn stake_moves_between_balance_and_node_through_the_currency() {
    new_test_ext(&Rules::default()).execute_with(|| {
        assert_ok!(DeepNode::register(origin(1)));
        assert_ok!(DeepNode::add_stake(origin(1), 0, 600));
        assert_noop!(
            DeepNode::add_stake(origin(1), 0, 600),
            Error::<Test>::InsufficientBalance
        );
        assert_noop!(
            DeepNode::add_stake(origin(1), 0, 0),
            Error::<Test>::ZeroAmount
        );
        assert_noop!(
            DeepNode::remove_stake(origin(2), 0, 1),
            Error::<Test>::NotOwner
        );
        assert_noop!(
            DeepNode::add_stake(origin(1), 5, 1),
            Error::<Test>::NoSuchNode
        );
        assert_noop!(
            DeepNode::remove_stake(origin(1), 0, 601),
            Error::<Test>::InsufficientStake
        );
        assert_ok!(DeepNode::remove_stake(origin(1), 0, 100));
        assert_eq!(Neurons::<Test>::get(0).map(|n| n.stake), Some(500));
        assert_eq!(Balances::balance(&1), 500);
        assert_eq!(Balances::balance(&DeepNode::account()), 500);
        assert_eq!(Balances::total_issuance(), 4_000);
        System::assert_last_event(
            Event::StakeRemoved {
                uid: 0,
                amount: 100,
            }
            .into(),
        );
    });
}

#[test]
fn weights_are_validated_rate_limited_and_stored_sorted() {
    new_test_ext(&Rules::default()).execute_with(|| {
        for a in 1..=3 {
            assert_ok!(DeepNode::register(origin(a)));
        }
        assert_noop!(
            DeepNode::set_weights(origin(1), 0, row(&[(5, 1)])),
            Error::<Test>::WeightUidOutOfRange
        );
        assert_noop!(
            DeepNode::set_weights(origin(1), 0, row(&[(1, 1), (1, 2)])),
            Error::<Test>::DuplicateWeightUid
        );
        assert_noop!(
            DeepNode::set_weights(origin(1), 0, row(&[(1, 0)])),
            Error::<Test>::TooFewWeights
        );
        assert_noop!(
            DeepNode::set_weights(origin(1), 0, row(&[(0, 1), (1, 1), (2, 1), (2, 2)])),
            Error::<Test>::WeightsRowTooLong
        );
        assert_ok!(DeepNode::set_weights(origin(1), 0, row(&[(2, 1), (1, 3)])));
        assert_eq!(Weights::<Test>::get(0).into_inner(), vec![(1, 3), (2, 1)]);
        assert_eq!(WeightEntries::<Test>::get(), 2);
        start_block(3);
        assert_noop!(
            DeepNode::set_weights(origin(1), 0, row(&[(1, 1)])),
            Error::<Test>::RateLimited
        );
        start_block(4);
        assert_ok!(DeepNode::set_weights(origin(1), 0, row(&[(1, 1)])));
        assert_eq!(WeightEntries::<Test>::get(), 1);
        System::assert_last_event(Event::WeightsSet { uid: 0, len: 1 }.into());
    });
}

#[test]
fn endpoints_and_modalities_are_checked() {
    new_test_ext(&Rules::default()).execute_with(|| {
        assert_ok!(DeepNode::register(origin(1)));
        let serve = |e: &[u8], m| DeepNode::serve(origin(1), 0, endpoint(e), m);
        assert_noop!(serve(b"", 0), Error::<Test>::EmptyEndpoint);
        assert_noop!(serve(&[0xff], 0), Error::<Test>::EndpointNotUtf8);
        assert_noop!(serve(b"a\nb", 0), Error::<Test>::EndpointControlCharacters);
        assert_noop!(serve(b"127.0.0.1:7000", 200), Error::<Test>::BadModality);
        assert_ok!(serve(b"127.0.0.1:7000", 1));
        let n = Neurons::<Test>::get(0).expect("registered");
        assert_eq!(
            (n.endpoint.as_slice(), n.modality),
            (&b"127.0.0.1:7000"[..], 1)
        );
        System::assert_last_event(
            Event::Served {
                uid: 0,
                modality: 1,
            }
            .into(),
        );
    });
}

#[test]
fn epoch_mints_and_a_full_set_replaces_the_lowest_rank() {
    let rules = Rules {
        max_nodes: 3,
        ..Rules::default()
    };
    new_test_ext(&rules).execute_with(|| {
        for a in 1..=3u64 {
            let uid = u32::try_from(a - 1).expect("small");
            assert_ok!(DeepNode::register(origin(a)));
            assert_ok!(DeepNode::add_stake(origin(a), uid, 100));
        }
        for a in 1..=3u64 {
            let uid = u32::try_from(a - 1).expect("small");
            assert_ok!(DeepNode::set_weights(
                origin(a),
                uid,
                row(&[(0, 1), (1, 1)])
            ));
        }
        start_block(2);
        assert_eq!(
            crate::Epochs::<Test>::get(),
            0,
            "block 1 is not an epoch block"
        );
        let before = Balances::total_issuance();
        start_block(3);
        assert_eq!(crate::Epochs::<Test>::get(), 1);
        let minted: u64 = (0..3)
            .filter_map(Neurons::<Test>::get)
            .map(|n| n.last.emission)
            .sum();
        assert!(minted > 0 && minted <= 1_000_000_000);
        assert_eq!(Balances::total_issuance(), before + u128::from(minted));
        let staked: u64 = (0..3)
            .filter_map(Neurons::<Test>::get)
            .map(|n| n.stake)
            .sum();
        assert_eq!(Balances::balance(&DeepNode::account()), u128::from(staked));
        assert!(BondEntries::<Test>::get() > 0);
        let rank = |u| Neurons::<Test>::get(u).map(|n| n.last.rank);
        assert!(rank(2) < rank(0));
        let stake2 = Neurons::<Test>::get(2).map_or(0, |n| n.stake);
        assert_ok!(DeepNode::register(origin(4)));
        System::assert_last_event(
            Event::Registered {
                uid: 2,
                owner: 4,
                replaced: Some(3),
                returned: stake2,
            }
            .into(),
        );
        assert_eq!(Balances::balance(&3), 900 + u128::from(stake2));
        for u in 0..3 {
            assert!(Weights::<Test>::get(u).iter().all(|&(j, _)| j != 2));
            assert!(Bonds::<Test>::get(u).iter().all(|&(j, _)| j != 2));
        }
        assert_eq!(NodeCount::<Test>::get(), 3);
        crate::mock::ImmunityPeriod::set(10);
        assert_noop!(DeepNode::register(origin(1)), Error::<Test>::RegistryFull);
    });
}

#[test]
fn genesis_refuses_what_the_ledger_refuses() {
    let bad = Rules {
        controller: deepnode_consensus::ControllerPolicy {
            floor: 5,
            cap: 4,
            ..Default::default()
        },
        ..Rules::default()
    };
    assert!(std::panic::catch_unwind(|| new_test_ext(&bad)).is_err());
}

/// The README's 2 s block claim, on the weights the pallet declares (RocksDB's `DbWeight`).
#[test]
fn the_declared_epoch_weight_fits_a_2s_block_up_to_the_stated_size() {
    use crate::WeightInfo;
    let two_seconds = 2_000_000_000_000u64;
    let epoch = |n, k| <() as WeightInfo>::epoch(n, k).ref_time();
    assert!(epoch(6_818, 64) <= two_seconds && epoch(6_819, 64) > two_seconds);
    assert!(epoch(2_740, 2_740) <= two_seconds && epoch(2_741, 2_741) > two_seconds);
    assert!(epoch(7_005, 16) <= two_seconds && epoch(7_006, 16) > two_seconds);
    assert!(epoch(6_160, 256) <= two_seconds && epoch(6_161, 256) > two_seconds);
}

#[test]
fn the_default_genesis_is_the_embedded_ledgers() {
    let g = crate::GenesisConfig::<crate::mock::Test>::default();
    let tempo =
        <<crate::mock::Test as crate::Config>::Tempo as frame_support::traits::Get<u64>>::get();
    assert_eq!(g.params, deepnode_rules::default_params(tempo));
    assert!(g.params.activity_cutoff > 0);
    assert_eq!(g.params.departed, deepnode_consensus::Departed::Withhold);
}

#[test]
fn the_metagraph_holds_the_rules_and_every_node_by_uid() {
    let rules = Rules::default();
    new_test_ext(&rules).execute_with(|| {
        let empty = DeepNode::metagraph();
        assert_eq!(empty.nodes, Vec::new());
        assert_eq!(empty.block, 1);
        assert_ok!(DeepNode::register(origin(3)));
        assert_ok!(DeepNode::register(origin(1)));
        assert_ok!(DeepNode::serve(origin(1), 1, endpoint(b"10.0.0.1:7000"), 1));
        start_block(2);
        let m = DeepNode::metagraph();
        assert_eq!(
            (
                m.block,
                m.epochs,
                m.tempo,
                m.weights_rate_limit,
                m.immunity_period
            ),
            (
                2,
                0,
                rules.tempo,
                rules.weights_rate_limit,
                rules.immunity_period
            )
        );
        assert_eq!(
            (m.max_nodes, m.max_weights_len),
            (rules.max_nodes, rules.max_weights_len)
        );
        assert_eq!(m.min_allowed_weights, rules.params.min_allowed_weights);
        let owners: Vec<u64> = m.nodes.iter().map(|n| n.owner).collect();
        assert_eq!(owners, [3, 1]);
        assert_eq!(m.nodes[1].endpoint.as_slice(), b"10.0.0.1:7000");
        assert_eq!(Some(&m.nodes[1]), Neurons::<Test>::get(1).as_ref());
        start_block(3);
        assert_eq!(DeepNode::metagraph().epochs, 1);
    });
}
