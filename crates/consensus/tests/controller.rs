//! The weights controller against the rows a network can hold: over many epochs of positive
//! loss, in networks of 2 to 70 nodes, the `min_allowed_weights` it sets never exceeds what a
//! valid row can hold, and every node's row naming all its peers stays accepted.

use deepnode_consensus::{
    ControllerPolicy, ControllerState, Fx, Params, Uid, epoch, row_room, validate_row,
};
use deepnode_types::State;

/// A row naming every peer (and itself, when self weights count), as an honest node that
/// spreads its weight as far as it can.
fn widest_row(owner: usize, n: usize, mask: bool) -> Vec<(Uid, u16)> {
    (0..n)
        .filter(|&j| !(mask && j == owner))
        .map(|j| (j as Uid, 1 + (j % 7) as u16))
        .collect()
}

#[test]
fn every_node_can_set_a_row_under_the_default_controller() {
    let policy = ControllerPolicy::default();
    let positive = Fx::from_ratio(1, 10);
    for mask in [true, false] {
        for n in 2..=70usize {
            let params = Params::<Fx> {
                mask_self_weights: mask,
                ..Params::default()
            };
            let room = row_room(n, mask);
            let mut state = ControllerState {
                min_allowed_weights: 1,
                calm_epochs: 0,
            };
            // 100 epochs of positive loss: the cap (64) is reached from 1 in 63. Rows are
            // checked whenever the requirement moves, and at the last epoch.
            let mut checked = 0;
            for t in 0..100 {
                state = policy.next(state, positive, room);
                let m = state.min_allowed_weights;
                if m == checked && t != 99 {
                    continue;
                }
                checked = m;
                assert!(
                    (1..=room).contains(&m),
                    "n {n} mask {mask} epoch {t}: min_allowed_weights {m}, room {room}"
                );
                let p = Params {
                    min_allowed_weights: m,
                    ..params
                };
                for owner in 0..n {
                    let row = widest_row(owner, n, mask);
                    assert_eq!(
                        validate_row(&p, owner, &row, n, usize::MAX),
                        Ok(()),
                        "n {n} mask {mask} epoch {t}: node {owner} refused"
                    );
                }
            }
            // The bound is reached exactly: min(64, room).
            assert_eq!(state.min_allowed_weights, room.min(policy.cap));
        }
    }
}

/// A network whose epochs report a positive loss while rows are narrow (each node weights
/// only the `min_allowed_weights` peers after it, so no column is trusted by a majority),
/// with the controller fed each epoch's own loss: every row stays valid throughout.
#[test]
fn rows_stay_accepted_while_the_epoch_reports_positive_loss() {
    let policy = ControllerPolicy::default();
    for n in [2usize, 3, 4, 9, 70] {
        let mask = true;
        let room = row_room(n, mask);
        let mut state = ControllerState {
            min_allowed_weights: 1,
            calm_epochs: 0,
        };
        let mut params = Params::<Fx> {
            mask_self_weights: mask,
            ..Params::default()
        };
        let mut stake: Vec<u64> = (0..n).map(|i| 1_000 + i as u64).collect();
        let mut bonds = Vec::new();
        let mut positive = 0;
        for t in 0..80 {
            let m = params.min_allowed_weights as usize;
            let weights: Vec<Vec<(Uid, u16)>> = (0..n)
                .map(|i| {
                    // The m nearest peers after i: the least spread row that is valid.
                    (1..=m)
                        .map(|d| (((i + d) % n) as Uid, 1))
                        .collect::<Vec<_>>()
                })
                .collect();
            for (i, row) in weights.iter().enumerate() {
                let mut sorted = row.clone();
                sorted.sort_unstable();
                assert_eq!(
                    validate_row(&params, i, &sorted, n, usize::MAX),
                    Ok(()),
                    "n {n} epoch {t}: node {i} refused at min_allowed_weights {m}"
                );
            }
            let input = State {
                params,
                stake: stake.clone(),
                weights,
                bonds: std::mem::take(&mut bonds),
                block: 0,
                last_update: Vec::new(),
            };
            let out = epoch(&input).expect("a valid epoch");
            if out.loss > Fx::ZERO {
                positive += 1;
            }
            state = policy.next(state, out.loss, room);
            params.min_allowed_weights = state.min_allowed_weights;
            stake = out.stake;
            bonds = out.bonds;
            assert!(params.min_allowed_weights <= room);
        }
        assert!(positive > 0, "n {n}: the loss was never positive");
    }
}
