//! The grammars of the wire, checked against independent oracles: minion ids, jids, and the
//! matching rules of targets as docs/PROTOCOL.md states them.

mod common;

use brine_proto::{Jid, MinionId, Target};
use common::{ID_GRAMMAR, MAX_JID_MICROS};
use proptest::collection::vec;
use proptest::prelude::*;

/// The id grammar as docs/PROTOCOL.md states it.
fn id_oracle(s: &str) -> bool {
    regex::Regex::new(ID_GRAMMAR).unwrap().is_match(s) && !s.contains("..")
}

/// The jid grammar as docs/PROTOCOL.md states it: 20 digits, %Y%m%d%H%M%S%f, fields in range.
fn jid_oracle(s: &str) -> bool {
    let field = |at: usize| s[at..at + 2].parse::<u32>().unwrap();
    s.len() == 20
        && s.bytes().all(|b| b.is_ascii_digit())
        && (1..=12).contains(&field(4))
        && (1..=31).contains(&field(6))
        && field(8) <= 23
        && field(10) <= 59
        && field(12) <= 59
}

fn matches(target: Target, id: &str) -> bool {
    target.compile().expect("valid target").matches_id(id)
}

proptest! {
    #[test]
    fn ids_follow_the_grammar(
        s in prop_oneof![
            common::text(),
            "[A-Za-z0-9._/\\\\ é*\0-]{0,70}",
            "[A-Za-z0-9][A-Za-z0-9._-]{60,66}",
        ]
    ) {
        prop_assert_eq!(MinionId::new(s.as_str()).is_ok(), id_oracle(&s), "{:?}", s);
    }

    #[test]
    fn jids_follow_the_grammar(
        s in prop_oneof![
            "[0-9]{18,22}",
            "[0-9]{4}[01][0-9][0-3][0-9][0-2][0-9][0-6][0-9][0-6][0-9][0-9]{6}",
            common::text(),
        ]
    ) {
        prop_assert_eq!(Jid::new(s.as_str()).is_ok(), jid_oracle(&s), "{:?}", s);
    }

    #[test]
    fn minted_jids_are_valid_and_in_time_order(
        a in 0..=MAX_JID_MICROS,
        b in 0..=MAX_JID_MICROS,
    ) {
        let (ja, jb) = (Jid::from_micros(a), Jid::from_micros(b));
        prop_assert_eq!(Jid::new(ja.as_str()), Ok(ja.clone()));
        prop_assert_eq!(a.cmp(&b), ja.cmp(&jb));
        // The microseconds are the last six digits.
        prop_assert_eq!(&ja.as_str()[14..], format!("{:06}", a % 1_000_000));
    }

    #[test]
    fn a_glob_without_wildcards_is_an_exact_match(
        id in common::minion_id(),
        other in common::minion_id(),
    ) {
        prop_assert!(matches(Target::Glob(id.to_string()), id.as_str()));
        prop_assert_eq!(matches(Target::Glob(id.to_string()), other.as_str()), id == other);
        prop_assert!(matches(Target::Glob("*".into()), id.as_str()));
    }

    #[test]
    fn a_list_matches_exactly_its_ids(
        ids in vec(common::minion_id(), 1..5),
        other in common::minion_id(),
    ) {
        let list = Target::List(ids.iter().map(ToString::to_string).collect());
        for id in &ids {
            prop_assert!(matches(list.clone(), id.as_str()));
        }
        prop_assert_eq!(matches(list, other.as_str()), ids.contains(&other));
    }

    #[test]
    fn a_regex_is_anchored_at_the_start_only(
        id in common::minion_id(),
        other in common::minion_id(),
    ) {
        let re = Target::Regex(regex::escape(id.as_str()));
        prop_assert_eq!(matches(re, other.as_str()), other.as_str().starts_with(id.as_str()));
    }
}

#[test]
fn glob_wildcards_work_like_fnmatch() {
    let glob = |p: &str, id: &str| matches(Target::Glob(p.into()), id);
    assert!(glob("*", "web1.example.com"));
    assert!(glob("web*", "web1.example.com"));
    assert!(glob("*.example.com", "web1.example.com"));
    assert!(!glob("web*", "xweb1"));
    assert!(glob("web?", "web1"));
    assert!(!glob("web?", "web10"));
    assert!(glob("web[0-9]", "web7"));
    assert!(glob("web[!0-9]", "webx"));
    assert!(!glob("web[!0-9]", "web7"));
    // Case matters, as with fnmatch on a Unix master.
    assert!(!glob("WEB*", "web1"));
}

#[test]
fn list_entries_are_not_patterns() {
    // An entry is an id, never a glob: one that cannot be an id is an error that names it.
    let err = Target::List(vec!["web1".into(), "web*".into()])
        .compile()
        .unwrap_err();
    assert!(
        err.to_string().starts_with("\"web*\" in a target list"),
        "{err}"
    );
    assert!(matches(Target::list_from_str("db1, web2 ,"), "web2"));
    assert!(Target::List(vec![]).compile().is_err());
}

#[test]
fn regex_matches_like_python_re_match() {
    let re = |p: &str, id: &str| matches(Target::Regex(p.into()), id);
    assert!(re("web", "web1"));
    assert!(!re("eb1", "web1"));
    assert!(re("web[0-9]+$", "web12"));
    assert!(!re("web[0-9]+$", "web12x"));
    assert!(re("db|web", "web1"));
    assert!(re(".*example", "web1.example.com"));
    assert!(!re("WEB", "web1"));
    assert!(Target::Regex("(".into()).compile().is_err());
}
