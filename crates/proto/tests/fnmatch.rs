//! brine's glob dialect is Salt's: Python's `fnmatch.fnmatchcase`, checked against Python
//! itself on thousands of patterns built from the characters that mean something to it.

use std::io::Write;
use std::process::{Command, Stdio};

use brine_proto::Fnmatch;

/// Patterns and texts over an alphabet where every special character is likely.
fn cases() -> Vec<(String, String)> {
    const PATTERN: &[char] = &[
        'a', 'b', 'z', '*', '?', '[', ']', '!', '-', '^', '\\', '.', '/', '&', '~',
    ];
    const TEXT: &[char] = &[
        'a', 'b', 'z', '[', ']', '!', '-', '^', '\\', '.', '/', '*', '?',
    ];
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    (0..4000)
        .map(|_| {
            let pattern: String = (0..next(8)).map(|_| PATTERN[next(PATTERN.len())]).collect();
            let text: String = (0..next(6)).map(|_| TEXT[next(TEXT.len())]).collect();
            (pattern, text)
        })
        .collect()
}

#[test]
fn globs_match_exactly_as_pythons_fnmatchcase() {
    let cases = cases();
    let script = "import fnmatch, json, sys\n\
                  cases = json.load(sys.stdin)\n\
                  json.dump([fnmatch.fnmatchcase(t, p) for p, t in cases], sys.stdout)";
    let mut python = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs (the project's machines have it)");
    let input = serde_json::to_vec(&cases).unwrap();
    python.stdin.take().unwrap().write_all(&input).unwrap();
    let out = python.wait_with_output().unwrap();
    assert!(out.status.success(), "python3 failed");
    let expected: Vec<bool> = serde_json::from_slice(&out.stdout).unwrap();
    let mut disagree = Vec::new();
    for ((pattern, text), python_says) in cases.iter().zip(expected) {
        let brine_says = Fnmatch::new(pattern).unwrap().matches(text);
        if brine_says != python_says {
            disagree.push(format!(
                "{pattern:?} on {text:?}: python {python_says}, brine {brine_says}"
            ));
        }
    }
    assert!(
        disagree.is_empty(),
        "{} of {}:\n{}",
        disagree.len(),
        cases.len(),
        disagree.join("\n")
    );
}

#[test]
fn the_dialect_in_examples() {
    let m = |p: &str, t: &str| Fnmatch::new(p).unwrap().matches(t);
    assert!(m("web*", "web1.example.com"));
    assert!(m("*", ""));
    assert!(m("cmd.*", "cmd.run") && !m("cmd.*", "cmdxrun"));
    assert!(m("a/*", "a/b/c"), "a star crosses slashes");
    assert!(m("web[!12]", "web3") && !m("web[!12]", "web1"));
    assert!(m("x[", "x[") && m("[]]", "]") && m("[!]]", "a"));
    assert!(
        !m("[z-a]", "z") && !m("a[z-a]*", "az"),
        "a backwards range matches nothing"
    );
    assert!(m("a\\b", "a\\b"), "a backslash is an ordinary character");
    assert!(!m("WEB*", "web1"), "case-sensitive");
}
