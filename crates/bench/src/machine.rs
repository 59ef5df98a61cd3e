//! What the report says about where and when it was measured: processors, CPU model, kernel,
//! memory, the open-file limit, the date and the commit of the source that was built.

use std::path::Path;
use std::time::SystemTime;

use nix::sys::resource::{getrlimit, setrlimit, Resource};

use crate::procfs;

/// The machine and the moment of a run.
#[derive(Debug, Clone)]
pub struct Machine {
    pub nproc: usize,
    pub cpu_model: String,
    pub kernel: String,
    pub memory_total: Option<u64>,
    /// The hard open-file limit: what every process of the run can raise itself to.
    pub fd_limit: u64,
    /// UTC, RFC 3339.
    pub date: String,
    /// The commit the benchmark's source was built from, with `-dirty` for local changes.
    pub commit: String,
    /// The load average (1, 5, 15 minutes) when the run started: how busy the machine was
    /// with other work.
    pub load: String,
}

impl Machine {
    pub fn describe() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        Self {
            nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model: cpu_model(&cpuinfo).unwrap_or_else(|| "unknown".into()),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| format!("Linux {}", s.trim()))
                .unwrap_or_else(|_| "unknown".into()),
            memory_total: procfs::mem_total().ok(),
            fd_limit: fd_limits().1,
            date: rfc3339(SystemTime::now()),
            commit: commit(Path::new(env!("CARGO_MANIFEST_DIR"))),
            load: load_average(),
        }
    }
}

/// The first three fields of `/proc/loadavg`: `2.46 2.86 2.87`.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "unknown".into())
}

/// The (soft, hard) open-file limits of this process.
pub fn fd_limits() -> (u64, u64) {
    getrlimit(Resource::RLIMIT_NOFILE).unwrap_or((1024, 1024))
}

/// Raises the soft open-file limit to the hard one; every child inherits it.
pub fn raise_fd_limit() {
    let (soft, hard) = fd_limits();
    if soft < hard {
        if let Err(err) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            eprintln!("brine-bench: could not raise the open-file limit: {err}");
        }
    }
}

/// The first `model name` of `/proc/cpuinfo`.
fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == "model name").then(|| value.trim().to_owned())
    })
}

/// `git rev-parse --short=12 HEAD` in `dir`, with `-dirty` when the tree has changes.
fn commit(dir: &Path) -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    match git(&["rev-parse", "--short=12", "HEAD"]) {
        Some(hash) => match git(&["status", "--porcelain", "--untracked-files=no"]) {
            Some(changes) if !changes.is_empty() => format!("{hash}-dirty"),
            _ => hash,
        },
        None => "unknown".into(),
    }
}

/// `2026-11-25T13:02:01Z`.
pub fn rfc3339(time: SystemTime) -> String {
    let time = jiff::Timestamp::try_from(time).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    time.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn dates_are_utc_rfc3339() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_795_611_721);
        assert_eq!(rfc3339(t), "2026-11-25T13:02:01Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn the_cpu_model_is_the_first_model_name() {
        let info =
            "processor\t: 0\nmodel name\t: AMD EPYC 7B13\nprocessor\t: 1\nmodel name\t: other\n";
        assert_eq!(cpu_model(info).as_deref(), Some("AMD EPYC 7B13"));
    }
}
