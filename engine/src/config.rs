//! sluice's TOML config file.
//!
//! One file configures everything; each part has its own section, and a
//! missing section (or a missing file) means that part's defaults. Today
//! the file has one section, `[gates]` (documented in
//! `sluice_ingest::gates::config` and in `deploy/sluice.example.toml`).

use std::path::{Path, PathBuf};

use serde::Deserialize;
use sluice_ingest::gates::GatesConfig;

/// The whole config.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Muting, sampling and rate limits.
    pub gates: GatesConfig,
}

/// A config file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid, or has a key sluice does not know.
    #[error("config {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, and where (line and column).
        message: String,
    },
}

impl Config {
    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text).map_err(|message| ConfigError::Parse {
            path: path.to_path_buf(),
            message,
        })
    }

    /// Parses config text; the error says what is wrong and where.
    pub fn parse(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string().trim_end().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_config_in_deploy_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/sluice.example.toml");
        let config = Config::load(&path).expect("deploy/sluice.example.toml is valid");
        assert!(!config.gates.open_events);
        assert!(sluice_ingest::gates::Gates::new(&config.gates).is_ok());
    }

    #[test]
    fn unknown_sections_and_keys_say_where() {
        let err = Config::parse("[gates]\nopen_events = true\n[gatez]\n").unwrap_err();
        assert!(err.contains("gatez") && err.contains("line 3"), "{err}");
    }

    #[test]
    fn an_empty_config_is_the_defaults() {
        assert_eq!(Config::parse("").unwrap(), Config::default());
    }
}
