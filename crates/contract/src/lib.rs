#![doc = include_str!("../README.md")]

use core::fmt;
use core::str::FromStr;

use deepnode_consensus::{BondMode, Departed, EpochOutput, LiquidAlpha, Params, Scalar, State};
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// The numeric backend an epoch runs on; both call the same consensus crate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    /// 64.64 fixed point ([`deepnode_consensus::Fx`]), bit-exact: the on-chain path.
    Fixed,
    /// `f64`: fast, for simulation.
    Float,
}

impl Backend {
    /// `"fixed"` or `"float"`: the contract's `"backend"` value and the CLI's spelling.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Fixed => "fixed",
            Backend::Float => "float",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A backend name that is neither `fixed` nor `float`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown backend `{0}` (expected `fixed` or `float`)")]
pub struct UnknownBackend(pub String);

impl FromStr for Backend {
    type Err = UnknownBackend;
    fn from_str(s: &str) -> Result<Backend, UnknownBackend> {
        match s {
            "fixed" => Ok(Backend::Fixed),
            "float" => Ok(Backend::Float),
            other => Err(UnknownBackend(other.to_owned())),
        }
    }
}

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

/// The contract's `params` object as read, before conversion to a backend: every field
/// optional (SPEC.md's defaults), unknown keys refused. Other documents that carry
/// params (a ledger's genesis) embed it and convert it with [`ParamsDoc::to_params`].
#[derive(Deserialize, Default, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ParamsDoc {
    rho: Option<f64>,
    kappa: Option<f64>,
    self_share: Option<f64>,
    emission: Option<u64>,
    bonds: Option<BondsJson>,
    mask_self_weights: Option<bool>,
    trust_threshold: Option<f64>,
    min_allowed_weights: Option<u32>,
    activity_cutoff: Option<u64>,
    departed: Option<DepartedJson>,
}

/// `{"rule": "withhold"}` or `{"rule": "decay", "rate": number}` (read through a plain struct,
/// as [`BondsJson`]).
#[derive(Deserialize, Debug, Clone, PartialEq)]
#[serde(try_from = "DepartedObject")]
enum DepartedJson {
    Withhold,
    Decay { rate: f64 },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DepartedObject {
    rule: DepartedRuleName,
    rate: Option<f64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum DepartedRuleName {
    Withhold,
    Decay,
}

impl TryFrom<DepartedObject> for DepartedJson {
    type Error = &'static str;
    fn try_from(d: DepartedObject) -> Result<DepartedJson, &'static str> {
        match (d.rule, d.rate) {
            (DepartedRuleName::Withhold, None) => Ok(DepartedJson::Withhold),
            (DepartedRuleName::Withhold, Some(_)) => Err("unknown field `rate` in withhold"),
            (DepartedRuleName::Decay, Some(rate)) => Ok(DepartedJson::Decay { rate }),
            (DepartedRuleName::Decay, None) => Err("missing field `rate`"),
        }
    }
}

/// `{"mode": "cumulative"}`, `{"mode": "ema", "alpha": number}` (the paper's mechanism),
/// `{"mode": "yuma", "bonds_moving_average": number, "bonds_penalty": number}` or
/// `{"mode": "yuma3", "bonds_moving_average": number, "bonds_penalty": number,
/// "liquid_alpha": {"alpha_low": number, "alpha_high": number, "steepness": number}}`
/// (`liquid_alpha` optional: off when absent). Read through a plain struct rather than
/// serde's internally tagged enum: that buffers the object and misreads numbers when an
/// embedder turns on serde_json's `arbitrary_precision` (as the polkadot-sdk crates do).
#[derive(Deserialize, Debug, Clone, PartialEq)]
#[serde(try_from = "BondsObject")]
enum BondsJson {
    Cumulative,
    Ema {
        alpha: f64,
    },
    Yuma {
        average: f64,
        penalty: f64,
    },
    Yuma3 {
        average: f64,
        penalty: f64,
        liquid: Option<LiquidAlphaJson>,
    },
}

/// Yuma 3's `liquid_alpha` object: every field required.
#[derive(Deserialize, Debug, Clone, Copy, PartialEq)]
#[serde(deny_unknown_fields)]
struct LiquidAlphaJson {
    alpha_low: f64,
    alpha_high: f64,
    steepness: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BondsObject {
    mode: BondsModeName,
    alpha: Option<f64>,
    bonds_moving_average: Option<f64>,
    bonds_penalty: Option<f64>,
    liquid_alpha: Option<LiquidAlphaJson>,
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum BondsModeName {
    Cumulative,
    Ema,
    Yuma,
    Yuma3,
}

impl TryFrom<BondsObject> for BondsJson {
    type Error = &'static str;
    fn try_from(b: BondsObject) -> Result<BondsJson, &'static str> {
        let yuma = (b.bonds_moving_average, b.bonds_penalty);
        let paper = |b: &BondsObject| {
            if b.bonds_moving_average.is_some()
                || b.bonds_penalty.is_some()
                || b.liquid_alpha.is_some()
            {
                Err(
                    "Yuma's fields (bonds_moving_average, bonds_penalty, liquid_alpha) belong to the yuma and yuma3 modes",
                )
            } else {
                Ok(())
            }
        };
        match b.mode {
            BondsModeName::Cumulative => {
                paper(&b)?;
                match b.alpha {
                    None => Ok(BondsJson::Cumulative),
                    Some(_) => Err("unknown field `alpha` in cumulative bonds"),
                }
            }
            BondsModeName::Ema => {
                paper(&b)?;
                match b.alpha {
                    Some(alpha) => Ok(BondsJson::Ema { alpha }),
                    None => Err("missing field `alpha`"),
                }
            }
            BondsModeName::Yuma | BondsModeName::Yuma3 if b.alpha.is_some() => {
                Err("unknown field `alpha` in Yuma bonds (Yuma's is 1 - bonds_moving_average)")
            }
            BondsModeName::Yuma if b.liquid_alpha.is_some() => Err("liquid_alpha belongs to yuma3"),
            BondsModeName::Yuma | BondsModeName::Yuma3 => {
                let (Some(average), Some(penalty)) = yuma else {
                    return Err("Yuma bonds need `bonds_moving_average` and `bonds_penalty`");
                };
                Ok(match b.mode {
                    BondsModeName::Yuma => BondsJson::Yuma { average, penalty },
                    _ => BondsJson::Yuma3 {
                        average,
                        penalty,
                        liquid: b.liquid_alpha,
                    },
                })
            }
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StateJson {
    #[serde(default)]
    params: ParamsDoc,
    stake: Vec<u64>,
    #[serde(default)]
    weights: Vec<Vec<(u32, u16)>>,
    #[serde(default)]
    bonds: Vec<Vec<(u32, f64)>>,
    #[serde(default)]
    block: u64,
    #[serde(default)]
    last_update: Vec<u64>,
}

impl ParamsDoc {
    /// These params for backend `N`: absent fields take SPEC.md's defaults
    /// ([`Params::default`]), reals go to the nearest value of `N` ([`Scalar::from_f64`]).
    /// Ranges are not checked here: [`deepnode_consensus::check_params`] owns that rule.
    pub fn to_params<N: Scalar>(&self) -> Result<Params<N>, ContractError> {
        self.to_params_over(Params::<N>::default())
    }

    /// [`ParamsDoc::to_params`] with `defaults` for the absent fields (a ledger's own
    /// defaults, e.g. an activity cutoff that is on).
    pub fn to_params_over<N: Scalar>(
        &self,
        defaults: Params<N>,
    ) -> Result<Params<N>, ContractError> {
        let p = self;
        let bonds = match p.bonds {
            None | Some(BondsJson::Cumulative) => BondMode::Cumulative,
            Some(BondsJson::Ema { alpha }) => BondMode::Ema {
                alpha: real(Some(alpha), "params.bonds.alpha", N::ZERO)?,
            },
            Some(BondsJson::Yuma { average, penalty }) => BondMode::Yuma {
                bonds_moving_average: real(
                    Some(average),
                    "params.bonds.bonds_moving_average",
                    N::ZERO,
                )?,
                bonds_penalty: real(Some(penalty), "params.bonds.bonds_penalty", N::ZERO)?,
            },
            Some(BondsJson::Yuma3 {
                average,
                penalty,
                liquid,
            }) => BondMode::Yuma3 {
                bonds_moving_average: real(
                    Some(average),
                    "params.bonds.bonds_moving_average",
                    N::ZERO,
                )?,
                bonds_penalty: real(Some(penalty), "params.bonds.bonds_penalty", N::ZERO)?,
                liquid_alpha: match liquid {
                    None => None,
                    Some(l) => Some(LiquidAlpha {
                        alpha_low: real(Some(l.alpha_low), "params.bonds.liquid_alpha", N::ZERO)?,
                        alpha_high: real(Some(l.alpha_high), "params.bonds.liquid_alpha", N::ZERO)?,
                        steepness: real(Some(l.steepness), "params.bonds.liquid_alpha", N::ZERO)?,
                    }),
                },
            },
        };
        Ok(Params {
            rho: real(p.rho, "params.rho", defaults.rho)?,
            kappa: real(p.kappa, "params.kappa", defaults.kappa)?,
            self_share: real(p.self_share, "params.self_share", defaults.self_share)?,
            emission: p.emission.unwrap_or(defaults.emission),
            bonds,
            mask_self_weights: p.mask_self_weights.unwrap_or(defaults.mask_self_weights),
            trust_threshold: real(
                p.trust_threshold,
                "params.trust_threshold",
                defaults.trust_threshold,
            )?,
            min_allowed_weights: p
                .min_allowed_weights
                .unwrap_or(defaults.min_allowed_weights),
            activity_cutoff: p.activity_cutoff.unwrap_or(defaults.activity_cutoff),
            departed: match p.departed {
                None => defaults.departed,
                Some(DepartedJson::Withhold) => Departed::Withhold,
                Some(DepartedJson::Decay { rate }) => Departed::Decay {
                    rate: real(Some(rate), "params.departed.rate", N::ZERO)?,
                },
            },
        })
    }
}

/// `x` as `N`, `default` when absent; a non-finite number is refused, naming `name`.
fn real<N: Scalar>(x: Option<f64>, name: &'static str, default: N) -> Result<N, ContractError> {
    match x {
        None => Ok(default),
        Some(v) if v.is_finite() => Ok(N::from_f64(v)),
        Some(_) => Err(ContractError::NotFinite(name)),
    }
}

/// Reads a state in the contract's JSON form for backend `N`.
pub fn parse_state<N: Scalar>(text: &str) -> Result<State<N>, ContractError> {
    let raw: StateJson = serde_json::from_str(text)?;
    let params = raw.params.to_params()?;
    let bonds = raw
        .bonds
        .into_iter()
        .map(|row| {
            row.into_iter()
                .map(|(u, v)| real(Some(v), "a bond value", N::ZERO).map(|v| (u, v)))
                .collect()
        })
        .collect::<Result<_, _>>()?;
    Ok(State {
        params,
        stake: raw.stake,
        weights: raw.weights,
        bonds,
        block: raw.block,
        last_update: raw.last_update,
    })
}

/// A state in the contract's input form: every param, `stake`, `weights` and `bonds`. Reals
/// are written as the nearest JSON number ([`Scalar::to_f64`]), so a fixed-point state reads
/// back at the nearest grid point of each value; exact while every real is on the `f64` grid.
pub fn render_state<N: Scalar>(state: &State<N>) -> Value {
    let p = &state.params;
    let bonds = match p.bonds {
        BondMode::Cumulative => json!({"mode": "cumulative"}),
        BondMode::Ema { alpha } => json!({"mode": "ema", "alpha": alpha.to_f64()}),
        BondMode::Yuma {
            bonds_moving_average,
            bonds_penalty,
        } => json!({
            "mode": "yuma",
            "bonds_moving_average": bonds_moving_average.to_f64(),
            "bonds_penalty": bonds_penalty.to_f64(),
        }),
        BondMode::Yuma3 {
            bonds_moving_average,
            bonds_penalty,
            liquid_alpha,
        } => {
            let mut b = json!({
                "mode": "yuma3",
                "bonds_moving_average": bonds_moving_average.to_f64(),
                "bonds_penalty": bonds_penalty.to_f64(),
            });
            if let (Some(l), Some(obj)) = (liquid_alpha, b.as_object_mut()) {
                obj.insert(
                    "liquid_alpha".into(),
                    json!({
                        "alpha_low": l.alpha_low.to_f64(),
                        "alpha_high": l.alpha_high.to_f64(),
                        "steepness": l.steepness.to_f64(),
                    }),
                );
            }
            b
        }
    };
    let departed = match p.departed {
        Departed::Withhold => json!({"rule": "withhold"}),
        Departed::Decay { rate } => json!({"rule": "decay", "rate": rate.to_f64()}),
    };
    json!({
        "params": {
            "rho": p.rho.to_f64(),
            "kappa": p.kappa.to_f64(),
            "self_share": p.self_share.to_f64(),
            "emission": p.emission,
            "bonds": bonds,
            "mask_self_weights": p.mask_self_weights,
            "trust_threshold": p.trust_threshold.to_f64(),
            "min_allowed_weights": p.min_allowed_weights,
            "activity_cutoff": p.activity_cutoff,
            "departed": departed,
        },
        "stake": state.stake,
        "weights": state.weights,
        "bonds": state.bonds.iter().map(|row| {
            row.iter().map(|&(u, v)| json!([u, v.to_f64()])).collect::<Vec<_>>()
        }).collect::<Vec<_>>(),
        "block": state.block,
        "last_update": state.last_update,
    })
}

/// The contract's output: `{"rank", "trust", "consensus", "incentive", "dividends": [number],
/// "loss": number, "emission": [u64 minted], "stake": [u64], "bonds": [[[uid, number]]]}`,
/// plus `"backend"` and, for the fixed path, `"bits"`: the same reals as decimal strings of
/// their `i128` bits.
pub fn render_output<N: Scalar>(backend: Backend, out: &EpochOutput<N>) -> Value {
    let reals = |v: &[N]| v.iter().map(|x| json!(x.to_f64())).collect::<Vec<_>>();
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
    obj.insert("backend".into(), json!(backend.name()));
    obj.insert("rank".into(), json!(reals(&out.rank)));
    obj.insert("trust".into(), json!(reals(&out.trust)));
    obj.insert("consensus".into(), json!(reals(&out.consensus)));
    obj.insert("incentive".into(), json!(reals(&out.incentive)));
    obj.insert("dividends".into(), json!(reals(&out.dividends)));
    obj.insert("loss".into(), json!(out.loss.to_f64()));
    obj.insert("emission".into(), json!(out.minted));
    obj.insert("stake".into(), json!(out.stake));
    obj.insert("bonds".into(), json!(bonds(&|v| json!(v.to_f64()))));
    let exact = |x: N| x.fixed_bits().map(|b| b.to_string());
    if exact(out.loss).is_some() {
        let bits = |v: &[N]| v.iter().map(|&x| json!(exact(x))).collect::<Vec<_>>();
        obj.insert(
            "bits".into(),
            json!({
                "rank": bits(&out.rank),
                "trust": bits(&out.trust),
                "consensus": bits(&out.consensus),
                "incentive": bits(&out.incentive),
                "dividends": bits(&out.dividends),
                "loss": exact(out.loss),
                "bonds": bonds(&|v| json!(exact(v))),
            }),
        );
    }
    Value::Object(obj)
}

#[cfg(test)]
mod tests {
    use deepnode_consensus::Fx;

    use super::*;

    #[test]
    fn backends_parse_their_names_and_nothing_else() {
        for b in [Backend::Fixed, Backend::Float] {
            assert_eq!(b.name().parse::<Backend>(), Ok(b));
            assert_eq!(b.to_string(), b.name());
        }
        assert_eq!(
            "Fixed".parse::<Backend>(),
            Err(UnknownBackend("Fixed".into()))
        );
    }

    #[test]
    fn absent_params_take_the_defaults_on_both_backends() {
        let doc = ParamsDoc::default();
        assert_eq!(doc.to_params::<Fx>().unwrap(), Params::<Fx>::default());
        assert_eq!(doc.to_params::<f64>().unwrap(), Params::<f64>::default());
        let doc: ParamsDoc =
            serde_json::from_str(r#"{"kappa": 0.25, "bonds": {"mode": "ema", "alpha": 0.5}}"#)
                .unwrap();
        let p = doc.to_params::<Fx>().unwrap();
        assert_eq!(p.kappa, Fx::from_ratio(1, 4));
        assert_eq!(
            p.bonds,
            BondMode::Ema {
                alpha: Fx::from_ratio(1, 2)
            }
        );
        assert_eq!(p.rho, Params::<Fx>::default().rho);
    }

    #[test]
    fn bond_modes_are_read_in_any_key_order_and_checked() {
        let read = |t: &str| serde_json::from_str::<ParamsDoc>(t).map(|d| d.to_params::<Fx>());
        let ema = read(r#"{"bonds": {"alpha": 0.5, "mode": "ema"}}"#)
            .unwrap()
            .unwrap();
        assert_eq!(
            ema.bonds,
            BondMode::Ema {
                alpha: Fx::from_ratio(1, 2)
            }
        );
        let cumulative = read(r#"{"bonds": {"mode": "cumulative"}}"#)
            .unwrap()
            .unwrap();
        assert_eq!(cumulative.bonds, BondMode::Cumulative);
        let yuma3 = read(
            r#"{"bonds": {"mode": "yuma3", "bonds_moving_average": 0.975, "bonds_penalty": 0,
                "liquid_alpha": {"alpha_low": 0.1, "alpha_high": 0.3, "steepness": 10}}}"#,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            yuma3.bonds,
            BondMode::Yuma3 {
                bonds_moving_average: Fx::from_f64(0.975),
                bonds_penalty: Fx::ZERO,
                liquid_alpha: Some(LiquidAlpha {
                    alpha_low: Fx::from_f64(0.1),
                    alpha_high: Fx::from_f64(0.3),
                    steepness: Fx::from_ratio(10, 1),
                }),
            }
        );
        let yuma =
            read(r#"{"bonds": {"mode": "yuma", "bonds_penalty": 1, "bonds_moving_average": 0.9}}"#)
                .unwrap()
                .unwrap();
        assert_eq!(
            yuma.bonds,
            BondMode::Yuma {
                bonds_moving_average: Fx::from_f64(0.9),
                bonds_penalty: Fx::ONE,
            }
        );
        let state = State {
            params: yuma3,
            stake: vec![1],
            weights: Vec::new(),
            bonds: Vec::new(),
            block: 0,
            last_update: Vec::new(),
        };
        let back = parse_state::<Fx>(&render_state(&state).to_string()).unwrap();
        assert_eq!(back.params.bonds, yuma3.bonds);
        for bad in [
            r#"{"bonds": {"mode": "yuma"}}"#,
            r#"{"bonds": {"mode": "yuma", "bonds_moving_average": 0.9, "bonds_penalty": 0, "alpha": 0.1}}"#,
            r#"{"bonds": {"mode": "yuma", "bonds_moving_average": 0.9, "bonds_penalty": 0, "liquid_alpha": {"alpha_low": 0.1, "alpha_high": 0.3, "steepness": 10}}}"#,
            r#"{"bonds": {"mode": "yuma3", "bonds_moving_average": 0.9, "bonds_penalty": 0, "liquid_alpha": {"alpha_low": 0.1}}}"#,
            r#"{"bonds": {"mode": "ema", "alpha": 0.5, "bonds_penalty": 0}}"#,
            r#"{"bonds": {"mode": "cumulative", "alpha": 0.5}}"#,
            r#"{"bonds": {"mode": "ema"}}"#,
            r#"{"bonds": {"mode": "emma", "alpha": 0.5}}"#,
            r#"{"bonds": {"mode": "ema", "alpha": 0.5, "beta": 1}}"#,
            r#"{"bonds": {"alpha": 0.5}}"#,
        ] {
            assert!(read(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_states_name_what_is_wrong() {
        let e = parse_state::<f64>(r#"{"stake": [1], "params": {"rho": 1e400}}"#).unwrap_err();
        assert!(e.to_string().contains("invalid state JSON"), "{e}");
        let e = parse_state::<f64>(r#"{"stake": [1], "bonds": [[[0, 1e999]]]}"#).unwrap_err();
        assert!(e.to_string().contains("invalid state JSON"), "{e}");
        let e = parse_state::<Fx>(r#"{"stake": [1], "params": {"rh0": 1}}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field `rh0`"), "{e}");
    }

    #[test]
    fn fixed_output_carries_exact_bits_and_float_none() {
        let fixed = parse_state::<Fx>(r#"{"stake": [3, 1], "weights": [[[1, 1]]]}"#).unwrap();
        let out = deepnode_consensus::epoch(&fixed).unwrap();
        let json = render_output(Backend::Fixed, &out);
        assert_eq!(json["bits"]["loss"], out.loss.to_bits().to_string());
        let float = parse_state::<f64>(r#"{"stake": [3, 1], "weights": [[[1, 1]]]}"#).unwrap();
        let out = deepnode_consensus::epoch(&float).unwrap();
        assert!(render_output(Backend::Float, &out).get("bits").is_none());
    }
}
