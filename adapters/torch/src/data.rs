//! Training data with no download at run time: text domains a Debian system has (the
//! `fortunes` package, the common licenses, Python's standard library, C headers), read in a
//! fixed order; and generated float features and images.

use std::path::{Path, PathBuf};

use deepnode_rng::SplitMix64;
use tch::{Kind, Tensor};

use crate::TorchError;

/// Where the fortunes live (`apt-get install fortunes`); entries are separated by `%` lines.
pub const FORTUNES: &str = "/usr/share/games/fortunes";
/// The fallback text, present on every Debian system.
pub const LICENSES: &str = "/usr/share/common-licenses";

/// A kind of text a learner can specialise in, read from the local system at run time.
///
/// Each domain is a fixed, sorted list of files, read up to [`Domain::MAX_BYTES`] bytes
/// (ASCII only, other bytes dropped), so two machines with the same packages read the same
/// text. The domains are far apart: a model of one predicts another poorly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Domain {
    /// Debian's `fortunes` (`/usr/share/games/fortunes`): quips and quotations.
    Fortunes,
    /// `/usr/share/common-licenses`: licence texts, on every Debian system.
    Licenses,
    /// Python's standard library sources (`/usr/lib/python3.*/*.py`).
    Python,
    /// C headers (`/usr/include`, its top level and `linux/`).
    C,
}

impl Domain {
    /// Every domain, in name order.
    pub const ALL: [Domain; 4] = [
        Domain::C,
        Domain::Fortunes,
        Domain::Licenses,
        Domain::Python,
    ];

    /// The most bytes read of one domain.
    pub const MAX_BYTES: usize = 2 << 20;

    /// The domain's name in scenarios, flags and reports.
    pub fn name(self) -> &'static str {
        match self {
            Domain::Fortunes => "fortunes",
            Domain::Licenses => "licenses",
            Domain::Python => "python",
            Domain::C => "c",
        }
    }

    /// The domain named `name`.
    pub fn parse(name: &str) -> Result<Domain, TorchError> {
        Domain::ALL
            .into_iter()
            .find(|d| d.name() == name)
            .ok_or_else(|| {
                let names: Vec<&str> = Domain::ALL.iter().map(|d| d.name()).collect();
                TorchError::Corpus(format!(
                    "unknown domain `{name}` (known: {})",
                    names.join(", ")
                ))
            })
    }

    /// The files of the domain, in the order they are read.
    fn files(self) -> Vec<PathBuf> {
        match self {
            Domain::Fortunes => text_files(Path::new(FORTUNES)),
            Domain::Licenses => text_files(Path::new(LICENSES)),
            Domain::Python => {
                // The newest `python3.N` folder: the standard library's own modules.
                let newest = std::fs::read_dir("/usr/lib")
                    .into_iter()
                    .flatten()
                    .flatten()
                    .filter_map(|e| {
                        let minor = e
                            .file_name()
                            .to_str()?
                            .strip_prefix("python3.")?
                            .parse::<u32>()
                            .ok()?;
                        Some((minor, e.path()))
                    })
                    .max_by_key(|(minor, _)| *minor);
                newest
                    .map(|(_, dir)| with_extension(text_files(&dir), "py"))
                    .unwrap_or_default()
            }
            Domain::C => {
                let mut files = with_extension(text_files(Path::new("/usr/include")), "h");
                files.extend(with_extension(
                    text_files(Path::new("/usr/include/linux")),
                    "h",
                ));
                files
            }
        }
    }

    /// The domain's text (at most [`Domain::MAX_BYTES`]), its last tenth held out. Fails
    /// with a one-line reason when the system has less than 16 KiB of it.
    pub fn corpus(self) -> Result<TextCorpus, TorchError> {
        let mut bytes = Vec::new();
        for path in self.files() {
            if bytes.len() >= Domain::MAX_BYTES {
                break;
            }
            let Ok(text) = std::fs::read(&path) else {
                continue;
            };
            for line in text.split(|&b| b == b'\n') {
                // Fortunes: drop the `%` separator lines, keep the entries.
                if line != b"%" {
                    bytes.extend(line.iter().filter(|b| b.is_ascii()));
                    bytes.push(b'\n');
                }
            }
        }
        bytes.truncate(Domain::MAX_BYTES);
        if bytes.len() < 16 << 10 {
            let hint = match self {
                Domain::Fortunes => " (apt-get install fortunes, or run scripts/libtorch.sh)",
                Domain::Python => " (apt-get install python3)",
                Domain::C => " (apt-get install libc6-dev)",
                Domain::Licenses => "",
            };
            return Err(TorchError::Corpus(format!(
                "domain `{}`: only {} bytes of text on this system{hint}",
                self.name(),
                bytes.len()
            )));
        }
        Ok(TextCorpus::from_bytes(bytes))
    }
}

/// A byte corpus split into a training part and a validation tail.
#[derive(Debug, Clone)]
pub struct TextCorpus {
    train: Vec<u8>,
    valid: Vec<u8>,
}

impl TextCorpus {
    /// Shard `shard` of `shards` of the system text (fortunes, else the licenses): the files
    /// are read in name order and dealt round-robin, so each node trains on its own text.
    /// The last tenth of the shard is held out for validation.
    pub fn system_shard(shard: usize, shards: usize) -> Result<TextCorpus, TorchError> {
        if shards == 0 || shard >= shards {
            return Err(TorchError::Config("shard must be below shards"));
        }
        for dir in [FORTUNES, LICENSES] {
            let files = text_files(Path::new(dir));
            if files.len() < shards {
                continue;
            }
            let mut bytes = Vec::new();
            for path in files.iter().skip(shard).step_by(shards) {
                let text = std::fs::read(path)?;
                // Fortunes: drop the `%` separator lines, keep the entries.
                for line in text.split(|&b| b == b'\n') {
                    if line != b"%" {
                        bytes.extend(line.iter().filter(|b| b.is_ascii()));
                        bytes.push(b'\n');
                    }
                }
            }
            if bytes.len() >= 4096 {
                return Ok(TextCorpus::from_bytes(bytes));
            }
        }
        Err(TorchError::Corpus(format!(
            "no text in {FORTUNES} or {LICENSES} (run scripts/libtorch.sh)"
        )))
    }

    /// A corpus from raw bytes, the last tenth held out.
    pub fn from_bytes(bytes: Vec<u8>) -> TextCorpus {
        let cut = bytes.len() - bytes.len() / 10;
        TextCorpus {
            valid: bytes[cut..].to_vec(),
            train: bytes[..cut].to_vec(),
        }
    }

    /// Bytes of the training part.
    pub fn train_len(&self) -> usize {
        self.train.len()
    }

    /// `batch` windows of `seq + 1` bytes from the training part at positions drawn from
    /// `seed`, as i64 `[batch, seq + 1]` (inputs are `[.., :seq]`, targets `[.., 1..]`).
    pub fn train_batch(&self, batch: usize, seq: usize, seed: u64) -> Tensor {
        windows(&self.train, batch, seq, seed)
    }

    /// Fixed validation windows, the same for every call with the same arguments.
    pub fn valid_batch(&self, batch: usize, seq: usize) -> Tensor {
        self.valid_batch_at(batch, seq, 0)
    }

    /// Validation windows drawn from `seed`: round `r` of an evaluation passes `r` so that
    /// rounds sample the held-out text instead of repeating one batch.
    pub fn valid_batch_at(&self, batch: usize, seq: usize, seed: u64) -> Tensor {
        windows(
            &self.valid,
            batch,
            seq,
            0x5eed ^ seed.wrapping_mul(0x9e37_79b9),
        )
    }
}

fn with_extension(files: Vec<PathBuf>, ext: &str) -> Vec<PathBuf> {
    files
        .into_iter()
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some(ext))
        .collect()
}

/// Every regular file under `dir` except fortune indexes (`*.dat`) and their UTF-8 twins
/// (`*.u8`), sorted by path; empty when the folder is missing.
fn text_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let skip = matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("dat" | "u8")
        );
        if path.is_file() && !skip {
            out.push(path);
        }
    }
    out.sort();
    out
}

fn windows(bytes: &[u8], batch: usize, seq: usize, seed: u64) -> Tensor {
    let span = seq + 1;
    let room = bytes.len().saturating_sub(span).max(1);
    let mut rng = SplitMix64::new(seed);
    let mut out = Vec::with_capacity(batch * span);
    for _ in 0..batch {
        let start = (rng.next_u64() % room as u64) as usize;
        out.extend((0..span).map(|i| i64::from(bytes.get(start + i).copied().unwrap_or(b' '))));
    }
    Tensor::from_slice(&out).view([batch as i64, span as i64])
}

/// Generated float features `[batch, seq, features]`, uniform in `[-1, 1)` from `seed`.
pub fn features(batch: usize, seq: usize, features: usize, seed: u64) -> Tensor {
    uniform(&[batch, seq, features], seed)
}

/// Generated images `[batch, channels, height, width]`, uniform in `[-1, 1)` from `seed`.
pub fn images(batch: usize, channels: usize, height: usize, width: usize, seed: u64) -> Tensor {
    uniform(&[batch, channels, height, width], seed)
}

fn uniform(dims: &[usize], seed: u64) -> Tensor {
    let n: usize = dims.iter().product();
    let mut rng = SplitMix64::new(seed);
    let values: Vec<f32> = (0..n).map(|_| rng.signed_unit_f32()).collect();
    let shape: Vec<i64> = dims.iter().map(|&d| d as i64).collect();
    Tensor::from_slice(&values)
        .view(shape.as_slice())
        .to_kind(Kind::Float)
}
