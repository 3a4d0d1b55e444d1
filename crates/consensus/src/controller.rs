//! The weights controller (the paper's section 5): after each epoch, while the
//! consensus loss `L` is positive, raise `min_allowed_weights` so that nodes spread weight over
//! more peers; once `L` has stayed clearly negative for a while, relax it again. It never
//! asks for more entries than a valid row of the current network can hold ([`row_room`]).

use crate::Scalar;

/// The most non-zero entries that count toward `min_allowed_weights` in a valid row of a
/// network of `n` nodes: `n`, or `n - 1` when self weights are masked (a masked self weight
/// does not count). At most `u32::MAX`.
pub fn row_room(n: usize, mask_self_weights: bool) -> u32 {
    let room = if mask_self_weights {
        n.saturating_sub(1)
    } else {
        n
    };
    u32::try_from(room).unwrap_or(u32::MAX)
}

/// The policy: how fast `min_allowed_weights` moves and within which bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(
    feature = "codec",
    derive(
        parity_scale_codec::Encode,
        parity_scale_codec::Decode,
        parity_scale_codec::MaxEncodedLen
    )
)]
#[cfg_attr(feature = "scale-info", derive(scale_info::TypeInfo))]
pub struct ControllerPolicy {
    /// Added to `min_allowed_weights` after each epoch with `L > 0`.
    pub step: u32,
    /// The largest `min_allowed_weights` the controller sets (lowered further to what a row
    /// can hold, see [`ControllerPolicy::next`]).
    pub cap: u32,
    /// The smallest `min_allowed_weights` the controller sets (at least 1).
    pub floor: u32,
    /// Epochs in a row with `L <= 0` after which `min_allowed_weights` drops by 1; 0 never
    /// relaxes.
    pub relax_after: u32,
}

impl Default for ControllerPolicy {
    /// Step 1, cap 64, floor 1, relax after 16 calm epochs.
    fn default() -> Self {
        ControllerPolicy {
            step: 1,
            cap: 64,
            floor: 1,
            relax_after: 16,
        }
    }
}

/// What the controller remembers between epochs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[cfg_attr(
    feature = "codec",
    derive(
        parity_scale_codec::Encode,
        parity_scale_codec::Decode,
        parity_scale_codec::MaxEncodedLen
    )
)]
#[cfg_attr(feature = "scale-info", derive(scale_info::TypeInfo))]
pub struct ControllerState {
    /// The current `min_allowed_weights`.
    pub min_allowed_weights: u32,
    /// Epochs in a row with `L <= 0`.
    pub calm_epochs: u32,
}

impl ControllerPolicy {
    /// The state after an epoch whose consensus loss was `loss`, in a network whose valid rows
    /// hold at most `room` counted entries ([`row_room`] of `n` and `mask_self_weights`):
    /// `L > 0` raises `min_allowed_weights` by `step` (to at most the bound) and resets the calm
    /// count; `L <= 0` counts a calm epoch, and after `relax_after` of them lowers it by 1 (to at
    /// least `floor`) and starts counting again. Integer-only. The bound is
    /// `hi = min(max(cap, floor, 1), max(room, 1))`, and the result stays in
    /// `[min(max(floor, 1), hi), hi]`: whenever `room >= 1` (two nodes or more, or one with
    /// self weights counted), a row naming every peer meets it.
    pub fn next<N: Scalar>(&self, state: ControllerState, loss: N, room: u32) -> ControllerState {
        let hi = self.cap.max(self.floor).max(1).min(room.max(1));
        let floor = self.floor.max(1).min(hi);
        let cap = hi;
        let current = state.min_allowed_weights.clamp(floor, cap);
        if loss > N::ZERO {
            return ControllerState {
                min_allowed_weights: current.saturating_add(self.step).min(cap),
                calm_epochs: 0,
            };
        }
        let calm = state.calm_epochs.saturating_add(1);
        if self.relax_after > 0 && calm >= self.relax_after {
            ControllerState {
                min_allowed_weights: current.saturating_sub(1).max(floor),
                calm_epochs: 0,
            }
        } else {
            ControllerState {
                min_allowed_weights: current,
                calm_epochs: calm,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use deepnode_types::Fx;

    use super::*;

    #[test]
    fn raises_while_loss_is_positive_and_relaxes_when_calm() {
        let p = ControllerPolicy {
            step: 2,
            cap: 5,
            floor: 1,
            relax_after: 2,
        };
        let pos = Fx::from_ratio(1, 10);
        let neg = Fx::ZERO;
        let mut s = ControllerState {
            min_allowed_weights: 1,
            calm_epochs: 0,
        };
        s = p.next(s, pos, 100);
        assert_eq!(s.min_allowed_weights, 3);
        s = p.next(s, pos, 100);
        s = p.next(s, pos, 100);
        assert_eq!(s.min_allowed_weights, 5, "capped");
        s = p.next(s, neg, 100);
        assert_eq!((s.min_allowed_weights, s.calm_epochs), (5, 1));
        s = p.next(s, neg, 100);
        assert_eq!((s.min_allowed_weights, s.calm_epochs), (4, 0));
        s = p.next(s, 0.25f64, 100);
        assert_eq!((s.min_allowed_weights, s.calm_epochs), (5, 0));
    }

    #[test]
    fn never_leaves_its_bounds() {
        let p = ControllerPolicy {
            step: u32::MAX,
            cap: 0,
            floor: 0,
            relax_after: 1,
        };
        let s = p.next(
            ControllerState {
                min_allowed_weights: 0,
                calm_epochs: 0,
            },
            1.0f64,
            u32::MAX,
        );
        assert_eq!(s.min_allowed_weights, 1);
        let s = p.next(s, -1.0f64, 0);
        assert_eq!(s.min_allowed_weights, 1);
    }

    #[test]
    fn row_room_counts_the_peers_a_row_can_name() {
        assert_eq!(row_room(0, true), 0);
        assert_eq!(row_room(1, true), 0);
        assert_eq!(row_room(1, false), 1);
        assert_eq!(row_room(4, true), 3);
        assert_eq!(row_room(4, false), 4);
    }

    #[test]
    fn the_bound_follows_the_network_down_and_up() {
        let p = ControllerPolicy {
            floor: 5,
            ..ControllerPolicy::default()
        };
        let s = ControllerState {
            min_allowed_weights: 64,
            calm_epochs: 0,
        };
        // A network shrunk below the stored value and the floor: clamped to its room at once.
        let s = p.next(s, Fx::ZERO, 3);
        assert_eq!(s.min_allowed_weights, 3);
        let s = p.next(s, Fx::from_ratio(1, 4), 3);
        assert_eq!(s.min_allowed_weights, 3);
        // Room again: back to at least the floor (5), then one step up.
        let s = p.next(s, Fx::from_ratio(1, 4), 70);
        assert_eq!(s.min_allowed_weights, 6);
    }
}
