//! The genesis file (JSON). Every field is optional; `params` is read exactly as the
//! `deepnode epoch` contract reads it (through `deepnode_contract::ParamsDoc`), except that
//! absent fields take the ledger's defaults ([`crate::default_params`]: the activity cutoff
//! on, at 10 epochs of `tempo` blocks).
//!
//! ```json
//! {"tempo": 100, "max_nodes": 4096, "immunity_period": 100, "weights_rate_limit": 10,
//!  "max_weights_len": 4096, "max_block_extrinsics": 10000,
//!  "controller": {"step": 1, "cap": 64, "floor": 1, "relax_after": 16},
//!  "params": {"emission": 1000000000, "min_allowed_weights": 1},
//!  "endowments": [["0x<64 hex digits>", 1000000000000]]}
//! ```

use deepnode_consensus::{ControllerPolicy, Fx};
use deepnode_ledger_client::AccountId;
use serde::Deserialize;

use crate::error::GenesisError;
use crate::state::{ChainConfig, Genesis, LedgerState, default_params};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ControllerJson {
    step: u32,
    cap: u32,
    floor: u32,
    relax_after: u32,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct GenesisJson {
    tempo: Option<u64>,
    max_nodes: Option<u32>,
    immunity_period: Option<u64>,
    weights_rate_limit: Option<u64>,
    max_weights_len: Option<u32>,
    max_block_extrinsics: Option<u32>,
    controller: Option<ControllerJson>,
    params: Option<deepnode_contract::ParamsDoc>,
    #[serde(default)]
    endowments: Vec<(String, u64)>,
}

/// Reads a genesis file's text and checks it as [`LedgerState::genesis`] does (duplicate
/// endowments, total issuance, the controller's bounds), so a refused genesis is refused
/// before any file is created.
pub fn parse_genesis(text: &str) -> Result<Genesis, GenesisError> {
    // serde reads a struct from a JSON array too (fields by position): insist on objects.
    let v: serde_json::Value = serde_json::from_str(text).map_err(GenesisError::Json)?;
    if !v.is_object() {
        return Err(GenesisError::NotAnObject("the genesis"));
    }
    for section in ["controller", "params"] {
        if v.get(section).is_some_and(|s| !s.is_object()) {
            return Err(GenesisError::NotAnObject(section));
        }
    }
    let j = GenesisJson::deserialize(v).map_err(GenesisError::Json)?;
    let d = ChainConfig::default();
    let tempo = j.tempo.unwrap_or(d.tempo);
    let params = j
        .params
        .unwrap_or_default()
        .to_params_over::<Fx>(default_params(tempo))
        .map_err(GenesisError::Params)?;
    let endowments = j
        .endowments
        .iter()
        .map(|(who, amount)| {
            who.parse::<AccountId>()
                .map(|a| (a, *amount))
                .map_err(|error| GenesisError::Endowment {
                    account: who.clone(),
                    error,
                })
        })
        .collect::<Result<_, _>>()?;
    let genesis = Genesis {
        config: ChainConfig {
            tempo,
            max_nodes: j.max_nodes.unwrap_or(d.max_nodes),
            immunity_period: j.immunity_period.unwrap_or(d.immunity_period),
            weights_rate_limit: j.weights_rate_limit.unwrap_or(d.weights_rate_limit),
            max_weights_len: j.max_weights_len.unwrap_or(d.max_weights_len),
            max_block_extrinsics: j.max_block_extrinsics.unwrap_or(d.max_block_extrinsics),
            controller: j.controller.map_or(d.controller, |c| ControllerPolicy {
                step: c.step,
                cap: c.cap,
                floor: c.floor,
                relax_after: c.relax_after,
            }),
        },
        params,
        endowments,
    };
    check_limits(&genesis.config)?;
    LedgerState::genesis(&genesis)?;
    Ok(genesis)
}

/// Refuses a configuration that makes a new chain unusable: a zero `max_nodes`,
/// `max_block_extrinsics` or `max_weights_len`.
pub(crate) fn check_limits(config: &ChainConfig) -> Result<(), GenesisError> {
    for (name, value) in [
        ("max_nodes", config.max_nodes),
        ("max_block_extrinsics", config.max_block_extrinsics),
        ("max_weights_len", config.max_weights_len),
    ] {
        if value == 0 {
            return Err(GenesisError::ZeroLimit(name));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_default_and_params_follow_the_contract() {
        let g = parse_genesis(
            r#"{"tempo": 5, "params": {"emission": 77, "kappa": 0.25},
                "endowments": [["0x0101010101010101010101010101010101010101010101010101010101010101", 9]]}"#,
        )
        .expect("valid");
        assert_eq!(g.config.tempo, 5);
        assert_eq!(g.config.max_nodes, ChainConfig::default().max_nodes);
        assert_eq!(
            (g.params.emission, g.params.kappa),
            (77, Fx::from_ratio(1, 4))
        );
        assert_eq!(g.endowments, vec![(AccountId([1; 32]), 9)]);
        // The activity cutoff is on by default, at 10 epochs of this chain's tempo, with the
        // bonds of absent nodes withheld; a genesis may set either or turn the cutoff off.
        assert_eq!(g.params.activity_cutoff, 50);
        assert_eq!(g.params.departed, deepnode_consensus::Departed::Withhold);
        assert_eq!(Genesis::default().params.activity_cutoff, 1000);
        let off = parse_genesis(r#"{"params": {"activity_cutoff": 0}}"#).expect("valid");
        assert_eq!(off.params.activity_cutoff, 0);
        let decay = parse_genesis(r#"{"params": {"departed": {"rule": "decay", "rate": 0.5}}}"#)
            .expect("valid");
        assert_eq!(
            decay.params.departed,
            deepnode_consensus::Departed::Decay {
                rate: Fx::from_ratio(1, 2)
            }
        );
        assert!(
            parse_genesis(r#"{"params": {"departed": {"rule": "decay", "rate": 0}}}"#).is_err()
        );
        assert!(matches!(
            parse_genesis(r#"{"tempo": 5, "typo": 1}"#),
            Err(GenesisError::Json(_))
        ));
        assert!(matches!(
            parse_genesis(r#"{"endowments": [["0x12", 1]]}"#),
            Err(GenesisError::Endowment { .. })
        ));
        // `params` is the contract's own ParamsDoc: a bad field is refused where it is read.
        let e = parse_genesis(r#"{"params": {"kappa": "x"}}"#).unwrap_err();
        assert!(matches!(e, GenesisError::Json(_)), "{e}");
        assert!(parse_genesis(r#"{"params": {"kapa": 0.5}}"#).is_err());
    }

    /// Duplicate endowments, endowments whose sum overflows, a controller floor above its cap
    /// and zero limits are refused.
    #[test]
    fn thin_genesis_checks_refuse_bad_files() {
        let a = format!("0x{}", "01".repeat(32));
        let b = format!("0x{}", "02".repeat(32));
        let e = parse_genesis(&format!(r#"{{"endowments": [["{a}", 5], ["{a}", 6]]}}"#));
        assert!(
            matches!(e, Err(GenesisError::DuplicateEndowment(_))),
            "{e:?}"
        );
        let max = u64::MAX;
        let e = parse_genesis(&format!(
            r#"{{"endowments": [["{a}", {max}], ["{b}", 1]]}}"#
        ));
        assert!(matches!(e, Err(GenesisError::IssuanceOverflow(_))), "{e:?}");
        let e =
            parse_genesis(r#"{"controller": {"step": 1, "cap": 4, "floor": 5, "relax_after": 1}}"#);
        assert!(
            matches!(e, Err(GenesisError::FloorAboveCap { floor: 5, cap: 4 })),
            "{e:?}"
        );
        for field in ["max_nodes", "max_block_extrinsics", "max_weights_len"] {
            let e = parse_genesis(&format!(r#"{{"{field}": 0}}"#));
            assert!(
                matches!(e, Err(GenesisError::ZeroLimit(f)) if f == field),
                "{field}: {e:?}"
            );
            // Nor can a chain be created with it.
            let mut g = Genesis::default();
            match field {
                "max_nodes" => g.config.max_nodes = 0,
                "max_block_extrinsics" => g.config.max_block_extrinsics = 0,
                _ => g.config.max_weights_len = 0,
            }
            let dir = tempfile::tempdir().expect("tempdir");
            let e = crate::Chain::open(dir.path(), Some(&g)).map(|_| ());
            assert!(
                matches!(
                    e,
                    Err(crate::LedgerError::Genesis(GenesisError::ZeroLimit(_)))
                ),
                "{field}: {e:?}"
            );
            assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 0);
        }
        let e = parse_genesis("[5, 4096]");
        assert!(matches!(e, Err(GenesisError::NotAnObject(_))), "{e:?}");
        let e = parse_genesis(r#"{"controller": [1, 64, 1, 16]}"#);
        assert!(matches!(e, Err(GenesisError::NotAnObject(_))), "{e:?}");
        for e in [
            GenesisError::IssuanceOverflow(1),
            GenesisError::NotAnObject("x"),
        ] {
            assert!(!e.to_string().contains('\n'));
        }
    }

    /// A genesis whose `params.bonds` names Yuma 3 (liquid alpha on) runs its epochs, through
    /// signed extrinsics and produced blocks, with the consensus crate's outputs on the same
    /// state: every node's stake, stats and bonds. The paper's mechanism on that state gives
    /// other bonds, so the chain ran the mechanism its genesis chose.
    #[test]
    fn a_yuma3_genesis_runs_the_consensus_crates_yuma3_epoch() {
        use crate::{Call, Chain, Extrinsic, Wallet};
        use deepnode_consensus::{BondMode, Uid, epoch};

        let wallets: Vec<Wallet> = (1..=4u8).map(|b| Wallet::from_seed([b; 32])).collect();
        let endowments: Vec<String> = wallets
            .iter()
            .map(|w| format!(r#"["{}", 1000000]"#, w.account()))
            .collect();
        let g = parse_genesis(&format!(
            r#"{{"tempo": 3, "weights_rate_limit": 1, "immunity_period": 1,
                "params": {{"kappa": 0.5, "emission": 1000000,
                  "bonds": {{"mode": "yuma3", "bonds_moving_average": 0.9, "bonds_penalty": 0.5,
                    "liquid_alpha": {{"alpha_low": 0.1, "alpha_high": 0.3, "steepness": 10}}}}}},
                "endowments": [{}]}}"#,
            endowments.join(", ")
        ))
        .expect("valid");
        assert!(
            matches!(
                g.params.bonds,
                BondMode::Yuma3 {
                    liquid_alpha: Some(_),
                    ..
                }
            ),
            "{:?}",
            g.params.bonds
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let mut chain = Chain::open(dir.path(), Some(&g)).expect("open");
        let id = chain.genesis_hash();
        let mut nonce = [0u64; 4];
        let mut send = |chain: &mut Chain, k: usize, call: Call| {
            let ext = Extrinsic::sign(wallets[k].key(), &id, nonce[k], call);
            nonce[k] += 1;
            chain.submit_verified(ext).expect("accepted");
        };
        for (k, stake) in [500_000, 300_000, 150_000, 50_000].into_iter().enumerate() {
            send(&mut chain, k, Call::Register);
            let uid = Uid::try_from(k).expect("four nodes");
            send(&mut chain, k, Call::AddStake { uid, amount: stake });
        }
        let mut epochs = 0;
        for block in 1..=12u64 {
            let head = chain.head().number;
            assert_eq!(head + 1, block);
            if block % 3 == 0 {
                // An epoch block with no extrinsic: the epoch's input is the head's state at
                // the next block number.
                let mut input = chain.state().to_consensus_state();
                input.block = block;
                let expected = epoch(&input).expect("the consensus crate runs it");
                let mut paper = input.clone();
                paper.params.bonds = crate::Genesis::default().params.bonds;
                let other = epoch(&paper).expect("the paper's mechanism runs it");
                chain.produce_block(block).expect("block");
                let s = chain.state();
                assert_eq!(s.epochs, epochs + 1, "block {block} ran an epoch");
                epochs = s.epochs;
                assert_eq!(s.bonds, expected.bonds, "block {block}");
                assert_ne!(s.bonds, other.bonds, "block {block}: Yuma 3's bonds");
                for (i, n) in s.neurons.iter().enumerate() {
                    assert_eq!(n.stake, expected.stake[i], "block {block}, node {i}");
                    assert_eq!(n.last, expected.stats(i).expect("node i"), "node {i}");
                }
            } else {
                // Validators move their rows every block, so bonds have something to follow.
                let shift = u16::try_from(block).expect("small");
                for k in 0..4u16 {
                    let mut weights = vec![
                        (u32::from((shift + 1 + k) % 4), 40_000),
                        (u32::from((shift + 2 + k) % 4), 20_000 + 1_000 * shift),
                    ];
                    weights.sort_unstable();
                    let uid = Uid::from(k);
                    let k = usize::from(k);
                    send(&mut chain, k, Call::SetWeights { uid, weights });
                }
                chain.produce_block(block).expect("block");
            }
        }
        assert_eq!(epochs, 4);
        drop(chain);
        let replay = crate::verify(dir.path()).expect("the chain replays");
        assert_eq!(replay.epochs, 4);
    }

    /// A bad mechanism is refused in one line that names it.
    #[test]
    fn a_bad_mechanism_is_refused_in_one_line() {
        for (bonds, needle) in [
            (r#"{"mode": "yuma4"}"#, "yuma4"),
            (r#"{"mode": "yuma3"}"#, "bonds_moving_average"),
            (
                r#"{"mode": "yuma", "bonds_moving_average": 0.9, "bonds_penalty": 0,
                    "liquid_alpha": {"alpha_low": 0.1, "alpha_high": 0.3, "steepness": 10}}"#,
                "liquid_alpha",
            ),
            (
                r#"{"mode": "yuma3", "bonds_moving_average": 1.5, "bonds_penalty": 0}"#,
                "bonds_moving_average",
            ),
            (
                r#"{"mode": "yuma3", "bonds_moving_average": 0.9, "bonds_penalty": 0,
                    "liquid_alpha": {"alpha_low": 0.5, "alpha_high": 0.3, "steepness": 10}}"#,
                "alpha_high",
            ),
        ] {
            let e =
                parse_genesis(&format!(r#"{{"params": {{"bonds": {bonds}}}}}"#)).expect_err(bonds);
            let line = e.to_string();
            assert!(line.contains(needle), "{bonds}: {line}");
            assert!(!line.contains('\n'), "one line: {line}");
        }
    }

    #[test]
    fn a_refused_genesis_leaves_no_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut g = Genesis::default();
        g.config.controller.floor = g.config.controller.cap + 1;
        let data = dir.path().join("chain");
        assert!(crate::Chain::open(&data, Some(&g)).is_err());
        assert!(
            !data.join(crate::DB_FILE).exists(),
            "no database left behind"
        );
    }
}
