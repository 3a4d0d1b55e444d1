//! A mock runtime: frame-system, pallet-balances (the currency, `u128` balances, existential
//! deposit 1) and this pallet. The chain rules are thread-local statics so that each test
//! picks its own.

use deepnode_consensus::{ControllerPolicy, Fx, Params};
use frame_support::traits::Hooks;
use frame_support::{PalletId, derive_impl, parameter_types};
use sp_runtime::BuildStorage;

use crate as pallet_deepnode;

type Block = frame_system::mocking::MockBlock<Test>;

frame_support::construct_runtime!(
    pub enum Test {
        System: frame_system,
        Balances: pallet_balances,
        DeepNode: pallet_deepnode,
    }
);

#[derive_impl(frame_system::config_preludes::TestDefaultConfig)]
impl frame_system::Config for Test {
    type Block = Block;
    type AccountData = pallet_balances::AccountData<u128>;
}

#[derive_impl(pallet_balances::config_preludes::TestDefaultConfig)]
impl pallet_balances::Config for Test {
    type Balance = u128;
    type ExistentialDeposit = frame_support::traits::ConstU128<1>;
    type AccountStore = System;
}

parameter_types! {
    pub const DeepNodePalletId: PalletId = PalletId(*b"deepnode");
    pub static MaxNodes: u32 = 8;
    pub static MaxWeightsLen: u32 = 8;
    pub static Tempo: u64 = 2;
    pub static ImmunityPeriod: u64 = 1;
    pub static WeightsRateLimit: u64 = 3;
}

impl pallet_deepnode::Config for Test {
    type Currency = Balances;
    type PalletId = DeepNodePalletId;
    type MaxNodes = MaxNodes;
    type MaxWeightsLen = MaxWeightsLen;
    type Tempo = Tempo;
    type ImmunityPeriod = ImmunityPeriod;
    type WeightsRateLimit = WeightsRateLimit;
    type WeightInfo = ();
}

/// The chain rules of one test (set before its externalities are built).
#[derive(Clone, Debug)]
pub struct Rules {
    pub max_nodes: u32,
    pub max_weights_len: u32,
    pub tempo: u64,
    pub immunity_period: u64,
    pub weights_rate_limit: u64,
    pub params: Params<Fx>,
    pub controller: ControllerPolicy,
    pub endowments: Vec<(u64, u128)>,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            max_nodes: 8,
            max_weights_len: 8,
            tempo: 2,
            immunity_period: 1,
            weights_rate_limit: 3,
            params: Params::default(),
            controller: ControllerPolicy::default(),
            endowments: (1..=4).map(|a| (a, 1_000)).collect(),
        }
    }
}

/// Externalities at block 1 for `rules`.
pub fn new_test_ext(rules: &Rules) -> sp_io::TestExternalities {
    MaxNodes::set(rules.max_nodes);
    MaxWeightsLen::set(rules.max_weights_len);
    Tempo::set(rules.tempo);
    ImmunityPeriod::set(rules.immunity_period);
    WeightsRateLimit::set(rules.weights_rate_limit);
    let storage = RuntimeGenesisConfig {
        system: Default::default(),
        balances: pallet_balances::GenesisConfig {
            balances: rules.endowments.clone(),
            ..Default::default()
        },
        deep_node: pallet_deepnode::GenesisConfig {
            params: rules.params,
            controller: rules.controller,
            _config: Default::default(),
        },
    }
    .build_storage()
    .expect("mock genesis builds");
    let mut ext = sp_io::TestExternalities::new(storage);
    ext.execute_with(|| System::set_block_number(1));
    ext
}

/// Moves to block `b` and runs the pallet's `on_initialize` (the epoch when due).
pub fn start_block(b: u64) {
    System::set_block_number(b);
    DeepNode::on_initialize(b);
}
