//! frame-benchmarking (v2) benchmarks of every call and of the epoch, each in its worst case.
//! A runtime runs them with its node's `benchmark pallet` command; `weights.rs` holds this
//! machine's native measurements (README: "Weights").

use alloc::vec::Vec;

use deepnode_consensus::{Fx, Uid};
use frame_benchmarking::v2::*;
use frame_support::BoundedVec;
use frame_support::traits::Get;
use frame_support::traits::fungible::Mutate;
use frame_system::RawOrigin;
use sp_runtime::SaturatedConversion;

use crate::*;

/// A funded account for node `i`.
fn funded<T: Config>(i: u32) -> T::AccountId {
    let who: T::AccountId = account("node", i, 0);
    // Whatever the existential deposit, 10^12 units cover it and any stake moved here.
    let _ = T::Currency::set_balance(&who, 1_000_000_000_000u64.into());
    who
}

/// `n` registered nodes (uids `0..n`, node `i` owned by `funded(i)`, each with stake 100 and
/// a rank of 0, registered at block 0) whose weights and bonds rows name uids `0..k` (so every
/// row names uid 0).
fn network<T: Config>(n: u32, k: u32) {
    let k = k.min(n).min(T::MaxWeightsLen::get());
    for uid in 0..n {
        Neurons::<T>::insert(
            uid,
            Neuron {
                owner: funded::<T>(uid),
                stake: 100,
                registered_at: 0,
                weights_block: Some(0),
                endpoint: Endpoint::default(),
                modality: 0,
                last: NeuronStats::default(),
            },
        );
        let w: Vec<(Uid, u16)> = (0..k).map(|j| (j, 1)).collect();
        let b: Vec<(Uid, Fx)> = (0..k).map(|j| (j, Fx::ONE)).collect();
        Weights::<T>::insert(uid, WeightsRow::<T>::truncate_from(w));
        Bonds::<T>::insert(uid, BondsRow::<T>::truncate_from(b));
    }
    let entries = n.saturating_mul(k);
    NodeCount::<T>::put(n);
    WeightEntries::<T>::put(entries);
    BondEntries::<T>::put(entries);
    let stake = u64::from(n).saturating_mul(100);
    let _ = T::Currency::set_balance(&Pallet::<T>::account(), stake.into());
}

/// The benchmarks (frame-benchmarking v2).
#[benchmarks]
pub mod benchmarks {
    use super::*;

    /// The replace path: a full set of `MaxNodes` nodes, all past immunity, every row naming
    /// the evicted uid.
    #[benchmark]
    fn register(k: Linear<1, 64>) {
        network::<T>(T::MaxNodes::get(), k);
        let block = T::ImmunityPeriod::get().saturating_add(1);
        frame_system::Pallet::<T>::set_block_number(block.saturated_into());
        let caller = funded::<T>(u32::MAX);
        #[extrinsic_call]
        _(RawOrigin::Signed(caller));
        assert_eq!(Neurons::<T>::get(0).map(|n| n.stake), Some(0));
    }

    #[benchmark]
    fn add_stake() {
        network::<T>(1, 1);
        let owner = funded::<T>(0);
        #[extrinsic_call]
        _(RawOrigin::Signed(owner), 0, 1_000);
        assert_eq!(Neurons::<T>::get(0).map(|n| n.stake), Some(1_100));
    }

    #[benchmark]
    fn remove_stake() {
        network::<T>(1, 1);
        let owner = funded::<T>(0);
        #[extrinsic_call]
        _(RawOrigin::Signed(owner), 0, 50);
        assert_eq!(Neurons::<T>::get(0).map(|n| n.stake), Some(50));
    }

    /// An unsorted row of `l` entries (validate_row's slow path) over `l` nodes.
    #[benchmark]
    fn set_weights(l: Linear<1, 4096>) {
        let l = l
            .min(T::MaxWeightsLen::get())
            .min(T::MaxNodes::get())
            .max(1);
        network::<T>(l, 0);
        let owner = funded::<T>(0);
        let row: Vec<(Uid, u16)> = (0..l).rev().map(|j| (j, 1)).collect();
        let row = WeightsRow::<T>::truncate_from(row);
        let block = T::WeightsRateLimit::get().saturating_add(1);
        frame_system::Pallet::<T>::set_block_number(block.saturated_into());
        #[extrinsic_call]
        _(RawOrigin::Signed(owner), 0, row);
        assert_eq!(
            Weights::<T>::decode_len(0),
            Some(usize::try_from(l).unwrap_or(0))
        );
    }

    #[benchmark]
    fn serve() {
        network::<T>(1, 1);
        let owner = funded::<T>(0);
        let endpoint: Endpoint = BoundedVec::truncate_from(alloc::vec![b'a'; 256]);
        #[extrinsic_call]
        _(RawOrigin::Signed(owner), 0, endpoint, 3);
        assert_eq!(Neurons::<T>::get(0).map(|n| n.modality), Some(3));
    }

    /// `n` nodes with `k` entries per weights and bonds row.
    #[benchmark]
    fn epoch(n: Linear<1, 4096>, k: Linear<1, 1024>) {
        let n = n.min(T::MaxNodes::get());
        network::<T>(n, k);
        #[block]
        {
            Pallet::<T>::run_epoch();
        }
        assert_eq!(Epochs::<T>::get(), 1);
    }

    /// Runs benchmark `name` once with `components`, timed by `recording` (the native
    /// measurement behind `weights.rs`).
    #[cfg(test)]
    pub(crate) fn instance<T: Config>(
        name: &str,
        recording: &mut impl Recording,
        components: &[(BenchmarkParameter, u32)],
    ) -> Result<(), BenchmarkError> {
        match name {
            "register" => BenchmarkingSetup::<T>::instance(&register, recording, components, true),
            "add_stake" => {
                BenchmarkingSetup::<T>::instance(&add_stake, recording, components, true)
            }
            "remove_stake" => {
                BenchmarkingSetup::<T>::instance(&remove_stake, recording, components, true)
            }
            "set_weights" => {
                BenchmarkingSetup::<T>::instance(&set_weights, recording, components, true)
            }
            "serve" => BenchmarkingSetup::<T>::instance(&serve, recording, components, true),
            "epoch" => BenchmarkingSetup::<T>::instance(&epoch, recording, components, true),
            _ => Err("no such benchmark".into()),
        }
    }

    impl_benchmark_test_suite!(
        Pallet,
        crate::mock::new_test_ext(&crate::mock::Rules::default()),
        crate::mock::Test
    );
}
