#![doc = include_str!("../README.md")]
#![cfg_attr(not(feature = "std"), no_std)]
// The hand-written code denies clippy's `arithmetic_side_effects`, `indexing_slicing`,
// `unwrap_used`, `expect_used` and `float_arithmetic` item by item: FRAME's
// macros generate code (metadata, storage info) that calls `expect`, so a crate-level deny
// would refuse theirs.

extern crate alloc;

#[cfg(feature = "runtime-benchmarks")]
pub mod benchmarking;
#[cfg(test)]
mod differential;
#[cfg(all(test, feature = "runtime-benchmarks"))]
mod measure;
#[cfg(test)]
mod mock;
#[cfg(test)]
mod proof;
#[cfg(test)]
mod tests;
pub mod weights;

pub use pallet::*;
pub use weights::WeightInfo;

/// A genesis field as the SCALE bytes its type's codec (owned by `deepnode-types` and
/// `deepnode-consensus`) writes, so the chain spec needs no second serializer of them.
#[deny(
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::float_arithmetic
)]
mod scale_bytes {
    use alloc::vec::Vec;

    use parity_scale_codec::{Decode, DecodeAll, Encode};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer, V: Encode>(v: &V, s: S) -> Result<S::Ok, S::Error> {
        v.encode().serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>, V: Decode>(d: D) -> Result<V, D::Error> {
        let bytes = Vec::<u8>::deserialize(d)?;
        V::decode_all(&mut bytes.as_slice()).map_err(serde::de::Error::custom)
    }
}

#[frame_support::pallet]
pub mod pallet {
    use alloc::vec::Vec;

    use deepnode_consensus::{
        ControllerPolicy, ControllerState, Fx, Params, State, Uid, Weight as RawWeight,
    };
    use deepnode_rules::{Candidate, EndpointError, MAX_ENDPOINT_BYTES, RuleError, Slot};
    /// A neuron's outputs from the last epoch it took part in (owned by `deepnode-types`, as
    /// the embedded ledger stores them).
    pub use deepnode_types::NeuronStats;
    use frame_support::PalletId;
    use frame_support::pallet_prelude::*;
    use frame_support::traits::fungible::{Inspect, Mutate};
    use frame_support::traits::tokens::{Fortitude, Preservation};
    use frame_system::pallet_prelude::*;
    use sp_runtime::SaturatedConversion;
    use sp_runtime::traits::AccountIdConversion;

    use crate::WeightInfo;

    /// The runtime's balance type, as the configured currency names it.
    pub type BalanceOf<T> =
        <<T as Config>::Currency as Inspect<<T as frame_system::Config>::AccountId>>::Balance;

    /// A published endpoint: at most [`MAX_ENDPOINT_BYTES`] (256) bytes.
    pub type Endpoint = BoundedVec<u8, ConstU32<256>>;

    // The bound of `Endpoint` is the shared rule's.
    const _: () = assert!(MAX_ENDPOINT_BYTES == 256);

    /// A stored weights row: `(uid, raw weight)` sorted by uid, at most `MaxWeightsLen`.
    pub type WeightsRow<T> = BoundedVec<(Uid, RawWeight), <T as Config>::MaxWeightsLen>;

    /// A stored bonds row: `(uid, B_ij)` sorted by uid, at most `MaxNodes`.
    pub type BondsRow<T> = BoundedVec<(Uid, Fx), <T as Config>::MaxNodes>;

    /// The pallet.
    #[pallet::pallet]
    pub struct Pallet<T>(_);

    /// What a runtime provides.
    #[pallet::config]
    pub trait Config: frame_system::Config<RuntimeEvent: From<Event<Self>>> {
        /// The currency stake is moved in and minted into; its balance holds any `u64` (stake
        /// is `u64` raw units, as in `deepnode-consensus`).
        type Currency: Mutate<Self::AccountId, Balance: From<u64>>;
        /// The account that holds all stake: `PalletId`'s derived account.
        #[pallet::constant]
        type PalletId: Get<PalletId>;
        /// The cap on registered nodes; when full, registration replaces the lowest-ranked
        /// node past its immunity period.
        #[pallet::constant]
        type MaxNodes: Get<u32>;
        /// Most entries in a weights row (also at most `n`).
        #[pallet::constant]
        type MaxWeightsLen: Get<u32>;
        /// An epoch runs after every block whose number is a positive multiple of `Tempo`
        /// (at the start of the next block). 0: never.
        #[pallet::constant]
        type Tempo: Get<u64>;
        /// Blocks after its registration during which a node cannot be replaced.
        #[pallet::constant]
        type ImmunityPeriod: Get<u64>;
        /// A node may set weights at most once per this many blocks.
        #[pallet::constant]
        type WeightsRateLimit: Get<u64>;
        /// Weights of the calls and of the epoch (see `weights.rs`).
        type WeightInfo: WeightInfo;
    }

    /// A registered node's entry at its uid.
    #[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, MaxEncodedLen, TypeInfo)]
    pub struct Neuron<AccountId> {
        /// The only account that may act for it.
        pub owner: AccountId,
        /// `stake[i]` of SPEC.md, raw units (held by the pallet's account).
        pub stake: u64,
        /// Block of registration.
        pub registered_at: u64,
        /// Block of its last accepted weights row.
        pub weights_block: Option<u64>,
        /// Its published endpoint (UTF-8; empty until served).
        pub endpoint: Endpoint,
        /// The `deepnode_wire::Modality` code it serves (0 until served).
        pub modality: u8,
        /// Its outputs from the last epoch.
        pub last: NeuronStats,
    }

    /// The whole metagraph at one block, as a runtime API returns it in one call: the chain
    /// rules a node obeys and every node, indexed by uid.
    #[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, TypeInfo)]
    pub struct Metagraph<AccountId> {
        /// The current block.
        pub block: u64,
        /// Epochs run so far.
        pub epochs: u64,
        /// Blocks per epoch.
        pub tempo: u64,
        /// A node may set weights at most once per this many blocks.
        pub weights_rate_limit: u64,
        /// Blocks after registration during which a node cannot be replaced.
        pub immunity_period: u64,
        /// Most registered nodes.
        pub max_nodes: u32,
        /// Most entries in a weights row.
        pub max_weights_len: u32,
        /// The controller's current `min_allowed_weights`.
        pub min_allowed_weights: u32,
        /// Every node; `nodes[uid]`.
        pub nodes: Vec<Neuron<AccountId>>,
    }

    /// Mechanism parameters; `min_allowed_weights` is the controller's current value.
    #[pallet::storage]
    pub type MechanismParams<T> = StorageValue<_, Params<Fx>, ValueQuery>;

    /// The controller of `min_allowed_weights` (fixed at genesis).
    #[pallet::storage]
    pub type Policy<T> = StorageValue<_, ControllerPolicy, ValueQuery>;

    /// The controller's memory.
    #[pallet::storage]
    pub type Controller<T> = StorageValue<_, ControllerState, ValueQuery>;

    /// Epochs run so far.
    #[pallet::storage]
    pub type Epochs<T> = StorageValue<_, u64, ValueQuery>;

    /// Registered nodes, `n`: uids are `0..n`.
    #[pallet::storage]
    pub type NodeCount<T> = StorageValue<_, u32, ValueQuery>;

    /// Entries over all weights rows (sizes the epoch's and registration's weight).
    #[pallet::storage]
    pub type WeightEntries<T> = StorageValue<_, u32, ValueQuery>;

    /// Entries over all bonds rows (sizes the epoch's and registration's weight).
    #[pallet::storage]
    pub type BondEntries<T> = StorageValue<_, u32, ValueQuery>;

    /// Neurons by uid.
    #[pallet::storage]
    pub type Neurons<T: Config> =
        StorageMap<_, Twox64Concat, Uid, Neuron<T::AccountId>, OptionQuery>;

    /// `weights[uid]`, sorted by uid.
    #[pallet::storage]
    pub type Weights<T: Config> = StorageMap<_, Twox64Concat, Uid, WeightsRow<T>, ValueQuery>;

    /// `bonds[uid]`, sorted by uid (replaced by each epoch's).
    #[pallet::storage]
    pub type Bonds<T: Config> = StorageMap<_, Twox64Concat, Uid, BondsRow<T>, ValueQuery>;

    /// The mechanism's parameters and controller at genesis. By default the embedded
    /// ledger's: `deepnode_rules::default_params` for `T::Tempo` (the activity cutoff on, the
    /// bonds of absent nodes paying nothing) and the default controller.
    #[pallet::genesis_config]
    pub struct GenesisConfig<T: Config> {
        /// Mechanism parameters (checked by `deepnode_consensus::check_params`);
        /// `min_allowed_weights` is the controller's starting value. In a chain spec: the
        /// SCALE bytes of `Params<Fx>`.
        #[serde(with = "crate::scale_bytes")]
        pub params: Params<Fx>,
        /// The controller's policy (`floor <= cap`). In a chain spec: its SCALE bytes.
        #[serde(with = "crate::scale_bytes")]
        pub controller: ControllerPolicy,
        #[serde(skip)]
        #[doc(hidden)]
        pub _config: core::marker::PhantomData<T>,
    }

    impl<T: Config> Default for GenesisConfig<T> {
        fn default() -> Self {
            GenesisConfig {
                params: deepnode_rules::default_params(T::Tempo::get()),
                controller: ControllerPolicy::default(),
                _config: core::marker::PhantomData,
            }
        }
    }

    #[pallet::genesis_build]
    impl<T: Config> BuildGenesisConfig for GenesisConfig<T> {
        /// Refuses (as FRAME genesis builds do, by panicking while the chain spec is built,
        /// never in a block) parameters or a controller that the embedded ledger's genesis
        /// refuses.
        fn build(&self) {
            if let Err(e) = deepnode_rules::check_config(&self.params, &self.controller, 1) {
                panic!("pallet-deepnode genesis: {e}");
            }
            MechanismParams::<T>::put(self.params);
            Policy::<T>::put(self.controller);
            Controller::<T>::put(ControllerState {
                min_allowed_weights: self.params.min_allowed_weights,
                calm_epochs: 0,
            });
        }
    }

    /// What happened.
    #[pallet::event]
    #[pallet::generate_deposit(pub(super) fn deposit_event)]
    pub enum Event<T: Config> {
        /// A node was registered at `uid`; `replaced` is the evicted owner, whose stake
        /// `returned` went back to its balance.
        Registered {
            /// The uid taken.
            uid: Uid,
            /// The new owner.
            owner: T::AccountId,
            /// The evicted node's owner, if the set was full.
            replaced: Option<T::AccountId>,
            /// Stake returned to the evicted owner.
            returned: u64,
        },
        /// `amount` moved from the owner's balance to node `uid`'s stake.
        StakeAdded {
            /// The node.
            uid: Uid,
            /// Raw units.
            amount: u64,
        },
        /// `amount` moved from node `uid`'s stake to the owner's balance.
        StakeRemoved {
            /// The node.
            uid: Uid,
            /// Raw units.
            amount: u64,
        },
        /// Node `uid` stored a row of `len` entries.
        WeightsSet {
            /// The node.
            uid: Uid,
            /// Entries in the row.
            len: u32,
        },
        /// Node `uid` published an endpoint and modality.
        Served {
            /// The node.
            uid: Uid,
            /// The `deepnode_wire::Modality` code.
            modality: u8,
        },
        /// Epoch `index` ran: consensus loss `loss`, `minted` units, and the controller's new
        /// `min_allowed_weights`.
        Epoch {
            /// Epochs run so far, this one included.
            index: u64,
            /// `L`.
            loss: Fx,
            /// Units minted in all.
            minted: u64,
            /// The controller's value for the next rows.
            min_allowed_weights: u32,
        },
        /// The epoch refused its input or minting failed: nothing changed.
        EpochFailed,
    }

    /// Why a call was refused: the shared rules' refusals ([`RuleError`]), one variant each
    /// (weights and endpoint errors split by cause), and the currency's own.
    #[pallet::error]
    pub enum Error<T> {
        /// No node has this uid.
        NoSuchNode,
        /// The signer does not own the node it acts for.
        NotOwner,
        /// A stake amount of zero.
        ZeroAmount,
        /// The signer's spendable balance is too small.
        InsufficientBalance,
        /// The node's stake is too small.
        InsufficientStake,
        /// A balance or stake would exceed `u64::MAX`.
        Overflow,
        /// The node set is at `MaxNodes` and every node is within its immunity period.
        RegistryFull,
        /// The node set weights less than `WeightsRateLimit` blocks ago.
        RateLimited,
        /// A weights row names a uid `>= n`.
        WeightUidOutOfRange,
        /// A weights row names a uid twice.
        DuplicateWeightUid,
        /// A weights row is longer than `min(MaxWeightsLen, n)`.
        WeightsRowTooLong,
        /// A weights row has fewer non-zero entries than `min_allowed_weights`.
        TooFewWeights,
        /// A weights row fails `validate_row` otherwise.
        InvalidWeights,
        /// The endpoint is empty.
        EmptyEndpoint,
        /// The endpoint is longer than 256 bytes.
        EndpointTooLong,
        /// The endpoint is not UTF-8.
        EndpointNotUtf8,
        /// The endpoint holds control characters.
        EndpointControlCharacters,
        /// The modality code is not a `deepnode_wire::Modality`.
        BadModality,
    }

    #[deny(
        clippy::arithmetic_side_effects,
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::float_arithmetic
    )]
    impl<T> From<RuleError> for Error<T> {
        fn from(e: RuleError) -> Error<T> {
            use deepnode_consensus::Error as E;
            match e {
                RuleError::NoSuchNode(_) => Error::NoSuchNode,
                RuleError::NotOwner(_) => Error::NotOwner,
                RuleError::ZeroAmount => Error::ZeroAmount,
                RuleError::InsufficientBalance { .. } => Error::InsufficientBalance,
                RuleError::InsufficientStake { .. } => Error::InsufficientStake,
                RuleError::Overflow => Error::Overflow,
                RuleError::RegistryFull { .. } => Error::RegistryFull,
                RuleError::RateLimited { .. } => Error::RateLimited,
                RuleError::InvalidWeights(E::UidOutOfRange { .. }) => Error::WeightUidOutOfRange,
                RuleError::InvalidWeights(E::DuplicateUid { .. }) => Error::DuplicateWeightUid,
                RuleError::InvalidWeights(E::RowTooLong { .. }) => Error::WeightsRowTooLong,
                RuleError::InvalidWeights(E::TooFewWeights { .. }) => Error::TooFewWeights,
                RuleError::InvalidWeights(_) => Error::InvalidWeights,
                RuleError::BadEndpoint(EndpointError::Empty) => Error::EmptyEndpoint,
                RuleError::BadEndpoint(EndpointError::TooLong) => Error::EndpointTooLong,
                RuleError::BadEndpoint(EndpointError::NotUtf8) => Error::EndpointNotUtf8,
                RuleError::BadEndpoint(_) => Error::EndpointControlCharacters,
            }
        }
    }

    #[deny(
        clippy::arithmetic_side_effects,
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::float_arithmetic
    )]
    #[pallet::hooks]
    impl<T: Config> Hooks<BlockNumberFor<T>> for Pallet<T> {
        /// Runs the epoch at the start of block `b` when `b - 1` is a positive multiple of
        /// `Tempo`: after every extrinsic of that block, as the embedded ledger's end of block.
        fn on_initialize(now: BlockNumberFor<T>) -> Weight {
            let prev = now.saturated_into::<u64>().saturating_sub(1);
            let due = prev > 0 && prev.checked_rem(T::Tempo::get()) == Some(0);
            if !due {
                return Weight::zero();
            }
            let (n, k) = Self::size();
            Self::run_epoch();
            T::WeightInfo::epoch(n, k)
        }

        /// Run by the runtime's integrity tests, never in a block: the constants are usable.
        fn integrity_test() {
            assert!(T::Tempo::get() > 0, "Tempo must be at least 1");
            assert!(T::MaxNodes::get() > 0, "MaxNodes must be at least 1");
        }
    }

    #[deny(
        clippy::arithmetic_side_effects,
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::float_arithmetic
    )]
    #[pallet::call]
    impl<T: Config> Pallet<T> {
        /// Registers a node owned by the signer: uid `n` while `n < MaxNodes`; when full,
        /// replaces the node [`deepnode_rules::registration_slot`] picks (lowest rank past
        /// immunity), returning its stake to its owner and clearing its rows and every entry
        /// naming it.
        #[pallet::call_index(0)]
        #[pallet::weight({ let (n, k) = Pallet::<T>::size(); T::WeightInfo::register(n, k) })]
        pub fn register(origin: OriginFor<T>) -> DispatchResult {
            let who = ensure_signed(origin)?;
            let n = NodeCount::<T>::get();
            let block = Self::now();
            let fresh = Neuron {
                owner: who.clone(),
                stake: 0,
                registered_at: block,
                weights_block: None,
                endpoint: Endpoint::default(),
                modality: 0,
                last: NeuronStats::default(),
            };
            let candidates = (0..n).filter_map(|uid| {
                Neurons::<T>::get(uid).map(|x| Candidate {
                    uid,
                    registered_at: x.registered_at,
                    rank: x.last.rank,
                    stake: x.stake,
                })
            });
            let slot = deepnode_rules::registration_slot(
                usize::try_from(n).unwrap_or(usize::MAX),
                T::MaxNodes::get(),
                block,
                T::ImmunityPeriod::get(),
                candidates,
            )
            .map_err(Error::<T>::from)?;
            let uid = match slot {
                Slot::Append(uid) => {
                    let next = n.checked_add(1).ok_or(Error::<T>::RegistryFull)?;
                    Neurons::<T>::insert(uid, fresh);
                    NodeCount::<T>::put(next);
                    Self::deposit_event(Event::Registered {
                        uid,
                        owner: who,
                        replaced: None,
                        returned: 0,
                    });
                    return Ok(());
                }
                Slot::Replace(uid) => uid,
            };
            let old = Neurons::<T>::get(uid).ok_or(Error::<T>::NoSuchNode)?;
            let returned = old.stake;
            deepnode_rules::credit(Self::balance(&old.owner), returned)
                .map_err(Error::<T>::from)?;
            if returned > 0 {
                T::Currency::transfer(
                    &Self::account(),
                    &old.owner,
                    returned.into(),
                    Preservation::Expendable,
                )?;
            }
            Neurons::<T>::insert(uid, fresh);
            Self::evict_rows(uid);
            Self::deposit_event(Event::Registered {
                uid,
                owner: who,
                replaced: Some(old.owner),
                returned,
            });
            Ok(())
        }

        /// Moves `amount` from the signer's spendable balance to the stake of node `uid`,
        /// which it owns.
        #[pallet::call_index(1)]
        #[pallet::weight(T::WeightInfo::add_stake())]
        pub fn add_stake(origin: OriginFor<T>, uid: Uid, amount: u64) -> DispatchResult {
            let who = ensure_signed(origin)?;
            let mut neuron = Self::owned(&who, uid)?;
            deepnode_rules::debit(Self::spendable(&who), amount).map_err(Error::<T>::from)?;
            neuron.stake =
                deepnode_rules::stake_after_add(neuron.stake, amount).map_err(Error::<T>::from)?;
            T::Currency::transfer(
                &who,
                &Self::account(),
                amount.into(),
                Preservation::Expendable,
            )?;
            Neurons::<T>::insert(uid, neuron);
            Self::deposit_event(Event::StakeAdded { uid, amount });
            Ok(())
        }

        /// Moves `amount` from the stake of node `uid`, which the signer owns, back to the
        /// signer's balance.
        #[pallet::call_index(2)]
        #[pallet::weight(T::WeightInfo::remove_stake())]
        pub fn remove_stake(origin: OriginFor<T>, uid: Uid, amount: u64) -> DispatchResult {
            let who = ensure_signed(origin)?;
            let mut neuron = Self::owned(&who, uid)?;
            neuron.stake = deepnode_rules::stake_after_remove(neuron.stake, amount)
                .map_err(Error::<T>::from)?;
            deepnode_rules::credit(Self::balance(&who), amount).map_err(Error::<T>::from)?;
            T::Currency::transfer(
                &Self::account(),
                &who,
                amount.into(),
                Preservation::Expendable,
            )?;
            Neurons::<T>::insert(uid, neuron);
            Self::deposit_event(Event::StakeRemoved { uid, amount });
            Ok(())
        }

        /// Replaces the weights row of node `uid`, which the signer owns: rate limited, checked
        /// by `deepnode_consensus::validate_row` (through [`deepnode_rules::check_weights`]),
        /// stored sorted by uid.
        #[pallet::call_index(3)]
        #[pallet::weight(T::WeightInfo::set_weights(weights.len().saturated_into()))]
        pub fn set_weights(
            origin: OriginFor<T>,
            uid: Uid,
            weights: WeightsRow<T>,
        ) -> DispatchResult {
            let who = ensure_signed(origin)?;
            let mut neuron = Self::owned(&who, uid)?;
            let now = Self::now();
            deepnode_rules::check_rate_limit(neuron.weights_block, now, T::WeightsRateLimit::get())
                .map_err(Error::<T>::from)?;
            let n = usize::try_from(NodeCount::<T>::get()).unwrap_or(usize::MAX);
            let max_len = usize::try_from(T::MaxWeightsLen::get()).unwrap_or(usize::MAX);
            let owner = usize::try_from(uid).map_err(|_| Error::<T>::NoSuchNode)?;
            let params = MechanismParams::<T>::get();
            let sorted = deepnode_rules::check_weights(&params, owner, &weights, n, max_len)
                .map_err(Error::<T>::from)?;
            let len = u32::try_from(sorted.len()).map_err(|_| Error::<T>::WeightsRowTooLong)?;
            let row =
                WeightsRow::<T>::try_from(sorted).map_err(|_| Error::<T>::WeightsRowTooLong)?;
            let old = u32::try_from(Weights::<T>::decode_len(uid).unwrap_or(0)).unwrap_or(0);
            WeightEntries::<T>::mutate(|e| *e = e.saturating_sub(old).saturating_add(len));
            Weights::<T>::insert(uid, row);
            neuron.weights_block = Some(now);
            Neurons::<T>::insert(uid, neuron);
            Self::deposit_event(Event::WeightsSet { uid, len });
            Ok(())
        }

        /// Publishes the endpoint (checked by [`deepnode_rules::check_endpoint`]) and the
        /// `deepnode_wire::Modality` code of node `uid`, which the signer owns.
        #[pallet::call_index(4)]
        #[pallet::weight(T::WeightInfo::serve())]
        pub fn serve(
            origin: OriginFor<T>,
            uid: Uid,
            endpoint: Endpoint,
            modality: u8,
        ) -> DispatchResult {
            let who = ensure_signed(origin)?;
            let mut neuron = Self::owned(&who, uid)?;
            deepnode_rules::check_endpoint(&endpoint)
                .map_err(|e| Error::<T>::from(RuleError::BadEndpoint(e)))?;
            deepnode_wire::Modality::from_code(modality).map_err(|_| Error::<T>::BadModality)?;
            neuron.endpoint = endpoint;
            neuron.modality = modality;
            Neurons::<T>::insert(uid, neuron);
            Self::deposit_event(Event::Served { uid, modality });
            Ok(())
        }
    }

    #[deny(
        clippy::arithmetic_side_effects,
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::float_arithmetic
    )]
    impl<T: Config> Pallet<T> {
        /// The account holding all stake.
        pub fn account() -> T::AccountId {
            T::PalletId::get().into_account_truncating()
        }

        /// The current block number as `u64`.
        fn now() -> u64 {
            frame_system::Pallet::<T>::block_number().saturated_into::<u64>()
        }

        /// `who`'s whole balance in raw units (saturating at `u64::MAX`).
        fn balance(who: &T::AccountId) -> u64 {
            T::Currency::balance(who).saturated_into::<u64>()
        }

        /// What `who` may pay (it may empty its account): the "free" balance of the ledger's
        /// debit rule.
        fn spendable(who: &T::AccountId) -> u64 {
            T::Currency::reducible_balance(who, Preservation::Expendable, Fortitude::Polite)
                .saturated_into::<u64>()
        }

        /// Node `uid` if `who` owns it.
        fn owned(who: &T::AccountId, uid: Uid) -> Result<Neuron<T::AccountId>, Error<T>> {
            let neuron = Neurons::<T>::get(uid);
            deepnode_rules::check_owner(neuron.as_ref().map(|x| &x.owner), who, uid)?;
            neuron.ok_or(Error::<T>::NoSuchNode)
        }

        /// The metagraph at the current block (what the runtime's metagraph API returns).
        pub fn metagraph() -> Metagraph<T::AccountId> {
            Metagraph {
                block: Self::now(),
                epochs: Epochs::<T>::get(),
                tempo: T::Tempo::get(),
                weights_rate_limit: T::WeightsRateLimit::get(),
                immunity_period: T::ImmunityPeriod::get(),
                max_nodes: T::MaxNodes::get(),
                max_weights_len: T::MaxWeightsLen::get(),
                min_allowed_weights: MechanismParams::<T>::get().min_allowed_weights,
                nodes: (0..NodeCount::<T>::get())
                    .filter_map(Neurons::<T>::get)
                    .collect(),
            }
        }

        /// `(n, k)`: nodes, and entries per row (the larger of weights and bonds, rounded up),
        /// the components of the epoch's and registration's weights.
        pub fn size() -> (u32, u32) {
            let n = NodeCount::<T>::get();
            let entries = WeightEntries::<T>::get().max(BondEntries::<T>::get());
            let k = entries.div_ceil(n.max(1));
            (n, k)
        }

        /// Clears the rows of an evicted `uid` and every entry that names it, keeping the
        /// entry counters.
        fn evict_rows(uid: Uid) {
            let dropped_w = u32::try_from(Weights::<T>::decode_len(uid).unwrap_or(0)).unwrap_or(0);
            let dropped_b = u32::try_from(Bonds::<T>::decode_len(uid).unwrap_or(0)).unwrap_or(0);
            Weights::<T>::remove(uid);
            Bonds::<T>::remove(uid);
            let mut gone_w = dropped_w;
            let mut gone_b = dropped_b;
            for i in 0..NodeCount::<T>::get() {
                let row = Weights::<T>::get(i);
                if row.iter().any(|&(j, _)| j == uid) {
                    let mut row = row.into_inner();
                    deepnode_rules::forget_uid(&mut row, uid);
                    gone_w = gone_w.saturating_add(1);
                    Weights::<T>::insert(i, WeightsRow::<T>::truncate_from(row));
                }
                let row = Bonds::<T>::get(i);
                if row.iter().any(|&(j, _)| j == uid) {
                    let mut row = row.into_inner();
                    deepnode_rules::forget_uid(&mut row, uid);
                    gone_b = gone_b.saturating_add(1);
                    Bonds::<T>::insert(i, BondsRow::<T>::truncate_from(row));
                }
            }
            WeightEntries::<T>::mutate(|e| *e = e.saturating_sub(gone_w));
            BondEntries::<T>::mutate(|e| *e = e.saturating_sub(gone_b));
        }

        /// One epoch of `deepnode_consensus::epoch` on the fixed-point path over every node:
        /// mints into the stake account, stores each node's outputs and new stake, replaces
        /// bonds, and lets the controller move `min_allowed_weights` from the loss. When the
        /// epoch refuses its input or minting fails, nothing changes ([`Event::EpochFailed`]).
        pub fn run_epoch() {
            let n = NodeCount::<T>::get();
            if n == 0 {
                return;
            }
            let mut neurons = Vec::new();
            for uid in 0..n {
                match Neurons::<T>::get(uid) {
                    Some(x) => neurons.push(x),
                    None => {
                        Self::deposit_event(Event::EpochFailed);
                        return;
                    }
                }
            }
            let params = MechanismParams::<T>::get();
            let input = State {
                params,
                stake: neurons.iter().map(|x| x.stake).collect(),
                weights: (0..n).map(|u| Weights::<T>::get(u).into_inner()).collect(),
                bonds: (0..n).map(|u| Bonds::<T>::get(u).into_inner()).collect(),
                // The epoch closes the previous block (as the embedded ledger's ends its own):
                // a row's age is counted from there.
                block: Self::now().saturating_sub(1),
                last_update: neurons
                    .iter()
                    .map(|x| x.weights_block.unwrap_or(x.registered_at))
                    .collect(),
            };
            let Ok(mut out) = deepnode_consensus::epoch(&input) else {
                Self::deposit_event(Event::EpochFailed);
                return;
            };
            let minted = out.minted.iter().fold(0u64, |a, &m| a.saturating_add(m));
            if minted > 0 && T::Currency::mint_into(&Self::account(), minted.into()).is_err() {
                Self::deposit_event(Event::EpochFailed);
                return;
            }
            let bonds = core::mem::take(&mut out.bonds);
            let rows = neurons.into_iter().zip(bonds).enumerate();
            let mut bond_entries = 0u32;
            for (i, (mut neuron, bonds)) in rows {
                let (Ok(uid), Some(out_i)) = (Uid::try_from(i), Self::stats(&out, i)) else {
                    continue;
                };
                neuron.stake = out_i.1;
                neuron.last = out_i.0;
                Neurons::<T>::insert(uid, neuron);
                let len = u32::try_from(bonds.len()).unwrap_or(u32::MAX);
                bond_entries = bond_entries.saturating_add(len);
                // A bonds row has at most `n <= MaxNodes` entries: nothing is truncated.
                Bonds::<T>::insert(uid, BondsRow::<T>::truncate_from(bonds));
            }
            BondEntries::<T>::put(bond_entries);
            let n_nodes = usize::try_from(n).unwrap_or(usize::MAX);
            let room = deepnode_consensus::row_room(n_nodes, params.mask_self_weights);
            let controller = Policy::<T>::get().next(Controller::<T>::get(), out.loss, room);
            Controller::<T>::put(controller);
            MechanismParams::<T>::mutate(|p| {
                p.min_allowed_weights = controller.min_allowed_weights
            });
            let index = Epochs::<T>::mutate(|e| {
                *e = e.saturating_add(1);
                *e
            });
            Self::deposit_event(Event::Epoch {
                index,
                loss: out.loss,
                minted,
                min_allowed_weights: controller.min_allowed_weights,
            });
        }

        /// Node `i`'s outputs and new stake in `out`.
        fn stats(
            out: &deepnode_consensus::EpochOutput<Fx>,
            i: usize,
        ) -> Option<(NeuronStats, u64)> {
            Some((out.stats(i)?, *out.stake.get(i)?))
        }
    }
}
