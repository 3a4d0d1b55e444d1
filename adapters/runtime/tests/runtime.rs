//! The runtime natively (`--features std`): its genesis presets build, the pallet's signed
//! extrinsics go through the runtime's transaction checks, fees and dispatch in real blocks
//! (Aura slot digest, timestamp inherent), the epoch runs at its block, and the metagraph API
//! returns what the pallet stores.

use deepnode_runtime::runtime_api::runtime_decl_for_deep_node_api::DeepNodeApiV1;
use deepnode_runtime::{
    AccountId, Block, Header, Runtime, RuntimeCall, RuntimeGenesisConfig, SLOT_DURATION_MS, TEMPO,
    TxExtension, UncheckedExtrinsic, genesis,
};
use frame::deps::codec::Encode;
use frame::deps::frame_system;
use frame::deps::sp_consensus_aura::{AURA_ENGINE_ID, Slot};
use frame::deps::sp_core::{Pair, sr25519};
use frame::deps::sp_genesis_builder::{self, PresetId};
use frame::deps::sp_io::TestExternalities;
use frame::deps::sp_runtime::generic::{Digest, DigestItem, Era, SignedPayload};
use frame::deps::sp_runtime::{MultiAddress, MultiSignature};
use frame::runtime::prelude::{Sr25519Keyring, build_state, get_preset};
use frame::traits::{Block as BlockT, Header as HeaderT};
use serde_json::Value;

type Executive = frame::runtime::prelude::Executive<
    Runtime,
    Block,
    frame_system::ChainContext<Runtime>,
    Runtime,
    deepnode_runtime::AllPalletsWithSystem,
>;

/// `patch` over `base`, as a node's chain-spec builder merges a preset into the default
/// config: objects key by key, anything else replaces.
fn merge(base: &mut Value, patch: Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, p) => *b = p,
    }
}

/// Externalities holding the genesis state of preset `name`: the default config with the
/// preset merged in, built by the runtime's GenesisBuilder entry points.
fn genesis_ext(name: &str) -> TestExternalities {
    let json = |id: Option<PresetId>| -> Value {
        let bytes = get_preset::<RuntimeGenesisConfig>(&id, genesis::preset).expect("exists");
        serde_json::from_slice(&bytes).expect("JSON")
    };
    let mut config = json(None);
    merge(&mut config, json(Some(PresetId::from(name))));
    let config = serde_json::to_vec(&config).expect("JSON");
    let mut ext = TestExternalities::default();
    ext.execute_with(|| build_state::<RuntimeGenesisConfig>(config).expect("the preset builds"));
    ext.commit_all().expect("genesis commits");
    ext
}

fn balance(who: &AccountId) -> u128 {
    pallet_balances::Pallet::<Runtime>::free_balance(who)
}

#[test]
fn every_preset_builds_and_funds_its_accounts() {
    let names: Vec<String> = genesis::preset_names()
        .iter()
        .map(|p| String::from_utf8(AsRef::<[u8]>::as_ref(p).to_vec()).expect("utf-8"))
        .collect();
    assert_eq!(names, ["development", "local_testnet"]);
    for (name, authorities) in [("development", 1), ("local_testnet", 2)] {
        genesis_ext(name).execute_with(|| {
            let alice = Sr25519Keyring::Alice.to_account_id();
            assert_eq!(balance(&alice), genesis::ENDOWMENT, "{name}");
            assert_eq!(pallet_sudo::Key::<Runtime>::get(), Some(alice), "{name}");
            assert_eq!(
                pallet_aura::Authorities::<Runtime>::get().len(),
                authorities,
                "{name}"
            );
            let m = Runtime::metagraph();
            assert_eq!((m.epochs, m.nodes.len(), m.tempo), (0, 0, TEMPO), "{name}");
        });
    }
    assert!(genesis::preset(&PresetId::from("no_such_preset")).is_none());
    assert_eq!(sp_genesis_builder::DEV_RUNTIME_PRESET, "development");
}

/// Builds blocks on one externalities: Aura slot digest, timestamp inherent, then the given
/// signed extrinsics of dev accounts.
struct Chain {
    ext: TestExternalities,
    number: u32,
    parent: <Block as BlockT>::Hash,
}

impl Chain {
    fn new() -> Chain {
        let mut ext = genesis_ext(sp_genesis_builder::DEV_RUNTIME_PRESET);
        let parent = ext.execute_with(|| frame_system::Pallet::<Runtime>::block_hash(0));
        Chain {
            ext,
            number: 0,
            parent,
        }
    }

    fn signed(signer: &sr25519::Pair, call: RuntimeCall) -> UncheckedExtrinsic {
        let who = AccountId::from(signer.public());
        let nonce = frame_system::Pallet::<Runtime>::account_nonce(&who);
        let tx_ext: TxExtension = (
            frame_system::CheckNonZeroSender::new(),
            frame_system::CheckSpecVersion::new(),
            frame_system::CheckTxVersion::new(),
            frame_system::CheckGenesis::new(),
            frame_system::CheckEra::from(Era::Immortal),
            frame_system::CheckNonce::from(nonce),
            frame_system::CheckWeight::new(),
            pallet_transaction_payment::ChargeTransactionPayment::from(0),
            frame_system::WeightReclaim::new(),
        );
        let payload = SignedPayload::new(call.clone(), tx_ext.clone()).expect("implicit data");
        let signature = payload.using_encoded(|p| signer.sign(p));
        UncheckedExtrinsic::new_signed(
            call,
            MultiAddress::Id(who),
            MultiSignature::Sr25519(signature),
            tx_ext,
        )
    }

    /// One block with `calls`; each extrinsic's dispatch outcome, in order.
    fn block(
        &mut self,
        calls: Vec<(Sr25519Keyring, RuntimeCall)>,
    ) -> Vec<Result<(), frame::deps::sp_runtime::DispatchError>> {
        self.number += 1;
        let number = self.number;
        let slot = Slot::from(u64::from(number));
        let digest = Digest {
            logs: vec![DigestItem::PreRuntime(AURA_ENGINE_ID, slot.encode())],
        };
        let header = Header::new(
            number,
            Default::default(),
            Default::default(),
            self.parent,
            digest,
        );
        let (outcomes, hash) = self.ext.execute_with(|| {
            Executive::initialize_block(&header);
            let now = u64::from(number) * SLOT_DURATION_MS;
            let inherent =
                UncheckedExtrinsic::new_bare(RuntimeCall::Timestamp(pallet_timestamp::Call::set {
                    now,
                }));
            Executive::apply_extrinsic(inherent)
                .expect("valid")
                .expect("dispatched");
            let outcomes = calls
                .into_iter()
                .map(|(signer, call)| {
                    Executive::apply_extrinsic(Self::signed(&signer.pair(), call))
                        .expect("a valid transaction")
                })
                .collect();
            let header = Executive::finalize_block();
            (outcomes, header.hash())
        });
        self.parent = hash;
        outcomes
    }
}

/// A weights row of all weight on `uid`.
fn row(uid: u32) -> pallet_deepnode::WeightsRow<Runtime> {
    vec![(uid, u16::MAX)]
        .try_into()
        .expect("within MaxWeightsLen")
}

fn deepnode(call: pallet_deepnode::Call<Runtime>) -> RuntimeCall {
    RuntimeCall::DeepNode(call)
}

#[test]
fn the_pallets_extrinsics_dispatch_through_the_runtime_and_the_epoch_runs() {
    use Sr25519Keyring::{Alice, Bob};
    let mut chain = Chain::new();
    let alice = Alice.to_account_id();
    let outcomes = chain.block(vec![
        (Alice, deepnode(pallet_deepnode::Call::register {})),
        (Bob, deepnode(pallet_deepnode::Call::register {})),
    ]);
    assert_eq!(outcomes, [Ok(()), Ok(())]);
    // The length fee (one unit a byte) and the registration are paid from Alice's balance.
    chain
        .ext
        .execute_with(|| assert!(balance(&alice) < genesis::ENDOWMENT));
    let outcomes = chain.block(vec![
        (
            Alice,
            deepnode(pallet_deepnode::Call::add_stake {
                uid: 0,
                amount: 1_000_000,
            }),
        ),
        (
            Bob,
            deepnode(pallet_deepnode::Call::add_stake {
                uid: 1,
                amount: 1_000_000,
            }),
        ),
        (
            Alice,
            deepnode(pallet_deepnode::Call::serve {
                uid: 0,
                endpoint: b"127.0.0.1:7000".to_vec().try_into().unwrap(),
                modality: 1,
            }),
        ),
        (
            Alice,
            deepnode(pallet_deepnode::Call::set_weights {
                uid: 0,
                weights: row(1),
            }),
        ),
        (
            Bob,
            deepnode(pallet_deepnode::Call::set_weights {
                uid: 1,
                weights: row(0),
            }),
        ),
    ]);
    assert_eq!(outcomes.len(), 5);
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    // Bob may not stake on Alice's node: the pallet's error comes back through the runtime.
    let outcomes = chain.block(vec![(
        Bob,
        deepnode(pallet_deepnode::Call::add_stake { uid: 0, amount: 1 }),
    )]);
    assert_eq!(
        outcomes[0].map_err(|e| e.stripped()),
        Err(frame::deps::sp_runtime::DispatchError::from(
            pallet_deepnode::Error::<Runtime>::NotOwner
        )
        .stripped())
    );
    while u64::from(chain.number) <= TEMPO {
        chain.block(vec![]);
    }
    chain.ext.execute_with(|| {
        let m = Runtime::metagraph();
        assert_eq!(m.epochs, 1);
        assert_eq!(m.block, u64::from(chain.number));
        assert_eq!(m.nodes.len(), 2);
        assert_eq!(m.nodes[0].owner, alice);
        assert_eq!(m.nodes[0].endpoint.as_slice(), b"127.0.0.1:7000");
        assert_eq!(m.nodes[1].owner, Bob.to_account_id());
        let emitted: u64 = m.nodes.iter().map(|n| n.last.emission).sum();
        assert!(emitted > 0, "the epoch emitted nothing: {m:?}");
        assert_eq!(
            m.nodes,
            (0..2)
                .map(|u| pallet_deepnode::Neurons::<Runtime>::get(u).unwrap())
                .collect::<Vec<_>>()
        );
    });
}

#[test]
fn an_account_without_funds_cannot_pay_the_fee() {
    let mut chain = Chain::new();
    let header = Header::new(
        1,
        Default::default(),
        Default::default(),
        chain.parent,
        Digest {
            logs: vec![DigestItem::PreRuntime(
                AURA_ENGINE_ID,
                Slot::from(1u64).encode(),
            )],
        },
    );
    chain.ext.execute_with(|| {
        Executive::initialize_block(&header);
        // A key no preset funds.
        let pauper = sr25519::Pair::from_seed(&[7; 32]);
        assert_eq!(balance(&AccountId::from(pauper.public())), 0);
        let xt = Chain::signed(&pauper, deepnode(pallet_deepnode::Call::register {}));
        let refused = Executive::apply_extrinsic(xt).expect_err("no funds, no fee");
        assert_eq!(
            refused,
            frame::deps::sp_runtime::transaction_validity::InvalidTransaction::Payment.into()
        );
    });
}
