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
//!
//! Bounds, so that no caller can fill the disk through this file (it fails closed: a full disk
//! would stop every publish and key change):
//!
//! - a line records `arg` and `kwarg` whole up to [`MAX_ARGS_BYTES`] of JSON each; a larger one
//!   is recorded as `{"bytes": <its JSON length>, "sha256": <hex of that JSON>}` (the job store
//!   keeps the arguments of a job that was published). `target` and `function` are cut at
//!   [`MAX_TEXT_BYTES`] and a `reason` at [`MAX_REASON_BYTES`], the cut marked with the full
//!   length and SHA-256; at most [`MAX_IDS`] `ids` are listed (`ids_omitted` counts the rest);
//! - refused requests (`denied`, `invalid`, `no_minions`) are written at most
//!   [`REFUSED_LINES_PER_WINDOW`] per user per [`REFUSED_WINDOW`]; the rest are counted, and the
//!   user's next line written carries `suppressed`: how many of its refusals were not written
//!   before it. `allowed` and `failed` lines are never suppressed.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use brine_proto::control::{KeyCommand, KeySelection, KeyState};
use brine_proto::{Jid, Map, MinionId, Value};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tracing::warn;

use crate::acl::Caller;

/// What replaces a secret value.
pub const REDACTED: &str = "<redacted>";

/// The most bytes of JSON of a request's `arg` (or `kwarg`) that a line records whole.
pub const MAX_ARGS_BYTES: usize = 2048;
/// The most bytes of a request's `target` or `function` that a line records whole.
pub const MAX_TEXT_BYTES: usize = 1024;
/// The most bytes of a `reason` that a line records whole.
pub const MAX_REASON_BYTES: usize = 1024;
/// The most `ids` of a key command that a line lists.
pub const MAX_IDS: usize = 64;
/// How many refused requests of one user are written per [`REFUSED_WINDOW`].
pub const REFUSED_LINES_PER_WINDOW: u32 = 30;
pub const REFUSED_WINDOW: Duration = Duration::from_secs(60);

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
    /// Allowed, then refused by what it was about: a key command for an id without a key in
    /// the right state, a fingerprint that no key has. Nothing was changed.
    Refused,
    Failed,
}

impl Outcome {
    /// A request refused before anything was done: its lines are rate-limited per user.
    fn is_refusal(self) -> bool {
        matches!(
            self,
            Outcome::Denied | Outcome::Invalid | Outcome::NoMinions
        )
    }
}

/// A request's arguments as a line records them: whole, or their size and digest.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Recorded<T> {
    Whole(T),
    /// Larger than [`MAX_ARGS_BYTES`]: the length of its JSON and the SHA-256 of that JSON.
    Digest {
        bytes: usize,
        sha256: String,
    },
}

impl<T: Serialize> Recorded<T> {
    fn of(value: T) -> Self {
        let json = serde_json::to_vec(&value).unwrap_or_default();
        if json.len() <= MAX_ARGS_BYTES {
            Recorded::Whole(value)
        } else {
            Recorded::Digest {
                bytes: json.len(),
                sha256: hex::encode(Sha256::digest(&json)),
            }
        }
    }
}

/// `text` whole when it has at most `max` bytes; else its first bytes and a mark with its
/// length and SHA-256.
fn bounded_text(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let cut = text.floor_char_boundary(max);
    format!(
        "{}… (cut: {} bytes, sha256 {})",
        &text[..cut],
        text.len(),
        hex::encode(Sha256::digest(text.as_bytes()))
    )
}

/// What was asked.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "request", rename_all = "snake_case")]
pub enum Request {
    Publish {
        target: String,
        function: String,
        arg: Recorded<Vec<Value>>,
        /// Redacted.
        kwarg: Recorded<Map>,
        jid: Option<Jid>,
        /// How many minions the target resolved to (`None` before it was resolved).
        minions: Option<usize>,
    },
    Keys {
        action: &'static str,
        /// Minion ids, or (reject, delete) the patterns as given.
        ids: Vec<String>,
        /// How many ids more the command named (beyond [`MAX_IDS`]).
        #[serde(skip_serializing_if = "Option::is_none")]
        ids_omitted: Option<usize>,
        #[serde(skip_serializing_if = "Option::is_none")]
        fingerprint: Option<String>,
        /// The states a reject or delete was narrowed to.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        states: Vec<KeyState>,
        /// An accept that may preaccept the fingerprint.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        preaccept: bool,
    },
}

impl Request {
    /// A publish request, its keyword arguments redacted.
    pub fn publish(target: &brine_proto::Target, fun: &str, arg: &[Value], kwarg: &Map) -> Self {
        Request::Publish {
            target: bounded_text(&target.to_string(), MAX_TEXT_BYTES),
            function: bounded_text(fun, MAX_TEXT_BYTES),
            arg: Recorded::of(arg.to_vec()),
            kwarg: Recorded::of(redact(kwarg)),
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
            Request::Keys { action, ids, .. } => format!("keys {action} {}", ids.join(" "))
                .trim_end()
                .to_owned(),
        }
    }

    /// A `brine-key` command.
    pub fn keys(command: &KeyCommand) -> Self {
        let (action, ids, fingerprint, states): (_, Vec<&str>, _, &[KeyState]) = match command {
            KeyCommand::List {} => ("list", Vec::new(), None, &[]),
            KeyCommand::Accept {
                ids, fingerprint, ..
            } => (
                "accept",
                ids.iter().map(MinionId::as_str).collect(),
                fingerprint.as_ref(),
                &[],
            ),
            KeyCommand::Reject(keys) => ("reject", patterns(keys), None, &keys.states),
            KeyCommand::Delete(keys) => ("delete", patterns(keys), None, &keys.states),
        };
        Request::Keys {
            action,
            ids: ids
                .iter()
                .take(MAX_IDS)
                .map(|id| bounded_text(id, MAX_TEXT_BYTES))
                .collect(),
            ids_omitted: (ids.len() > MAX_IDS).then(|| ids.len() - MAX_IDS),
            fingerprint: fingerprint.map(|f| bounded_text(f, MAX_TEXT_BYTES)),
            states: states.to_vec(),
            preaccept: matches!(
                command,
                KeyCommand::Accept {
                    preaccept: true,
                    ..
                }
            ),
        }
    }
}

fn patterns(keys: &KeySelection) -> Vec<&str> {
    keys.ids.iter().map(String::as_str).collect()
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
    /// How many refusals of this user were not written before this line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suppressed: Option<u64>,
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
            suppressed: None,
        }
    }

    pub fn because(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(bounded_text(&reason.into(), MAX_REASON_BYTES));
        self
    }
}

/// `time` as RFC 3339 in UTC with milliseconds: `2024-05-01T12:00:00.123Z`.
pub fn rfc3339(time: SystemTime) -> String {
    humantime_serde::re::humantime::format_rfc3339_millis(time).to_string()
}

/// Whether a line was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Yes,
    /// A refusal over its user's rate: counted, not written.
    Suppressed,
}

/// One user's refusals in the current window.
#[derive(Debug)]
struct RefusalWindow {
    started: Instant,
    written: u32,
    /// Refusals not written since the user's last line.
    suppressed: u64,
}

/// The audit log file.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    /// One line at a time.
    lock: Mutex<()>,
    refusals: Mutex<HashMap<u32, RefusalWindow>>,
}

impl AuditLog {
    pub fn new(path: PathBuf) -> Arc<Self> {
        Arc::new(Self {
            path,
            lock: Mutex::new(()),
            refusals: Mutex::default(),
        })
    }

    /// Whether a refusal of `uid` is written now, and how many went unwritten before it.
    fn admit_refusal(&self, uid: u32, now: Instant) -> Option<u64> {
        let mut refusals = self.refusals.lock().unwrap_or_else(|p| p.into_inner());
        // Windows that have ended and owe no count are forgotten, so the map stays small.
        refusals.retain(|_, w| now - w.started < REFUSED_WINDOW || w.suppressed > 0);
        let window = refusals.entry(uid).or_insert(RefusalWindow {
            started: now,
            written: 0,
            suppressed: 0,
        });
        if now - window.started >= REFUSED_WINDOW {
            window.started = now;
            window.written = 0;
        }
        if window.written < REFUSED_LINES_PER_WINDOW {
            window.written += 1;
            return Some(std::mem::take(&mut window.suppressed));
        }
        if window.suppressed == 0 {
            warn!(
                uid,
                "this user's refused requests are no longer written to the audit log for the rest of the minute; their count is written with the user's next line"
            );
        }
        window.suppressed += 1;
        None
    }

    /// The count of `uid`'s unwritten refusals, taken for the line about to be written.
    fn take_suppressed(&self, uid: u32) -> u64 {
        let mut refusals = self.refusals.lock().unwrap_or_else(|p| p.into_inner());
        refusals
            .get_mut(&uid)
            .map(|w| std::mem::take(&mut w.suppressed))
            .unwrap_or(0)
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

    /// Appends `record` as one line, unless it is a refusal over its user's rate. Blocking
    /// file I/O runs off the async threads.
    pub async fn write(self: &Arc<Self>, record: &Record) -> io::Result<Written> {
        let suppressed = if record.outcome.is_refusal() {
            match self.admit_refusal(record.uid, Instant::now()) {
                Some(count) => count,
                None => return Ok(Written::Suppressed),
            }
        } else {
            self.take_suppressed(record.uid)
        };
        let mut record = record.clone();
        record.suppressed = (suppressed > 0).then_some(suppressed);
        let mut line = serde_json::to_vec(&record).map_err(io::Error::other)?;
        line.push(b'\n');
        let log = Arc::clone(self);
        tokio::task::spawn_blocking(move || log.append_line(&line))
            .await
            .map_err(io::Error::other)??;
        Ok(Written::Yes)
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
        let keys = Request::keys(&KeyCommand::Delete(KeySelection::id(
            &"web1".parse().unwrap(),
        )));
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

    #[tokio::test]
    async fn large_requests_are_recorded_by_size_and_digest() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::new(dir.path().join("audit.log"));
        let big = "x".repeat(1 << 20);
        let request = Request::publish(
            &brine_proto::Target::Glob(big.clone()),
            &big,
            &[json!(big)],
            &Map::new(),
        );
        let record = Record::new(&caller(), request, Outcome::Allowed).because(big.clone());
        assert_eq!(log.write(&record).await.unwrap(), Written::Yes);
        let text = std::fs::read_to_string(log.path()).unwrap();
        assert!(text.len() < 8 * 1024, "{} bytes", text.len());
        let line: Value = serde_json::from_str(&text).unwrap();
        let json = serde_json::to_vec(&[json!(big)]).unwrap();
        assert_eq!(line["arg"]["bytes"], json.len());
        assert_eq!(line["arg"]["sha256"], hex::encode(Sha256::digest(&json)));
        assert_eq!(line["kwarg"], json!({}));
        for field in ["target", "function", "reason"] {
            let text = line[field].as_str().unwrap();
            assert!(
                text.contains("(cut: 1048576 bytes, sha256 "),
                "{field}: {text}"
            );
        }
    }

    #[tokio::test]
    async fn refusals_are_rate_limited_per_user_and_the_rest_counted() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::new(dir.path().join("audit.log"));
        let denied = |uid| {
            let mut caller = caller();
            caller.uid = uid;
            Record::new(
                &caller,
                Request::keys(&KeyCommand::List {}),
                Outcome::Denied,
            )
        };
        for _ in 0..REFUSED_LINES_PER_WINDOW {
            assert_eq!(log.write(&denied(1000)).await.unwrap(), Written::Yes);
        }
        for _ in 0..5 {
            assert_eq!(log.write(&denied(1000)).await.unwrap(), Written::Suppressed);
        }
        // Another user is not held back by the first.
        assert_eq!(log.write(&denied(1001)).await.unwrap(), Written::Yes);
        // An allowed request is always written, and carries the count.
        let allowed = Record::new(
            &caller(),
            Request::keys(&KeyCommand::List {}),
            Outcome::Allowed,
        );
        assert_eq!(log.write(&allowed).await.unwrap(), Written::Yes);
        let text = std::fs::read_to_string(log.path()).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), REFUSED_LINES_PER_WINDOW as usize + 2);
        assert_eq!(lines.last().unwrap()["suppressed"], 5);
        assert!(lines[0].get("suppressed").is_none());
        // A new window writes again, with the count of the old one's suppressed lines.
        assert_eq!(log.write(&denied(1000)).await.unwrap(), Written::Suppressed);
        let later = Instant::now() + REFUSED_WINDOW;
        assert_eq!(log.admit_refusal(1000, later), Some(1));
    }

    #[test]
    fn a_key_command_lists_a_bounded_number_of_ids() {
        let ids: Vec<MinionId> = (0..100).map(|n| format!("m{n}").parse().unwrap()).collect();
        let Request::Keys {
            ids, ids_omitted, ..
        } = Request::keys(&KeyCommand::Accept {
            ids,
            fingerprint: None,
            preaccept: false,
        })
        else {
            unreachable!()
        };
        assert_eq!(ids.len(), MAX_IDS);
        assert_eq!(ids_omitted, Some(100 - MAX_IDS));
    }
}
