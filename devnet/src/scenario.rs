//! The devnet's scenario file (TOML, unknown keys refused): timing, stake, and the node groups
//! with their roles. `examples/devnet.toml` is the default and documents every key.

use deepnode_consensus::{BondMode, Fx, Params};
use deepnode_link::Profile;
use serde::Deserialize;

use crate::roles::Role;

/// The default scenario: `examples/devnet.toml`.
pub const DEFAULT: &str = include_str!("../../examples/devnet.toml");

/// How a leaving node goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Signal {
    /// `kill -9`: no goodbye, its connections just break.
    #[default]
    Kill,
    /// SIGTERM: the node closes its sessions and exits.
    Term,
}

/// The mechanism the chain's epochs run (the genesis's `params.bonds`, SPEC.md §10).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mechanism {
    /// The paper's: sigmoid consensus of trust, `I = R * C`, the ledger's default bonds.
    #[default]
    Paper,
    /// Subtensor's original Yuma: stake-weighted median, clipping, EMA bonds.
    Yuma,
    /// Yuma 3: bonds per entry moving toward the clipped weights, optional liquid alpha.
    Yuma3,
}

impl Mechanism {
    /// The scenario's spelling.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Paper => "paper",
            Mechanism::Yuma => "yuma",
            Mechanism::Yuma3 => "yuma3",
        }
    }
}

/// Yuma 3's liquid alpha: the bonds' rate moves between `alpha_low` and `alpha_high` along a
/// sigmoid of this steepness.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiquidAlpha {
    /// Lowest rate, in `[0, 1]`.
    pub alpha_low: f64,
    /// Highest rate, in `[alpha_low, 1]`.
    pub alpha_high: f64,
    /// The sigmoid's steepness, at least 0.
    pub steepness: f64,
}

/// `bonds_moving_average` of a Yuma scenario that names none.
pub const DEFAULT_BONDS_MOVING_AVERAGE: f64 = 0.9;

/// A group of nodes with one role.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    /// Their role.
    pub role: Role,
    /// How many.
    #[serde(default = "one")]
    pub count: usize,
    /// The epoch (counted from the start of the run, from 1) at which they leave.
    pub leave: Option<u64>,
    /// How they leave.
    #[serde(default)]
    pub signal: Signal,
    /// The text domain they specialise in (learners and offline nodes; default `fortunes`).
    pub domain: Option<String>,
    /// Their link's profile (separate hosts only; default a perfect link). A connection
    /// between two nodes crosses both nodes' links.
    pub link: Option<Profile>,
    /// The epoch (from 1) at which each is killed (`kill -9`) and started again at once with
    /// the same wallet and endpoint.
    pub crash: Option<u64>,
}

/// The domain of a learner group that names none.
pub const DEFAULT_DOMAIN: &str = "fortunes";

fn one() -> usize {
    1
}

/// A devnet run.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Scenario {
    /// Epochs to run once every node serves.
    pub epochs: u64,
    /// Blocks per epoch.
    pub tempo: u64,
    /// Milliseconds per block.
    pub block_ms: u64,
    /// Seed of wallets, models and batches.
    pub seed: u64,
    /// Stake each node holds.
    pub stake: u64,
    /// Units minted per epoch.
    pub emission: u64,
    /// A normalised weight must exceed this to count as trust (`[0, 1)`).
    pub trust_threshold: f64,
    /// The consensus threshold `kappa` in `(0, 1)` (SPEC.md §5 step 5, §10 Y3): the stake
    /// share around which the paper's consensus sigmoid is centred, and the stake a Yuma
    /// column's median must exceed. Absent: the ledger's default (1/2).
    pub kappa: Option<f64>,
    /// Training steps after which a learner's rows count as informed (the report's claim 2
    /// starts when every running learner has a row, has taken this many steps and weights no
    /// cabal member). 0: the rows alone decide (a learner's row is already evidence-based).
    pub warmup_steps: u64,
    /// Representation width `D`.
    pub dim: u32,
    /// Peers per position (the gate's `k`; non-learners query `2k` peers).
    pub k: usize,
    /// Milliseconds between a node's queries.
    pub query_ms: u64,
    /// The mechanism the chain's epochs run.
    pub mechanism: Mechanism,
    /// Yuma's bonds moving average (`yuma` and `yuma3`; default
    /// [`DEFAULT_BONDS_MOVING_AVERAGE`]), in `[0, 1]`.
    pub bonds_moving_average: Option<f64>,
    /// Yuma's bonds penalty (`yuma` and `yuma3`; default 0), in `[0, 1]`.
    pub bonds_penalty: Option<f64>,
    /// Yuma 3's liquid alpha (`yuma3` only; off when absent).
    pub liquid_alpha: Option<LiquidAlpha>,
    /// Every node, the ledger and every node's link on a host of its own (Linux network
    /// namespaces; needs root).
    pub netns: bool,
    /// The nodes, group by group; uids are not fixed (registration order).
    #[serde(rename = "group")]
    pub groups: Vec<Group>,
}

impl Default for Scenario {
    /// The values of `examples/devnet.toml`, with no groups.
    fn default() -> Self {
        Scenario {
            epochs: 60,
            tempo: 10,
            block_ms: 500,
            seed: 1,
            stake: 1_000_000_000,
            emission: 400_000_000,
            trust_threshold: 0.0,
            kappa: None,
            warmup_steps: 0,
            dim: 32,
            k: 4,
            query_ms: 100,
            mechanism: Mechanism::Paper,
            bonds_moving_average: None,
            bonds_penalty: None,
            liquid_alpha: None,
            netns: false,
            groups: Vec::new(),
        }
    }
}

/// One node of the run, in scenario order.
#[derive(Clone, Debug, PartialEq)]
pub struct Member {
    /// `node-<index>`.
    pub name: String,
    /// Index in scenario order.
    pub index: usize,
    /// Its role.
    pub role: Role,
    /// Epoch it leaves at, and how.
    pub leave: Option<(u64, Signal)>,
    /// Its seed.
    pub seed: u64,
    /// Its text domain (learners only).
    pub domain: Option<String>,
    /// The indices of the other members of its group (cabal only).
    pub group: Vec<usize>,
    /// Its link's profile.
    pub link: Profile,
    /// The epoch it is killed and started again at.
    pub crash: Option<u64>,
}

/// A TOML error in one line: its line, the key whose value is wrong (when the error points
/// at a value) and the parser's message.
fn describe(text: &str, e: &toml::de::Error) -> String {
    let Some(span) = e.span() else {
        return e.message().to_owned();
    };
    let before = &text[..span.start.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let key: String = before
        .trim_end()
        .strip_suffix('=')
        .map(|b| {
            let b = b.trim_end();
            let start = b
                .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .map_or(0, |i| i + 1);
            b[start..].to_owned()
        })
        .unwrap_or_default();
    if key.is_empty() {
        format!("line {line}: {}", e.message())
    } else {
        format!("line {line}: `{key}`: {}", e.message())
    }
}

impl Scenario {
    /// Parses and checks a scenario (`DEFAULT` when `text` is the default file).
    pub fn parse(text: &str) -> Result<Scenario, String> {
        let s: Scenario = toml::from_str(text).map_err(|e| describe(text, &e))?;
        s.check()?;
        Ok(s)
    }

    /// Checks ranges and groups (again after command-line overrides).
    pub fn check(&self) -> Result<(), String> {
        let positive = [
            ("epochs", self.epochs),
            ("tempo", self.tempo),
            ("block_ms", self.block_ms),
            ("stake", self.stake),
            ("dim", u64::from(self.dim)),
            ("k", self.k as u64),
            ("query_ms", self.query_ms),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("{name} must be positive"));
        }
        if !(0.0..1.0).contains(&self.trust_threshold) {
            return Err("trust_threshold must be in [0, 1)".into());
        }
        if self.kappa.is_some_and(|k| !(k > 0.0 && k < 1.0)) {
            return Err("kappa must be in (0, 1)".into());
        }
        if self.stake.checked_mul(2).is_none() {
            return Err("stake is too large".into());
        }
        self.bond_mode()?;
        let n = self.nodes();
        let most = if self.netns { 250 } else { 64 };
        if !(2..=most).contains(&n) {
            return Err(format!(
                "{n} nodes; a devnet runs 2 to 64 on loopback, 2 to 250 with netns = true"
            ));
        }
        for (at, g) in self.groups.iter().enumerate() {
            let name = format!("group {} ({})", at + 1, g.role.name());
            if let Some(link) = &g.link {
                if !self.netns && !link.is_perfect() {
                    return Err(format!(
                        "{name}: `link` needs separate hosts (netns = true or --netns)"
                    ));
                }
                link.check().map_err(|e| format!("{name}: {e}"))?;
            }
            if let Some(e) = g.crash
                && (e == 0 || e >= self.epochs)
            {
                return Err(format!(
                    "{name}: crash = {e} is not within 1..{}",
                    self.epochs
                ));
            }
            if g.crash.is_some() && g.leave.is_some() {
                return Err(format!("{name}: `crash` and `leave` do not go together"));
            }
            if g.count == 0 {
                return Err(format!("a {} group with count 0", g.role.name()));
            }
            match (g.role, g.leave) {
                (Role::Offline, None) => return Err("an offline group needs `leave`".into()),
                (Role::Offline, Some(e)) if e == 0 || e > self.epochs => {
                    return Err(format!("leave = {e} is not within 1..={}", self.epochs));
                }
                (Role::Offline, _) => {}
                (r, Some(_)) => {
                    return Err(format!("`leave` is for offline groups, not {}", r.name()));
                }
                (_, None) => {}
            }
            if g.role == Role::Cabal && g.count < 2 {
                return Err("a cabal needs at least two nodes".into());
            }
            if g.domain.is_some() && !g.role.trains() {
                return Err(format!(
                    "`domain` is for learner and offline groups, not {}",
                    g.role.name()
                ));
            }
        }
        Ok(())
    }

    /// The genesis's bond rule for [`Scenario::mechanism`]: the ledger's default for the
    /// paper's mechanism, else Yuma's with this scenario's values, checked by
    /// `deepnode_consensus::check_params` (the owner of the ranges). A Yuma key under another
    /// mechanism is refused.
    pub fn bond_mode(&self) -> Result<BondMode<Fx>, String> {
        let yuma_keys = [
            ("bonds_moving_average", self.bonds_moving_average.is_some()),
            ("bonds_penalty", self.bonds_penalty.is_some()),
        ];
        let stray = match self.mechanism {
            Mechanism::Paper => yuma_keys
                .iter()
                .chain(&[("liquid_alpha", self.liquid_alpha.is_some())])
                .find(|(_, set)| *set)
                .map(|(name, _)| *name),
            Mechanism::Yuma => self.liquid_alpha.map(|_| "liquid_alpha"),
            Mechanism::Yuma3 => None,
        };
        if let Some(name) = stray {
            return Err(format!(
                "`{name}` does not apply to mechanism = \"{}\"",
                self.mechanism.name()
            ));
        }
        let finite = |name: &str, x: f64| {
            if x.is_finite() {
                Ok(Fx::from_f64(x))
            } else {
                Err(format!("{name} must be a finite number"))
            }
        };
        let average = finite(
            "bonds_moving_average",
            self.bonds_moving_average
                .unwrap_or(DEFAULT_BONDS_MOVING_AVERAGE),
        )?;
        let penalty = finite("bonds_penalty", self.bonds_penalty.unwrap_or(0.0))?;
        let bonds = match self.mechanism {
            Mechanism::Paper => return Ok(deepnode_ledger::default_params(self.tempo).bonds),
            Mechanism::Yuma => BondMode::Yuma {
                bonds_moving_average: average,
                bonds_penalty: penalty,
            },
            Mechanism::Yuma3 => BondMode::Yuma3 {
                bonds_moving_average: average,
                bonds_penalty: penalty,
                liquid_alpha: match self.liquid_alpha {
                    None => None,
                    Some(l) => Some(deepnode_consensus::LiquidAlpha {
                        alpha_low: finite("liquid_alpha.alpha_low", l.alpha_low)?,
                        alpha_high: finite("liquid_alpha.alpha_high", l.alpha_high)?,
                        steepness: finite("liquid_alpha.steepness", l.steepness)?,
                    }),
                },
            },
        };
        let params = Params {
            bonds,
            ..Params::default()
        };
        deepnode_consensus::check_params(&params).map_err(|e| e.to_string())?;
        Ok(bonds)
    }

    /// Number of nodes.
    pub fn nodes(&self) -> usize {
        self.groups.iter().map(|g| g.count).sum()
    }

    /// Sets the number of nodes to `n` by resizing the first learner group.
    pub fn resize(&mut self, n: usize) -> Result<(), String> {
        let others: usize = self
            .groups
            .iter()
            .skip_while(|g| g.role != Role::Learner)
            .skip(1)
            .chain(self.groups.iter().take_while(|g| g.role != Role::Learner))
            .map(|g| g.count)
            .sum();
        let learners = self
            .groups
            .iter_mut()
            .find(|g| g.role == Role::Learner)
            .ok_or("--nodes resizes the learner group; this scenario has none")?;
        if n <= others {
            return Err(format!(
                "--nodes {n}: the other groups already hold {others} nodes"
            ));
        }
        learners.count = n - others;
        self.check()
    }

    /// The nodes in scenario order.
    pub fn members(&self) -> Vec<Member> {
        let mut out: Vec<Member> = Vec::with_capacity(self.nodes());
        for g in &self.groups {
            let first = out.len();
            for _ in 0..g.count {
                let index = out.len();
                out.push(Member {
                    name: format!("node-{index}"),
                    index,
                    role: g.role,
                    leave: g.leave.map(|e| (e, g.signal)),
                    seed: self.seed.wrapping_mul(1000).wrapping_add(index as u64),
                    domain: g.role.trains().then(|| {
                        g.domain
                            .clone()
                            .unwrap_or_else(|| DEFAULT_DOMAIN.to_owned())
                    }),
                    group: Vec::new(),
                    link: g.link.unwrap_or_default(),
                    crash: g.crash,
                });
            }
            if g.role == Role::Cabal {
                for i in first..out.len() {
                    out[i].group = (first..out.len()).filter(|&j| j != i).collect();
                }
            }
        }
        out
    }

    /// Learners (trainers) among the nodes.
    pub fn learners(&self) -> usize {
        self.groups
            .iter()
            .filter(|g| g.role.trains())
            .map(|g| g.count)
            .sum()
    }

    /// The text domains of the learners, sorted, each once: what every learner is evaluated on.
    pub fn domains(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .members()
            .into_iter()
            .filter_map(|m| m.domain)
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_scenario_is_eight_nodes_with_every_check_passing() {
        let s = Scenario::parse(DEFAULT).unwrap();
        assert_eq!(s.nodes(), 8);
        let m = s.members();
        assert_eq!(m.iter().filter(|m| m.role.trains()).count(), 4);
        assert_eq!(s.learners(), 4);
        assert_eq!(s.domains(), ["c", "fortunes", "python"]);
        let cabal: Vec<_> = m.iter().filter(|m| m.role == Role::Cabal).collect();
        assert_eq!(cabal[0].group, vec![cabal[1].index]);
        assert_eq!(m[3].leave, Some((40, Signal::Kill)));
    }

    #[test]
    fn missing_keys_take_the_default_files_values() {
        let s = Scenario::parse(DEFAULT).unwrap();
        let bare = Scenario::parse("[[group]]\nrole = \"learner\"\ncount = 2").unwrap();
        assert_eq!(
            Scenario {
                groups: s.groups.clone(),
                ..bare
            },
            s
        );
    }

    #[test]
    fn bad_scenarios_are_refused_with_a_reason() {
        let base = DEFAULT.replace("epochs = 60", "epochs = 45");
        for (text, why) in [
            (format!("{base}\nextra = 1"), "unknown field"),
            (base.replace("leave = 40", "leave = 46"), "not within"),
            (base.replace("count = 2", "count = 1"), "cabal needs"),
            (
                base.replace("tempo = 10", "tempo = 0"),
                "tempo must be positive",
            ),
            (
                base.replace("role = \"lazy\"", "role = \"lazy\"\nleave = 3"),
                "only",
            ),
        ] {
            let e = Scenario::parse(&text).unwrap_err();
            assert!(
                e.contains(why) || why == "only" && e.contains("offline groups"),
                "{e}"
            );
        }
    }

    /// `mechanism` picks the bond rule: the ledger's default for "paper" (and when absent),
    /// Yuma's with the scenario's values (or their defaults) for "yuma" and "yuma3".
    #[test]
    fn the_mechanism_key_picks_the_bond_rule() {
        let paper = Scenario::parse(DEFAULT).unwrap();
        assert_eq!(paper.mechanism, Mechanism::Paper);
        let ledger_default = deepnode_ledger::default_params(paper.tempo).bonds;
        assert_eq!(paper.bond_mode(), Ok(ledger_default));
        let with = |keys: &str| Scenario::parse(&DEFAULT.replace("mechanism = \"paper\"", keys));
        assert_eq!(with("mechanism = \"paper\"").unwrap(), paper);
        let yuma = with("mechanism = \"yuma\"").unwrap();
        assert_eq!(
            yuma.bond_mode(),
            Ok(BondMode::Yuma {
                bonds_moving_average: Fx::from_f64(DEFAULT_BONDS_MOVING_AVERAGE),
                bonds_penalty: Fx::ZERO,
            })
        );
        let yuma3 = with(
            "mechanism = \"yuma3\"\nbonds_moving_average = 0.8\nbonds_penalty = 0.5\n\
             liquid_alpha = { alpha_low = 0.1, alpha_high = 0.3, steepness = 10 }",
        )
        .unwrap();
        assert_eq!(
            yuma3.bond_mode(),
            Ok(BondMode::Yuma3 {
                bonds_moving_average: Fx::from_f64(0.8),
                bonds_penalty: Fx::from_ratio(1, 2),
                liquid_alpha: Some(deepnode_consensus::LiquidAlpha {
                    alpha_low: Fx::from_f64(0.1),
                    alpha_high: Fx::from_f64(0.3),
                    steepness: Fx::from_f64(10.0),
                }),
            })
        );
        let plain3 = with("mechanism = \"yuma3\"").unwrap();
        assert!(
            matches!(
                plain3.bond_mode(),
                Ok(BondMode::Yuma3 {
                    liquid_alpha: None,
                    ..
                })
            ),
            "liquid alpha is off unless given"
        );
    }

    /// An unknown mechanism, a Yuma key under a mechanism it does not belong to, and a value
    /// out of range are refused in one line that names them.
    #[test]
    fn a_bad_mechanism_is_refused_in_one_line() {
        for (keys, why) in [
            ("mechanism = \"yuma4\"", "yuma4"),
            (
                "bonds_moving_average = 0.5",
                "`bonds_moving_average` does not apply",
            ),
            (
                "mechanism = \"yuma\"\nliquid_alpha = { alpha_low = 0.1, alpha_high = 0.3, \
                 steepness = 10 }",
                "`liquid_alpha` does not apply to mechanism = \"yuma\"",
            ),
            (
                "mechanism = \"yuma3\"\nbonds_moving_average = 1.5",
                "bonds_moving_average",
            ),
            (
                "mechanism = \"yuma3\"\nbonds_penalty = nan",
                "bonds_penalty",
            ),
            (
                "mechanism = \"yuma3\"\nliquid_alpha = { alpha_low = 0.5, alpha_high = 0.3, \
                 steepness = 10 }",
                "alpha_high",
            ),
            (
                "mechanism = \"yuma3\"\nliquid_alpha = { alpha_low = 0.1 }",
                "alpha_high",
            ),
            ("kappa = 1.0", "kappa must be in (0, 1)"),
            ("kappa = 0", "kappa must be in (0, 1)"),
            ("kappa = nan", "kappa must be in (0, 1)"),
        ] {
            let e = Scenario::parse(&DEFAULT.replace("mechanism = \"paper\"", keys)).unwrap_err();
            assert!(e.contains(why), "{keys}: {e}");
            assert!(!e.contains('\n'), "one line: {e}");
        }
    }

    /// Link profiles, crashes and separate hosts: parsed per group, and refused in one line
    /// naming the key when wrong.
    #[test]
    fn link_and_churn_keys_are_checked_naming_the_key() {
        let base = "epochs = 5\nnetns = true\n[[group]]\nrole = \"projection\"\ncount = 3\n";
        let s = Scenario::parse(&format!(
            "{base}link = {{ delay_ms = 50, jitter_ms = 10, reset_per_min = 2 }}\ncrash = 2\n\
             [[group]]\nrole = \"echo\"\ncount = 97\n"
        ))
        .unwrap();
        let m = s.members();
        assert_eq!(m.len(), 100);
        assert_eq!(m[0].link.delay_ms, 50);
        assert_eq!(m[0].link.reset_per_min, 2.0);
        assert_eq!(m[2].crash, Some(2));
        assert!(m[3].link.is_perfect() && m[3].crash.is_none());
        for (extra, why) in [
            ("link = { delay_ms = 5, loss = 1 }", "loss"),
            ("link = { delay_ms = 5, jitter_ms = 9 }", "link.jitter_ms"),
            ("link = { delay_ms = -5 }", "delay_ms"),
            ("link = { bandwidth_mbit = -1.0 }", "link.bandwidth_mbit"),
            ("link = { stall_per_min = 1.0 }", "link.stall_ms"),
            ("crash = 5", "crash = 5"),
            ("crash = 2\nleave = 3", "leave"),
        ] {
            let e = Scenario::parse(&format!("{base}{extra}\n")).unwrap_err();
            assert!(e.contains(why), "{extra}: {e}");
            assert!(!e.contains('\n'), "one line: {e}");
        }
        let loopback = base.replace("netns = true\n", "");
        let e = Scenario::parse(&format!("{loopback}link = {{ delay_ms = 5 }}\n")).unwrap_err();
        assert!(e.contains("`link` needs separate hosts"), "{e}");
        let e = Scenario::parse(&loopback.replace("count = 3", "count = 65")).unwrap_err();
        assert!(e.contains("250 with netns"), "{e}");
    }

    #[test]
    fn the_network_examples_parse() {
        let big = Scenario::parse(include_str!("../../examples/net100.toml")).unwrap();
        let small = Scenario::parse(include_str!("../../examples/net24.toml")).unwrap();
        assert_eq!((big.nodes(), small.nodes()), (100, 24));
        assert!(big.netns && small.netns);
        assert_eq!(big.members()[99].crash, Some(5));
        assert_eq!(small.members()[0].link, big.members()[0].link);
    }

    #[test]
    fn resizing_changes_the_learner_group_only() {
        let mut s = Scenario::parse(DEFAULT).unwrap();
        s.resize(12).unwrap();
        assert_eq!(s.nodes(), 12);
        assert_eq!(s.groups[0].count, 5);
        assert!(s.resize(7).is_err(), "the other groups hold 7");
    }
}
