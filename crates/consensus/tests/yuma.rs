//! Yuma consensus through the public API: subtensor's own scenarios (its published
//! expectations), on both backends, and the properties that hold on any input.

use deepnode_consensus::{BondMode, Fx, LiquidAlpha, Params, Scalar, State, epoch};

const KAPPA: (u64, u64) = (32_767, 65_535);

fn yuma3<N: Scalar>(liquid: bool) -> Params<N> {
    Params {
        kappa: N::ratio(KAPPA.0, KAPPA.1),
        mask_self_weights: true,
        bonds: BondMode::Yuma3 {
            bonds_moving_average: N::ratio(975, 1000),
            bonds_penalty: N::ZERO,
            liquid_alpha: liquid.then(|| LiquidAlpha {
                alpha_low: N::ratio(1, 10),
                alpha_high: N::ratio(3, 10),
                steepness: N::ratio(10, 1),
            }),
        },
        ..Params::default()
    }
}

/// Runs epochs with the weights of each epoch (the last ones kept), returning per epoch the
/// validators' bonds on the servers and the dividends.
fn run<N: Scalar>(
    params: Params<N>,
    stake: &[u64],
    validators: usize,
    servers: &[u32],
    weights: &[Vec<Vec<u16>>],
    epochs: usize,
) -> Vec<(Vec<Vec<f64>>, Vec<f64>)> {
    let mut state = State {
        params,
        stake: stake.to_vec(),
        weights: Vec::new(),
        bonds: Vec::new(),
        block: 0,
        last_update: Vec::new(),
    };
    let mut out = Vec::new();
    for e in 0..epochs {
        if let Some(w) = weights.get(e) {
            state.weights = w
                .iter()
                .map(|row| servers.iter().copied().zip(row.iter().copied()).collect())
                .collect();
        }
        let o = epoch(&state).expect("a valid state");
        let bonds = (0..validators)
            .map(|i| {
                servers
                    .iter()
                    .map(|&j| {
                        o.bonds[i]
                            .iter()
                            .find(|&&(u, _)| u == j)
                            .map_or(0.0, |&(_, b)| b.to_f64())
                    })
                    .collect()
            })
            .collect();
        out.push((bonds, o.dividends.iter().map(|d| d.to_f64()).collect()));
        // Stake stays as subtensor's test sets it (its emission goes elsewhere).
        state.bonds = o.bonds;
    }
    out
}

fn close(got: &[(Vec<Vec<f64>>, Vec<f64>)], bonds: &[[[f64; 2]; 3]], dividends: &[[f64; 5]]) {
    for (e, (g, (b, d))) in got.iter().zip(bonds.iter().zip(dividends)).enumerate() {
        for (i, row) in b.iter().enumerate() {
            for (k, &t) in row.iter().enumerate() {
                assert!(
                    (g.0[i][k] - t).abs() <= 1e-3,
                    "epoch {e} bond {i},{k}: {} vs {t}",
                    g.0[i][k]
                );
            }
        }
        for (i, &t) in d.iter().enumerate() {
            assert!(
                (g.1[i] - t).abs() <= 1e-3,
                "epoch {e} dividend {i}: {} vs {t}",
                g.1[i]
            );
        }
    }
}

/// subtensor `pallets/subtensor/src/tests/epoch.rs`, `test_yuma_3_kappa_moves_first`.
#[test]
fn yuma3_kappa_moves_first_matches_subtensor() {
    let m = u16::MAX;
    let weights = [
        vec![vec![m, 0]; 3],
        vec![vec![0, m], vec![m, 0], vec![m, 0]],
        vec![vec![0, m], vec![0, m], vec![m, 0]],
        vec![vec![0, m]; 3],
    ];
    let bonds = [
        [[0.1013, 0.0], [0.1013, 0.0], [0.1013, 0.0]],
        [[0.0908, 0.1013], [0.3697, 0.0], [0.3697, 0.0]],
        [[0.0815, 0.1924], [0.3170, 0.1013], [0.5580, 0.0]],
        [[0.0731, 0.2742], [0.2765, 0.1924], [0.4306, 0.1013]],
        [[0.0656, 0.3478], [0.2435, 0.2742], [0.3589, 0.1924]],
        [[0.0588, 0.4139], [0.2157, 0.3478], [0.3089, 0.2742]],
    ];
    let dividends = [
        [0.8, 0.1, 0.1, 0.0, 0.0],
        [1.0, 0.0, 0.0, 0.0, 0.0],
        [0.9382, 0.0618, 0.0, 0.0, 0.0],
        [0.8819, 0.0773, 0.0407, 0.0, 0.0],
        [0.8564, 0.0844, 0.0592, 0.0, 0.0],
        [0.8418, 0.0884, 0.0697, 0.0, 0.0],
    ];
    let stake = [8, 1, 1, 0, 0];
    close(
        &run(yuma3::<f64>(true), &stake, 3, &[3, 4], &weights, 6),
        &bonds,
        &dividends,
    );
    close(
        &run(yuma3::<Fx>(true), &stake, 3, &[3, 4], &weights, 6),
        &bonds,
        &dividends,
    );
}

/// A new weights row for one node.
type Change = (usize, Vec<(u32, u16)>);

/// subtensor `pallets/subtensor/src/tests/epoch.rs`, `test_bonds` (original Yuma, bonds
/// penalty 1, moving average 0.9): the column-max-upscaled u16 bonds after each epoch.
#[test]
fn original_yuma_bonds_match_subtensor() {
    let m = u16::MAX;
    let params = Params {
        kappa: Fx::from_ratio(KAPPA.0.into(), KAPPA.1.into()),
        mask_self_weights: true,
        bonds: BondMode::Yuma {
            bonds_moving_average: Fx::from_ratio(9, 10),
            bonds_penalty: Fx::ONE,
        },
        ..Params::default()
    };
    let full = vec![(4u32, m / 4), (5, m / 2), (6, (m / 4) * 3), (7, m)];
    let mut state = State {
        params,
        stake: vec![1, 2, 3, 4, 0, 0, 0, 0],
        weights: vec![full.clone(); 4],
        bonds: Vec::new(),
        block: 0,
        last_update: Vec::new(),
    };
    let u16s = |o: &deepnode_consensus::EpochOutput<Fx>, j: u32| -> Vec<u64> {
        (0..4)
            .map(|i| {
                o.bonds[i]
                    .iter()
                    .find(|&&(u, _)| u == j)
                    .map_or(0, |&(_, b)| b.of_units(65_535))
            })
            .collect()
    };
    // (the weights change before the epoch, the column checked, the published u16 bonds)
    let steps: [(Option<Change>, u32, [u64; 4]); 7] = [
        (None, 4, [16383, 32767, 49151, 65535]),
        (Some((0, vec![(0, m)])), 4, [14582, 32767, 49151, 65535]),
        (Some((1, vec![(1, m)])), 4, [12603, 28321, 49151, 65535]),
        (Some((2, vec![(2, m)])), 7, [12602, 28320, 49150, 65535]),
        (Some((2, vec![(7, m)])), 7, [10951, 24609, 49150, 65535]),
        (None, 7, [9559, 21482, 49150, 65535]),
        (None, 7, [8376, 18824, 49150, 65535]),
    ];
    for (e, (change, j, want)) in steps.into_iter().enumerate() {
        if let Some((i, row)) = change {
            state.weights[i] = row;
        }
        let o = epoch(&state).expect("a valid state");
        let got = u16s(&o, j);
        for (g, w) in got.iter().zip(want) {
            assert!(g.abs_diff(w) <= 1, "epoch {e}: {got:?} vs {want:?}");
        }
        state.bonds = o.bonds;
    }
}

/// Yuma on several threads: the same bits as the one-thread epoch.
#[cfg(feature = "parallel")]
#[test]
fn parallel_yuma_gives_the_same_bits() {
    use deepnode_consensus::{OutputBuffers, Parallel};
    let mut state = State {
        params: yuma3::<Fx>(true),
        stake: vec![8, 1, 1, 0, 0],
        weights: vec![vec![(3, 65535), (4, 0)], vec![(4, 65535)], vec![(3, 65535)]],
        bonds: Vec::new(),
        block: 0,
        last_update: Vec::new(),
    };
    let mut bonds = vec![Vec::new(); 5];
    let mut runner = Parallel::new(std::num::NonZeroUsize::new(4).expect("4 > 0"));
    let mut out = OutputBuffers::<Fx>::new(5);
    for _ in 0..3 {
        let want = epoch(&state).expect("valid");
        let loss = runner
            .epoch_in_place(
                &state.params,
                &state.stake,
                &state.weights,
                &mut bonds,
                out.outputs(),
            )
            .expect("valid");
        assert_eq!(loss, want.loss);
        assert_eq!(
            (&out.dividends, &out.incentive),
            (&want.dividends, &want.incentive)
        );
        assert_eq!(bonds, want.bonds);
        state.bonds = want.bonds;
    }
}

mod median {
    //! The median's two searches (selection by column blocks, bisection) give the same bits:
    //! the working space decides which columns each takes.
    use deepnode_consensus::{
        BondMode, Fx, LiquidAlpha, OutputBuffers, Params, Scalar, Uid, Weight, epoch_in_place,
    };
    use proptest::prelude::*;

    /// One Yuma network: stakes, rows (canonical), kappa and the rule.
    #[derive(Clone, Debug)]
    struct Net {
        stake: Vec<u64>,
        rows: Vec<Vec<(Uid, Weight)>>,
        kappa: (u64, u64),
        mask: bool,
        rule: u8,
    }

    fn net() -> impl Strategy<Value = Net> {
        (1usize..20).prop_flat_map(|n| {
            // Few distinct stakes and weights, so ties and sums of exactly kappa occur.
            let stake = prop::sample::select(vec![0u64, 1, 2, 3, 1000, 65_535, u64::MAX / 3]);
            let weight = prop::sample::select(vec![0u16, 1, 2, 7, 30_000, 65_535]);
            let row = prop::collection::vec((any::<bool>(), weight), n);
            (
                prop::collection::vec(stake, n),
                prop::collection::vec((0u8..4, row), n),
                prop::sample::select(vec![(0, 1), (1, 2), (1, 3), (32_767, 65_535), (1, 1)]),
                any::<bool>(),
                0u8..3,
            )
                .prop_map(|(stake, rows, kappa, mask, rule)| Net {
                    stake,
                    // Density: a quarter of the rows empty, the rest half or mostly full.
                    rows: rows
                        .into_iter()
                        .map(|(d, row)| {
                            row.into_iter()
                                .enumerate()
                                .filter(|(_, (on, _))| d == 3 || (d > 0 && *on))
                                .map(|(j, (_, w))| (j as Uid, w))
                                .collect()
                        })
                        .collect(),
                    kappa,
                    mask,
                    rule,
                })
        })
    }

    fn params<N: Scalar>(net: &Net) -> Params<N> {
        let (m, p) = (N::ratio(9, 10), N::ratio(1, 2));
        Params {
            kappa: N::ratio(net.kappa.0, net.kappa.1),
            mask_self_weights: net.mask,
            bonds: match net.rule {
                0 => BondMode::Yuma {
                    bonds_moving_average: m,
                    bonds_penalty: p,
                },
                r => BondMode::Yuma3 {
                    bonds_moving_average: m,
                    bonds_penalty: p,
                    liquid_alpha: (r == 2).then(|| LiquidAlpha {
                        alpha_low: N::ratio(1, 10),
                        alpha_high: N::ratio(3, 10),
                        steepness: N::ratio(10, 1),
                    }),
                },
            },
            ..Params::default()
        }
    }

    fn bits<N: Scalar>(x: N) -> i128 {
        x.fixed_bits()
            .unwrap_or_else(|| i128::from(x.to_f64().to_bits()))
    }

    /// Two chained epochs with `scratch` entries of working space: every output's bits.
    fn run<N: Scalar>(net: &Net, scratch: usize) -> Vec<Vec<i128>> {
        let n = net.stake.len();
        let params = params::<N>(net);
        let mut bonds: Vec<Vec<(Uid, N)>> = vec![Vec::new(); n];
        let mut out = OutputBuffers::<N>::new(n);
        out.scratch = vec![N::ZERO; scratch];
        let mut got = Vec::new();
        for _ in 0..2 {
            epoch_in_place(&params, &net.stake, &net.rows, &mut bonds, out.outputs())
                .expect("a valid state");
            for v in [
                &out.rank,
                &out.trust,
                &out.consensus,
                &out.incentive,
                &out.dividends,
            ] {
                got.push(v.iter().map(|&x| bits(x)).collect());
            }
            got.push(out.minted.iter().map(|&m| i128::from(m)).collect());
            got.extend(bonds.iter().map(|r| {
                r.iter()
                    .flat_map(|&(u, b)| [i128::from(u), bits(b)])
                    .collect()
            }));
        }
        got
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        /// With `n` entries of working space every column is bisected; with `2n` the columns
        /// with more than `n / 3` voters are; with `4n` every column is selected, in blocks;
        /// with room for every score, in one block. The same bits on both backends.
        #[test]
        fn selection_and_bisection_give_the_same_bits(net in net()) {
            let n = net.stake.len();
            let all = n + 3 * n * n;
            let fx = run::<Fx>(&net, n);
            for scratch in [2 * n, 4 * n, all] {
                prop_assert_eq!(&fx, &run::<Fx>(&net, scratch));
            }
            let fl = run::<f64>(&net, n);
            for scratch in [2 * n, 4 * n, all] {
                prop_assert_eq!(&fl, &run::<f64>(&net, scratch));
            }
        }
    }
}
