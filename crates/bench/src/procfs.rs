//! Readings from `/proc`: a process's memory (VmRSS, VmHWM), its CPU time and open files, the
//! machine's available memory, and a sampler that follows a process's peak resident memory.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// A `kB` field of `/proc/<pid>/status` (`VmRSS`, `VmHWM`), in bytes.
fn status_bytes(pid: u32, field: &str) -> io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    kib_field(&status, field)
        .map(|kib| kib * 1024)
        .ok_or_else(|| io::Error::other(format!("no {field} in /proc/{pid}/status")))
}

/// The value of `field:   1234 kB` in a `/proc` file.
fn kib_field(text: &str, field: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// The process's resident memory now.
pub fn rss(pid: u32) -> io::Result<u64> {
    status_bytes(pid, "VmRSS")
}

/// The process's peak resident memory over its life so far.
pub fn hwm(pid: u32) -> io::Result<u64> {
    status_bytes(pid, "VmHWM")
}

/// CPU time the process has used so far, user and system, all threads (utime + stime of
/// `/proc/<pid>/stat`; the kernel counts them in clock ticks, usually 10 ms each).
pub fn cpu_time(pid: u32) -> io::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let ticks = stat_ticks(&stat)
        .ok_or_else(|| io::Error::other(format!("unreadable /proc/{pid}/stat")))?;
    Ok(Duration::from_secs_f64(ticks as f64 / ticks_per_second()?))
}

/// utime + stime from a `/proc/<pid>/stat` line. The command name (field 2) may hold spaces
/// and parentheses, so fields are counted after its closing parenthesis: state is field 3,
/// utime field 14 and stime field 15.
fn stat_ticks(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(14 - 3)?.parse().ok()?;
    let stime: u64 = fields.get(15 - 3)?.parse().ok()?;
    Some(utime + stime)
}

/// The clock ticks per second `/proc` counts in (`USER_HZ`).
pub fn ticks_per_second() -> io::Result<f64> {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
        Ok(Some(hz)) if hz > 0 => Ok(hz as f64),
        _ => Err(io::Error::other("sysconf(CLK_TCK) failed")),
    }
}

/// How many files the process has open.
pub fn open_files(pid: u32) -> io::Result<usize> {
    Ok(std::fs::read_dir(format!("/proc/{pid}/fd"))?.count())
}

/// `MemAvailable` of `/proc/meminfo`, in bytes.
pub fn mem_available() -> io::Result<u64> {
    meminfo("MemAvailable")
}

/// `MemTotal` of `/proc/meminfo`, in bytes.
pub fn mem_total() -> io::Result<u64> {
    meminfo("MemTotal")
}

fn meminfo(field: &str) -> io::Result<u64> {
    let text = std::fs::read_to_string("/proc/meminfo")?;
    kib_field(&text, field)
        .map(|kib| kib * 1024)
        .ok_or_else(|| io::Error::other(format!("no {field} in /proc/meminfo")))
}

/// Samples a process's VmRSS on a thread of its own and keeps the largest value seen.
#[derive(Debug)]
pub struct PeakSampler {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<u64>>,
}

impl PeakSampler {
    /// Starts sampling `pid` every `every`.
    pub fn start(pid: u32, every: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut peak = 0;
            while !flag.load(Ordering::Relaxed) {
                if let Ok(now) = rss(pid) {
                    peak = peak.max(now);
                }
                std::thread::sleep(every);
            }
            peak
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops sampling; the peak VmRSS seen, in bytes (0 when no sample could be read).
    pub fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .and_then(|thread| thread.join().ok())
            .unwrap_or(0)
    }
}

impl Drop for PeakSampler {
    fn drop(&mut self) {
        // The thread sees the flag within one interval and ends by itself.
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_fields_are_read_in_kib() {
        let status = "Name:\tbrine-master\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\n";
        assert_eq!(kib_field(status, "VmRSS"), Some(10240));
        assert_eq!(kib_field(status, "VmHWM"), Some(20480));
        assert_eq!(kib_field(status, "VmSwap"), None);
    }

    #[test]
    fn cpu_ticks_are_counted_after_the_command_name() {
        let stat = "4242 (brine (x) y) S 1 4242 4242 0 -1 4194560 900 0 0 0 17 5 0 0 20 0 8";
        assert_eq!(stat_ticks(stat), Some(22));
    }

    #[test]
    fn this_process_can_be_read() {
        let me = std::process::id();
        assert!(rss(me).unwrap() > 0);
        assert!(hwm(me).unwrap() >= rss(me).unwrap() / 2);
        assert!(open_files(me).unwrap() >= 3);
        cpu_time(me).unwrap();
        assert!(mem_available().unwrap() > 0);
    }
}
