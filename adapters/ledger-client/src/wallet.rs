//! Key files: one ed25519 secret per file, created with mode 0600 and never printed.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};

use crate::id::AccountId;

/// The largest key file read: a key file is about 150 bytes; a larger file is refused
/// unread.
pub const MAX_WALLET_BYTES: u64 = 4096;

/// Why a key file cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WalletError {
    /// The operating system gave no randomness for a new key.
    #[error("no system randomness: {0}")]
    NoRandomness(getrandom::Error),
    /// The file cannot be created, read or written (it exists, is missing, ...).
    #[error("{}: {error}", .path.display())]
    Io {
        /// The key file.
        path: PathBuf,
        /// The reason.
        error: std::io::Error,
    },
    /// The file is not a key file's JSON.
    #[error("{}: {error}", .path.display())]
    Json {
        /// The key file.
        path: PathBuf,
        /// The reason.
        error: serde_json::Error,
    },
    /// Others may read or write the file (`mode & 0o077 != 0`).
    #[error("{}: permissions {mode:o} are too open; use 0600", .path.display())]
    TooOpen {
        /// The key file.
        path: PathBuf,
        /// Its permission bits (`mode & 0o777`).
        mode: u32,
    },
    /// The secret is not 32 bytes of hex.
    #[error("{}: secret is not 32 bytes of hex", .path.display())]
    BadSecret {
        /// The key file.
        path: PathBuf,
    },
    /// The path is not a regular file (a FIFO, a directory, a device): reading it could block
    /// forever or never end.
    #[error("{}: not a regular file", .path.display())]
    NotAFile {
        /// The path given.
        path: PathBuf,
    },
    /// The file is larger than any key file ([`MAX_WALLET_BYTES`]); it is not
    /// read.
    #[error("{}: {len} bytes, larger than a key file ({max} at most)", .path.display())]
    TooLarge {
        /// The key file.
        path: PathBuf,
        /// Its size.
        len: u64,
        /// The largest accepted.
        max: u64,
    },
    /// The account written in the file is not the secret's public key.
    #[error("{}: account does not match the secret", .path.display())]
    AccountMismatch {
        /// The key file.
        path: PathBuf,
    },
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    account: String,
    secret: String,
}

/// An account's signing key, loaded from or saved to a key file.
pub struct Wallet {
    key: SigningKey,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> WalletError + '_ {
    move |error| WalletError::Io {
        path: path.to_path_buf(),
        error,
    }
}

fn json(path: &Path) -> impl FnOnce(serde_json::Error) -> WalletError + '_ {
    move |error| WalletError::Json {
        path: path.to_path_buf(),
        error,
    }
}

impl Wallet {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> Result<Wallet, WalletError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(WalletError::NoRandomness)?;
        Ok(Wallet::from_seed(seed))
    }

    /// The key with this 32-byte secret seed (tests and benchmarks).
    pub fn from_seed(seed: [u8; 32]) -> Wallet {
        Wallet {
            key: SigningKey::from_bytes(&seed),
        }
    }

    /// The signing key.
    pub fn key(&self) -> &SigningKey {
        &self.key
    }

    /// The account (public key).
    pub fn account(&self) -> AccountId {
        AccountId::from(&self.key)
    }

    /// Writes a new key file readable by its owner only (0600); refuses to overwrite.
    pub fn save(&self, path: &Path) -> Result<(), WalletError> {
        let body = serde_json::to_string_pretty(&KeyFile {
            account: self.account().to_string(),
            secret: hex::encode(self.key.to_bytes()),
        })
        .map_err(json(path))?;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut file = opts.open(path).map_err(io(path))?;
        file.write_all(body.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(io(path))
    }

    /// Reads a key file; refuses one that is not a regular file (a FIFO would block), one
    /// that others can read or write (mode & 0o077 != 0) and one whose account does not match
    /// its secret (compared as an account, so upper- or lower-case hex).
    pub fn load(path: &Path) -> Result<Wallet, WalletError> {
        let meta = std::fs::metadata(path).map_err(io(path))?;
        if !meta.is_file() {
            return Err(WalletError::NotAFile {
                path: path.to_path_buf(),
            });
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode();
            if mode & 0o077 != 0 {
                return Err(WalletError::TooOpen {
                    path: path.to_path_buf(),
                    mode: mode & 0o777,
                });
            }
        }
        if meta.len() > MAX_WALLET_BYTES {
            return Err(WalletError::TooLarge {
                path: path.to_path_buf(),
                len: meta.len(),
                max: MAX_WALLET_BYTES,
            });
        }
        // Read at most one byte past the limit: the file may have grown since.
        let mut text = String::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(MAX_WALLET_BYTES + 1).read_to_string(&mut text))
            .map_err(io(path))?;
        if text.len() as u64 > MAX_WALLET_BYTES {
            return Err(WalletError::TooLarge {
                path: path.to_path_buf(),
                len: text.len() as u64,
                max: MAX_WALLET_BYTES,
            });
        }
        let file: KeyFile = serde_json::from_str(&text).map_err(json(path))?;
        let mut seed = [0u8; 32];
        hex::decode_to_slice(&file.secret, &mut seed).map_err(|_| WalletError::BadSecret {
            path: path.to_path_buf(),
        })?;
        let wallet = Wallet::from_seed(seed);
        if file.account.parse::<AccountId>().ok() != Some(wallet.account()) {
            return Err(WalletError::AccountMismatch {
                path: path.to_path_buf(),
            });
        }
        Ok(wallet)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_is_private_and_loads_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("key.json");
        let w = Wallet::generate().expect("random");
        w.save(&path).expect("save");
        assert!(
            matches!(w.save(&path), Err(WalletError::Io { .. })),
            "never overwrites"
        );
        assert_eq!(Wallet::load(&path).expect("load").account(), w.account());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let meta = std::fs::metadata(&path).expect("meta");
            assert_eq!(meta.permissions().mode() & 0o777, 0o600);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
            assert!(
                matches!(
                    Wallet::load(&path),
                    Err(WalletError::TooOpen { mode: 0o644, .. })
                ),
                "a readable key file is refused"
            );
        }
    }

    /// A key file over `MAX_WALLET_BYTES` is refused unread, even a valid key padded with
    /// whitespace.
    #[test]
    fn oversized_files_are_refused_unread() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("big.key");
        Wallet::from_seed([3; 32]).save(&path).expect("save");
        // A valid key file padded with whitespace past the limit (JSON allows it).
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .expect("open");
        f.write_all(&vec![b' '; MAX_WALLET_BYTES as usize])
            .expect("pad");
        drop(f);
        let e = Wallet::load(&path).map(|_| ());
        assert!(
            matches!(
                e,
                Err(WalletError::TooLarge {
                    max: MAX_WALLET_BYTES,
                    ..
                })
            ),
            "{:?}",
            e.err().map(|e| e.to_string())
        );
    }

    #[test]
    fn fifos_are_refused_and_accounts_compare_case_insensitively() {
        let dir = tempfile::tempdir().expect("tempdir");
        #[cfg(unix)]
        {
            let fifo = dir.path().join("fifo.key");
            let made = std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .expect("mkfifo runs");
            assert!(made.success());
            assert!(matches!(
                Wallet::load(&fifo),
                Err(WalletError::NotAFile { .. })
            ));
            assert!(matches!(
                Wallet::load(dir.path()),
                Err(WalletError::NotAFile { .. })
            ));
        }
        let w = Wallet::from_seed([7; 32]);
        let path = dir.path().join("upper.key");
        w.save(&path).expect("save");
        let text = std::fs::read_to_string(&path).expect("read");
        let lower = w.account().to_string();
        let upper = format!("0x{}", lower[2..].to_uppercase());
        std::fs::write(&path, text.replace(&lower, &upper)).expect("write");
        assert_eq!(
            Wallet::load(&path).expect("upper case").account(),
            w.account()
        );
        let other = Wallet::from_seed([8; 32]).account().to_string();
        std::fs::write(&path, text.replace(&lower, &other)).expect("write");
        assert!(matches!(
            Wallet::load(&path),
            Err(WalletError::AccountMismatch { .. })
        ));
    }
}
