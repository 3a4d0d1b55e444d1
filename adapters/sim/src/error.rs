//! The simulator's one error type.

use std::path::PathBuf;

/// Why a scenario could not be read, run or written out. Each variant's message is one line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The scenario is not valid TOML or has an unknown key or a value of the wrong type.
    #[error("{file}:{line}: `{key}`: {message}")]
    Toml {
        /// The scenario file.
        file: String,
        /// 1-based line of the offending key.
        line: usize,
        /// The key (with its table) the error is at.
        key: String,
        /// The parser's message.
        message: String,
    },
    /// A value parsed but is out of range or inconsistent.
    #[error("{file}: `{key}`: {reason}")]
    Invalid {
        /// The scenario file.
        file: String,
        /// The key, e.g. `groups[1].count`.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The consensus crate refused a state (never expected for a validated scenario).
    #[error("epoch {epoch}: {source}")]
    Epoch {
        /// The 0-based epoch.
        epoch: u32,
        /// The consensus crate's error.
        source: deepnode_consensus::Error,
    },
    /// A CSV file could not be written.
    #[error("{path}: {source}")]
    Csv {
        /// The file.
        path: PathBuf,
        /// The CSV writer's error.
        source: csv::Error,
    },
    /// A JSON file could not be written.
    #[error("{path}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The serializer's error.
        source: serde_json::Error,
    },
    /// A figure could not be drawn or saved.
    #[error(transparent)]
    Plot(#[from] deepnode_plot::PlotError),
}

impl SimError {
    pub(crate) fn invalid(file: &str, key: impl Into<String>, reason: impl Into<String>) -> Self {
        SimError::Invalid {
            file: file.to_owned(),
            key: key.into(),
            reason: reason.into(),
        }
    }
}
