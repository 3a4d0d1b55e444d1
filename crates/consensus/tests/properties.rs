//! Properties of the epoch (SPEC.md), checked for both backends on random states.

use std::collections::BTreeMap;

use deepnode_consensus::{BondMode, EpochOutput, Fx, Params, Scalar, State, consensus_of, epoch};
use proptest::prelude::*;

/// A backend-neutral random state: params on a 2^-20 grid, so both backends read them exactly.
#[derive(Clone, Debug)]
struct Case {
    rho: f64,
    kappa: f64,
    self_share: f64,
    threshold: f64,
    alpha: Option<f64>,
    mask: bool,
    emission: u64,
    stake: Vec<u64>,
    weights: Vec<Vec<(u32, u16)>>,
    bonds: Vec<Vec<(u32, f64)>>,
}

impl Case {
    fn state<N: Scalar>(&self) -> State<N> {
        State {
            params: Params {
                rho: N::from_f64(self.rho),
                kappa: N::from_f64(self.kappa),
                self_share: N::from_f64(self.self_share),
                emission: self.emission,
                bonds: match self.alpha {
                    None => BondMode::Cumulative,
                    Some(a) => BondMode::Ema {
                        alpha: N::from_f64(a),
                    },
                },
                mask_self_weights: self.mask,
                trust_threshold: N::from_f64(self.threshold),
                min_allowed_weights: 1,
                activity_cutoff: 0,
                departed: deepnode_consensus::Departed::Withhold,
            },
            stake: self.stake.clone(),
            weights: self.weights.clone(),
            bonds: self
                .bonds
                .iter()
                .map(|r| r.iter().map(|&(u, v)| (u, N::from_f64(v))).collect())
                .collect(),
            block: 0,
            last_update: Vec::new(),
        }
    }
}

fn grid(lo: u32, hi: u32) -> impl Strategy<Value = f64> {
    (lo..=hi).prop_map(|k| f64::from(k) / f64::from(1u32 << 20))
}

fn row(n: usize) -> impl Strategy<Value = Vec<(u32, u16)>> {
    proptest::sample::subsequence((0..n as u32).collect::<Vec<_>>(), 0..=n)
        .prop_flat_map(|uids| {
            let k = uids.len();
            (
                Just(uids),
                proptest::collection::vec(prop_oneof![Just(0u16), Just(65535u16), any::<u16>()], k),
            )
        })
        .prop_map(|(uids, ws)| uids.into_iter().zip(ws).collect())
        .prop_shuffle()
}

fn case() -> impl Strategy<Value = Case> {
    (1usize..=20)
        .prop_flat_map(|n| {
            let stake = proptest::collection::vec(
                prop_oneof![
                    Just(0u64),
                    1u64..1_000,
                    1u64..1_000_000_000_000,
                    Just(u64::MAX)
                ],
                n,
            );
            let weights = proptest::collection::vec(row(n), 0..=n);
            let bonds = proptest::collection::vec(
                proptest::sample::subsequence((0..n as u32).collect::<Vec<_>>(), 0..=n)
                    .prop_flat_map(|u| {
                        let k = u.len();
                        (Just(u), proptest::collection::vec(grid(0, 1 << 21), k))
                    })
                    .prop_map(|(u, v)| u.into_iter().zip(v).collect::<Vec<_>>()),
                0..=n,
            );
            (
                (
                    grid(1, 20 << 20),
                    grid(0, 1 << 20),
                    grid(0, 1 << 20),
                    grid(0, (1 << 20) - 1),
                ),
                (
                    proptest::option::of(grid(1 << 14, 1 << 20)),
                    any::<bool>(),
                    any::<u64>(),
                ),
                stake,
                weights,
                bonds,
            )
        })
        .prop_map(
            |((rho, kappa, self_share, t), (alpha, mask, emission), stake, weights, bonds)| Case {
                rho,
                kappa,
                self_share,
                threshold: if t > 0.5 { 0.0 } else { t / 8.0 },
                alpha,
                mask,
                emission,
                stake,
                weights,
                bonds,
            },
        )
}

fn sum<N: Scalar>(v: &[N]) -> f64 {
    v.iter().map(|x| x.to_f64()).sum()
}

/// The invariants every epoch output must satisfy, for either backend.
fn invariants<N: Scalar>(case: &Case, out: &EpochOutput<N>) -> Result<(), TestCaseError> {
    let inc = sum(&out.incentive);
    prop_assert!(
        inc == 0.0 || (inc - 1.0).abs() < 1e-9,
        "incentive sums to {inc}"
    );
    if inc == 0.0 {
        prop_assert!(out.minted.iter().all(|&m| m == 0));
    }
    let minted: u128 = out.minted.iter().map(|&m| u128::from(m)).sum();
    prop_assert!(
        minted <= u128::from(case.emission),
        "minted {minted} > emission"
    );
    let div = sum(&out.dividends);
    prop_assert!(
        (div - inc).abs() < 1e-9,
        "dividends sum {div}, incentive {inc}"
    );
    for (&old, (&new, &m)) in case.stake.iter().zip(out.stake.iter().zip(&out.minted)) {
        prop_assert_eq!(new, old.saturating_add(m));
    }
    for c in &out.consensus {
        let c = c.to_f64();
        prop_assert!((0.0..=1.0).contains(&c));
    }
    Ok(())
}

macro_rules! backend_suite {
    ($module:ident, $n:ty) => {
        mod $module {
            use super::*;

            proptest! {
                #![proptest_config(ProptestConfig::with_cases(256))]

                #[test]
                fn invariants_hold(case in case()) {
                    let out = epoch(&case.state::<$n>()).expect("valid state");
                    invariants(&case, &out)?;
                }

                #[test]
                fn consensus_is_in_open_unit_interval_and_monotone(
                    rho in grid(1, 20 << 20), kappa in grid(0, 1 << 20),
                    a in grid(0, 1 << 20), b in grid(0, 1 << 20),
                ) {
                    let params = Params { rho: <$n>::from_f64(rho), kappa: <$n>::from_f64(kappa), ..Params::default() };
                    let c = |t: f64| consensus_of(&params, <$n>::from_f64(t));
                    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
                    prop_assert!(c(lo) <= c(hi));
                    prop_assert!(c(lo) > <$n>::ZERO && c(hi) < <$n>::ONE);
                }

                #[test]
                fn epoch_consensus_is_the_curve_of_its_trust(case in case()) {
                    let state = case.state::<$n>();
                    let out = epoch(&state).expect("valid state");
                    for (j, (&t, &c)) in out.trust.iter().zip(&out.consensus).enumerate() {
                        prop_assert_eq!(consensus_of(&state.params, t), c, "node {}", j);
                    }
                }

                #[test]
                fn relabelling_uids_permutes_outputs(
                    case in case(), seed in any::<u64>(),
                ) {
                    let n = case.stake.len();
                    let mut perm: Vec<u32> = (0..n as u32).collect();
                    let mut s = seed;
                    for i in (1..n).rev() {
                        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                        perm.swap(i, (s >> 33) as usize % (i + 1));
                    }
                    let p = |u: u32| perm[u as usize];
                    let mut moved = case.clone();
                    let mut stake = vec![0; n];
                    let mut weights = vec![Vec::new(); n];
                    let mut bonds = vec![Vec::new(); n];
                    for i in 0..n {
                        stake[p(i as u32) as usize] = case.stake[i];
                        if let Some(r) = case.weights.get(i) {
                            weights[p(i as u32) as usize] = r.iter().map(|&(u, w)| (p(u), w)).collect();
                        }
                        if let Some(r) = case.bonds.get(i) {
                            bonds[p(i as u32) as usize] = r.iter().map(|&(u, v)| (p(u), v)).collect();
                        }
                    }
                    moved.stake = stake;
                    moved.weights = weights;
                    moved.bonds = bonds;
                    let a = epoch(&case.state::<$n>()).expect("valid state");
                    let b = epoch(&moved.state::<$n>()).expect("valid state");
                    let close = |x: $n, y: $n| (x.to_f64() - y.to_f64()).abs() <= 1e-12;
                    for i in 0..n {
                        let j = p(i as u32) as usize;
                        prop_assert!(close(a.rank[i], b.rank[j]));
                        prop_assert!(close(a.trust[i], b.trust[j]));
                        prop_assert!(close(a.consensus[i], b.consensus[j]));
                        prop_assert!(close(a.incentive[i], b.incentive[j]));
                        prop_assert!(close(a.dividends[i], b.dividends[j]));
                        // Float sums in another order may round E * delta across an integer.
                        let units = 1 + (case.emission as f64 * 1e-12) as u64;
                        prop_assert!(a.minted[i].abs_diff(b.minted[j]) <= units);
                        let mut row: Vec<_> = a.bonds[i].iter().map(|&(u, v)| (p(u), v)).collect();
                        row.sort_by_key(|e| e.0);
                        prop_assert_eq!(row.len(), b.bonds[j].len());
                        for (x, y) in row.iter().zip(&b.bonds[j]) {
                            prop_assert!(x.0 == y.0 && close(x.1, y.1));
                        }
                    }
                    prop_assert!(close(a.loss, b.loss));
                }
            }
        }
    };
}

backend_suite!(fixed, Fx);
backend_suite!(float, f64);

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// SPEC.md §1 "Numbers": the two paths agree within the bound of SPEC.md §6: 1e-9 on
    /// rank, trust, consensus and loss; on the normalised incentive and dividends the fixed
    /// path's 2^-64 grid is magnified by 1 / X (X = sum_j r_j c_j), so 1e-9 + (n + 1) 2^-56 / X.
    #[test]
    fn fixed_agrees_with_float(case in case()) {
        let fx = epoch(&case.state::<Fx>()).expect("valid state");
        let fl = epoch(&case.state::<f64>()).expect("valid state");
        let n = case.stake.len() as f64;
        let x: f64 = fl.rank.iter().zip(&fl.consensus).map(|(r, c)| r * c).sum();
        let normalised = if x > 0.0 { 1e-9 + (n + 1.0) * 2f64.powi(-56) / x } else { 1e-9 };
        let pairs = [
            (&fx.rank, &fl.rank, 1e-9), (&fx.trust, &fl.trust, 1e-9),
            (&fx.consensus, &fl.consensus, 1e-9),
            (&fx.incentive, &fl.incentive, normalised), (&fx.dividends, &fl.dividends, normalised),
        ];
        for (a, b, tol) in pairs {
            for (x, y) in a.iter().zip(b.iter()) {
                prop_assert!((x.to_f64() - y).abs() <= tol, "fixed {} float {} tol {}", x, y, tol);
            }
        }
        prop_assert!((fx.loss.to_f64() - fl.loss).abs() <= 1e-9);
    }

    /// The fixed path is a function of the state: same input (rows in any order), same bits.
    #[test]
    fn same_input_same_bits(case in case()) {
        let a = epoch(&case.state::<Fx>()).expect("valid state");
        let mut shuffled = case.clone();
        for r in &mut shuffled.weights {
            r.reverse();
        }
        for r in &mut shuffled.bonds {
            r.reverse();
        }
        let b = epoch(&shuffled.state::<Fx>()).expect("valid state");
        prop_assert_eq!(a, b);
    }

    /// Step 8 entry by entry: the bonds after an epoch are the old bonds, decayed by
    /// `1 - alpha` under EMA, plus what the same epoch writes into empty bonds
    /// (`w_ij s_i`, or `alpha w_ij s_i / r_j`), entries at 0 dropped. Checks the in-place
    /// merge of old and new uids against a map, bit for bit.
    #[test]
    fn bond_update_is_old_plus_fresh_entry_by_entry(case in case()) {
        bond_update_is_old_plus_fresh(&case)?;
    }

    /// The same on bond rows that hold exactly their weights' uids (the steady state, which
    /// `epoch_in_place` updates in its slots), values on a grid that includes 0.
    #[test]
    fn steady_bond_update_is_old_plus_fresh_entry_by_entry(case in case().prop_map(steady)) {
        bond_update_is_old_plus_fresh(&case)?;
    }
}

/// `case` with each bond row holding exactly its weights row's uids (sorted), each value one
/// of 0, 1/4, 1/2, 3/4, 1 (a zero bond under a zero weight or stake stays 0 and is dropped).
fn steady(mut case: Case) -> Case {
    case.bonds = case
        .weights
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let mut uids: Vec<u32> = row.iter().map(|e| e.0).collect();
            uids.sort_unstable();
            uids.into_iter()
                .map(|j| (j, f64::from((i as u32 * 7 + j * 3) % 5) / 4.0))
                .collect()
        })
        .collect();
    case
}

/// The check of [`bond_update_is_old_plus_fresh_entry_by_entry`].
fn bond_update_is_old_plus_fresh(case: &Case) -> Result<(), TestCaseError> {
    {
        let with = epoch(&case.state::<Fx>()).expect("valid state");
        let mut empty = case.clone();
        empty.bonds.clear();
        let fresh = epoch(&empty.state::<Fx>()).expect("valid state");
        let old = case.state::<Fx>().bonds;
        for (i, got) in with.bonds.iter().enumerate() {
            let mut want: BTreeMap<u32, Fx> = BTreeMap::new();
            for &(j, b) in old.get(i).map_or(&[][..], Vec::as_slice) {
                let kept = match case.state::<Fx>().params.bonds {
                    BondMode::Cumulative => b.add(Fx::ZERO),
                    BondMode::Ema { alpha } => Fx::ONE.sub(alpha).mul(b).add(Fx::ZERO),
                    BondMode::Yuma { .. } | BondMode::Yuma3 { .. } => {
                        unreachable!("paper rules only")
                    }
                };
                want.insert(j, kept);
            }
            for &(j, v) in &fresh.bonds[i] {
                let decayed = match case.state::<Fx>().params.bonds {
                    BondMode::Cumulative => want.get(&j).copied().unwrap_or(Fx::ZERO),
                    BondMode::Ema { alpha } => old
                        .get(i)
                        .and_then(|r| r.iter().find(|e| e.0 == j))
                        .map_or(Fx::ZERO, |&(_, b)| Fx::ONE.sub(alpha).mul(b)),
                    BondMode::Yuma { .. } | BondMode::Yuma3 { .. } => {
                        unreachable!("paper rules only")
                    }
                };
                want.insert(j, decayed.add(v));
            }
            let want: Vec<(u32, Fx)> = want.into_iter().filter(|e| e.1 > Fx::ZERO).collect();
            prop_assert_eq!(got, &want, "row {}", i);
        }
    }
    Ok(())
}
