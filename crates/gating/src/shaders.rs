//! The WGSL sources, one file per kernel in the workspace's `shaders/` folder.
//!
//! Each file is a complete module with one `main` compute entry point; its header comment
//! lists its bindings and the [`crate::reference`] function it mirrors.

/// `shaders/gating_logits.wgsl`: noisy gating logits, one per invocation, mirrors `reference::gating_logits`.
pub const GATING_LOGITS: &str = include_str!("../../../shaders/gating_logits.wgsl");
/// `shaders/gating_logits_tiled.wgsl`: the same logits, 16 rows per workgroup, for batches
/// of 4 rows or more.
pub const GATING_LOGITS_TILED: &str = include_str!("../../../shaders/gating_logits_tiled.wgsl");
/// `shaders/gating_logits_staged.wgsl`: the same logits, 32 peers of one row per workgroup
/// through weight tiles in workgroup memory, for batches of under 4 rows on a GPU.
pub const GATING_LOGITS_STAGED: &str = include_str!("../../../shaders/gating_logits_staged.wgsl");
/// `shaders/top_k_softmax.wgsl`: top-k and softmax per row, mirrors
/// `reference::top_k_softmax`.
pub const TOP_K_SOFTMAX: &str = include_str!("../../../shaders/top_k_softmax.wgsl");
/// `shaders/combine.wgsl`: `G(x) = sum_s g_s f_s`, mirrors `reference::combine`.
pub const COMBINE: &str = include_str!("../../../shaders/combine.wgsl");
/// `shaders/fisher_terms.wgsl`: per-slot Fisher quadratic form, mirrors
/// `reference::fisher_terms`.
pub const FISHER_TERMS: &str = include_str!("../../../shaders/fisher_terms.wgsl");
/// `shaders/scatter_rows.wgsl`: slot values to dense per-peer rows.
pub const SCATTER_ROWS: &str = include_str!("../../../shaders/scatter_rows.wgsl");
/// `shaders/column_sum.wgsl`: sums over rows per peer.
pub const COLUMN_SUM: &str = include_str!("../../../shaders/column_sum.wgsl");
/// `shaders/load_prob.wgsl`: smooth load probability, mirrors `reference::load_probability`.
pub const LOAD_PROB: &str = include_str!("../../../shaders/load_prob.wgsl");

/// Every shader as `(file name, source)`, for validation and tooling.
pub const ALL: &[(&str, &str)] = &[
    ("gating_logits.wgsl", GATING_LOGITS),
    ("gating_logits_tiled.wgsl", GATING_LOGITS_TILED),
    ("gating_logits_staged.wgsl", GATING_LOGITS_STAGED),
    ("top_k_softmax.wgsl", TOP_K_SOFTMAX),
    ("combine.wgsl", COMBINE),
    ("fisher_terms.wgsl", FISHER_TERMS),
    ("scatter_rows.wgsl", SCATTER_ROWS),
    ("column_sum.wgsl", COLUMN_SUM),
    ("load_prob.wgsl", LOAD_PROB),
];
