//! Scenario files: the TOML schema, its validation, and the checked [`Scenario`] it yields.

use std::path::Path;

use deepnode_consensus::{
    BondMode, ControllerPolicy, Departed, LiquidAlpha, Mechanism, Params, Scalar,
};
use serde::Deserialize;

use crate::SimError;

/// A checked scenario: everything a run needs besides the backend.
#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    /// A name for reports (the file stem, or `name = ...`).
    pub name: String,
    /// Epochs to run.
    pub epochs: u32,
    /// Seed of every random draw (qualities, noise, random rows).
    pub seed: u64,
    /// Mechanism parameters (emission is set each epoch from [`Scenario::emission`]).
    pub params: ParamsSpec,
    /// Units minted per epoch.
    pub emission: Emission,
    /// The weights controller, when on.
    pub controller: Option<ControllerPolicy>,
    /// The population, in uid order: group 0's nodes first.
    pub groups: Vec<Group>,
    /// Changes at given epochs, in file order.
    pub events: Vec<Event>,
}

/// Mechanism parameters as reals (converted to the backend's scalar when a run starts).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ParamsSpec {
    /// `rho` (> 0).
    pub rho: f64,
    /// `kappa` in `[0, 1]`.
    pub kappa: f64,
    /// `lambda` in `[0, 1]`.
    pub self_share: f64,
    /// `None`: cumulative bonds; `Some(alpha)`: EMA bonds (the paper's mechanism).
    pub ema_alpha: Option<f64>,
    /// A Yuma bond rule ([`BondMode::Yuma`] or [`BondMode::Yuma3`]): the run uses Yuma
    /// consensus (SPEC.md §10) and `ema_alpha` is not read; `None`: the paper's mechanism.
    pub yuma: Option<BondMode<f64>>,
    /// Ignore self weights.
    pub mask_self_weights: bool,
    /// Trust threshold in `[0, 1)`.
    pub trust_threshold: f64,
    /// `min_allowed_weights` at epoch 0 (the controller moves it).
    pub min_allowed_weights: u32,
    /// Epochs after which a row not set again counts as absent (0: off).
    pub activity_cutoff: u64,
    /// `None`: an absent node's bonds pay nothing while it is absent (withhold);
    /// `Some(rate)`: they decay by `rate` per absent epoch and go on paying.
    pub departed_decay: Option<f64>,
}

impl Default for ParamsSpec {
    /// SPEC.md's defaults, as [`Params::default`] holds them.
    fn default() -> Self {
        let d = Params::<f64>::default();
        ParamsSpec {
            rho: d.rho,
            kappa: d.kappa,
            self_share: d.self_share,
            ema_alpha: match d.bonds {
                BondMode::Cumulative | BondMode::Yuma { .. } | BondMode::Yuma3 { .. } => None,
                BondMode::Ema { alpha } => Some(alpha),
            },
            yuma: (d.bonds.mechanism() != Mechanism::Paper).then_some(d.bonds),
            mask_self_weights: d.mask_self_weights,
            trust_threshold: d.trust_threshold,
            min_allowed_weights: d.min_allowed_weights,
            activity_cutoff: d.activity_cutoff,
            departed_decay: match d.departed {
                Departed::Withhold => None,
                Departed::Decay { rate } => Some(rate),
            },
        }
    }
}

impl ParamsSpec {
    /// These params on backend `N` (reals to the nearest value of `N`), with `emission`.
    pub fn to_params<N: Scalar>(&self, emission: u64) -> Params<N> {
        Params {
            rho: N::from_f64(self.rho),
            kappa: N::from_f64(self.kappa),
            self_share: N::from_f64(self.self_share),
            emission,
            bonds: match (self.yuma, self.ema_alpha) {
                (Some(rule), _) => rule.map(N::from_f64),
                (None, None) => BondMode::Cumulative,
                (None, Some(alpha)) => BondMode::Ema {
                    alpha: N::from_f64(alpha),
                },
            },
            mask_self_weights: self.mask_self_weights,
            trust_threshold: N::from_f64(self.trust_threshold),
            min_allowed_weights: self.min_allowed_weights,
            activity_cutoff: self.activity_cutoff,
            departed: match self.departed_decay {
                None => Departed::Withhold,
                Some(rate) => Departed::Decay {
                    rate: N::from_f64(rate),
                },
            },
        }
    }
}

/// Units minted per epoch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Emission {
    /// The same amount every epoch.
    Fixed(u64),
    /// `floor(tau * S_t)`: the paper's `S_{t+1} = S_t + tau * dS`.
    Rate(f64),
}

/// A group of nodes that share a stake, a quality distribution and a strategy.
#[derive(Clone, Debug, PartialEq)]
pub struct Group {
    /// Name, unique in the scenario.
    pub name: String,
    /// Nodes in the group.
    pub count: u32,
    /// Raw stake units of each node when it joins.
    pub stake: u64,
    /// Hidden quality of each node (what honest nodes try to estimate).
    pub quality: Quality,
    /// How the group's nodes set weights.
    pub strategy: Strategy,
    /// Whether the group is present at epoch 0 (false when its first event is a `join`).
    pub active_at_start: bool,
}

/// A distribution of hidden quality; draws below 0 are clamped to 0.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Quality {
    /// Always this value.
    Constant(f64),
    /// Uniform in `[low, high]`.
    Uniform {
        /// Lower bound.
        low: f64,
        /// Upper bound.
        high: f64,
    },
    /// Normal with this mean and standard deviation.
    Normal {
        /// Mean.
        mean: f64,
        /// Standard deviation.
        sd: f64,
    },
}

/// How a node sets its weights each epoch. Every row has at least `min_allowed_weights`
/// entries where the strategy can reach it; a row with fewer non-zero entries is rejected and
/// the node submits nothing that epoch.
#[derive(Clone, Debug, PartialEq)]
pub enum Strategy {
    /// Weights proportional to a noisy estimate `q_j + noise * N(0,1)` of peers' quality over
    /// the top `max(top_k, min_allowed_weights)` peers by that estimate (self excluded).
    Honest {
        /// Peers kept.
        top_k: u32,
        /// Standard deviation of the estimate's noise.
        noise: f64,
        /// Peers examined each time (a uniform sample); 0 examines every active node.
        sample: u32,
        /// Re-estimate every this many epochs; 0 keeps the first estimate (the row still widens
        /// when the controller asks, and is rebuilt when nodes join or leave).
        refresh: u32,
    },
    /// Equal weight on every active member of its own group (itself included).
    Cabal,
    /// All weight on itself.
    Selfish,
    /// The top `max(top_k, min_allowed_weights)` peers of last epoch's incentive (the
    /// consensus-weighted outcome), weighted by it; uniform random peers in the first epoch.
    Copier {
        /// Peers kept.
        top_k: u32,
    },
    /// `max(k, min_allowed_weights)` uniformly random peers with random weights, new each epoch.
    Random {
        /// Peers per row.
        k: u32,
    },
    /// Builds one honest row when it joins and keeps it forever (never widens).
    Stale {
        /// Peers kept.
        top_k: u32,
        /// Noise of its one estimate.
        noise: f64,
    },
    /// Equal weight on every active member of the named groups.
    Support {
        /// Group names.
        groups: Vec<String>,
    },
}

/// A change at the start of an epoch.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// The 0-based epoch it happens before.
    pub epoch: u32,
    /// Index of the group it concerns.
    pub group: usize,
    /// What happens.
    pub action: Action,
}

/// What an [`Event`] does to its group.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// The group's nodes register with their configured stake.
    Join,
    /// The group's nodes leave: stake, weights and bonds are cleared (uids stay reserved).
    Leave,
    /// The group's nodes stop, as a killed process: they set no weights from now on and
    /// peers stop weighting them, but their stake, bonds and last row stay in the state (what
    /// a ledger holds for a node that went away without deregistering).
    Stop,
    /// Each active node of the group receives this many raw units.
    AddStake(u64),
    /// The group switches strategy.
    SetStrategy(Strategy),
}

// ---- TOML schema -------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioToml {
    name: Option<String>,
    epochs: u32,
    #[serde(default)]
    seed: u64,
    #[serde(default)]
    params: ParamsToml,
    emission: EmissionToml,
    controller: Option<ControllerToml>,
    groups: Vec<GroupToml>,
    #[serde(default)]
    events: Vec<EventToml>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ParamsToml {
    rho: Option<f64>,
    kappa: Option<f64>,
    self_share: Option<f64>,
    bonds: Option<BondsToml>,
    mask_self_weights: Option<bool>,
    trust_threshold: Option<f64>,
    min_allowed_weights: Option<u32>,
    activity_cutoff: Option<u64>,
    departed: Option<DepartedToml>,
}

#[derive(Deserialize)]
#[serde(tag = "rule", rename_all = "lowercase", deny_unknown_fields)]
enum DepartedToml {
    Withhold,
    Decay { rate: f64 },
}

#[derive(Deserialize)]
#[serde(tag = "mode", rename_all = "lowercase", deny_unknown_fields)]
enum BondsToml {
    Cumulative,
    Ema {
        alpha: f64,
    },
    Yuma {
        bonds_moving_average: f64,
        bonds_penalty: f64,
    },
    Yuma3 {
        bonds_moving_average: f64,
        bonds_penalty: f64,
        liquid_alpha: Option<LiquidAlphaToml>,
    },
}

#[derive(Deserialize, Clone, Copy)]
#[serde(deny_unknown_fields)]
struct LiquidAlphaToml {
    alpha_low: f64,
    alpha_high: f64,
    steepness: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EmissionToml {
    fixed: Option<u64>,
    rate: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ControllerToml {
    #[serde(default = "yes")]
    enabled: bool,
    step: Option<u32>,
    cap: Option<u32>,
    floor: Option<u32>,
    relax_after: Option<u32>,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupToml {
    name: String,
    count: u32,
    stake: u64,
    quality: QualityToml,
    strategy: StrategyToml,
}

#[derive(Deserialize)]
#[serde(tag = "dist", rename_all = "lowercase", deny_unknown_fields)]
enum QualityToml {
    Constant { value: f64 },
    Uniform { low: f64, high: f64 },
    Normal { mean: f64, sd: f64 },
}

#[derive(Deserialize, Clone)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
enum StrategyToml {
    Honest {
        top_k: u32,
        #[serde(default)]
        noise: f64,
        #[serde(default)]
        sample: u32,
        #[serde(default = "one")]
        refresh: u32,
    },
    Cabal,
    Selfish,
    Copier {
        top_k: u32,
    },
    Random {
        k: u32,
    },
    Stale {
        top_k: u32,
        #[serde(default)]
        noise: f64,
    },
    Support {
        groups: Vec<String>,
    },
}

fn one() -> u32 {
    1
}

#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
enum EventToml {
    Join {
        epoch: u32,
        group: String,
    },
    Leave {
        epoch: u32,
        group: String,
        #[serde(default)]
        stop: bool,
    },
    AddStake {
        epoch: u32,
        group: String,
        amount: u64,
    },
    Strategy {
        epoch: u32,
        group: String,
        strategy: StrategyToml,
    },
}

// ---- reading and checking ----------------------------------------------------------------

impl Scenario {
    /// Reads and checks a scenario file. The name defaults to the file stem.
    pub fn from_file(path: &Path) -> Result<Scenario, SimError> {
        let text = std::fs::read_to_string(path).map_err(|source| SimError::Io {
            path: path.to_owned(),
            source,
        })?;
        let stem = path
            .file_stem()
            .map_or_else(|| "scenario".into(), |s| s.to_string_lossy().into_owned());
        Scenario::from_toml(&text, &path.display().to_string(), &stem)
    }

    /// Reads and checks a scenario from TOML text; `file` names it in errors, `default_name`
    /// is used when the text has no `name`.
    pub fn from_toml(text: &str, file: &str, default_name: &str) -> Result<Scenario, SimError> {
        let raw: ScenarioToml = toml::from_str(text).map_err(|e| toml_error(text, file, &e))?;
        let bad = |key: String, reason: String| SimError::invalid(file, key, reason);

        if raw.epochs == 0 {
            return Err(bad("epochs".into(), "must be at least 1".into()));
        }
        let p = raw.params;
        let d = ParamsSpec::default();
        let params = ParamsSpec {
            rho: p.rho.unwrap_or(d.rho),
            kappa: p.kappa.unwrap_or(d.kappa),
            self_share: p.self_share.unwrap_or(d.self_share),
            ema_alpha: match p.bonds {
                Some(BondsToml::Ema { alpha }) => Some(alpha),
                _ => None,
            },
            yuma: match p.bonds {
                Some(BondsToml::Yuma {
                    bonds_moving_average,
                    bonds_penalty,
                }) => Some(BondMode::Yuma {
                    bonds_moving_average,
                    bonds_penalty,
                }),
                Some(BondsToml::Yuma3 {
                    bonds_moving_average,
                    bonds_penalty,
                    liquid_alpha,
                }) => Some(BondMode::Yuma3 {
                    bonds_moving_average,
                    bonds_penalty,
                    liquid_alpha: liquid_alpha.map(|l| LiquidAlpha {
                        alpha_low: l.alpha_low,
                        alpha_high: l.alpha_high,
                        steepness: l.steepness,
                    }),
                }),
                _ => None,
            },
            mask_self_weights: p.mask_self_weights.unwrap_or(d.mask_self_weights),
            trust_threshold: p.trust_threshold.unwrap_or(d.trust_threshold),
            min_allowed_weights: p.min_allowed_weights.unwrap_or(d.min_allowed_weights),
            activity_cutoff: p.activity_cutoff.unwrap_or(d.activity_cutoff),
            departed_decay: match p.departed {
                None => d.departed_decay,
                Some(DepartedToml::Withhold) => None,
                Some(DepartedToml::Decay { rate }) => Some(rate),
            },
        };
        check_params(&params).map_err(|(k, r)| bad(k, r))?;

        let emission = match (raw.emission.fixed, raw.emission.rate) {
            (Some(units), None) => Emission::Fixed(units),
            (None, Some(tau)) if tau.is_finite() && tau >= 0.0 => Emission::Rate(tau),
            (None, Some(_)) => {
                return Err(bad(
                    "emission.rate".into(),
                    "must be a finite number >= 0".into(),
                ));
            }
            _ => {
                return Err(bad(
                    "emission".into(),
                    "give exactly one of `fixed` (units per epoch) or `rate` (tau)".into(),
                ));
            }
        };

        let controller = match raw.controller {
            Some(c) if c.enabled => {
                let d = ControllerPolicy::default();
                let policy = ControllerPolicy {
                    step: c.step.unwrap_or(d.step),
                    cap: c.cap.unwrap_or(d.cap),
                    floor: c.floor.unwrap_or(d.floor),
                    relax_after: c.relax_after.unwrap_or(d.relax_after),
                };
                if policy.floor > policy.cap || policy.step == 0 {
                    return Err(bad(
                        "controller".into(),
                        "needs step >= 1 and floor <= cap".into(),
                    ));
                }
                Some(policy)
            }
            _ => None,
        };

        if raw.groups.is_empty() {
            return Err(bad("groups".into(), "at least one group is needed".into()));
        }
        let names: Vec<String> = raw.groups.iter().map(|g| g.name.clone()).collect();
        let mut total: u64 = 0;
        let mut groups = Vec::with_capacity(raw.groups.len());
        for (gi, g) in raw.groups.into_iter().enumerate() {
            let key = |k: &str| format!("groups[{gi}].{k}");
            if names.iter().take(gi).any(|n| *n == g.name) {
                return Err(bad(key("name"), format!("`{}` is used twice", g.name)));
            }
            if g.count == 0 {
                return Err(bad(key("count"), "must be at least 1".into()));
            }
            total = total.saturating_add(u64::from(g.count));
            let quality = check_quality(g.quality).map_err(|r| bad(key("quality"), r.into()))?;
            let strategy = check_strategy(g.strategy, &names)
                .map_err(|(k, r)| bad(format!("{}{k}", key("strategy")), r))?;
            groups.push(Group {
                name: g.name,
                count: g.count,
                stake: g.stake,
                quality,
                strategy,
                active_at_start: true,
            });
        }
        if total > u64::from(u32::MAX) {
            return Err(bad("groups".into(), "more than 2^32 nodes in all".into()));
        }

        let mut events = Vec::with_capacity(raw.events.len());
        for (ei, e) in raw.events.into_iter().enumerate() {
            let key = |k: &str| format!("events[{ei}].{k}");
            let (epoch, group, action) = match e {
                EventToml::Join { epoch, group } => (epoch, group, Action::Join),
                EventToml::Leave { epoch, group, stop } => (
                    epoch,
                    group,
                    if stop { Action::Stop } else { Action::Leave },
                ),
                EventToml::AddStake {
                    epoch,
                    group,
                    amount,
                } => (epoch, group, Action::AddStake(amount)),
                EventToml::Strategy {
                    epoch,
                    group,
                    strategy,
                } => {
                    let s = check_strategy(strategy, &names)
                        .map_err(|(k, r)| bad(format!("{}{k}", key("strategy")), r))?;
                    (epoch, group, Action::SetStrategy(s))
                }
            };
            let gi = names
                .iter()
                .position(|n| *n == group)
                .ok_or_else(|| bad(key("group"), format!("no group named `{group}`")))?;
            events.push(Event {
                epoch,
                group: gi,
                action,
            });
        }
        // A group whose first event is a join is absent until then.
        for (gi, g) in groups.iter_mut().enumerate() {
            let first = events
                .iter()
                .filter(|e| {
                    e.group == gi && matches!(e.action, Action::Join | Action::Leave | Action::Stop)
                })
                .min_by_key(|e| e.epoch);
            g.active_at_start = !matches!(first, Some(e) if e.action == Action::Join);
        }

        Ok(Scenario {
            name: raw.name.unwrap_or_else(|| default_name.to_owned()),
            epochs: raw.epochs,
            seed: raw.seed,
            params,
            emission,
            controller,
            groups,
            events,
        })
    }

    /// Nodes in the population (all groups, present or not).
    pub fn nodes(&self) -> usize {
        self.groups.iter().map(|g| g.count as usize).sum()
    }
}

/// The ranges of SPEC.md, checked by the consensus crate's own rule
/// ([`deepnode_consensus::check_params`]) on the float values; `(key, reason)` on failure.
fn check_params(p: &ParamsSpec) -> Result<(), (String, String)> {
    match deepnode_consensus::check_params(&p.to_params::<f64>(0)) {
        Ok(()) => Ok(()),
        Err(deepnode_consensus::Error::ParamOutOfRange { name, range }) => {
            let key = match name {
                "alpha" => "bonds.alpha",
                "bonds_moving_average" | "bonds_penalty" => {
                    return Err((
                        format!("params.bonds.{name}"),
                        format!("must be in {range}"),
                    ));
                }
                "alpha_low" | "alpha_high" | "steepness" => {
                    return Err((
                        format!("params.bonds.liquid_alpha.{name}"),
                        format!("must be in {range}"),
                    ));
                }
                "rate" => "departed.rate",
                other => other,
            };
            Err((format!("params.{key}"), format!("must be in {range}")))
        }
        Err(e) => Err(("params".into(), e.to_string())),
    }
}

fn check_quality(q: QualityToml) -> Result<Quality, &'static str> {
    let finite = |x: f64| x.is_finite();
    match q {
        QualityToml::Constant { value } if finite(value) => Ok(Quality::Constant(value)),
        QualityToml::Uniform { low, high } if finite(low) && finite(high) && low <= high => {
            Ok(Quality::Uniform { low, high })
        }
        QualityToml::Normal { mean, sd } if finite(mean) && finite(sd) && sd >= 0.0 => {
            Ok(Quality::Normal { mean, sd })
        }
        _ => Err("needs finite numbers, low <= high, sd >= 0"),
    }
}

fn check_strategy(s: StrategyToml, names: &[String]) -> Result<Strategy, (String, String)> {
    let noise_ok = |noise: f64| noise.is_finite() && noise >= 0.0;
    let positive = |k: u32, key: &str| {
        if k == 0 {
            Err((format!(".{key}"), "must be at least 1".to_owned()))
        } else {
            Ok(())
        }
    };
    Ok(match s {
        StrategyToml::Honest {
            top_k,
            noise,
            sample,
            refresh,
        } => {
            positive(top_k, "top_k")?;
            if !noise_ok(noise) {
                return Err((".noise".into(), "must be a finite number >= 0".into()));
            }
            Strategy::Honest {
                top_k,
                noise,
                sample,
                refresh,
            }
        }
        StrategyToml::Cabal => Strategy::Cabal,
        StrategyToml::Selfish => Strategy::Selfish,
        StrategyToml::Copier { top_k } => {
            positive(top_k, "top_k")?;
            Strategy::Copier { top_k }
        }
        StrategyToml::Random { k } => {
            positive(k, "k")?;
            Strategy::Random { k }
        }
        StrategyToml::Stale { top_k, noise } => {
            positive(top_k, "top_k")?;
            if !noise_ok(noise) {
                return Err((".noise".into(), "must be a finite number >= 0".into()));
            }
            Strategy::Stale { top_k, noise }
        }
        StrategyToml::Support { groups } => {
            if groups.is_empty() {
                return Err((".groups".into(), "name at least one group".into()));
            }
            if let Some(g) = groups.iter().find(|g| !names.contains(g)) {
                return Err((".groups".into(), format!("no group named `{g}`")));
            }
            Strategy::Support { groups }
        }
    })
}

/// A one-line error naming the file, the line and the key at the parser's error position.
fn toml_error(text: &str, file: &str, e: &toml::de::Error) -> SimError {
    let start = e.span().map_or(0, |s| s.start).min(text.len());
    let line = text
        .get(..start)
        .map_or(0, |t| t.bytes().filter(|&b| b == b'\n').count());
    let lines: Vec<&str> = text.lines().collect();
    let here = lines.get(line).map_or("", |l| l.trim());
    // The key is what stands before `=` on that line, inside the nearest table header.
    let key = here.split('=').next().unwrap_or("").trim();
    let table = lines
        .iter()
        .take(line + 1)
        .rev()
        .map(|l| l.trim())
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']'));
    let key = match (table, key) {
        (Some(t), k) if !k.is_empty() && !k.starts_with('[') => format!("{t}.{k}"),
        (Some(t), _) => t.to_owned(),
        (None, k) if !k.is_empty() => k.to_owned(),
        (None, _) => "(top level)".to_owned(),
    };
    SimError::Toml {
        file: file.to_owned(),
        line: line + 1,
        key,
        message: e.message().replace('\n', " ").trim().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
epochs = 3
[emission]
fixed = 1000
[[groups]]
name = "a"
count = 2
stake = 10
quality = { dist = "constant", value = 1.0 }
strategy = { kind = "honest", top_k = 1 }
"#;

    #[test]
    fn minimal_scenario_takes_defaults() {
        let s = Scenario::from_toml(MINIMAL, "m.toml", "m").unwrap();
        assert_eq!(s.name, "m");
        assert_eq!(s.params, ParamsSpec::default());
        assert_eq!(s.emission, Emission::Fixed(1000));
        assert_eq!(s.nodes(), 2);
        assert!(s.controller.is_none());
        assert_eq!(
            s.groups[0].strategy,
            Strategy::Honest {
                top_k: 1,
                noise: 0.0,
                sample: 0,
                refresh: 1
            }
        );
    }

    #[test]
    fn unknown_key_names_key_file_and_line() {
        let text = MINIMAL.replace("[emission]", "[emission]\nfixd = 3");
        let e = Scenario::from_toml(&text, "x.toml", "x").unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("x.toml:4: `emission.fixd`"), "{msg}");
        assert!(msg.contains("unknown field"), "{msg}");
        assert!(!msg.contains('\n'));
    }

    #[test]
    fn invalid_values_name_their_key() {
        let cases = [
            ("epochs = 3", "epochs = 0", "`epochs`"),
            (
                "[emission]",
                "[params]\nkappa = 1.5\n[emission]",
                "`params.kappa`",
            ),
            ("fixed = 1000", "fixed = 1\nrate = 0.1", "`emission`"),
            ("count = 2", "count = 0", "`groups[0].count`"),
            ("top_k = 1", "top_k = 0", "`groups[0].strategy.top_k`"),
            ("value = 1.0", "value = nan", "`groups[0].quality`"),
        ];
        for (from, to, key) in cases {
            let e = Scenario::from_toml(&MINIMAL.replace(from, to), "f.toml", "f").unwrap_err();
            let msg = e.to_string();
            assert!(
                msg.starts_with("f.toml") && msg.contains(key),
                "{to}: {msg}"
            );
        }
        let wrong_type = MINIMAL.replace("count = 2", "count = \"two\"");
        let msg = Scenario::from_toml(&wrong_type, "f.toml", "f")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("groups.count") && msg.contains(":7:"), "{msg}");
    }

    #[test]
    fn events_resolve_groups_and_joins_start_absent() {
        let text = format!(
            "{MINIMAL}\n[[events]]\nepoch = 2\nkind = \"join\"\ngroup = \"a\"\n\
             [[events]]\nepoch = 1\nkind = \"strategy\"\ngroup = \"a\"\nstrategy = {{ kind = \"selfish\" }}\n"
        );
        let s = Scenario::from_toml(&text, "e.toml", "e").unwrap();
        assert!(!s.groups[0].active_at_start);
        assert_eq!(s.events[1].action, Action::SetStrategy(Strategy::Selfish));
        let bad = text.replace("group = \"a\"\nstrategy", "group = \"zz\"\nstrategy");
        let msg = Scenario::from_toml(&bad, "e.toml", "e")
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("events[1].group") && msg.contains("zz"),
            "{msg}"
        );
    }
}
