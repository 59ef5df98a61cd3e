//! The master's settings: compiled-in defaults, then the TOML file, then `BRINE_MASTER_*`
//! environment variables. Unknown keys and invalid values are errors, found before anything
//! is bound.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use brine_config::ConfigError;
use brine_proto::Target;
use serde::Deserialize;

use crate::acl::{Acl, AclRule};

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
    /// The group the control socket belongs to (mode 0660): its members may connect. Empty, or
    /// a group that does not exist (warned about), keeps the master's own group.
    pub socket_group: String,
    /// What users other than root and the master's own user may publish: user name → rules,
    /// each granting function patterns on target patterns (see [`crate::acl`]).
    pub publisher_acl: BTreeMap<String, Vec<AclRule>>,
    /// The audit log (one JSON line per publish and key command); relative to `state_dir`.
    pub audit_log: PathBuf,
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
    /// Accept every new minion key at once. For labs only: anyone who reaches the return port
    /// becomes a minion that receives every job.
    pub auto_accept: bool,
    /// Log filter (tracing's EnvFilter syntax); `RUST_LOG` overrides it.
    pub log_level: String,
    /// Named targets for `brine -N name` and `N@name` in compound targets: a compound
    /// expression, or a list of minion ids.
    pub nodegroups: BTreeMap<String, Nodegroup>,
}

/// One nodegroup's definition, as Salt writes it: an expression or a list of ids.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Nodegroup {
    Expression(String),
    Ids(Vec<String>),
}

impl Default for MasterConfig {
    fn default() -> Self {
        Self {
            interface: IpAddr::from([0, 0, 0, 0]),
            publish_port: 4505,
            ret_port: 4506,
            socket: PathBuf::from("/run/brine/master.sock"),
            socket_group: "brine".into(),
            publisher_acl: BTreeMap::new(),
            audit_log: PathBuf::from("audit.log"),
            state_dir: PathBuf::from("/var/lib/brine/master"),
            keep_jobs: Duration::from_secs(24 * 3600),
            tick_interval: Duration::from_secs(5),
            keepalive_interval: Duration::from_secs(10),
            missed_keepalives: 3,
            job_timeout: Duration::from_secs(3600),
            shutdown_grace: Duration::from_secs(5),
            auto_accept: false,
            log_level: "info".into(),
            nodegroups: BTreeMap::new(),
        }
    }
}

impl MasterConfig {
    /// Loads defaults, then the file at `path` (when given), then `BRINE_MASTER_*` variables,
    /// and checks them.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let config: MasterConfig = brine_config::load(path, "BRINE_MASTER")?;
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
        if self.audit_log.as_os_str().is_empty() {
            return invalid("audit_log", "must be a path");
        }
        if self.socket_group.contains(['\0', '/', ':']) {
            return invalid("socket_group", "is not a group name");
        }
        if let Err(reason) = Acl::compile(&self.publisher_acl) {
            return invalid("publisher_acl", &reason);
        }
        if self.publish_port != 0 && self.publish_port == self.ret_port {
            return invalid("ret_port", "must differ from publish_port");
        }
        if !brine_config::is_valid_log_filter(&self.log_level) {
            return invalid("log_level", "is not a valid log filter");
        }
        let groups = self.nodegroup_expressions();
        for name in groups.keys() {
            if name.is_empty() || name.contains(|c: char| c.is_whitespace() || c == '@') {
                return invalid("nodegroups", &format!("{name:?} is not a nodegroup name"));
            }
            let target = Target::Nodegroup(name.clone());
            if let Err(err) = target.expand_nodegroups(&groups).and_then(|t| t.compile()) {
                return invalid("nodegroups", &format!("{name}: {err}"));
            }
        }
        Ok(())
    }

    /// Every nodegroup as a compound expression (a list of ids as `L@a,b`).
    pub fn nodegroup_expressions(&self) -> BTreeMap<String, String> {
        self.nodegroups
            .iter()
            .map(|(name, group)| {
                let expr = match group {
                    Nodegroup::Expression(expr) => expr.clone(),
                    Nodegroup::Ids(ids) => format!("L@{}", ids.join(",")),
                };
                (name.clone(), expr)
            })
            .collect()
    }

    /// Where the master's keys live: `state_dir/pki` (0700).
    pub fn pki_dir(&self) -> PathBuf {
        self.state_dir.join("pki")
    }

    /// The audit log's path: `audit_log`, under `state_dir` when relative.
    pub fn audit_log_path(&self) -> PathBuf {
        self.state_dir.join(&self.audit_log)
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
    fn nodegroups_are_expressions_or_lists_and_are_checked() {
        let c = load_str(
            "[nodegroups]\nweb = \"web* and G@os:Debian\"\ndbs = [\"db1\", \"db2\"]\nall = \"N@web or N@dbs\"\n",
        )
        .unwrap();
        let groups = c.nodegroup_expressions();
        assert_eq!(groups["dbs"], "L@db1,db2");
        assert_eq!(groups["web"], "web* and G@os:Debian");
        for bad in [
            "[nodegroups]\nweb = \"web* and\"\n",
            "[nodegroups]\nweb = \"N@nope\"\n",
            "[nodegroups]\nweb = \"N@web\"\n",
        ] {
            let err = load_str(bad).unwrap_err().to_string();
            assert!(err.contains("invalid setting nodegroups: web:"), "{err}");
        }
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        let err = load_str("publsh_port = 1\n").unwrap_err().to_string();
        assert!(err.contains("publsh_port"), "{err}");
        assert!(load_str("publish_port = \"many\"\n").is_err());
        assert!(load_str("tick_interval = \"0s\"\n").is_err());
        assert!(load_str("keep_jobs = \"soon\"\n").is_err());
    }

    #[test]
    fn publisher_acl_as_arrays_of_tables_or_inline() {
        let c = load_str(
            r#"
socket_group = "wheel"
audit_log = "/var/log/brine/audit.log"

[[publisher_acl.alice]]
targets = ["web*"]
functions = ["test.*", "cmd.run"]

[[publisher_acl.alice]]
targets = ["db?"]
functions = ["test.ping"]

[publisher_acl]
Bob = [{ targets = ["*"], functions = ["*"] }]
"first.last" = [{ targets = ["x"], functions = ["test.ping"] }]
"#,
        )
        .unwrap();
        assert_eq!(c.socket_group, "wheel");
        assert_eq!(c.audit_log_path(), Path::new("/var/log/brine/audit.log"));
        let users: Vec<&str> = c.publisher_acl.keys().map(String::as_str).collect();
        // User names keep their case and dots.
        assert_eq!(users, ["Bob", "alice", "first.last"]);
        assert_eq!(
            c.publisher_acl["alice"],
            [
                AclRule {
                    targets: vec!["web*".into()],
                    functions: vec!["test.*".into(), "cmd.run".into()],
                },
                AclRule {
                    targets: vec!["db?".into()],
                    functions: vec!["test.ping".into()],
                },
            ]
        );
        let acl = Acl::compile(&c.publisher_acl).unwrap();
        acl.check_function("Bob", "sys.anything").unwrap();
        acl.check_function("first.last", "test.ping").unwrap();
    }

    #[test]
    fn audit_log_is_under_state_dir_by_default() {
        let c = load_str("state_dir = \"/srv/brine\"\n").unwrap();
        assert_eq!(c.audit_log_path(), Path::new("/srv/brine/audit.log"));
        assert_eq!(c.socket_group, "brine");
        assert!(c.publisher_acl.is_empty());
    }

    #[test]
    fn bad_acl_rules_stop_start_up() {
        for bad in [
            "[[publisher_acl.alice]]\ntargets = []\nfunctions = [\"test.*\"]\n",
            "[[publisher_acl.alice]]\ntargets = [\"\"]\nfunctions = [\"test.*\"]\n",
            "[[publisher_acl.alice]]\ntargets = [\"*\"]\n",
            "[[publisher_acl.alice]]\ntargets = [\"*\"]\nfunctions = [\"*\"]\nhosts = []\n",
            "publisher_acl = { alice = \"everything\" }\n",
        ] {
            let err = load_str(bad).expect_err(bad).to_string();
            assert!(err.contains("publisher_acl"), "{bad}: {err}");
        }
        assert!(load_str("socket_group = \"a/b\"\n").is_err());
        assert!(load_str("audit_log = \"\"\n").is_err());
    }
}
