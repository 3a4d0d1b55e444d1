//! Mechanism parameters (SPEC.md, "State of one network").

use crate::Fx;

/// Raw units minted per epoch when a state does not say (1 token of 10^9 units).
pub const DEFAULT_EMISSION: u64 = 1_000_000_000;

/// Exact construction of a scalar from a ratio of integers, so defaults need no float.
pub trait FromRatio {
    /// `num / den` (`den > 0`): exact for `f64` where representable, floored on the fixed grid.
    fn ratio(num: u64, den: u64) -> Self;
}

impl FromRatio for Fx {
    fn ratio(num: u64, den: u64) -> Self {
        Fx::from_ratio(u128::from(num), u128::from(den))
    }
}

impl FromRatio for f64 {
    #[allow(
        clippy::float_arithmetic,
        reason = "the float scalar is built by float division"
    )]
    fn ratio(num: u64, den: u64) -> Self {
        num as f64 / den as f64
    }
}

/// How bonds evolve each epoch, and with them the mechanism. The paper's rules
/// ([`BondMode::Cumulative`], [`BondMode::Ema`]) run the paper's epoch (SPEC.md §5: sigmoid
/// consensus of trust); the Yuma rules ([`BondMode::Yuma`], [`BondMode::Yuma3`]) run Yuma
/// consensus as subtensor does (SPEC.md §10: stake-weighted median of the weights, clipping).
/// [`BondMode::mechanism`] names the mechanism. New variants are appended, so the SCALE and
/// JSON forms of the paper's rules are unchanged.
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
pub enum BondMode<N> {
    /// The paper's rule: `B_ij <- B_ij + w_ij * s_i`.
    Cumulative,
    /// `B_ij <- (1 - alpha) B_ij + alpha * w_ij s_i / sum_k w_kj s_k`, `alpha` in `(0, 1]`.
    Ema {
        /// The weight of the newest epoch, `alpha`.
        alpha: N,
    },
    /// Subtensor's original Yuma: bonds are an EMA of the column-normalised stake-weighted
    /// weights, `B <- (1 - a) B + a dB` with `a = 1 - bonds_moving_average`, stored
    /// column-max-upscaled on the u16 grid; dividends `d_i = sum_j B_ij I_j`.
    Yuma {
        /// The share of the old bonds kept each epoch (subtensor's `BondsMovingAverage /
        /// 10^6`), in `[0, 1]`.
        bonds_moving_average: N,
        /// How far the weights behind bonds are clipped to consensus: 0 the raw weights, 1 the
        /// clipped ones (subtensor's `BondsPenalty / 65535`), in `[0, 1]`.
        bonds_penalty: N,
    },
    /// Subtensor's Yuma 3: each bond moves toward its (clipped) weight,
    /// `B_ij <- min(1, (1 - a_ij) B_ij + a_ij w_ij)`, stored on the u16 grid; dividends
    /// `d_i ~ s_i sum_j B_ij / (sum_k B_kj) I_j`.
    Yuma3 {
        /// `a_ij = 1 - bonds_moving_average` without liquid alpha, in `[0, 1]`.
        bonds_moving_average: N,
        /// As in [`BondMode::Yuma`], in `[0, 1]`.
        bonds_penalty: N,
        /// Liquid alpha: a per-entry `a_ij` between `alpha_low` and `alpha_high` (`None`: off).
        liquid_alpha: Option<LiquidAlpha<N>>,
    },
}

/// Yuma 3's liquid alpha: `a_ij = alpha_low + sigmoid(steepness (x_ij - 1/2)) (alpha_high -
/// alpha_low)`, where `x_ij` is how far the weight is above consensus (when it is at least the
/// bond) or how far the bond is above the weight (SPEC.md §10).
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
pub struct LiquidAlpha<N> {
    /// The smallest `a_ij`, in `[0, alpha_high]`.
    pub alpha_low: N,
    /// The largest `a_ij`, in `[alpha_low, 1]`.
    pub alpha_high: N,
    /// The sigmoid's slope, `>= 0` (subtensor's `AlphaSigmoidSteepness / 100`: its 1000 is 10
    /// here).
    pub steepness: N,
}

/// The mechanism a [`BondMode`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mechanism {
    /// The paper's mechanism (SPEC.md §5).
    Paper,
    /// Subtensor's original Yuma (SPEC.md §10).
    Yuma,
    /// Subtensor's Yuma 3 (SPEC.md §10).
    Yuma3,
}

impl<N> BondMode<N> {
    /// The same rule with every real mapped by `f` (e.g. from one backend to another).
    pub fn map<M>(self, f: impl Fn(N) -> M) -> BondMode<M> {
        match self {
            BondMode::Cumulative => BondMode::Cumulative,
            BondMode::Ema { alpha } => BondMode::Ema { alpha: f(alpha) },
            BondMode::Yuma {
                bonds_moving_average,
                bonds_penalty,
            } => BondMode::Yuma {
                bonds_moving_average: f(bonds_moving_average),
                bonds_penalty: f(bonds_penalty),
            },
            BondMode::Yuma3 {
                bonds_moving_average,
                bonds_penalty,
                liquid_alpha,
            } => BondMode::Yuma3 {
                bonds_moving_average: f(bonds_moving_average),
                bonds_penalty: f(bonds_penalty),
                liquid_alpha: liquid_alpha.map(|l| LiquidAlpha {
                    alpha_low: f(l.alpha_low),
                    alpha_high: f(l.alpha_high),
                    steepness: f(l.steepness),
                }),
            },
        }
    }

    /// The mechanism this bond rule belongs to.
    pub fn mechanism(&self) -> Mechanism {
        match self {
            BondMode::Cumulative | BondMode::Ema { .. } => Mechanism::Paper,
            BondMode::Yuma { .. } => Mechanism::Yuma,
            BondMode::Yuma3 { .. } => Mechanism::Yuma3,
        }
    }
}

/// How the bonds of an absent node (a row older than [`Params::activity_cutoff`]) stop paying
/// (SPEC.md §5 step 9).
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
pub enum Departed<N> {
    /// No dividends while absent: the absent node's bonds are kept as they are, left out of
    /// the column sums `C_j`, and pay it nothing (its share goes to the present bond holders).
    Withhold,
    /// The absent node's bonds shrink by `rate` each epoch (`B_ij <- (1 - rate) B_ij`) and go
    /// on paying, `rate` in `(0, 1]`.
    Decay {
        /// The share of the bonds lost per absent epoch.
        rate: N,
    },
}

/// The parameters of one network (SPEC.md table; defaults from there).
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
pub struct Params<N> {
    /// Sigmoid temperature `rho` (> 0; default 10).
    pub rho: N,
    /// Sigmoid shift `kappa`, the consensus threshold (in `[0, 1]`; default 0.5).
    pub kappa: N,
    /// `lambda`: the share of its own incentive a node keeps (in `[0, 1]`; default 0.5).
    pub self_share: N,
    /// Raw units minted per epoch.
    pub emission: u64,
    /// Bond rule (default cumulative), which also selects the mechanism
    /// ([`BondMode::mechanism`]).
    pub bonds: BondMode<N>,
    /// Ignore each node's weight on itself (default false).
    pub mask_self_weights: bool,
    /// A normalised weight must exceed this to count as trust (in `[0, 1)`; default 0).
    pub trust_threshold: N,
    /// Fewest non-zero entries a submitted row may have (default 1). Enforced where rows are
    /// submitted (`deepnode_consensus::validate_row`), moved by the controller; the epoch itself
    /// accepts any row.
    pub min_allowed_weights: u32,
    /// A row whose last update is more than this many blocks (epochs, in the simulator) older
    /// than the epoch's block counts as absent: it adds no rank, trust or bonds, and its node's
    /// bonds follow [`Params::departed`]. 0 (the default) turns the cutoff off.
    pub activity_cutoff: u64,
    /// What the bonds of an absent node do (default [`Departed::Withhold`]; inert while
    /// `activity_cutoff` is 0).
    pub departed: Departed<N>,
}

impl<N: FromRatio> Default for Params<N> {
    fn default() -> Self {
        Params {
            rho: N::ratio(10, 1),
            kappa: N::ratio(1, 2),
            self_share: N::ratio(1, 2),
            emission: DEFAULT_EMISSION,
            bonds: BondMode::Cumulative,
            mask_self_weights: false,
            trust_threshold: N::ratio(0, 1),
            min_allowed_weights: 1,
            activity_cutoff: 0,
            departed: Departed::Withhold,
        }
    }
}
