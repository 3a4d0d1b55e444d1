//! The row rules a ledger applies (`validate_row`, `check_min_weights`), against a plain model
//! of their contract, on sorted and unsorted rows alike.

use std::collections::BTreeSet;

use deepnode_consensus::{Error, Fx, Params, check_min_weights, validate_row};
use proptest::prelude::*;

/// The contract written out with sets: the first failing rule in the documented order
/// (length, then each entry's range and uniqueness, then `min_allowed_weights`).
fn model(
    params: &Params<Fx>,
    owner: usize,
    row: &[(u32, u16)],
    n: usize,
    max_len: usize,
) -> Result<(), &'static str> {
    if row.len() > max_len.min(n) {
        return Err("too long");
    }
    let mut seen = BTreeSet::new();
    for &(u, _) in row {
        if u as usize >= n {
            return Err("uid out of range");
        }
        if !seen.insert(u) {
            return Err("duplicate");
        }
    }
    let counted = row
        .iter()
        .filter(|&&(u, w)| w > 0 && !(params.mask_self_weights && u as usize == owner))
        .count();
    if counted >= params.min_allowed_weights as usize {
        Ok(())
    } else {
        Err("too few")
    }
}

fn kind(r: Result<(), Error>) -> Result<(), &'static str> {
    r.map_err(|e| match e {
        Error::RowTooLong { .. } => "too long",
        Error::UidOutOfRange { .. } => "uid out of range",
        Error::DuplicateUid { .. } => "duplicate",
        Error::TooFewWeights { .. } => "too few",
        _ => "other",
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn validate_row_follows_its_contract(
        row in prop::collection::vec((0u32..12, 0u16..3), 0..12),
        sort in any::<bool>(),
        owner in 0usize..10,
        n in 1usize..11,
        max_len in 0usize..12,
        min in 0u32..5,
        mask in any::<bool>(),
    ) {
        let mut row = row;
        if sort {
            // Sorted, duplicates kept: the linear path must still see them.
            row.sort_unstable_by_key(|e| e.0);
        }
        let params = Params::<Fx> {
            min_allowed_weights: min,
            mask_self_weights: mask,
            ..Params::default()
        };
        prop_assert_eq!(
            kind(validate_row(&params, owner, &row, n, max_len)),
            model(&params, owner, &row, n, max_len)
        );
    }

    #[test]
    fn a_row_and_its_sorted_form_are_judged_alike(
        uids in prop::collection::btree_set(0u32..40, 0..20),
        seed in any::<u64>(),
        min in 0u32..25,
    ) {
        let sorted: Vec<(u32, u16)> = uids.iter().map(|&u| (u, 1)).collect();
        let mut shuffled = sorted.clone();
        let mut s = seed;
        for i in (1..shuffled.len()).rev() {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            shuffled.swap(i, (s >> 33) as usize % (i + 1));
        }
        let params = Params::<f64> { min_allowed_weights: min, ..Params::default() };
        prop_assert_eq!(
            validate_row(&params, 0, &sorted, 40, 40),
            validate_row(&params, 0, &shuffled, 40, 40)
        );
    }
}

#[test]
fn min_weights_skip_zeros_and_a_masked_self_weight() {
    let row = [(0, 5), (1, 0), (2, 7)];
    let mut params = Params::<Fx> {
        min_allowed_weights: 2,
        ..Params::default()
    };
    assert_eq!(check_min_weights(&params, 0, &row), Ok(()));
    params.mask_self_weights = true;
    assert_eq!(
        check_min_weights(&params, 0, &row),
        Err(Error::TooFewWeights { nonzero: 1, min: 2 })
    );
    assert_eq!(check_min_weights(&params, 1, &row), Ok(()));
}
