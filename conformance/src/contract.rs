//! The `deepnode epoch` JSON contract.
//!
//! Input: `{"params": {"rho", "kappa", "self_share", "emission", "bonds": {"mode":
//! "cumulative"} | {"mode": "ema", "alpha"}, "mask_self_weights", "trust_threshold",
//! "min_allowed_weights"}, "stake": [u64], "weights": [[[uid, u16]]], "bonds": [[[uid,
//! number]]]}`; every param is optional (mechanism.md defaults), rows may be fewer than `n`,
//! `bonds` is optional. Unknown keys are rejected. Output: see [`render_output`].

use deepnode_consensus::{BondMode, EpochOutput, Fx, Params, Scalar, State};
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// Why a JSON state could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ContractError {
    /// Not JSON, or not of the contract's shape (serde's message names the field and place).
    #[error("invalid state JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A number that must be finite is not (e.g. `1e400`).
    #[error("invalid state JSON: {0} must be a finite number")]
    NotFinite(&'static str),
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ParamsJson {
    rho: Option<f64>,
    kappa: Option<f64>,
    self_share: Option<f64>,
    emission: Option<u64>,
    bonds: Option<BondsJson>,
    mask_self_weights: Option<bool>,
    trust_threshold: Option<f64>,
    min_allowed_weights: Option<u32>,
}

#[derive(Deserialize)]
#[serde(tag = "mode", rename_all = "lowercase", deny_unknown_fields)]
enum BondsJson {
    Cumulative,
    Ema { alpha: f64 },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StateJson {
    #[serde(default)]
    params: ParamsJson,
    stake: Vec<u64>,
    #[serde(default)]
    weights: Vec<Vec<(u32, u16)>>,
    #[serde(default)]
    bonds: Vec<Vec<(u32, f64)>>,
}

/// A number of the contract converted to a backend's scalar (nearest grid point for [`Fx`]).
pub trait FromJson: Scalar {
    /// `x` as this scalar.
    fn from_json(x: f64) -> Self;
    /// This scalar as a JSON number.
    fn to_json(self) -> f64;
    /// The exact value, where it differs from the JSON number (the bits of [`Fx`]).
    fn exact(self) -> Option<String>;
}

impl FromJson for Fx {
    fn from_json(x: f64) -> Fx {
        Fx::from_f64(x)
    }
    fn to_json(self) -> f64 {
        self.to_f64()
    }
    fn exact(self) -> Option<String> {
        Some(self.to_bits().to_string())
    }
}

impl FromJson for f64 {
    fn from_json(x: f64) -> f64 {
        x
    }
    fn to_json(self) -> f64 {
        self
    }
    fn exact(self) -> Option<String> {
        None
    }
}

/// Reads a state in the contract's JSON form for backend `N`.
pub fn parse_state<N: FromJson>(text: &str) -> Result<State<N>, ContractError> {
    let raw: StateJson = serde_json::from_str(text)?;
    let p = raw.params;
    let num = |x: Option<f64>, name: &'static str, default: N| match x {
        None => Ok(default),
        Some(v) if v.is_finite() => Ok(N::from_json(v)),
        Some(_) => Err(ContractError::NotFinite(name)),
    };
    let defaults = Params::<N>::default();
    let bonds = match p.bonds {
        None | Some(BondsJson::Cumulative) => BondMode::Cumulative,
        Some(BondsJson::Ema { alpha }) => BondMode::Ema {
            alpha: num(Some(alpha), "params.bonds.alpha", N::ratio(0, 1))?,
        },
    };
    let params = Params {
        rho: num(p.rho, "params.rho", defaults.rho)?,
        kappa: num(p.kappa, "params.kappa", defaults.kappa)?,
        self_share: num(p.self_share, "params.self_share", defaults.self_share)?,
        emission: p.emission.unwrap_or(defaults.emission),
        bonds,
        mask_self_weights: p.mask_self_weights.unwrap_or(defaults.mask_self_weights),
        trust_threshold: num(
            p.trust_threshold,
            "params.trust_threshold",
            defaults.trust_threshold,
        )?,
        min_allowed_weights: p
            .min_allowed_weights
            .unwrap_or(defaults.min_allowed_weights),
    };
    let bonds = raw
        .bonds
        .into_iter()
        .map(|row| {
            row.into_iter()
                .map(|(u, v)| {
                    if v.is_finite() {
                        Ok((u, N::from_json(v)))
                    } else {
                        Err(ContractError::NotFinite("a bond value"))
                    }
                })
                .collect()
        })
        .collect::<Result<_, _>>()?;
    Ok(State {
        params,
        stake: raw.stake,
        weights: raw.weights,
        bonds,
    })
}

/// The contract's output: `{"rank", "trust", "consensus", "incentive", "dividends": [number],
/// "loss": number, "emission": [u64 minted], "stake": [u64], "bonds": [[[uid, number]]]}`,
/// plus `"backend"` and, for the fixed path, `"bits"`: the same reals as decimal strings of
/// their `i128` bits.
pub fn render_output<N: FromJson>(backend: &str, out: &EpochOutput<N>) -> Value {
    let reals = |v: &[N]| v.iter().map(|x| json!(x.to_json())).collect::<Vec<_>>();
    let bonds = |f: &dyn Fn(N) -> Value| {
        out.bonds
            .iter()
            .map(|row| {
                row.iter()
                    .map(|&(u, v)| json!([u, f(v)]))
                    .collect::<Vec<_>>()
            })
            .collect::<Vec<_>>()
    };
    let mut obj = Map::new();
    obj.insert("backend".into(), json!(backend));
    obj.insert("rank".into(), json!(reals(&out.rank)));
    obj.insert("trust".into(), json!(reals(&out.trust)));
    obj.insert("consensus".into(), json!(reals(&out.consensus)));
    obj.insert("incentive".into(), json!(reals(&out.incentive)));
    obj.insert("dividends".into(), json!(reals(&out.dividends)));
    obj.insert("loss".into(), json!(out.loss.to_json()));
    obj.insert("emission".into(), json!(out.minted));
    obj.insert("stake".into(), json!(out.stake));
    obj.insert("bonds".into(), json!(bonds(&|v| json!(v.to_json()))));
    if out.loss.exact().is_some() {
        let bits = |v: &[N]| v.iter().map(|x| json!(x.exact())).collect::<Vec<_>>();
        obj.insert(
            "bits".into(),
            json!({
                "rank": bits(&out.rank),
                "trust": bits(&out.trust),
                "consensus": bits(&out.consensus),
                "incentive": bits(&out.incentive),
                "dividends": bits(&out.dividends),
                "loss": out.loss.exact(),
                "bonds": bonds(&|v| json!(v.exact())),
            }),
        );
    }
    Value::Object(obj)
}
