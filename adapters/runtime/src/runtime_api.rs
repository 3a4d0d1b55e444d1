//! The runtime API of the market: the metagraph in one call (a client calls it as
//! `DeepNodeApi_metagraph` through `state_call`, with no arguments).

use frame::deps::codec::Codec;

frame::deps::sp_api::decl_runtime_apis! {
    /// What a node reads from the chain.
    pub trait DeepNodeApi<AccountId: Codec> {
        /// The metagraph at the block the call runs on: the chain rules and every node, by uid.
        fn metagraph() -> pallet_deepnode::Metagraph<AccountId>;
    }
}
