//! The minion's settings: compiled-in defaults, then the TOML file, then `BRINE_MINION_*`
//! environment variables. Unknown keys and invalid values are errors, found before anything
//! connects.

use std::path::{Path, PathBuf};
use std::time::Duration;

use brine_proto::{Fnmatch, Map, MinionId};
use serde::Deserialize;

use crate::ConfigError;

/// Every minion setting. `config/minion.toml` lists each with its default and a comment.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MinionConfig {
    /// This minion's id; empty means the host name.
    pub id: String,
    /// The master's host name or address.
    pub master: String,
    /// The master's PUB port.
    pub publish_port: u16,
    /// The master's REP port.
    pub ret_port: u16,
    /// Where the minion keeps its journal of executed jobs and its return spool.
    pub state_dir: PathBuf,
    /// How long to wait for the master's answer before the request is resent on a new socket.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// How long one attempt to connect to the master may take.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// The longest pause between two attempts to reach the master (backoff cap, jittered).
    #[serde(with = "humantime_serde")]
    pub retry_max: Duration,
    /// At shutdown, how long running jobs get to finish and return.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// The master's key fingerprint (`brine-key master-finger` on the master). The minion
    /// talks to no master whose keys do not have it. Empty: see `trust_first_master`.
    pub master_fingerprint: String,
    /// With no `master_fingerprint`, trust the first master's key seen and pin it in
    /// `state_dir/pki/master.pub` (logged loudly). Off: refuse every master until one is set.
    pub trust_first_master: bool,
    /// Functions this minion refuses to run, as globs on `module.function` (`"cmd.*"`): a job
    /// for one is answered `rejected`, with the reason, and never runs.
    pub disabled_functions: Vec<String>,
    /// Log filter (tracing's EnvFilter syntax); `RUST_LOG` overrides it.
    pub log_level: String,
    /// Grains of this minion's own (`role = "web"`), over the ones it finds out itself: grain
    /// targets see them, `grains.items` shows them.
    pub grains: Map,
}

impl Default for MinionConfig {
    fn default() -> Self {
        Self {
            id: String::new(),
            master: "brine".into(),
            publish_port: 4505,
            ret_port: 4506,
            state_dir: PathBuf::from("/var/lib/brine/minion"),
            request_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            retry_max: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(10),
            master_fingerprint: String::new(),
            trust_first_master: false,
            disabled_functions: Vec::new(),
            log_level: "info".into(),
            grains: Map::new(),
        }
    }
}

impl MinionConfig {
    /// Loads defaults, then the file at `path` (when given), then `BRINE_MINION_*` variables,
    /// and checks them.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let config: MinionConfig = crate::load(path, "BRINE_MINION")?;
        config.validate()?;
        Ok(config)
    }

    /// Checks values that parse but cannot work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, reason: String| Err(ConfigError::Invalid { key, reason });
        if let Err(err) = self.minion_id() {
            return invalid("id", err.to_string());
        }
        if self.master.trim().is_empty() {
            return invalid("master", "must be a host name or address".into());
        }
        if self.publish_port == 0 || self.ret_port == 0 {
            return invalid("publish_port", "ports must be between 1 and 65535".into());
        }
        for (key, value) in [
            ("request_timeout", self.request_timeout),
            ("connect_timeout", self.connect_timeout),
            ("retry_max", self.retry_max),
        ] {
            if value < Duration::from_millis(10) {
                return invalid(key, "must be at least 10ms".into());
            }
        }
        if self.state_dir.as_os_str().is_empty() {
            return invalid("state_dir", "must be a path".into());
        }
        if let Err(err) = self.pinned_fingerprint() {
            return invalid("master_fingerprint", err.to_string());
        }
        if let Err(reason) = self.disabled_function_patterns() {
            return invalid("disabled_functions", reason);
        }
        if !crate::is_valid_log_filter(&self.log_level) {
            return invalid("log_level", "is not a valid log filter".into());
        }
        Ok(())
    }

    /// `disabled_functions`, compiled.
    pub fn disabled_function_patterns(&self) -> Result<Vec<Fnmatch>, String> {
        self.disabled_functions
            .iter()
            .map(|p| Fnmatch::new(p).map_err(|e| format!("{p:?} is not a glob: {e}")))
            .collect()
    }

    /// The configured id, or the host name when none is set.
    pub fn minion_id(&self) -> Result<MinionId, brine_proto::IdError> {
        if self.id.is_empty() {
            let host = hostname::get()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_default();
            MinionId::new(host)
        } else {
            MinionId::new(self.id.clone())
        }
    }

    /// The configured master fingerprint, if any.
    pub fn pinned_fingerprint(
        &self,
    ) -> Result<Option<brine_crypto::Fingerprint>, brine_crypto::ParseFingerprintError> {
        if self.master_fingerprint.trim().is_empty() {
            Ok(None)
        } else {
            self.master_fingerprint.parse().map(Some)
        }
    }

    /// Where the minion's key and a master key trusted on first use live.
    pub fn pki_dir(&self) -> PathBuf {
        self.state_dir.join("pki")
    }

    /// `tcp://master:port`, with brackets around an IPv6 address.
    pub fn endpoint(&self, port: u16) -> String {
        match self.master.parse::<std::net::Ipv6Addr>() {
            Ok(v6) => format!("tcp://[{v6}]:{port}"),
            Err(_) => format!("tcp://{}:{port}", self.master),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(toml: &str) -> Result<MinionConfig, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("minion.toml");
        std::fs::write(&path, toml).unwrap();
        MinionConfig::load(Some(&path))
    }

    #[test]
    fn file_overrides_defaults() {
        let c = load_str("id = \"web1\"\nmaster = \"::1\"\n").unwrap();
        assert_eq!(c.minion_id().unwrap().as_str(), "web1");
        assert_eq!(c.endpoint(4505), "tcp://[::1]:4505");
        assert_eq!(c.ret_port, 4506);
    }

    #[test]
    fn custom_grains_keep_their_types() {
        let c = load_str(
            "[grains]\nrole = \"web\"\nrack = 12\nroles = [\"web\", \"cache\"]\n[grains.dc]\nname = \"ams1\"\n",
        )
        .unwrap();
        let grains = serde_json::Value::Object(c.grains);
        assert_eq!(
            grains,
            serde_json::json!({"role": "web", "rack": 12, "roles": ["web", "cache"], "dc": {"name": "ams1"}})
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        assert!(load_str("mastr = \"x\"\n").is_err());
        assert!(load_str("id = \"../etc\"\n").is_err());
        assert!(load_str("request_timeout = \"0s\"\n").is_err());
        assert!(load_str("publish_port = 70000\n").is_err());
        assert!(load_str("master_fingerprint = \"ab:cd\"\n").is_err());
    }
}
