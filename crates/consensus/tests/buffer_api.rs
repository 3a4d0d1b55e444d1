//! The allocation-free API gives the same bits as the `Vec` API, and refuses before writing.

use deepnode_consensus::{
    Activity, BondMode, BoundedRow, Departed, Error, Fx, OutputBuffers, Outputs, Params, Scalar,
    State, epoch, epoch_in_place, epoch_in_place_at,
};

const N: usize = 5;
const K: usize = 5;

fn state() -> State<Fx> {
    State {
        params: Params {
            bonds: BondMode::Ema {
                alpha: Fx::from_ratio(1, 4),
            },
            mask_self_weights: true,
            ..Params::default()
        },
        stake: vec![100, 200, 300, 0, 400],
        weights: vec![
            vec![(0, 9), (1, 500), (2, 100)],
            vec![(0, 1), (2, 7)],
            vec![(1, 65535), (4, 3)],
            vec![(0, 10)],
            vec![(1, 1), (2, 1), (3, 1), (4, 1)],
        ],
        bonds: vec![
            vec![(3, Fx::from_ratio(1, 3))],
            vec![],
            vec![],
            vec![],
            vec![(0, Fx::ONE)],
        ],
        block: 0,
        last_update: Vec::new(),
    }
}

struct Buffers {
    rank: [Fx; N],
    trust: [Fx; N],
    consensus: [Fx; N],
    incentive: [Fx; N],
    dividends: [Fx; N],
    scratch: [Fx; N],
    minted: [u64; N],
    stake: [u64; N],
}

impl Buffers {
    fn new() -> Self {
        Buffers {
            rank: [Fx::ZERO; N],
            trust: [Fx::ZERO; N],
            consensus: [Fx::ZERO; N],
            incentive: [Fx::ZERO; N],
            dividends: [Fx::ZERO; N],
            scratch: [Fx::ZERO; N],
            minted: [0; N],
            stake: [0; N],
        }
    }
    fn outputs(&mut self) -> Outputs<'_, Fx> {
        Outputs {
            rank: &mut self.rank,
            trust: &mut self.trust,
            consensus: &mut self.consensus,
            incentive: &mut self.incentive,
            dividends: &mut self.dividends,
            minted: &mut self.minted,
            stake: &mut self.stake,
            scratch: &mut self.scratch,
        }
    }
}

fn bounded<T: Clone, const C: usize>(rows: &[Vec<T>]) -> Vec<BoundedRow<T, C>> {
    rows.iter()
        .map(|r| BoundedRow::from_slice(r).expect("fits"))
        .collect()
}

#[test]
fn bounded_rows_give_the_vec_apis_bits() {
    let s = state();
    let want = epoch(&s).expect("valid");
    let weights = bounded::<_, K>(&s.weights);
    let mut bonds = bounded::<_, K>(&s.bonds);
    let mut buf = Buffers::new();
    let loss =
        epoch_in_place(&s.params, &s.stake, &weights, &mut bonds, buf.outputs()).expect("valid");
    assert_eq!(loss, want.loss);
    assert_eq!(buf.rank.to_vec(), want.rank);
    assert_eq!(buf.trust.to_vec(), want.trust);
    assert_eq!(buf.consensus.to_vec(), want.consensus);
    assert_eq!(buf.incentive.to_vec(), want.incentive);
    assert_eq!(buf.dividends.to_vec(), want.dividends);
    assert_eq!(buf.minted.to_vec(), want.minted);
    assert_eq!(buf.stake.to_vec(), want.stake);
    let got: Vec<Vec<_>> = bonds.iter().map(|r| r.to_vec()).collect();
    assert_eq!(got, want.bonds);
}

#[test]
fn output_buffers_reused_across_epochs_give_the_vec_apis_bits() {
    let mut s = state();
    let mut bonds = s.bonds.clone();
    bonds.resize(N, Vec::new());
    let mut out = OutputBuffers::<Fx>::new(N);
    for _ in 0..3 {
        let want = epoch(&s).expect("valid");
        let loss = epoch_in_place(&s.params, &s.stake, &s.weights, &mut bonds, out.outputs())
            .expect("valid");
        assert_eq!(loss, want.loss);
        assert_eq!(
            (&out.rank, &out.incentive, &out.dividends, &out.minted),
            (&want.rank, &want.incentive, &want.dividends, &want.minted)
        );
        assert_eq!((&out.stake, &bonds), (&want.stake, &want.bonds));
        s.stake = want.stake;
        s.bonds = want.bonds;
    }
}

#[test]
fn a_bond_row_over_capacity_is_refused_before_anything_is_written() {
    let s = state();
    let weights = bounded::<_, K>(&s.weights);
    // Row 0 holds 1 bond and its weights add 2 new peers (self masked): 3 entries > 2.
    let mut bonds = bounded::<_, 2>(&s.bonds);
    let before = bonds.clone();
    let mut buf = Buffers::new();
    let err = epoch_in_place(&s.params, &s.stake, &weights, &mut bonds, buf.outputs());
    assert_eq!(
        err,
        Err(Error::RowTooLong {
            what: "bonds",
            row: 0,
            len: 3,
            max: 2
        })
    );
    assert_eq!(bonds, before);
    assert_eq!(buf.minted, [0; N]);
}

#[test]
fn unsorted_rows_and_short_buffers_are_typed_errors() {
    let s = state();
    let mut bonds = bounded::<_, K>(&s.bonds);
    let unsorted = vec![vec![(2u32, 1u16), (1, 1)]];
    let mut buf = Buffers::new();
    let err = epoch_in_place(&s.params, &s.stake, &unsorted, &mut bonds, buf.outputs());
    assert_eq!(
        err,
        Err(Error::UnsortedRow {
            what: "weights",
            row: 0
        })
    );
    let mut short = [Fx::ZERO; N - 1];
    let mut out = buf.outputs();
    out.trust = &mut short;
    let err = epoch_in_place(&s.params, &s.stake, &s.weights, &mut bonds, out);
    assert_eq!(
        err,
        Err(Error::BufferLength {
            name: "trust",
            len: N - 1,
            n: N
        })
    );
}

/// Bonds that hold exactly each row's weight uids (the steady state, checked by values
/// only), with `bad` at row 2's second entry.
fn steady_with<N: Scalar + Copy>(bad: N) -> (State<N>, Vec<Vec<(u32, N)>>) {
    let s = state_of::<N>();
    let bonds: Vec<Vec<(u32, N)>> = s
        .weights
        .iter()
        .enumerate()
        .map(|(i, row)| {
            row.iter()
                .enumerate()
                .map(|(k, &(j, _))| (j, if (i, k) == (2, 1) { bad } else { N::ONE }))
                .collect()
        })
        .collect();
    (s, bonds)
}

/// [`state`]'s stake and rows in another backend, cumulative bonds and a trust threshold.
fn state_of<N: Scalar>() -> State<N> {
    let s = state();
    State {
        params: Params {
            bonds: BondMode::Cumulative,
            // Some weights then count towards rank but not trust (9 of row 0's 609).
            trust_threshold: N::ratio(1, 4),
            ..Params::default()
        },
        stake: s.stake,
        weights: s.weights,
        bonds: vec![],
        block: 0,
        last_update: Vec::new(),
    }
}

#[test]
fn a_bad_value_in_a_steady_bond_row_is_refused_before_anything_is_written() {
    fn refused<N: Scalar + Copy>(bad: N) {
        let (s, mut bonds) = steady_with(bad);
        let before = bonds.clone();
        let mut out = OutputBuffers::<N>::new(N);
        let err = epoch_in_place(&s.params, &s.stake, &s.weights, &mut bonds, out.outputs());
        assert_eq!(err, Err(Error::InvalidBond { row: 2, uid: 4 }), "{bad:?}");
        assert!(
            bonds
                .iter()
                .flatten()
                .zip(before.iter().flatten())
                .all(|(a, b)| a.0 == b.0 && a.1.to_f64().to_bits() == b.1.to_f64().to_bits()),
            "{bad:?}"
        );
        assert_eq!(out.minted, [0; N]);
    }
    refused(Fx::ZERO.sub(Fx::from_ratio(1, 3)));
    refused(-1.0f64);
    refused(f64::NAN);
    refused(f64::INFINITY);
    // The same rows with a good value pass, through the steady path.
    let (s, mut bonds) = steady_with(Fx::ONE);
    let mut out = OutputBuffers::<Fx>::new(N);
    epoch_in_place(&s.params, &s.stake, &s.weights, &mut bonds, out.outputs()).expect("valid");
}

/// Two epochs' outputs and bonds, or the error.
type Run<N> = Result<(OutputBuffers<N>, Vec<Vec<(u32, N)>>), Error>;

#[test]
fn scratch_of_n_or_2n_gives_the_same_bits_and_less_is_refused() {
    fn run<N: Scalar + Copy>(scratch: usize) -> Run<N> {
        let (s, mut bonds) = steady_with(N::ONE);
        let mut out = OutputBuffers::<N>::new(N);
        out.scratch = vec![N::ZERO; scratch];
        // Two epochs: a steady one on the bonds of the first.
        for _ in 0..2 {
            epoch_in_place(&s.params, &s.stake, &s.weights, &mut bonds, out.outputs())?;
        }
        out.scratch.clear();
        Ok((out, bonds))
    }
    fn same_bits<N: Scalar + Copy>() {
        let bits = |r: Run<N>| {
            let (out, bonds) = r.expect("valid");
            let all = [
                &out.rank,
                &out.trust,
                &out.consensus,
                &out.incentive,
                &out.dividends,
            ];
            // Fixed-point bits, or the f64's own.
            let values: Vec<i128> = all
                .iter()
                .flat_map(|v| v.iter())
                .chain(bonds.iter().flatten().map(|(_, v)| v))
                .map(|v| v.fixed_bits().unwrap_or(i128::from(v.to_f64().to_bits())))
                .collect();
            (values, out.minted, out.stake)
        };
        let n = bits(run::<N>(N));
        assert_eq!(bits(run::<N>(2 * N)), n);
        assert_eq!(bits(run::<N>(3 * N)), n);
        assert!(matches!(
            run::<N>(N - 1),
            Err(Error::BufferLength {
                name: "scratch",
                len: 4,
                n: N
            })
        ));
    }
    same_bits::<f64>();
    same_bits::<Fx>();
}

/// `r_j` and `t_j` of a one-core fixed epoch on `stake` with every staked row weighting
/// column 0 only (weight 1, so each term is exactly the row's share).
fn column_zero(stake: Vec<u64>) -> (Fx, Fx) {
    let n = stake.len();
    let state = State {
        params: Params::default(),
        weights: vec![vec![(0, 1)]; n],
        bonds: vec![vec![]; n],
        stake,
        block: 0,
        last_update: Vec::new(),
    };
    let out = epoch(&state).expect("valid");
    (out.rank[0], out.trust[0])
}

#[test]
fn column_sums_that_reach_one_are_exact() {
    // Rank and trust are summed as 64 fraction bits while below 1; sums of exactly 1 (one
    // share of 1, or halves adding up to 1) must come out as 1, not wrap to 0.
    assert_eq!(column_zero(vec![0, 5, 0]), (Fx::ONE, Fx::ONE));
    assert_eq!(column_zero(vec![1, 1]), (Fx::ONE, Fx::ONE));
    assert_eq!(column_zero(vec![3, 1, 4]), (Fx::ONE, Fx::ONE));
    // Shares floor(2^64 / 3) each: the sum stays just below 1 and is the sum of the floors.
    let third = Fx::from_bits(i128::from(u64::MAX / 3));
    let sum = Fx::from_bits(3 * third.to_bits());
    assert_eq!(column_zero(vec![7, 7, 7]), (sum, sum));
}

/// Absent rows on the allocation-free path: bounded rows, the same bits as the `Vec` API, for
/// both departed rules and both bond modes; an absent row gains no bond and, under withhold,
/// no dividend; a `last_update` of the wrong length is refused before anything is written.
#[test]
fn absent_rows_on_bounded_rows_give_the_vec_apis_bits() {
    let last_update = [9u64, 2, 9, 9, 1];
    for departed in [
        Departed::Withhold,
        Departed::Decay {
            rate: Fx::from_ratio(1, 3),
        },
    ] {
        for bonds_mode in [
            BondMode::Cumulative,
            BondMode::Ema {
                alpha: Fx::from_ratio(1, 4),
            },
        ] {
            let mut s = state();
            s.params.activity_cutoff = 5;
            s.params.departed = departed;
            s.params.bonds = bonds_mode;
            s.block = 9;
            s.last_update = last_update.to_vec();
            // Node 4 holds a bond on column 2, which present rows rank.
            s.bonds[4] = vec![(2, Fx::ONE)];
            let want = epoch(&s).expect("valid");
            let weights = bounded::<_, K>(&s.weights);
            let mut bonds = bounded::<_, K>(&s.bonds);
            let mut buf = Buffers::new();
            let activity = Activity {
                block: s.block,
                last_update: &last_update,
            };
            let loss = epoch_in_place_at(
                &s.params,
                &s.stake,
                &weights,
                activity,
                &mut bonds,
                buf.outputs(),
            )
            .expect("valid");
            assert_eq!(loss, want.loss);
            assert_eq!(buf.rank.to_vec(), want.rank);
            assert_eq!(buf.dividends.to_vec(), want.dividends);
            assert_eq!(buf.minted.to_vec(), want.minted);
            let got: Vec<Vec<_>> = bonds.iter().map(|r| r.to_vec()).collect();
            assert_eq!(got, want.bonds);
            // Node 4 (age 8) is absent, node 1 (age 7) too; the others are present.
            assert!(activity.absent(5, 4) && activity.absent(5, 1) && !activity.absent(5, 0));
            // Node 4's row names 1..4: none of it counts, so column 3 gets nothing.
            assert_eq!(want.rank[3], Fx::ZERO);
            let old = Fx::ONE;
            let new = want.bonds[4].first().map_or(Fx::ZERO, |e| e.1);
            assert!(new <= old, "an absent row gained a bond");
            if departed == Departed::Withhold {
                assert_eq!(want.dividends[4], Fx::ZERO);
                assert_eq!(want.dividends[1], Fx::ZERO);
            } else {
                assert!(want.dividends[4] > Fx::ZERO, "decaying bonds still pay");
            }
        }
    }
    let s = state();
    let mut bonds = bounded::<_, K>(&s.bonds);
    let before = bonds.clone();
    let mut buf = Buffers::new();
    let short = Activity {
        block: 3,
        last_update: &[1, 2],
    };
    let weights = bounded::<_, K>(&s.weights);
    assert_eq!(
        epoch_in_place_at(
            &s.params,
            &s.stake,
            &weights,
            short,
            &mut bonds,
            buf.outputs()
        ),
        Err(Error::BufferLength {
            name: "last_update",
            len: 2,
            n: N,
        })
    );
    assert_eq!(bonds, before);
}

/// With every row updated at the epoch's block, or with the cutoff off, the epoch is the one
/// without a cutoff, bit for bit.
#[test]
fn present_rows_and_an_off_cutoff_change_nothing() {
    let base = epoch(&state()).expect("valid");
    let mut on = state();
    on.params.activity_cutoff = 1;
    on.block = 40;
    on.last_update = vec![40; N];
    assert_eq!(epoch(&on).expect("valid"), base);
    let mut off = state();
    off.block = 40;
    off.last_update = vec![0; N];
    assert_eq!(epoch(&off).expect("valid"), base);
}

#[test]
fn yuma_on_bounded_rows_and_n_scratch_gives_the_vec_apis_bits() {
    use deepnode_consensus::LiquidAlpha;
    for bonds_rule in [
        BondMode::Yuma {
            bonds_moving_average: Fx::from_ratio(9, 10),
            bonds_penalty: Fx::from_ratio(1, 2),
        },
        BondMode::Yuma3 {
            bonds_moving_average: Fx::from_ratio(9, 10),
            bonds_penalty: Fx::ZERO,
            liquid_alpha: Some(LiquidAlpha {
                alpha_low: Fx::from_ratio(1, 10),
                alpha_high: Fx::from_ratio(3, 10),
                steepness: Fx::from_ratio(10, 1),
            }),
        },
    ] {
        let mut s = state();
        s.params.bonds = bonds_rule;
        let weights = bounded::<_, K>(&s.weights);
        let mut bonds = bounded::<_, K>(&s.bonds);
        let mut buf = Buffers::new();
        for _ in 0..3 {
            let want = epoch(&s).expect("valid");
            let loss = epoch_in_place(&s.params, &s.stake, &weights, &mut bonds, buf.outputs())
                .expect("valid");
            assert_eq!(loss, want.loss);
            assert_eq!(
                (&buf.rank[..], &buf.trust[..], &buf.consensus[..]),
                (&want.rank[..], &want.trust[..], &want.consensus[..])
            );
            assert_eq!(
                (&buf.incentive[..], &buf.dividends[..], &buf.minted[..]),
                (&want.incentive[..], &want.dividends[..], &want.minted[..])
            );
            let got: Vec<Vec<_>> = bonds.iter().map(|r| r.to_vec()).collect();
            assert_eq!(got, want.bonds);
            assert!(want.incentive.iter().any(|&i| i > Fx::ZERO));
            s.bonds = want.bonds;
        }
    }
}
