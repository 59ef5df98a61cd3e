//! The version orders of the package managers: dpkg's for apt, rpm's for dnf, ported from their
//! C (dpkg's `dpkg_version_compare` and `verrevcmp`, rpm's `rpmverCmp` and `rpmvercmp`) and
//! checked against the programs themselves: the tests sort some 700 generated versions with
//! these functions and ask `dpkg --compare-versions` and rpm's `rpm.vercmp` about every
//! neighbouring pair.

use std::cmp::Ordering;

/// Splits `epoch:rest` into the epoch's digits (`""`, read as 0, when there are none) and the
/// rest; a version whose text before its first colon is not digits has no epoch.
fn split_epoch(v: &str) -> (&str, &str) {
    match v.split_once(':') {
        Some((epoch, rest)) if epoch.bytes().all(|b| b.is_ascii_digit()) => (epoch, rest),
        _ => ("", v),
    }
}

/// Splits `version-release` at the last dash; `None` when there is no dash.
fn split_release(v: &str) -> (&str, Option<&str>) {
    match v.rsplit_once('-') {
        Some((version, release)) => (version, Some(release)),
        None => (v, None),
    }
}

/// Orders two runs of digits by their value, however many digits they have.
fn cmp_digits(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.trim_start_matches('0'), b.trim_start_matches('0'));
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// Orders two Debian versions (`[epoch:]upstream[-revision]`) as dpkg does; no revision is an
/// empty one.
pub(super) fn compare_deb(a: &str, b: &str) -> Ordering {
    let (epoch_a, rest_a) = split_epoch(a);
    let (epoch_b, rest_b) = split_epoch(b);
    let (up_a, rev_a) = split_release(rest_a);
    let (up_b, rev_b) = split_release(rest_b);
    cmp_digits(epoch_a, epoch_b)
        .then_with(|| deb_verrevcmp(up_a.as_bytes(), up_b.as_bytes()))
        .then_with(|| {
            let (rev_a, rev_b) = (rev_a.unwrap_or_default(), rev_b.unwrap_or_default());
            deb_verrevcmp(rev_a.as_bytes(), rev_b.as_bytes())
        })
}

/// dpkg's weight of a character outside a run of digits: `~` before everything, even the end;
/// letters before other characters.
fn deb_order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(b'~') => -1,
        Some(c) => i32::from(c) + 256,
    }
}

/// dpkg's `verrevcmp`: alternating non-digit runs (by [`deb_order`]) and digit runs (by value).
fn deb_verrevcmp(a: &[u8], b: &[u8]) -> Ordering {
    let (mut i, mut j) = (0, 0);
    let digit = |s: &[u8], k: usize| s.get(k).is_some_and(u8::is_ascii_digit);
    while i < a.len() || j < b.len() {
        while (i < a.len() && !digit(a, i)) || (j < b.len() && !digit(b, j)) {
            let (ac, bc) = (deb_order(a.get(i).copied()), deb_order(b.get(j).copied()));
            if ac != bc {
                return ac.cmp(&bc);
            }
            i += 1;
            j += 1;
        }
        while a.get(i) == Some(&b'0') {
            i += 1;
        }
        while b.get(j) == Some(&b'0') {
            j += 1;
        }
        let mut first_diff = Ordering::Equal;
        while digit(a, i) && digit(b, j) {
            if first_diff == Ordering::Equal {
                first_diff = a[i].cmp(&b[j]);
            }
            i += 1;
            j += 1;
        }
        if digit(a, i) {
            return Ordering::Greater;
        }
        if digit(b, j) {
            return Ordering::Less;
        }
        if first_diff != Ordering::Equal {
            return first_diff;
        }
    }
    Ordering::Equal
}

/// Orders two rpm versions (`[epoch:]version[-release]`) as rpm's `rpmverCmp` does: a version
/// without a release is older than the same version with any release, even an empty one.
pub(super) fn compare_rpm(a: &str, b: &str) -> Ordering {
    let (epoch_a, rest_a) = split_epoch(a);
    let (epoch_b, rest_b) = split_epoch(b);
    let (ver_a, rel_a) = split_release(rest_a);
    let (ver_b, rel_b) = split_release(rest_b);
    cmp_digits(epoch_a, epoch_b)
        .then_with(|| rpmvercmp(ver_a.as_bytes(), ver_b.as_bytes()))
        .then_with(|| match (rel_a, rel_b) {
            (Some(rel_a), Some(rel_b)) => rpmvercmp(rel_a.as_bytes(), rel_b.as_bytes()),
            (rel_a, rel_b) => rel_a.is_some().cmp(&rel_b.is_some()),
        })
}

/// rpm's `rpmvercmp`: segments of digits or of letters, compared in turn; separators only
/// split; `~` sorts before everything, `^` after the end but before anything else.
fn rpmvercmp(a: &[u8], b: &[u8]) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    let sep = |c: u8| !c.is_ascii_alphanumeric() && c != b'~' && c != b'^';
    let (mut i, mut j) = (0, 0);
    loop {
        while a.get(i).is_some_and(|&c| sep(c)) {
            i += 1;
        }
        while b.get(j).is_some_and(|&c| sep(c)) {
            j += 1;
        }
        let (ca, cb) = (a.get(i).copied(), b.get(j).copied());
        if ca == Some(b'~') || cb == Some(b'~') {
            if ca != Some(b'~') {
                return Ordering::Greater;
            }
            if cb != Some(b'~') {
                return Ordering::Less;
            }
            i += 1;
            j += 1;
            continue;
        }
        if ca == Some(b'^') || cb == Some(b'^') {
            if ca.is_none() {
                return Ordering::Less;
            }
            if cb.is_none() {
                return Ordering::Greater;
            }
            if ca != Some(b'^') {
                return Ordering::Greater;
            }
            if cb != Some(b'^') {
                return Ordering::Less;
            }
            i += 1;
            j += 1;
            continue;
        }
        let (Some(ca), Some(_)) = (ca, cb) else {
            break;
        };
        let numeric = ca.is_ascii_digit();
        let class = |c: &u8| {
            if numeric {
                c.is_ascii_digit()
            } else {
                c.is_ascii_alphabetic()
            }
        };
        let end_a = i + a[i..].iter().take_while(|c| class(c)).count();
        let end_b = j + b[j..].iter().take_while(|c| class(c)).count();
        if end_b == j {
            // One numeric, the other alphabetic: the numeric segment is newer.
            return if numeric {
                Ordering::Greater
            } else {
                Ordering::Less
            };
        }
        let (mut seg_a, mut seg_b) = (&a[i..end_a], &b[j..end_b]);
        if numeric {
            while seg_a.first() == Some(&b'0') {
                seg_a = &seg_a[1..];
            }
            while seg_b.first() == Some(&b'0') {
                seg_b = &seg_b[1..];
            }
            match seg_a.len().cmp(&seg_b.len()) {
                Ordering::Equal => {}
                longer => return longer,
            }
        }
        match seg_a.cmp(seg_b) {
            Ordering::Equal => {}
            other => return other,
        }
        i = end_a;
        j = end_b;
    }
    match (i >= a.len(), j >= b.len()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        _ => Ordering::Greater,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::io::Write;
    use std::process::{Command, Stdio};
    use std::time::Instant;

    use super::*;
    use Ordering::{Equal, Greater, Less};

    /// Hand-picked Debian cases (and any regression the comparison with dpkg finds); dpkg is
    /// asked about their versions too.
    const DEB_CASES: &[(&str, &str, Ordering)] = &[
        ("5.2.15-2+b13", "5.2.15-2+b8", Greater),
        ("2.36-9+deb12u14", "2.36-9+deb12u7", Greater),
        ("1:0.1", "2.0", Greater),
        ("1.0~rc1", "1.0", Less),
        ("1.0~rc1", "1.0~rc1~1", Greater),
        ("1.0", "1.0-1", Less),
        ("1.0", "1.00", Equal),
        ("1.0a", "1.0", Greater),
        ("1.0a", "1.0+", Less),
        ("1.2.3", "1.10", Less),
        ("2.10-3", "2.10-3", Equal),
        ("0:2.10-3", "2.10-3", Equal),
    ];

    /// Hand-picked rpm cases (and regressions the comparison with rpm found); rpm is asked about
    /// their versions too.
    const RPM_CASES: &[(&str, &str, Ordering)] = &[
        ("5.14.0-427.13.1.el9_4", "5.14.0-362.8.1.el9_3", Greater),
        ("2:1.0-1", "1:9.9-9", Greater),
        ("1.0", "1.0.1", Less),
        ("1.0~rc1", "1.0", Less),
        ("1.0^post1", "1.0", Greater),
        ("1.0^post1", "1.0.1", Less),
        ("1.0a", "1.0", Greater),
        ("1.0", "1.a", Greater),
        ("1.01", "1.1", Equal),
        ("1.0_1", "1.0.1", Equal),
        ("2.34-100.el9", "2.34-100.el9", Equal),
        // Found by the comparison with rpm: epochs past u64 (brine read both as u64::MAX), and
        // a release of separators only against none (brine read no release as an empty one).
        ("18446744073709551617:1", "18446744073709551616:2", Greater),
        ("1.0", "1.0-", Less),
        ("1.0-~", "1.0", Greater),
        ("1:1.0-._", "01:1.0", Greater),
        (":1.0", "0:1.0", Equal),
    ];

    fn check_cases(compare: fn(&str, &str) -> Ordering, cases: &[(&str, &str, Ordering)]) {
        for &(a, b, want) in cases {
            assert_eq!(compare(a, b), want, "{a} vs {b}");
            assert_eq!(compare(b, a), want.reverse(), "{b} vs {a}");
        }
    }

    #[test]
    fn debian_versions_order_as_dpkg_orders_them() {
        check_cases(compare_deb, DEB_CASES);
    }

    #[test]
    fn rpm_versions_order_as_rpm_orders_them() {
        check_cases(compare_rpm, RPM_CASES);
    }

    // ---- against dpkg and rpm themselves ---------------------------------------------------

    /// splitmix64: a fixed stream, so a failure names the same versions on every run.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        fn below(&mut self, n: usize) -> usize {
            usize::try_from(self.next() % n as u64).expect("below n")
        }

        fn percent(&mut self, p: u64) -> bool {
            self.next() % 100 < p
        }

        fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
            items[self.below(items.len())]
        }
    }

    /// Digit runs: leading zeros, zero itself, numbers past `u64`.
    const DIGITS: &[&str] = &[
        "0",
        "00",
        "1",
        "01",
        "001",
        "2",
        "9",
        "10",
        "010",
        "99",
        "100",
        "4294967296",
        "18446744073709551616",
    ];
    const LETTERS: &[&str] = &[
        "a", "b", "z", "A", "Z", "rc", "beta", "git", "el", "deb", "p",
    ];

    /// How one manager's versions are written, and brine's order of them.
    struct Dialect {
        /// The program asked, for messages.
        tool: &'static str,
        compare: fn(&str, &str) -> Ordering,
        /// What may stand between runs of digits and letters (empty parts included: `..`).
        separators: &'static [&'static str],
        epochs: &'static [&'static str],
        /// What a close neighbour of a version adds to its end.
        tails: &'static [&'static str],
        /// Whether the program takes the version at all (dpkg refuses a few forms).
        valid: fn(&str) -> bool,
    }

    const DPKG: Dialect = Dialect {
        tool: "dpkg --compare-versions",
        compare: compare_deb,
        separators: &[".", ".", "+", "~", "~~", "..", ".~", "+~", "~+"],
        epochs: &["0", "1", "2", "01", "10", "007"],
        tails: &[
            "~", "~~", "0", ".0", "a", "+", ".", "~rc1", "-1", "-0", "-~", "+b1",
        ],
        valid: dpkg_accepts,
    };

    const RPM: Dialect = Dialect {
        tool: "rpm's rpm.vercmp",
        compare: compare_rpm,
        separators: &[
            ".", ".", "_", "+", "~", "^", "~~", "^^", "..", "~^", "^~", "._", "+.",
        ],
        epochs: &[
            "",
            "0",
            "1",
            "2",
            "01",
            "10",
            "18446744073709551616",
            "18446744073709551617",
        ],
        tails: &[
            "~", "^", "0", ".0", "a", "_", ".", "~rc1", "^1", "-1", "-0", "-", "-~", "^~",
        ],
        valid: |v| !v.is_empty(),
    };

    /// dpkg's hard errors (it only warns about other oddities): an epoch that is not a number
    /// of at most 9 digits, an empty version or revision.
    fn dpkg_accepts(v: &str) -> bool {
        let rest = match v.split_once(':') {
            Some((epoch, rest)) => {
                let number = !epoch.is_empty() && epoch.bytes().all(|b| b.is_ascii_digit());
                if !number || epoch.len() > 9 {
                    return false;
                }
                rest
            }
            None => v,
        };
        match rest.rsplit_once('-') {
            Some((upstream, revision)) => !upstream.is_empty() && !revision.is_empty(),
            None => !rest.is_empty(),
        }
    }

    /// One to `max` runs of digits, letters and separators.
    fn runs(rng: &mut Rng, dialect: &Dialect, digit_first: bool, max: usize) -> String {
        let mut s = String::new();
        for k in 0..=rng.below(max) {
            let run = match rng.below(3) {
                _ if k == 0 && digit_first => rng.pick(DIGITS),
                0 => rng.pick(DIGITS),
                1 => rng.pick(LETTERS),
                _ => rng.pick(dialect.separators),
            };
            s.push_str(run);
        }
        s
    }

    /// `[epoch:]version[-release]`, now and then with a colon or a dash inside the version (the
    /// release starts at the last dash), or (rpm) an empty release.
    fn version(rng: &mut Rng, dialect: &Dialect) -> String {
        let mut v = String::new();
        let epoch = rng.percent(30);
        if epoch {
            v += rng.pick(dialect.epochs);
            v += ":";
        }
        let digit_first = rng.percent(95);
        v += &runs(rng, dialect, digit_first, 6);
        if epoch && rng.percent(10) {
            v += ":";
            v += &runs(rng, dialect, false, 2);
        }
        if rng.percent(55) {
            if rng.percent(10) {
                v += "-";
                v += &runs(rng, dialect, false, 2);
            }
            v += "-";
            v += &runs(rng, dialect, false, 3);
        }
        v
    }

    /// A version close to `v`: a tail added, an epoch added or taken away, a leading zero, a
    /// digit or a separator changed, a separator put in.
    fn neighbour(rng: &mut Rng, dialect: &Dialect, v: &str) -> String {
        let at = |rng: &mut Rng, pred: fn(char) -> bool| {
            let spots: Vec<usize> = v
                .char_indices()
                .filter(|(_, c)| pred(*c))
                .map(|(i, _)| i)
                .collect();
            (!spots.is_empty()).then(|| spots[rng.below(spots.len())])
        };
        let sep = |c: char| !c.is_ascii_alphanumeric();
        let mut w = v.to_owned();
        match rng.below(6) {
            0 => w += rng.pick(dialect.tails),
            1 => match v.split_once(':') {
                Some((_, rest)) => w = rest.to_owned(),
                None => w = format!("{}:{v}", rng.pick(&["0", "00", "1"])),
            },
            2 => {
                if let Some(i) = at(rng, |c| c.is_ascii_digit()) {
                    w.insert(i, '0');
                }
            }
            3 => {
                if let Some(i) = at(rng, |c| c.is_ascii_digit()) {
                    w.replace_range(i..=i, rng.pick(&["0", "1", "9"]));
                }
            }
            4 => {
                if let Some(i) = at(rng, sep) {
                    w.replace_range(i..=i, rng.pick(dialect.separators));
                }
            }
            _ => {
                let i = rng.below(v.len() + 1);
                if v.is_char_boundary(i) {
                    w.insert_str(i, rng.pick(dialect.separators));
                }
            }
        }
        w
    }

    /// The versions a test orders: the hand-written cases, generated versions and close
    /// neighbours of them, each once, all of them ones the program takes.
    fn pool(dialect: &Dialect, seed: u64, known: &[(&str, &str, Ordering)]) -> Vec<String> {
        let mut rng = Rng(seed);
        let mut pool: Vec<String> = known
            .iter()
            .flat_map(|(a, b, _)| [(*a).to_owned(), (*b).to_owned()])
            .collect();
        pool.extend((0..300).map(|_| version(&mut rng, dialect)));
        for _ in 0..450 {
            let v = pool[rng.below(pool.len())].clone();
            pool.push(neighbour(&mut rng, dialect, &v));
        }
        let unique: BTreeSet<String> = pool.into_iter().filter(|v| (dialect.valid)(v)).collect();
        unique.into_iter().collect()
    }

    /// Runs a checker that reads `a b` lines on stdin and answers each with `-1`, `0` or `1`.
    fn ask(argv: &[&str], pairs: &[(&str, &str)]) -> Vec<Ordering> {
        let input: String = pairs.iter().map(|(a, b)| format!("{a} {b}\n")).collect();
        let mut child = Command::new("timeout")
            .args(["--kill-after=5", "120"])
            .args(argv)
            .env("LC_ALL", "C")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run timeout");
        let mut stdin = child.stdin.take().expect("stdin");
        let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
        let out = child.wait_with_output().expect("wait for the checker");
        writer.join().expect("writer").expect("write the pairs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last: Vec<&str> = stderr.lines().rev().take(20).collect();
        let stderr = last.into_iter().rev().collect::<Vec<_>>().join("\n");
        assert!(out.status.success(), "{argv:?}: {}\n{stderr}", out.status);
        let answers: Vec<Ordering> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .zip(pairs)
            .map(|(line, (a, b))| match line {
                "-1" => Ordering::Less,
                "0" => Ordering::Equal,
                "1" => Ordering::Greater,
                other => panic!("{argv:?} answered {other:?} for {a:?} vs {b:?}\n{stderr}"),
            })
            .collect();
        assert_eq!(
            answers.len(),
            pairs.len(),
            "{argv:?} answered too few\n{stderr}"
        );
        answers
    }

    /// Sorts the pool with brine's order and asks `checker` about each neighbouring pair; every
    /// answer must be brine's. The checker's order is total, so then it orders the whole pool
    /// as brine sorted it, and brine must order every pair of the pool by those places too.
    fn agrees(dialect: &Dialect, seed: u64, known: &[(&str, &str, Ordering)], checker: &[&str]) {
        let started = Instant::now();
        let compare = dialect.compare;
        let mut pool = pool(dialect, seed, known);
        pool.sort_by(|a, b| compare(a, b));
        let pairs: Vec<(&str, &str)> = pool
            .windows(2)
            .map(|w| (w[0].as_str(), w[1].as_str()))
            .collect();
        let answers = ask(checker, &pairs);
        let wrong: Vec<String> = pairs
            .iter()
            .zip(&answers)
            .filter(|((a, b), want)| compare(a, b) != **want)
            .map(|((a, b), want)| {
                let got = compare(a, b);
                format!("  {a:?} vs {b:?}: brine {got:?}, {} {want:?}", dialect.tool)
            })
            .collect();
        assert!(
            wrong.is_empty(),
            "{} of {} neighbouring pairs ordered otherwise than {}:\n{}",
            wrong.len(),
            pairs.len(),
            dialect.tool,
            wrong.join("\n")
        );
        let mut place = vec![0_usize];
        for answer in &answers {
            let last = place[place.len() - 1];
            place.push(last + usize::from(*answer == Ordering::Less));
        }
        for (i, a) in pool.iter().enumerate() {
            for (j, b) in pool.iter().enumerate().skip(i + 1) {
                let want = place[i].cmp(&place[j]);
                assert_eq!(
                    compare(a, b),
                    want,
                    "{a:?} vs {b:?}: brine's order is not total"
                );
                assert_eq!(compare(b, a), want.reverse(), "{b:?} vs {a:?}");
            }
        }
        eprintln!(
            "{} versions ({} pairs) ordered as {} orders them, in {:.1?}",
            pool.len(),
            pool.len() * (pool.len() - 1) / 2,
            dialect.tool,
            started.elapsed()
        );
    }

    /// Whether `argv` runs and prints `want`; `None` when the program is not installed.
    fn prints(argv: &[&str], want: &str) -> Option<bool> {
        let out = Command::new(argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .output()
            .ok()?;
        Some(out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == want)
    }

    /// One `dpkg --compare-versions` per question: `lt`, then `eq`.
    const DPKG_CHECKER: &str = r#"while read -r a b; do
        if dpkg --compare-versions "$a" lt "$b" </dev/null; then echo -1
        elif [ $? -ne 1 ]; then echo error
        elif dpkg --compare-versions "$a" eq "$b" </dev/null; then echo 0
        elif [ $? -ne 1 ]; then echo error
        else echo 1
        fi
    done"#;

    /// rpm's own comparison of `[epoch:]version[-release]` strings (rpmverParse, rpmverCmp).
    const RPM_CHECKER: &str = r#"for line in io.lines() do
        local a, b = line:match("^(%S+) (%S+)$")
        print(rpm.vercmp(a, b))
    end"#;

    #[test]
    fn debian_versions_order_as_dpkg_itself_orders_them() {
        if prints(&["dpkg", "--compare-versions", "1", "lt", "2"], "") != Some(true) {
            eprintln!("skipping the comparison with dpkg: dpkg is not installed");
            return;
        }
        agrees(&DPKG, 12_17, DEB_CASES, &["sh", "-c", DPKG_CHECKER]);
    }

    #[test]
    fn rpm_versions_order_as_rpm_itself_orders_them() {
        let skip = match prints(&["rpmlua", "-e", r#"print(rpm.vercmp("1:1", "2-1"))"#], "1") {
            None => "rpmlua is not installed (Debian's rpm package has it)",
            Some(false) => "rpmlua's rpm.vercmp does not read epochs (rpm 4.18 does)",
            Some(true) => "",
        };
        if !skip.is_empty() {
            eprintln!("skipping the comparison with rpm: {skip}");
            return;
        }
        agrees(&RPM, 17_12, RPM_CASES, &["rpmlua", "-e", RPM_CHECKER]);
    }
}
