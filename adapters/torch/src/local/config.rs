//! The sizes, rates and choices of a [`LocalModel`](super::LocalModel).

use crate::encoder::EncoderConfig;

/// The seed of the TEXT readout every learner of a network shares ([`LocalConfig::readout`]).
pub const NETWORK_READOUT: u64 = 0x7e47_5eed;

/// Sizes and rates of a [`LocalModel`](super::LocalModel).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LocalConfig {
    /// The node's own encoder (the same architecture it serves).
    pub encoder: EncoderConfig,
    /// The student's encoder (smaller: it only has to imitate `G(x)`).
    pub student: EncoderConfig,
    /// Number of peers the gate chooses among.
    pub peers: usize,
    /// Peers asked per position (`1 <= k <= peers`).
    pub k: usize,
    /// Adam step of the node's model.
    pub lr: f64,
    /// Adam step of the student.
    pub student_lr: f64,
    /// Distillation steps of the student per training step, on the same batch (at least 1).
    /// The student sees other domains only in the few windows a learner trains on that are
    /// not its own; more steps on each at a smaller rate let it keep more of what the peers
    /// give there.
    pub student_steps: u32,
    /// Weight of `CV(Importance)^2 + CV(Load)^2` in the loss.
    pub balance_weight: f64,
    /// Whether training uses the noisy gate (evaluation never does).
    pub noise: bool,
    /// Seed of the initial parameters and of the gate noise (`standard_normal(seed + step)`).
    pub seed: u64,
    /// Whether the student `dist(x)` fills the slot of a chosen peer that did not answer
    /// (otherwise zeros do). Either way the peer gets no gradient and no Fisher score.
    pub student_stands_in: bool,
    /// The network's shared readout: with `Some(seed)`, training also minimises the
    /// next-byte cross-entropy of `E h(x) + c` (weight 1), where `E` is the fixed matrix
    /// `standard_normal(seed, 256 D) / sqrt(D)`, the same at every node, and `c` a trained
    /// bias; and the mixing matrix is `A = s E + A'` with the scalar `s` and `A'` trained from
    /// zeros. The node's own head `W_o` stays its own. Every node's representation then means
    /// next-byte logits in one shared basis, so a caller reads every peer's answer through
    /// one learned scale instead of learning each peer's private basis. `None`: no readout, `A = A'`.
    pub readout: Option<u64>,
    /// Whether the gate reads the context so far, the running mean of the encoding over
    /// positions `0..=t` (causal), instead of position `t`'s encoding alone: a few bytes
    /// rarely tell which domain a text is from, a few dozen do.
    pub context_gate: bool,
    /// A chosen peer that failed to answer this many training asks in a row is muted: the
    /// gate does not choose it for the next [`LocalConfig::mute_steps`] training steps
    /// (its logits are lowered by [`MUTED_LOGIT`]), then it is asked again, and muted again
    /// after one more failure. A peer that left stops taking a share of the gate's mass,
    /// which goes to the peers that answer. 0: never muted.
    pub mute_after: u32,
    /// How many training steps a muted peer stays muted.
    pub mute_steps: u64,
}

/// What a muted peer's gate logits are lowered by: far below any trained logit, finite so
/// that the gate's backward stays finite (the load's normal CDF is 0 there, as is its slope).
pub const MUTED_LOGIT: f64 = -1e4;

impl Default for LocalConfig {
    /// The default model of the figures in `docs/benchmarks.md`: `D = 32`, 8 peers, `k = 2`.
    fn default() -> Self {
        LocalConfig {
            encoder: EncoderConfig::default(),
            student: EncoderConfig {
                hidden: 16,
                ..EncoderConfig::default()
            },
            peers: 8,
            k: 2,
            lr: 3e-3,
            student_lr: 3e-3,
            student_steps: 1,
            balance_weight: 0.01,
            noise: true,
            seed: 1,
            student_stands_in: false,
            readout: None,
            context_gate: false,
            mute_after: 0,
            mute_steps: 0,
        }
    }
}
