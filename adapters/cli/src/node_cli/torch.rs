//! The libtorch side of `node run` (the learner of `--train`, the encoder of `--model torch`):
//! present with the feature `torch`, a one-line reason without it.

#[cfg(feature = "torch")]
pub use with_torch::{learner, served};
#[cfg(not(feature = "torch"))]
pub use without_torch::{learner, served};

/// The learner and the served encoder on libtorch.
#[cfg(feature = "torch")]
mod with_torch {
    use std::sync::Arc;

    use deepnode_node::Model;
    use deepnode_torch::data::Domain;
    use deepnode_torch::{EncoderConfig, Learner, LearnerConfig, LocalConfig, TorchModel};

    use crate::exit::Failure;
    use crate::node_cli::Served;

    fn encoder(dim: u32) -> EncoderConfig {
        EncoderConfig {
            dim: i64::from(dim),
            ..EncoderConfig::default()
        }
    }

    /// The served TEXT encoder.
    pub fn served(seed: u64, dim: u32) -> Result<Arc<dyn Model>, Failure> {
        let seed = i64::try_from(seed).map_err(|_| Failure::input("--seed too large for torch"))?;
        let m = TorchModel::new(seed, encoder(dim), deepnode_torch::ServeConfig::default())
            .map_err(Failure::failed)?;
        Ok(Arc::new(m))
    }

    /// The learner of `--train DOMAIN --domains ...` and the model it serves (its trained
    /// encoder).
    pub fn learner(
        domain: &str,
        network: &[String],
        slots: usize,
        k: usize,
        dim: u32,
        seed: u64,
    ) -> Result<Served, Failure> {
        let input = |e| Failure::input(format!("--train {domain}: {e}"));
        let own = Domain::parse(domain).map_err(input)?;
        let network = network
            .iter()
            .map(|d| Domain::parse(d))
            .collect::<Result<Vec<_>, _>>()
            .map_err(input)?;
        let defaults = LearnerConfig::default();
        let config = LearnerConfig {
            local: LocalConfig {
                encoder: encoder(dim),
                student: EncoderConfig {
                    hidden: defaults.local.student.hidden,
                    ..encoder(dim)
                },
                peers: slots,
                k: k.clamp(1, slots.max(1)),
                seed,
                ..defaults.local
            },
            ..defaults
        };
        let mut learner = Learner::specialist(config, own, &network).map_err(input)?;
        let seed = i64::try_from(seed).map_err(|_| Failure::input("--seed too large for torch"))?;
        let served = Arc::new(
            TorchModel::new(seed, encoder(dim), deepnode_torch::ServeConfig::default())
                .map_err(Failure::failed)?,
        );
        learner
            .serve_through(Arc::clone(&served))
            .map_err(Failure::failed)?;
        Ok((served, Some(Box::new(learner))))
    }
}

/// Without the `torch` feature: a one-line reason instead of a model.
#[cfg(not(feature = "torch"))]
mod without_torch {
    use std::sync::Arc;

    use deepnode_node::Model;

    use crate::exit::Failure;
    use crate::node_cli::Served;

    const WHY: &str = "this deepnode was built without the `torch` feature (libtorch): \
        run ./scripts/devnet.sh, or cargo build --release -p deepnode-cli --features torch";

    /// Refused: no libtorch.
    pub fn served(_: u64, _: u32) -> Result<Arc<dyn Model>, Failure> {
        Err(Failure::input(WHY))
    }

    /// Refused: no libtorch.
    pub fn learner(
        _: &str,
        _: &[String],
        _: usize,
        _: usize,
        _: u32,
        _: u64,
    ) -> Result<Served, Failure> {
        Err(Failure::input(WHY))
    }
}
