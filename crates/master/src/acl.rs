//! Who may ask the master for what over the control socket.
//!
//! The caller's uid, gid and pid come from the kernel (SO_PEERCRED), never from the request.
//!
//! - uid 0 and the master's own uid may do everything.
//! - Everyone else who can connect (the socket is mode 0660, group `socket_group`) may read:
//!   `minions`, `match_target`, `list_jobs`, `active_jobs`, `lookup_job`.
//! - `keys` (`brine-key`) is for root and the master's uid only.
//! - `publish` needs `publisher_acl`: the user (by name) must have rules that grant the function
//!   on **every** minion the target resolves to. A rule grants each function matching one of its
//!   `functions` patterns on each minion whose id matches one of its `targets` patterns (globs,
//!   as in a glob target: `*`, `?`, `[abc]`). Every resolved minion must be covered by some rule
//!   that also grants the function; rules add up (one rule may cover `web*`, another `db*`).
//!
//! ```toml
//! [[publisher_acl.alice]]
//! targets = ["web*"]
//! functions = ["test.*", "cmd.run"]
//!
//! [[publisher_acl.alice]]
//! targets = ["db*"]
//! functions = ["test.ping"]
//! ```

use std::collections::BTreeMap;

use brine_proto::{MinionId, Target, TargetMatcher};
use serde::{Deserialize, Serialize};

/// One `publisher_acl` rule as written in the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AclRule {
    /// Glob patterns on minion ids.
    pub targets: Vec<String>,
    /// Glob patterns on function names (`module.function`).
    pub functions: Vec<String>,
}

/// Who is on the other end of a control connection, from the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub uid: u32,
    pub gid: u32,
    pub pid: Option<i32>,
    /// The user name of `uid`, or `uid:<n>` when it has none.
    pub user: String,
}

impl Caller {
    /// Root and the master's own user may do everything.
    pub fn is_privileged(&self, master_uid: u32) -> bool {
        self.uid == 0 || self.uid == master_uid
    }
}

/// A compiled rule.
#[derive(Debug, Clone)]
struct Rule {
    targets: Vec<TargetMatcher>,
    functions: Vec<TargetMatcher>,
}

impl Rule {
    fn grants_function(&self, fun: &str) -> bool {
        self.functions.iter().any(|p| p.matches_id(fun))
    }

    fn covers(&self, id: &str) -> bool {
        self.targets.iter().any(|p| p.matches_id(id))
    }
}

/// `publisher_acl`, compiled once.
#[derive(Debug, Clone, Default)]
pub struct Acl {
    users: BTreeMap<String, Vec<Rule>>,
}

/// Compiles one pattern of `user`'s rules.
fn pattern(user: &str, what: &str, pattern: &str) -> Result<TargetMatcher, String> {
    if pattern.is_empty() {
        return Err(format!("{user}: an empty {what} pattern"));
    }
    Target::Glob(pattern.to_owned())
        .compile()
        .map_err(|e| format!("{user}: {what} pattern: {e}"))
}

impl Acl {
    /// Compiles (and so checks) the configuration's `publisher_acl`.
    pub fn compile(config: &BTreeMap<String, Vec<AclRule>>) -> Result<Self, String> {
        let mut users = BTreeMap::new();
        for (user, rules) in config {
            if user.is_empty() {
                return Err("an empty user name".into());
            }
            let mut compiled = Vec::with_capacity(rules.len());
            for rule in rules {
                if rule.targets.is_empty() {
                    return Err(format!("{user}: a rule with no targets"));
                }
                if rule.functions.is_empty() {
                    return Err(format!("{user}: a rule with no functions"));
                }
                compiled.push(Rule {
                    targets: rule
                        .targets
                        .iter()
                        .map(|p| pattern(user, "target", p))
                        .collect::<Result<_, _>>()?,
                    functions: rule
                        .functions
                        .iter()
                        .map(|p| pattern(user, "function", p))
                        .collect::<Result<_, _>>()?,
                });
            }
            users.insert(user.clone(), compiled);
        }
        Ok(Self { users })
    }

    /// Whether any rule of `user` grants `fun` at all (checked before the target is resolved,
    /// so a user without the function learns nothing about which minions exist).
    pub fn check_function(&self, user: &str, fun: &str) -> Result<(), String> {
        let Some(rules) = self.users.get(user) else {
            return Err(format!("user {user} has no publisher_acl entry"));
        };
        if rules.iter().any(|r| r.grants_function(fun)) {
            Ok(())
        } else {
            Err(format!("user {user} may not run {fun}"))
        }
    }

    /// Whether `user` may run `fun` on every one of `minions` (the resolved target).
    pub fn check(&self, user: &str, fun: &str, minions: &[MinionId]) -> Result<(), String> {
        self.check_function(user, fun)?;
        let rules = self.users.get(user).map(Vec::as_slice).unwrap_or_default();
        let refused: Vec<&MinionId> = minions
            .iter()
            .filter(|id| {
                !rules
                    .iter()
                    .any(|r| r.grants_function(fun) && r.covers(id.as_str()))
            })
            .collect();
        if refused.is_empty() {
            return Ok(());
        }
        const SHOWN: usize = 5;
        let mut names = refused
            .iter()
            .take(SHOWN)
            .map(|id| id.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        if refused.len() > SHOWN {
            names.push_str(&format!(" and {} more", refused.len() - SHOWN));
        }
        Err(format!("user {user} may not run {fun} on {names}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(targets: &[&str], functions: &[&str]) -> AclRule {
        AclRule {
            targets: targets.iter().map(|s| s.to_string()).collect(),
            functions: functions.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn ids(ids: &[&str]) -> Vec<MinionId> {
        ids.iter().map(|id| id.parse().unwrap()).collect()
    }

    fn acl() -> Acl {
        let mut config = BTreeMap::new();
        config.insert(
            "alice".to_owned(),
            vec![
                rule(&["web*"], &["test.*", "cmd.run"]),
                rule(&["db?"], &["test.ping"]),
            ],
        );
        config.insert("bob".to_owned(), vec![rule(&["*"], &["*"])]);
        Acl::compile(&config).unwrap()
    }

    #[test]
    fn functions_and_targets_are_globs() {
        let acl = acl();
        acl.check("alice", "test.ping", &ids(&["web1", "web22"]))
            .unwrap();
        acl.check("alice", "test.arg", &ids(&["web1"])).unwrap();
        acl.check("alice", "cmd.run", &ids(&["web1"])).unwrap();
        let err = acl
            .check("alice", "cmd.run_all", &ids(&["web1"]))
            .unwrap_err();
        assert!(err.contains("may not run cmd.run_all"), "{err}");
        let err = acl
            .check("alice", "sys.reboot", &ids(&["web1"]))
            .unwrap_err();
        assert!(err.contains("may not run sys.reboot"), "{err}");
        acl.check("bob", "sys.reboot", &ids(&["anything"])).unwrap();
    }

    #[test]
    fn every_resolved_minion_must_be_covered() {
        let acl = acl();
        // Rules add up: web1 by the first, db1 by the second.
        acl.check("alice", "test.ping", &ids(&["db1", "web1"]))
            .unwrap();
        // test.arg is granted on web* only.
        let err = acl
            .check("alice", "test.arg", &ids(&["db1", "web1"]))
            .unwrap_err();
        assert_eq!(err, "user alice may not run test.arg on db1");
        // db10 is not db?.
        let err = acl
            .check("alice", "test.ping", &ids(&["db10", "web1"]))
            .unwrap_err();
        assert_eq!(err, "user alice may not run test.ping on db10");
        let many: Vec<String> = (0..8).map(|n| format!("x{n}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let err = acl.check("alice", "test.ping", &ids(&many)).unwrap_err();
        assert!(err.ends_with("x0, x1, x2, x3, x4 and 3 more"), "{err}");
    }

    #[test]
    fn a_user_without_an_entry_gets_nothing() {
        let acl = acl();
        let err = acl.check("mallory", "test.ping", &[]).unwrap_err();
        assert_eq!(err, "user mallory has no publisher_acl entry");
        assert!(acl.check_function("mallory", "test.ping").is_err());
        assert!(Acl::default().check("alice", "test.ping", &[]).is_err());
        // Names are exact: no globbing, no case folding.
        assert!(acl.check_function("Alice", "test.ping").is_err());
        assert!(acl.check_function("alice*", "test.ping").is_err());
    }

    #[test]
    fn the_function_is_checked_before_the_target_is_resolved() {
        let acl = acl();
        acl.check_function("alice", "test.ping").unwrap();
        acl.check_function("alice", "cmd.run").unwrap();
        let err = acl.check_function("alice", "file.write").unwrap_err();
        assert_eq!(err, "user alice may not run file.write");
    }

    #[test]
    fn bad_rules_are_refused() {
        let one = |r: AclRule| {
            let mut config = BTreeMap::new();
            config.insert("alice".to_owned(), vec![r]);
            Acl::compile(&config)
        };
        assert!(one(rule(&[], &["test.*"]))
            .unwrap_err()
            .contains("no targets"));
        assert!(one(rule(&["*"], &[])).unwrap_err().contains("no functions"));
        // A `[` without its `]` is itself, as in fnmatch: a rule, not a mistake.
        assert!(one(rule(&["["], &["[x"])).is_ok());
        assert!(one(rule(&[""], &["test.*"])).unwrap_err().contains("empty"));
        let mut config = BTreeMap::new();
        config.insert(String::new(), vec![rule(&["*"], &["*"])]);
        assert!(Acl::compile(&config).is_err());
    }

    #[test]
    fn root_and_the_master_user_are_privileged() {
        let caller = |uid| Caller {
            uid,
            gid: uid,
            pid: Some(1),
            user: "x".into(),
        };
        assert!(caller(0).is_privileged(999));
        assert!(caller(999).is_privileged(999));
        assert!(!caller(1000).is_privileged(999));
        assert!(!caller(65534).is_privileged(0));
    }
}
