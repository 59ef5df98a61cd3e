//! brine's settings files, read one way: compiled-in defaults, then the TOML file (when one is
//! given), then environment variables with the program's prefix (`BRINE_MASTER_*`,
//! `BRINE_MINION_*`). Unknown keys and values of the wrong type are errors ([`load`]); each
//! settings type then checks what parses but cannot work (`validate`).
//!
//! The minion's settings live here ([`MinionConfig`]) rather than in the minion crate, so that
//! `brine-call`, which runs functions as the configured minion, reads them without the
//! daemon's sockets and journal.

pub mod minion;

use std::path::Path;

use serde::de::DeserializeOwned;

pub use minion::MinionConfig;

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading configuration: {0}")]
    Load(#[from] config::ConfigError),
    #[error("invalid setting {key}: {reason}")]
    Invalid { key: &'static str, reason: String },
}

/// The settings of type `T`: its defaults (`#[serde(default)]`), then the file at `path`
/// (required when given), then `<env_prefix>_*` variables (`BRINE_MINION_RET_PORT=4507`).
pub fn load<T: DeserializeOwned>(path: Option<&Path>, env_prefix: &str) -> Result<T, ConfigError> {
    Ok(builder(path, env_prefix).build()?.try_deserialize()?)
}

/// One setting as the file and the environment give it, without defaults; None when neither
/// sets it (or the sources cannot be read: [`load`] reports that).
pub fn raw_setting(path: Option<&Path>, env_prefix: &str, key: &str) -> Option<String> {
    builder(path, env_prefix).build().ok()?.get_string(key).ok()
}

fn builder(
    path: Option<&Path>,
    env_prefix: &str,
) -> config::ConfigBuilder<config::builder::DefaultState> {
    let mut builder = config::Config::builder();
    if let Some(path) = path {
        builder = builder.add_source(
            config::File::from(path)
                .format(config::FileFormat::Toml)
                .required(true),
        );
    }
    builder.add_source(
        config::Environment::with_prefix(env_prefix)
            .prefix_separator("_")
            .try_parsing(true),
    )
}

/// Whether `filter` is a valid log filter (tracing's `EnvFilter` syntax), as `log_level` takes.
pub fn is_valid_log_filter(filter: &str) -> bool {
    tracing_subscriber::EnvFilter::try_new(filter).is_ok()
}
