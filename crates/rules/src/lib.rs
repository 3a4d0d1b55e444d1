#![doc = include_str!("../README.md")]
#![no_std]
#![deny(
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::float_arithmetic
)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

use alloc::vec::Vec;
use core::fmt;

use deepnode_consensus::{
    ControllerPolicy, Departed, Fx, Params, Uid, Weight, canonicalize, validate_row,
};
use deepnode_types::WeightRow;

/// Largest endpoint a node may publish, in bytes.
pub const MAX_ENDPOINT_BYTES: usize = 256;

/// Why a call breaks a rule. A refused call changes nothing.
///
/// Not `#[non_exhaustive]` on purpose: each adapter maps every variant to its own error (the
/// ledger to an RPC code, the pallet to a `DispatchError`), and a new rule must fail their
/// build until they do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuleError {
    /// No node has this uid.
    NoSuchNode(Uid),
    /// The signer does not own the node it acts for.
    NotOwner(Uid),
    /// A stake or transfer amount of zero.
    ZeroAmount,
    /// The free balance is too small.
    InsufficientBalance {
        /// Free balance.
        have: u64,
        /// Amount asked for.
        need: u64,
    },
    /// The node's stake is too small.
    InsufficientStake {
        /// The node's stake.
        have: u64,
        /// Amount asked for.
        need: u64,
    },
    /// A balance or stake would exceed `u64::MAX`.
    Overflow,
    /// The node set is at its cap and every node is still immune to replacement.
    RegistryFull {
        /// The cap.
        max: u32,
    },
    /// The weights row fails [`deepnode_consensus::validate_row`].
    InvalidWeights(deepnode_consensus::Error),
    /// The node set weights too recently.
    RateLimited {
        /// Block of the last accepted row.
        last: u64,
        /// First block at which a new row is accepted.
        next: u64,
    },
    /// The endpoint is refused ([`check_endpoint`]).
    BadEndpoint(EndpointError),
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuleError::NoSuchNode(uid) => write!(f, "no node with uid {uid}"),
            RuleError::NotOwner(uid) => write!(f, "uid {uid} is owned by another account"),
            RuleError::ZeroAmount => f.write_str("amount must be positive"),
            RuleError::InsufficientBalance { have, need } => {
                write!(f, "insufficient balance: {have} free, {need} needed")
            }
            RuleError::InsufficientStake { have, need } => {
                write!(f, "insufficient stake: {have} staked, {need} needed")
            }
            RuleError::Overflow => f.write_str("balance overflow"),
            RuleError::RegistryFull { max } => write!(
                f,
                "node set is full ({max} nodes) and every node is within its immunity period"
            ),
            RuleError::InvalidWeights(e) => write!(f, "invalid weights: {e}"),
            RuleError::RateLimited { last, next } => write!(
                f,
                "weights rate limit: set at block {last}, next allowed at block {next}"
            ),
            RuleError::BadEndpoint(e) => write!(f, "invalid endpoint: {e}"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for RuleError {}

/// Why an endpoint is refused (`serve`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EndpointError {
    /// No bytes.
    Empty,
    /// More than [`MAX_ENDPOINT_BYTES`] bytes.
    TooLong,
    /// Not UTF-8.
    NotUtf8,
    /// Holds a control character (a newline would forge lines in logs and tables).
    ControlCharacters,
}

impl fmt::Display for EndpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EndpointError::Empty => "empty",
            EndpointError::TooLong => "longer than 256 bytes",
            EndpointError::NotUtf8 => "not UTF-8",
            EndpointError::ControlCharacters => "control characters",
        })
    }
}

#[cfg(feature = "std")]
impl std::error::Error for EndpointError {}

/// The ownership rule: node `uid`, whose owner is `owner` (`None`: no such node), may be acted
/// for by `who` only if `who` owns it.
pub fn check_owner<A: PartialEq>(owner: Option<&A>, who: &A, uid: Uid) -> Result<(), RuleError> {
    match owner {
        None => Err(RuleError::NoSuchNode(uid)),
        Some(o) if o != who => Err(RuleError::NotOwner(uid)),
        Some(_) => Ok(()),
    }
}

/// A free balance `free` after paying `amount`: refuses a zero amount, then more than `free`.
pub fn debit(free: u64, amount: u64) -> Result<u64, RuleError> {
    if amount == 0 {
        return Err(RuleError::ZeroAmount);
    }
    free.checked_sub(amount)
        .ok_or(RuleError::InsufficientBalance {
            have: free,
            need: amount,
        })
}

/// A balance `free` after receiving `amount`: refuses a result above `u64::MAX`.
pub fn credit(free: u64, amount: u64) -> Result<u64, RuleError> {
    free.checked_add(amount).ok_or(RuleError::Overflow)
}

/// A node's stake after `add_stake` of `amount` (the amount's debit is checked first, by
/// [`debit`]): refuses a result above `u64::MAX`.
pub fn stake_after_add(stake: u64, amount: u64) -> Result<u64, RuleError> {
    stake.checked_add(amount).ok_or(RuleError::Overflow)
}

/// A node's stake after `remove_stake` of `amount`: refuses a zero amount, then more than
/// `stake`. The owner's balance is then credited ([`credit`]).
pub fn stake_after_remove(stake: u64, amount: u64) -> Result<u64, RuleError> {
    if amount == 0 {
        return Err(RuleError::ZeroAmount);
    }
    stake
        .checked_sub(amount)
        .ok_or(RuleError::InsufficientStake {
            have: stake,
            need: amount,
        })
}

/// The weights rate limit: a node whose last accepted row was at block `last` may set weights
/// again from block `last + limit` (saturating); a node that never set weights may at once.
pub fn check_rate_limit(last: Option<u64>, now: u64, limit: u64) -> Result<(), RuleError> {
    match last {
        Some(last) => {
            let next = last.saturating_add(limit);
            if now < next {
                Err(RuleError::RateLimited { last, next })
            } else {
                Ok(())
            }
        }
        None => Ok(()),
    }
}

/// The weights rule: node `owner`'s row, checked by [`deepnode_consensus::validate_row`]
/// against `n` nodes, at most `max_len` entries and `params.min_allowed_weights`, returned
/// sorted by uid (how rows are stored).
pub fn check_weights(
    params: &Params<Fx>,
    owner: usize,
    row: &[(Uid, Weight)],
    n: usize,
    max_len: usize,
) -> Result<WeightRow, RuleError> {
    validate_row(params, owner, row, n, max_len).map_err(RuleError::InvalidWeights)?;
    canonicalize("weights", owner, row, n).map_err(RuleError::InvalidWeights)
}

/// The endpoint rule: 1 to [`MAX_ENDPOINT_BYTES`] bytes of UTF-8 without control characters.
pub fn check_endpoint(e: &[u8]) -> Result<(), EndpointError> {
    if e.is_empty() {
        return Err(EndpointError::Empty);
    }
    if e.len() > MAX_ENDPOINT_BYTES {
        return Err(EndpointError::TooLong);
    }
    let s = core::str::from_utf8(e).map_err(|_| EndpointError::NotUtf8)?;
    if s.chars().any(char::is_control) {
        return Err(EndpointError::ControlCharacters);
    }
    Ok(())
}

/// Why a chain's configuration is refused at genesis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// `tempo` is 0.
    ZeroTempo,
    /// A parameter is out of its range ([`deepnode_consensus::check_params`]).
    InvalidParams(deepnode_consensus::Error),
    /// The controller's floor is above its cap.
    FloorAboveCap {
        /// `floor`.
        floor: u32,
        /// `cap`.
        cap: u32,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::ZeroTempo => f.write_str("tempo must be at least 1"),
            ConfigError::InvalidParams(e) => write!(f, "invalid params: {e}"),
            ConfigError::FloorAboveCap { floor, cap } => {
                write!(f, "controller floor {floor} is above its cap {cap}")
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for ConfigError {}

/// Epochs without a weights row after which a node counts as absent, in the chains' default
/// parameters ([`default_params`]): its row stops counting and its bonds stop paying.
pub const ACTIVITY_CUTOFF_EPOCHS: u64 = 10;

/// The default mechanism parameters of a chain (the embedded ledger's and the pallet's
/// genesis) of `tempo` blocks per epoch: SPEC.md's defaults, except that the activity cutoff
/// is on, at [`ACTIVITY_CUTOFF_EPOCHS`] epochs (`10 tempo` blocks), and an absent node's bonds
/// pay it nothing while it is absent ([`Departed::Withhold`]).
pub fn default_params(tempo: u64) -> Params<Fx> {
    Params {
        activity_cutoff: tempo.max(1).saturating_mul(ACTIVITY_CUTOFF_EPOCHS),
        departed: Departed::Withhold,
        ..Params::default()
    }
}

/// The genesis rule: `tempo >= 1`, parameters in range, and the controller's
/// `floor <= cap`, checked in that order.
pub fn check_config(
    params: &Params<Fx>,
    controller: &ControllerPolicy,
    tempo: u64,
) -> Result<(), ConfigError> {
    if tempo == 0 {
        return Err(ConfigError::ZeroTempo);
    }
    deepnode_consensus::check_params(params).map_err(ConfigError::InvalidParams)?;
    if controller.floor > controller.cap {
        return Err(ConfigError::FloorAboveCap {
            floor: controller.floor,
            cap: controller.cap,
        });
    }
    Ok(())
}

/// What registration does to the node set ([`registration_slot`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    /// A new node at this uid (`n`, the set grows by one).
    Append(Uid),
    /// The node at this uid is evicted and its uid given to the newcomer.
    Replace(Uid),
}

/// A registered node as the uid rule sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// Its uid.
    pub uid: Uid,
    /// Block of its registration.
    pub registered_at: u64,
    /// Its rank `r` from the last epoch.
    pub rank: Fx,
    /// Its stake, raw units.
    pub stake: u64,
}

/// The uid rule of registration at block `block` into a set of `n` nodes capped at
/// `max_nodes`: the next uid `n` while `n < max_nodes`; when full, the node with the lowest
/// rank from the last epoch among those registered at least `immunity_period` blocks ago
/// (`block - registered_at >= immunity_period`, saturating), ties broken by lower stake, then
/// lower uid. `nodes` is read only when the set is full. Refuses when every node is immune.
pub fn registration_slot(
    n: usize,
    max_nodes: u32,
    block: u64,
    immunity_period: u64,
    nodes: impl IntoIterator<Item = Candidate>,
) -> Result<Slot, RuleError> {
    let full = RuleError::RegistryFull { max: max_nodes };
    let cap = usize::try_from(max_nodes).unwrap_or(usize::MAX);
    if n < cap {
        return Uid::try_from(n).map(Slot::Append).map_err(|_| full);
    }
    nodes
        .into_iter()
        .filter(|c| block.saturating_sub(c.registered_at) >= immunity_period)
        .min_by_key(|c| (c.rank, c.stake, c.uid))
        .map(|c| Slot::Replace(c.uid))
        .ok_or(full)
}

/// Eviction's rule for the other rows: drops the entries of `row` that name `uid`, so a
/// newcomer at that uid inherits no weight or bond.
pub fn forget_uid<V>(row: &mut Vec<(Uid, V)>, uid: Uid) {
    row.retain(|&(j, _)| j != uid);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(uid: Uid, registered_at: u64, rank: i128, stake: u64) -> Candidate {
        Candidate {
            uid,
            registered_at,
            rank: Fx::from_bits(rank),
            stake,
        }
    }

    #[test]
    fn registration_appends_then_replaces_the_lowest_rank_past_immunity() {
        let none = core::iter::empty();
        assert_eq!(registration_slot(2, 3, 0, 10, none), Ok(Slot::Append(2)));
        let nodes = [node(0, 0, 5, 1), node(1, 0, 3, 9), node(2, 8, 1, 0)];
        // uid 2 ranks lowest but is immune at block 10 (registered at 8, immunity 5).
        assert_eq!(registration_slot(3, 3, 10, 5, nodes), Ok(Slot::Replace(1)));
        // Ties: lower stake, then lower uid.
        let tied = [node(0, 0, 3, 4), node(1, 0, 3, 2), node(2, 0, 3, 2)];
        assert_eq!(registration_slot(3, 3, 10, 5, tied), Ok(Slot::Replace(1)));
        assert_eq!(
            registration_slot(3, 3, 10, 11, nodes),
            Err(RuleError::RegistryFull { max: 3 })
        );
        assert_eq!(
            registration_slot(0, 0, 0, 0, core::iter::empty()),
            Err(RuleError::RegistryFull { max: 0 })
        );
    }

    #[test]
    fn balances_and_stake_are_checked() {
        assert_eq!(debit(5, 0), Err(RuleError::ZeroAmount));
        assert_eq!(
            debit(5, 6),
            Err(RuleError::InsufficientBalance { have: 5, need: 6 })
        );
        assert_eq!(debit(5, 5), Ok(0));
        assert_eq!(credit(u64::MAX, 1), Err(RuleError::Overflow));
        assert_eq!(credit(1, 1), Ok(2));
        assert_eq!(stake_after_add(u64::MAX, 1), Err(RuleError::Overflow));
        assert_eq!(stake_after_remove(3, 0), Err(RuleError::ZeroAmount));
        assert_eq!(
            stake_after_remove(3, 4),
            Err(RuleError::InsufficientStake { have: 3, need: 4 })
        );
        assert_eq!(stake_after_remove(3, 3), Ok(0));
        assert_eq!(check_owner(None, &1, 7), Err(RuleError::NoSuchNode(7)));
        assert_eq!(check_owner(Some(&2), &1, 7), Err(RuleError::NotOwner(7)));
        assert_eq!(check_owner(Some(&1), &1, 7), Ok(()));
    }

    #[test]
    fn rate_limit_endpoint_and_weights() {
        assert_eq!(check_rate_limit(None, 0, 10), Ok(()));
        assert_eq!(
            check_rate_limit(Some(1), 3, 3),
            Err(RuleError::RateLimited { last: 1, next: 4 })
        );
        assert_eq!(check_rate_limit(Some(1), 4, 3), Ok(()));
        assert_eq!(check_rate_limit(Some(u64::MAX), u64::MAX, 3), Ok(()));
        assert_eq!(check_endpoint(b""), Err(EndpointError::Empty));
        assert_eq!(check_endpoint(&[b'a'; 257]), Err(EndpointError::TooLong));
        assert_eq!(check_endpoint(&[0xff]), Err(EndpointError::NotUtf8));
        assert_eq!(
            check_endpoint(b"a\nb"),
            Err(EndpointError::ControlCharacters)
        );
        assert_eq!(check_endpoint(b"127.0.0.1:7000"), Ok(()));
        let p = Params::<Fx>::default();
        assert_eq!(
            check_weights(&p, 0, &[(2, 1), (1, 3)], 3, 8),
            Ok(alloc::vec![(1, 3), (2, 1)])
        );
        assert!(matches!(
            check_weights(&p, 0, &[(1, 1), (1, 2)], 3, 8),
            Err(RuleError::InvalidWeights(
                deepnode_consensus::Error::DuplicateUid { .. }
            ))
        ));
        assert!(matches!(
            check_weights(&p, 0, &[(1, 1), (2, 2)], 3, 1),
            Err(RuleError::InvalidWeights(
                deepnode_consensus::Error::RowTooLong { .. }
            ))
        ));
        let c = ControllerPolicy::default();
        assert_eq!(check_config(&p, &c, 0), Err(ConfigError::ZeroTempo));
        let bad = ControllerPolicy {
            floor: 5,
            cap: 4,
            ..c
        };
        assert_eq!(
            check_config(&p, &bad, 1),
            Err(ConfigError::FloorAboveCap { floor: 5, cap: 4 })
        );
        let rho = Params { rho: Fx::ZERO, ..p };
        assert!(matches!(
            check_config(&rho, &c, 1),
            Err(ConfigError::InvalidParams(_))
        ));
        assert_eq!(check_config(&p, &c, 1), Ok(()));
        let mut row = alloc::vec![(0, 1u16), (2, 3)];
        forget_uid(&mut row, 2);
        assert_eq!(row, alloc::vec![(0, 1)]);
    }
}
