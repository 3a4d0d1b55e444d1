//! Training data with no download at run time: the text of Debian's `fortunes` package, else
//! the licenses every Debian system has; and generated float features and images.

use std::path::Path;

use tch::{Kind, Tensor};

use crate::TorchError;

/// Where the fortunes live (`apt-get install fortunes`); entries are separated by `%` lines.
pub const FORTUNES: &str = "/usr/share/games/fortunes";
/// The fallback text, present on every Debian system.
pub const LICENSES: &str = "/usr/share/common-licenses";

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
        windows(&self.valid, batch, seq, 0x5eed)
    }
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
    let mut state = seed;
    let mut out = Vec::with_capacity(batch * span);
    for _ in 0..batch {
        let start = (splitmix(&mut state) % room as u64) as usize;
        out.extend((0..span).map(|i| i64::from(bytes.get(start + i).copied().unwrap_or(b' '))));
    }
    Tensor::from_slice(&out).view([batch as i64, span as i64])
}

/// SplitMix64: the crate's seeded stream (positions, generated data).
pub(crate) fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
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
    let mut state = seed;
    let values: Vec<f32> = (0..n)
        .map(|_| (splitmix(&mut state) >> 40) as f32 / (1u64 << 23) as f32 - 1.0)
        .collect();
    let shape: Vec<i64> = dims.iter().map(|&d| d as i64).collect();
    Tensor::from_slice(&values)
        .view(shape.as_slice())
        .to_kind(Kind::Float)
}
