//! `status.*`: how the host is doing (uptime, load, memory), read from `/proc` and utmp, with
//! Salt's return shapes.

use std::io;
use std::time::{SystemTime, UNIX_EPOCH};

use brine_proto::{Map, Value};

use crate::args::{Args, Signature};
use crate::{blocking, Error, Function, Handler, Outcome};

/// The functions of this module.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Fun {
    Uptime,
    Loadavg,
    Meminfo,
}

pub(crate) const FUNCTIONS: &[Function] = &[
    Function {
        name: "status.uptime",
        doc: "Return the uptime of the host as a map: ``seconds`` (whole seconds since boot),\n\
              ``since_iso`` and ``since_t`` (the boot time, as UTC ISO 8601 without a zone and\n\
              as seconds since the epoch), ``days`` and ``time`` (the rest, as ``hours:minutes``,\n\
              minutes not zero-padded, as Salt writes it), and ``users``, the number of login\n\
              sessions in utmp (0 where the host keeps no utmp).\n\n\
              CLI Example:\n\n    brine '*' status.uptime",
        signature: Signature::new(&[]),
        handler: Handler::Status(Fun::Uptime),
    },
    Function {
        name: "status.loadavg",
        doc: "Return the load averages of the host as a map of ``1-min``, ``5-min`` and\n\
              ``15-min`` to numbers.\n\n\
              CLI Example:\n\n    brine '*' status.loadavg",
        signature: Signature::new(&[]),
        handler: Handler::Status(Fun::Loadavg),
    },
    Function {
        name: "status.meminfo",
        doc: "Return ``/proc/meminfo`` as a map of each field to ``{value, unit}`` (strings, as\n\
              Salt returns them; fields such as ``HugePages_Total`` have no unit), e.g.\n\
              ``{\"MemTotal\": {\"value\": \"16318412\", \"unit\": \"kB\"}, ...}``.\n\n\
              CLI Example:\n\n    brine '*' status.meminfo",
        signature: Signature::new(&[]),
        handler: Handler::Status(Fun::Meminfo),
    },
];

/// Why a status function failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StatusError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: &'static str,
        source: io::Error,
    },
    #[error("cannot understand {path}: {text:?}")]
    Parse { path: &'static str, text: String },
}

const UPTIME: &str = "/proc/uptime";
const LOADAVG: &str = "/proc/loadavg";
const MEMINFO: &str = "/proc/meminfo";
/// Where glibc keeps the login records, newest location first.
const UTMP: &[&str] = &["/run/utmp", "/var/run/utmp"];

pub(crate) async fn call(fun: Fun, _args: Args) -> Result<Outcome, Error> {
    blocking(move || match fun {
        Fun::Uptime => uptime(),
        Fun::Loadavg => loadavg(),
        Fun::Meminfo => meminfo(),
    })
    .await
}

fn read(path: &'static str) -> Result<String, StatusError> {
    std::fs::read_to_string(path).map_err(|source| StatusError::Read { path, source })
}

fn uptime() -> Result<Outcome, Error> {
    let text = read(UPTIME)?;
    let seconds = parse_uptime(&text).ok_or_else(|| StatusError::Parse {
        path: UPTIME,
        text: crate::shorten(&text),
    })?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let users = UTMP
        .iter()
        .find_map(|path| std::fs::read(path).ok())
        .map_or(0, |records| count_user_processes(&records));
    Ok(Outcome::ok(uptime_map(seconds, now, users)))
}

/// Whole seconds since boot, the first field of `/proc/uptime`.
fn parse_uptime(text: &str) -> Option<u64> {
    let secs: f64 = text.split_whitespace().next()?.parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then_some(secs as u64)
}

/// Salt's `status.uptime` map for `seconds` of uptime at `now` (seconds since the epoch).
fn uptime_map(seconds: u64, now: f64, users: usize) -> Map {
    let boot = now - seconds as f64;
    let rest = seconds % 86_400;
    let mut ret = Map::new();
    ret.insert("seconds".into(), seconds.into());
    ret.insert("since_iso".into(), iso_utc(boot).into());
    ret.insert("since_t".into(), (boot as i64).into());
    ret.insert("days".into(), (seconds / 86_400).into());
    ret.insert(
        "time".into(),
        format!("{}:{}", rest / 3600, rest % 3600 / 60).into(),
    );
    ret.insert("users".into(), users.into());
    ret
}

/// Python's `datetime.utcfromtimestamp(secs).isoformat()`: microseconds only when not zero.
fn iso_utc(secs: f64) -> String {
    let micros = (secs * 1e6).round().max(0.0) as i64;
    let time = jiff::Timestamp::from_microsecond(micros).unwrap_or(jiff::Timestamp::MAX);
    let base = time.strftime("%Y-%m-%dT%H:%M:%S").to_string();
    match time.subsec_microsecond() {
        0 => base,
        fraction => format!("{base}.{fraction:06}"),
    }
}

/// The size of glibc's `struct utmp` on Linux (the same on x86_64, aarch64 and i386).
const UTMP_RECORD: usize = 384;
/// `ut_type` of a login session.
const USER_PROCESS: i16 = 7;
/// Where `ut_user` starts in a record, and how long it is.
const UT_USER: std::ops::Range<usize> = 44..76;

/// The login sessions in utmp records, as `who` counts them: `USER_PROCESS` with a user name.
fn count_user_processes(records: &[u8]) -> usize {
    records
        .chunks_exact(UTMP_RECORD)
        .filter(|record| {
            i16::from_ne_bytes([record[0], record[1]]) == USER_PROCESS && record[UT_USER][0] != 0
        })
        .count()
}

fn loadavg() -> Result<Outcome, Error> {
    let text = read(LOADAVG)?;
    let parsed = parse_loadavg(&text).ok_or_else(|| StatusError::Parse {
        path: LOADAVG,
        text: crate::shorten(&text),
    })?;
    Ok(Outcome::ok(parsed))
}

fn parse_loadavg(text: &str) -> Option<Map> {
    let mut fields = text.split_whitespace();
    let mut ret = Map::new();
    for key in ["1-min", "5-min", "15-min"] {
        let value: f64 = fields.next()?.parse().ok()?;
        ret.insert(key.into(), serde_json::Number::from_f64(value)?.into());
    }
    Some(ret)
}

fn meminfo() -> Result<Outcome, Error> {
    Ok(Outcome::ok(parse_meminfo(&read(MEMINFO)?)))
}

/// `Name:  value [unit]` lines as Salt's map; other lines are skipped.
fn parse_meminfo(text: &str) -> Map {
    let mut ret = Map::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let (Some(name), Some(value)) = (words.next(), words.next()) else {
            continue;
        };
        let mut entry = Map::new();
        entry.insert("value".into(), value.into());
        if let Some(unit) = words.next() {
            entry.insert("unit".into(), unit.into());
        }
        ret.insert(name.trim_end_matches(':').to_owned(), Value::Object(entry));
    }
    ret
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::tests::run;

    #[tokio::test]
    async fn uptime_is_salts_map_from_proc() {
        let before = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let out = run("status.uptime", vec![], json!({})).await;
        assert!(out.success, "{out:?}");
        let ret = out.ret.as_object().unwrap();
        let mut keys: Vec<&str> = ret.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            ["days", "seconds", "since_iso", "since_t", "time", "users"]
        );
        let proc_secs = parse_uptime(&std::fs::read_to_string(UPTIME).unwrap()).unwrap();
        let seconds = ret["seconds"].as_u64().unwrap();
        assert!(
            seconds <= proc_secs && proc_secs - seconds <= 2,
            "{seconds} {proc_secs}"
        );
        let since_t = ret["since_t"].as_i64().unwrap();
        assert!((before - seconds as i64 - since_t).abs() <= 2, "{since_t}");
        assert_eq!(ret["days"], json!(seconds / 86_400));
        let iso = ret["since_iso"].as_str().unwrap();
        assert_eq!(&iso[..10], &iso_utc(since_t as f64)[..10]);
        assert!(ret["time"].as_str().unwrap().contains(':'));
        assert!(ret["users"].is_u64());
    }

    #[test]
    fn uptime_fields_are_computed_as_salt_does() {
        let map = uptime_map(2 * 86_400 + 3 * 3600 + 7 * 60 + 5, 1_000_200_000.25, 3);
        assert_eq!(
            Value::Object(map),
            json!({
                "seconds": 184_025,
                "since_iso": "2001-09-09T06:12:55.250000",
                "since_t": 1_000_015_975,
                "days": 2,
                "time": "3:7",
                "users": 3,
            })
        );
        assert_eq!(iso_utc(0.0), "1970-01-01T00:00:00");
        assert_eq!(iso_utc(951_782_400.0), "2000-02-29T00:00:00");
        assert_eq!(iso_utc(4_102_444_799.5), "2099-12-31T23:59:59.500000");
        assert_eq!(parse_uptime("12345.67 4567.89\n"), Some(12345));
        assert_eq!(parse_uptime("garbage"), None);
        assert_eq!(parse_uptime("-5 1"), None);
    }

    #[test]
    fn utmp_counts_login_sessions() {
        let record = |kind: i16, user: &[u8]| {
            let mut r = vec![0u8; UTMP_RECORD];
            r[..2].copy_from_slice(&kind.to_ne_bytes());
            r[UT_USER.start..UT_USER.start + user.len()].copy_from_slice(user);
            r
        };
        let mut records = Vec::new();
        records.extend(record(USER_PROCESS, b"alice"));
        records.extend(record(2, b"reboot"));
        records.extend(record(USER_PROCESS, b"bob"));
        records.extend(record(USER_PROCESS, b""));
        records.extend(record(8, b"carol"));
        records.extend([7u8, 0, 1]);
        assert_eq!(count_user_processes(&records), 2);
        assert_eq!(count_user_processes(&[]), 0);
    }

    #[tokio::test]
    async fn loadavg_has_three_numbers() {
        let out = run("status.loadavg", vec![], json!({})).await;
        assert!(out.success, "{out:?}");
        let ret = out.ret.as_object().unwrap();
        assert_eq!(ret.len(), 3);
        for key in ["1-min", "5-min", "15-min"] {
            assert!(ret[key].as_f64().unwrap() >= 0.0, "{key}");
        }
        assert_eq!(
            Value::Object(parse_loadavg("0.52 0.58 1.50 1/234 5678\n").unwrap()),
            json!({"1-min": 0.52, "5-min": 0.58, "15-min": 1.5})
        );
        assert_eq!(parse_loadavg("0.5 x"), None);
    }

    #[tokio::test]
    async fn meminfo_is_proc_meminfo() {
        let out = run("status.meminfo", vec![], json!({})).await;
        assert!(out.success, "{out:?}");
        let total = &out.ret["MemTotal"];
        assert_eq!(total["unit"], json!("kB"));
        let kib: u64 = total["value"].as_str().unwrap().parse().unwrap();
        let grains = crate::tests::ctx().grains;
        assert_eq!(json!(kib / 1024), grains["mem_total"]);
        assert!(out.ret.get("MemFree").is_some());

        let parsed = parse_meminfo("MemTotal:  100 kB\nHugePages_Total:  0\n\nodd\n");
        assert_eq!(
            Value::Object(parsed),
            json!({
                "MemTotal": {"value": "100", "unit": "kB"},
                "HugePages_Total": {"value": "0"},
            })
        );
    }
}
