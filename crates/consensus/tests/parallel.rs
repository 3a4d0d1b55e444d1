//! The parallel epoch (feature `parallel`): the same bits on 1, 2, 3 and 8 threads; for the
//! fixed backend the bits of `epoch` / `epoch_in_place`; for float within a few ulps of them.
#![cfg(feature = "parallel")]

use std::num::NonZeroUsize;

use deepnode_consensus::{
    Activity, BondMode, Departed, Error, Fx, OutputBuffers, Parallel, Params, Scalar, State, Uid,
    Weight, epoch, epoch_in_place, epoch_in_place_at,
};
use deepnode_testkit::fuzzing::state_from_bytes;
use deepnode_testkit::synthetic::network;
use proptest::prelude::*;

const THREADS: [usize; 4] = [1, 2, 3, 8];

fn parallel<N: Scalar + Send + Sync>(threads: usize) -> Parallel<N> {
    Parallel::new(NonZeroUsize::new(threads).expect("threads > 0"))
}

/// Every output of one epoch as bits (f64 by `to_bits`, Fx by its raw bits), bonds included.
#[derive(Debug, PartialEq, Eq)]
struct Bits {
    reals: Vec<Vec<i128>>,
    loss: i128,
    minted: Vec<u64>,
    stake: Vec<u64>,
    bonds: Vec<Vec<(Uid, i128)>>,
}

fn bits<N: Scalar>(x: N) -> i128 {
    x.fixed_bits()
        .unwrap_or_else(|| i128::from(x.to_f64().to_bits()))
}

fn all_bits<N: Scalar>(out: &OutputBuffers<N>, loss: N, bonds: &[Vec<(Uid, N)>]) -> Bits {
    Bits {
        reals: [
            &out.rank,
            &out.trust,
            &out.consensus,
            &out.incentive,
            &out.dividends,
        ]
        .iter()
        .map(|v| v.iter().map(|&x| bits(x)).collect())
        .collect(),
        loss: bits(loss),
        minted: out.minted.clone(),
        stake: out.stake.clone(),
        bonds: bonds
            .iter()
            .map(|r| r.iter().map(|&(u, v)| (u, bits(v))).collect())
            .collect(),
    }
}

/// `epochs` chained epochs on the buffer API (bonds and buffers reused: the steady path after
/// the first), on one core (`threads` = None) or a [`Parallel`] runner; the bits of each.
fn chain<N: Scalar + Send + Sync>(
    state: &State<N>,
    epochs: usize,
    threads: Option<usize>,
) -> Vec<Result<Bits, Error>> {
    let n = state.stake.len();
    let mut bonds: Vec<Vec<(Uid, N)>> = state.bonds.clone();
    bonds.resize(n, Vec::new());
    let mut stake = state.stake.clone();
    let mut out = OutputBuffers::<N>::new(n);
    let mut runner = threads.map(parallel::<N>);
    let mut got = Vec::new();
    for e in 0..epochs {
        // The rows age by one block per epoch: some turn absent along the chain.
        let activity = Activity {
            block: state.block + e as u64,
            last_update: &state.last_update,
        };
        let loss = match &mut runner {
            None => epoch_in_place_at(
                &state.params,
                &stake,
                &state.weights,
                activity,
                &mut bonds,
                out.outputs(),
            ),
            Some(p) => p.epoch_in_place_at(
                &state.params,
                &stake,
                &state.weights,
                activity,
                &mut bonds,
                out.outputs(),
            ),
        };
        match loss {
            Ok(loss) => got.push(Ok(all_bits(&out, loss, &bonds))),
            Err(e) => {
                got.push(Err(e));
                break;
            }
        }
        stake.clone_from(&out.stake);
    }
    got
}

/// The `Vec` API, one core and every thread count.
fn vec_api<N: Scalar + Send + Sync>(state: &State<N>) -> Vec<Result<Bits, Error>> {
    let one = |r: Result<deepnode_consensus::EpochOutput<N>, Error>| {
        r.map(|o| {
            let bufs = OutputBuffers {
                rank: o.rank,
                trust: o.trust,
                consensus: o.consensus,
                incentive: o.incentive,
                dividends: o.dividends,
                minted: o.minted,
                stake: o.stake,
                scratch: Vec::new(),
            };
            all_bits(&bufs, o.loss, &o.bonds)
        })
    };
    let mut all = vec![one(epoch(state))];
    for t in THREADS {
        all.push(one(parallel::<N>(t).epoch(state)));
    }
    all
}

/// Fixed: every thread count gives the bits of the one-core epoch, `Vec` and buffer API.
fn fixed_is_exact(state: &State<Fx>, epochs: usize) {
    let want = chain(state, epochs, None);
    for t in THREADS {
        assert_eq!(chain(state, epochs, Some(t)), want, "{t} threads");
    }
    let all = vec_api(state);
    for (k, got) in all.iter().enumerate() {
        assert_eq!(got, &all[0], "Vec API, run {k}");
    }
}

/// Float: every thread count gives the same bits; and within `tol` (relative to 1) of the
/// one-core epoch.
fn float_is_thread_independent(state: &State<f64>, epochs: usize, tol: f64) {
    let want = chain(state, epochs, Some(1));
    for t in THREADS {
        assert_eq!(chain(state, epochs, Some(t)), want, "{t} threads");
    }
    let all = vec_api(state);
    for (k, got) in all.iter().enumerate().skip(2) {
        assert_eq!(got, &all[1], "Vec API, run {k}");
    }
    let one = chain(state, epochs, None);
    assert_eq!(one.len(), want.len());
    for (a, b) in one.iter().zip(&want) {
        match (a, b) {
            (Ok(a), Ok(b)) => {
                for (x, y) in a.reals.iter().zip(&b.reals) {
                    for (&x, &y) in x.iter().zip(y) {
                        let (x, y) = (f64::from_bits(x as u64), f64::from_bits(y as u64));
                        assert!((x - y).abs() <= tol * x.abs().max(1.0), "{x} vs {y}");
                    }
                }
            }
            (a, b) => assert_eq!(a.as_ref().err(), b.as_ref().err()),
        }
    }
}

/// A random state of up to 64 nodes: sorted rows, bonds, any params, EMA or cumulative.
fn case() -> impl Strategy<Value = State<Fx>> {
    (1usize..=64)
        .prop_flat_map(|n| {
            let row = proptest::collection::btree_map(0..n as Uid, any::<Weight>(), 0..=n)
                .prop_map(|m| m.into_iter().collect::<Vec<_>>());
            let bond =
                proptest::collection::btree_map(0..n as Uid, 0u64..1 << 20, 0..=n).prop_map(|m| {
                    m.into_iter()
                        .map(|(u, v)| (u, Fx::from_ratio(u128::from(v), 1 << 16)))
                        .collect::<Vec<_>>()
                });
            (
                proptest::collection::vec(
                    prop_oneof![Just(0u64), 1u64..1_000_000, Just(u64::MAX)],
                    n,
                ),
                proptest::collection::vec(row, 0..=n),
                proptest::collection::vec(bond, 0..=n),
                (
                    any::<bool>(),
                    proptest::option::of(1u64..=1 << 16),
                    0u64..1 << 14,
                ),
                any::<u64>(),
                (
                    0u64..4,
                    proptest::option::of(1u64..=1 << 16),
                    prop_oneof![Just(0usize), Just(n)]
                        .prop_flat_map(|k| proptest::collection::vec(0u64..8, k)),
                ),
            )
        })
        .prop_map(
            |(stake, weights, bonds, (mask, alpha, threshold), emission, (cutoff, decay, last))| {
                State {
                    params: Params {
                        bonds: alpha.map_or(BondMode::Cumulative, |a| BondMode::Ema {
                            alpha: Fx::from_ratio(u128::from(a), 1 << 16),
                        }),
                        mask_self_weights: mask,
                        trust_threshold: Fx::from_ratio(u128::from(threshold), 1 << 16),
                        emission,
                        activity_cutoff: cutoff,
                        departed: decay.map_or(Departed::Withhold, |r| Departed::Decay {
                            rate: Fx::from_ratio(u128::from(r), 1 << 16),
                        }),
                        ..Params::default()
                    },
                    stake,
                    weights,
                    bonds,
                    block: 7,
                    last_update: last,
                }
            },
        )
}

fn to_float(s: &State<Fx>) -> State<f64> {
    State {
        params: Params {
            rho: s.params.rho.to_f64(),
            kappa: s.params.kappa.to_f64(),
            self_share: s.params.self_share.to_f64(),
            emission: s.params.emission,
            bonds: s.params.bonds.map(|x| x.to_f64()),
            mask_self_weights: s.params.mask_self_weights,
            trust_threshold: s.params.trust_threshold.to_f64(),
            min_allowed_weights: s.params.min_allowed_weights,
            activity_cutoff: s.params.activity_cutoff,
            departed: match s.params.departed {
                Departed::Withhold => Departed::Withhold,
                Departed::Decay { rate } => Departed::Decay {
                    rate: rate.to_f64(),
                },
            },
        },
        stake: s.stake.clone(),
        weights: s.weights.clone(),
        bonds: s
            .bonds
            .iter()
            .map(|r| r.iter().map(|&(u, v)| (u, v.to_f64())).collect())
            .collect(),
        block: s.block,
        last_update: s.last_update.clone(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn fixed_parallel_is_the_one_core_epoch(state in case()) {
        fixed_is_exact(&state, 3);
    }

    #[test]
    fn float_parallel_does_not_depend_on_threads(state in case()) {
        float_is_thread_independent(&to_float(&state), 3, 1e-12);
    }

    /// The fuzz generator: invalid rows, out-of-range uids, repeated uids, surplus rows.
    #[test]
    fn any_state_same_result_or_same_error(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        fixed_is_exact(&state_from_bytes::<Fx>(&data), 2);
        float_is_thread_independent(&state_from_bytes::<f64>(&data), 2, 1e-12);
    }
}

#[test]
fn synthetic_networks() {
    // (n, k): sparse and dense, and n past the size where the columns are prefetched.
    for (n, k, seed) in [(1000, 32, 1), (300, 300, 2), (40_000, 4, 3), (3, 3, 4)] {
        let fx = network::<Fx>(n, k, seed);
        fixed_is_exact(&fx, 3);
        let mut ema = fx.clone();
        ema.params.bonds = BondMode::Ema {
            alpha: Fx::from_ratio(1, 10),
        };
        ema.params.mask_self_weights = true;
        fixed_is_exact(&ema, 2);
        float_is_thread_independent(&network::<f64>(n, k, seed), 3, 1e-12);
    }
}

/// Two bad rows in different chunks: every thread count reports the first, as one core does,
/// and touches no bond.
#[test]
fn the_first_bad_row_is_reported_and_no_bond_touched() {
    let mut state = network::<Fx>(400, 8, 9);
    state.weights[390].push((400, 1)); // uid out of range, in the last chunk
    state.weights[250] = vec![(3, 1), (3, 2)]; // repeated uid, in an earlier chunk
    let bonds: Vec<Vec<(Uid, Fx)>> = (0..400).map(|i| vec![(i, Fx::ONE)]).collect();
    let want = {
        let mut b = bonds.clone();
        let mut out = OutputBuffers::new(400);
        epoch_in_place(
            &state.params,
            &state.stake,
            &state.weights,
            &mut b,
            out.outputs(),
        )
        .expect_err("bad rows")
    };
    assert!(
        matches!(want, Error::DuplicateUid { row: 250, .. }),
        "{want:?}"
    );
    for t in THREADS {
        let mut b = bonds.clone();
        let mut out = OutputBuffers::new(400);
        let got = parallel::<Fx>(t)
            .epoch_in_place(
                &state.params,
                &state.stake,
                &state.weights,
                &mut b,
                out.outputs(),
            )
            .expect_err("bad rows");
        assert_eq!(got, want, "{t} threads");
        assert_eq!(b, bonds, "{t} threads: a bond was touched");
        assert!(out.minted.iter().all(|&m| m == 0));
    }
}

/// One runner for networks of different sizes (its partial sums are resized, not stale).
#[test]
fn a_runner_is_reused_across_sizes() {
    let mut p = parallel::<Fx>(2);
    for (n, k) in [(500, 16), (50, 50), (700, 3)] {
        let state = network::<Fx>(n, k, 5);
        assert_eq!(p.epoch(&state), epoch(&state), "n = {n}");
    }
    assert_eq!(p.threads().get(), 2);
}
