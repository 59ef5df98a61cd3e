//! The master's settings: compiled-in defaults, then the TOML file, then `BRINE_MASTER_*`
//! environment variables. Unknown keys and invalid values are errors, found before anything
//! is bound.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Every master setting. `config/master.toml` lists each with its default and a comment.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MasterConfig {
    /// Address the PUB and REP sockets bind to.
    pub interface: IpAddr,
    /// PUB: job publications and heartbeat ticks. 0 picks a free port (tests).
    pub publish_port: u16,
    /// REP: minion requests. 0 picks a free port (tests).
    pub ret_port: u16,
    /// The local control socket for the CLI (a unix socket, never TCP).
    pub socket: PathBuf,
    /// Where the job store lives.
    pub state_dir: PathBuf,
    /// How long finished jobs are kept before they are pruned.
    #[serde(with = "humantime_serde")]
    pub keep_jobs: Duration,
    /// How often the master publishes a heartbeat tick.
    #[serde(with = "humantime_serde")]
    pub tick_interval: Duration,
    /// How often minions send a keepalive (told to them at hello).
    #[serde(with = "humantime_serde")]
    pub keepalive_interval: Duration,
    /// A minion that missed this many keepalives in a row is not connected.
    pub missed_keepalives: u32,
    /// How long a job may run on a minion before the minion kills it.
    #[serde(with = "humantime_serde")]
    pub job_timeout: Duration,
    /// Grace period for in-flight work at shutdown.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// Log filter (tracing's EnvFilter syntax); `RUST_LOG` overrides it.
    pub log_level: String,
}

impl Default for MasterConfig {
    fn default() -> Self {
        Self {
            interface: IpAddr::from([0, 0, 0, 0]),
            publish_port: 4505,
            ret_port: 4506,
            socket: PathBuf::from("/run/brine/master.sock"),
            state_dir: PathBuf::from("/var/lib/brine/master"),
            keep_jobs: Duration::from_secs(24 * 3600),
            tick_interval: Duration::from_secs(5),
            keepalive_interval: Duration::from_secs(10),
            missed_keepalives: 3,
            job_timeout: Duration::from_secs(3600),
            shutdown_grace: Duration::from_secs(5),
            log_level: "info".into(),
        }
    }
}

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading configuration: {0}")]
    Load(#[from] config::ConfigError),
    #[error("invalid setting {key}: {reason}")]
    Invalid { key: &'static str, reason: String },
}

impl MasterConfig {
    /// Loads defaults, then the file at `path` (when given), then `BRINE_MASTER_*` variables.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let mut builder = config::Config::builder();
        if let Some(path) = path {
            builder = builder.add_source(
                config::File::from(path)
                    .format(config::FileFormat::Toml)
                    .required(true),
            );
        }
        let config: MasterConfig = builder
            .add_source(
                config::Environment::with_prefix("BRINE_MASTER")
                    .prefix_separator("_")
                    .try_parsing(true),
            )
            .build()?
            .try_deserialize()?;
        config.validate()?;
        Ok(config)
    }

    /// Checks values that parse but cannot work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, reason: &str| {
            Err(ConfigError::Invalid {
                key,
                reason: reason.into(),
            })
        };
        if self.tick_interval < Duration::from_millis(10) {
            return invalid("tick_interval", "must be at least 10ms");
        }
        if self.keepalive_interval < Duration::from_millis(10) {
            return invalid("keepalive_interval", "must be at least 10ms");
        }
        if self.missed_keepalives == 0 {
            return invalid("missed_keepalives", "must be at least 1");
        }
        if self.job_timeout.is_zero() {
            return invalid("job_timeout", "must be more than 0");
        }
        if self.keep_jobs < Duration::from_secs(60) {
            return invalid("keep_jobs", "must be at least 1m");
        }
        if self.socket.as_os_str().is_empty() {
            return invalid("socket", "must be a path");
        }
        if self.state_dir.as_os_str().is_empty() {
            return invalid("state_dir", "must be a path");
        }
        if self.publish_port != 0 && self.publish_port == self.ret_port {
            return invalid("ret_port", "must differ from publish_port");
        }
        if !brine_daemon::is_valid_log_filter(&self.log_level) {
            return invalid("log_level", "is not a valid log filter");
        }
        Ok(())
    }

    /// How long after its last message a minion still counts as connected.
    pub fn liveness_window(&self) -> Duration {
        self.keepalive_interval * self.missed_keepalives + self.keepalive_interval / 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(toml: &str) -> Result<MasterConfig, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.toml");
        std::fs::write(&path, toml).unwrap();
        MasterConfig::load(Some(&path))
    }

    #[test]
    fn file_overrides_defaults() {
        let c = load_str("publish_port = 5505\nkeep_jobs = \"2h\"\n").unwrap();
        assert_eq!(c.publish_port, 5505);
        assert_eq!(c.ret_port, 4506);
        assert_eq!(c.keep_jobs, Duration::from_secs(7200));
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        let err = load_str("publsh_port = 1\n").unwrap_err().to_string();
        assert!(err.contains("publsh_port"), "{err}");
        assert!(load_str("publish_port = \"many\"\n").is_err());
        assert!(load_str("tick_interval = \"0s\"\n").is_err());
        assert!(load_str("keep_jobs = \"soon\"\n").is_err());
    }
}
