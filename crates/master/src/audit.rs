//! The audit log: one JSON line per publish attempt and per key command.
//!
//! The file is `audit_log` (relative paths are under `state_dir`; the default is
//! `state_dir/audit.log`). It is opened for each line in append mode, created with mode 0600 if
//! missing, never through a symlink; reopening each time lets logrotate move it away.
//!
//! A line has `time` (RFC 3339, UTC), `uid`, `gid`, `pid` (from the kernel), `user`, `request`
//! (`publish` or `keys`), what was asked, the `outcome` and, when refused, the `reason`:
//!
//! - publish: `target`, `function`, `arg`, `kwarg` (secret values redacted), `jid` (when one
//!   was given) and `minions` (how many the target resolved to, when it was resolved);
//! - keys: `action` (`list`, `accept`, `reject`, `delete`), `ids` and `fingerprint`.
//!
//! Outcomes:
//!
//! - `allowed`: authorized; written *before* the job is stored and published (or the key
//!   command carried out). **Fail closed**: when this line cannot be written, the request is
//!   refused (`storage` error) and nothing is published or changed.
//! - `failed`: a second line after `allowed` when storing or publishing the job then failed.
//! - `denied`: refused by the authorization rules (`reason` says why).
//! - `invalid`: a malformed request (bad target or function name).
//! - `no_minions`: the target matched no minion; nothing was published.
//!
//! A line for a request that is refused anyway (`denied`, `invalid`, `no_minions`, `failed`)
//! that cannot be written is only logged.
//!
//! Redaction: a keyword argument whose name contains `pass`, `secret`, `token` or `key`
//! (ignoring case) has its value replaced by `"<redacted>"`, at any depth of nested maps.
//! Positional arguments are written as they are: pass secrets as keyword arguments
//! (`brine '*' mod.fun password=...`). Successful privileged `keys list` calls are not
//! logged (they change nothing).

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use brine_proto::control::KeyCommand;
use brine_proto::{Jid, Map, MinionId, Value};
use serde::Serialize;

use crate::acl::Caller;

/// What replaces a secret value.
pub const REDACTED: &str = "<redacted>";

/// The words that make an argument name secret (compared without case).
const SECRET_WORDS: [&str; 4] = ["pass", "secret", "token", "key"];

/// Whether a keyword argument named `name` holds a secret.
pub fn is_secret(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_WORDS.iter().any(|word| name.contains(word))
}

/// `kwarg` with the value of every secret name (at any depth) replaced by [`REDACTED`].
pub fn redact(kwarg: &Map) -> Map {
    kwarg
        .iter()
        .map(|(name, value)| {
            let value = if is_secret(name) {
                Value::String(REDACTED.into())
            } else {
                redact_value(value)
            };
            (name.clone(), value)
        })
        .collect()
}

fn redact_value(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(redact(map)),
        Value::Array(items) => Value::Array(items.iter().map(redact_value).collect()),
        other => other.clone(),
    }
}

/// How an audited request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Allowed,
    Denied,
    Invalid,
    NoMinions,
    Failed,
}

/// What was asked.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "request", rename_all = "snake_case")]
pub enum Request {
    Publish {
        target: String,
        function: String,
        arg: Vec<Value>,
        /// Redacted.
        kwarg: Map,
        jid: Option<Jid>,
        /// How many minions the target resolved to (`None` before it was resolved).
        minions: Option<usize>,
    },
    Keys {
        action: &'static str,
        ids: Vec<MinionId>,
        #[serde(skip_serializing_if = "Option::is_none")]
        fingerprint: Option<String>,
    },
}

impl Request {
    /// A publish request, its keyword arguments redacted.
    pub fn publish(target: &brine_proto::Target, fun: &str, arg: &[Value], kwarg: &Map) -> Self {
        Request::Publish {
            target: target.to_string(),
            function: fun.to_owned(),
            arg: arg.to_vec(),
            kwarg: redact(kwarg),
            jid: None,
            minions: None,
        }
    }

    /// Notes how many minions a publish's target resolved to.
    pub fn resolved(&mut self, count: usize) {
        if let Request::Publish { minions, .. } = self {
            *minions = Some(count);
        }
    }

    /// Notes the jid given to a publish.
    pub fn minted(&mut self, id: &Jid) {
        if let Request::Publish { jid, .. } = self {
            *jid = Some(id.clone());
        }
    }

    /// A short description for the master's own log (no arguments: they may hold secrets).
    pub fn summary(&self) -> String {
        match self {
            Request::Publish {
                target, function, ..
            } => format!("publish {function} on {target}"),
            Request::Keys { action, ids, .. } => {
                let ids: Vec<&str> = ids.iter().map(MinionId::as_str).collect();
                format!("keys {action} {}", ids.join(" "))
                    .trim_end()
                    .to_owned()
            }
        }
    }

    /// A `brine-key` command.
    pub fn keys(command: &KeyCommand) -> Self {
        let (action, ids, fingerprint) = match command {
            KeyCommand::List {} => ("list", vec![], None),
            KeyCommand::Accept { ids, fingerprint } => ("accept", ids.clone(), fingerprint.clone()),
            KeyCommand::Reject { id } => ("reject", vec![id.clone()], None),
            KeyCommand::Delete { id } => ("delete", vec![id.clone()], None),
        };
        Request::Keys {
            action,
            ids,
            fingerprint,
        }
    }
}

/// One line of the audit log.
#[derive(Debug, Clone, Serialize)]
pub struct Record {
    /// RFC 3339, UTC, milliseconds.
    pub time: String,
    pub uid: u32,
    pub gid: u32,
    pub pid: Option<i32>,
    pub user: String,
    #[serde(flatten)]
    pub request: Request,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Record {
    /// A record of `request` by `caller`, now.
    pub fn new(caller: &Caller, request: Request, outcome: Outcome) -> Self {
        Self {
            time: rfc3339(SystemTime::now()),
            uid: caller.uid,
            gid: caller.gid,
            pid: caller.pid,
            user: caller.user.clone(),
            request,
            outcome,
            reason: None,
        }
    }

    pub fn because(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }
}

/// `time` as RFC 3339 in UTC with milliseconds: `2024-05-01T12:00:00.123Z`.
pub fn rfc3339(time: SystemTime) -> String {
    humantime_serde::re::humantime::format_rfc3339_millis(time).to_string()
}

/// The audit log file.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    /// One line at a time.
    lock: Mutex<()>,
}

impl AuditLog {
    pub fn new(path: PathBuf) -> Arc<Self> {
        Arc::new(Self {
            path,
            lock: Mutex::new(()),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn open(&self) -> io::Result<std::fs::File> {
        OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .custom_flags(
                nix::fcntl::OFlag::O_NOFOLLOW.bits() | nix::fcntl::OFlag::O_CLOEXEC.bits(),
            )
            .open(&self.path)
    }

    /// Creates the file if it is missing (at start-up, so a problem shows early).
    pub fn touch(&self) -> io::Result<()> {
        self.open().map(drop)
    }

    fn append_line(&self, line: &[u8]) -> io::Result<()> {
        let _one_at_a_time = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut file = self.open()?;
        file.write_all(line)?;
        Ok(())
    }

    /// Appends `record` as one line. Blocking file I/O runs off the async threads.
    pub async fn write(self: &Arc<Self>, record: &Record) -> io::Result<()> {
        let mut line = serde_json::to_vec(record).map_err(io::Error::other)?;
        line.push(b'\n');
        let log = Arc::clone(self);
        tokio::task::spawn_blocking(move || log.append_line(&line))
            .await
            .map_err(io::Error::other)?
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use serde_json::json;

    use super::*;

    #[test]
    fn secret_names() {
        for name in [
            "password",
            "PASSWORD",
            "db_pass",
            "passphrase",
            "api_token",
            "Secret",
            "client_secret",
            "key",
            "ssh_key",
            "apikey",
        ] {
            assert!(is_secret(name), "{name}");
        }
        for name in [
            "user", "name", "cmd", "timeout", "shell", "path", "pas", "tok",
        ] {
            assert!(!is_secret(name), "{name}");
        }
    }

    #[test]
    fn secret_values_are_redacted_at_any_depth() {
        let kwarg = json!({
            "password": "hunter2",
            "user": "alice",
            "nested": {"api_token": 42, "ok": [1, {"secret": "s", "n": 1}]},
            "ApiKey": {"whole": "map"},
        });
        let Value::Object(kwarg) = kwarg else {
            unreachable!()
        };
        let redacted = redact(&kwarg);
        assert_eq!(
            Value::Object(redacted),
            json!({
                "password": REDACTED,
                "user": "alice",
                "nested": {"api_token": REDACTED, "ok": [1, {"secret": REDACTED, "n": 1}]},
                "ApiKey": REDACTED,
            })
        );
    }

    #[test]
    fn time_is_rfc3339_utc() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_123);
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20.123Z");
    }

    fn caller() -> Caller {
        Caller {
            uid: 1000,
            gid: 100,
            pid: Some(4242),
            user: "alice".into(),
        }
    }

    #[tokio::test]
    async fn lines_are_appended_to_a_private_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let log = AuditLog::new(path.clone());
        log.touch().unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);

        let Value::Object(kwarg) = json!({"password": "hunter2", "x": 1}) else {
            unreachable!()
        };
        let request = Request::publish(
            &brine_proto::Target::Glob("web*".into()),
            "test.arg",
            &[json!("a")],
            &kwarg,
        );
        assert_eq!(request.summary(), "publish test.arg on web*");
        log.write(&Record::new(&caller(), request, Outcome::Allowed))
            .await
            .unwrap();
        let keys = Request::keys(&KeyCommand::Delete {
            id: "web1".parse().unwrap(),
        });
        let keys_summary = keys.summary();
        log.write(&Record::new(&caller(), keys, Outcome::Denied).because("not root"))
            .await
            .unwrap();

        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("hunter2"), "{text}");
        assert_eq!(keys_summary, "keys delete web1");
        assert_eq!(Request::keys(&KeyCommand::List {}).summary(), "keys list");
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["request"], "publish");
        assert_eq!(lines[0]["uid"], 1000);
        assert_eq!(lines[0]["gid"], 100);
        assert_eq!(lines[0]["pid"], 4242);
        assert_eq!(lines[0]["user"], "alice");
        assert_eq!(lines[0]["target"], "web*");
        assert_eq!(lines[0]["function"], "test.arg");
        assert_eq!(lines[0]["kwarg"], json!({"password": REDACTED, "x": 1}));
        assert_eq!(lines[0]["jid"], Value::Null);
        assert_eq!(lines[0]["outcome"], "allowed");
        assert!(lines[0].get("reason").is_none());
        assert!(lines[0]["time"].as_str().unwrap().ends_with('Z'));
        assert_eq!(lines[1]["request"], "keys");
        assert_eq!(lines[1]["action"], "delete");
        assert_eq!(lines[1]["ids"], json!(["web1"]));
        assert_eq!(lines[1]["outcome"], "denied");
        assert_eq!(lines[1]["reason"], "not root");
    }

    #[tokio::test]
    async fn a_symlink_is_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("elsewhere");
        std::fs::write(&target, "").unwrap();
        let path = dir.path().join("audit.log");
        std::os::unix::fs::symlink(&target, &path).unwrap();
        let log = AuditLog::new(path);
        assert!(log.touch().is_err());
        let record = Record::new(
            &caller(),
            Request::keys(&KeyCommand::List {}),
            Outcome::Denied,
        );
        assert!(log.write(&record).await.is_err());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "");
    }
}
