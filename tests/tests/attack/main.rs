//! The real `brine-master` process under attack. Each module reproduces attacks that were
//! found against it (issue 11 lists them) and asserts that the master survives them: it keeps
//! serving real minions and root, and stays within its memory and log bounds.

mod audit_log;
mod connections;
mod control_socket;
mod hostile_peers;
mod key_enrollment;
mod large_messages;
mod large_returns;
mod local_users;
mod publications;
mod publish_port;
mod stuck_subscribers;
mod watchdog;
mod zmtp;

/// The memory figures of a process's `/proc/<pid>/status`, in bytes.
#[derive(Debug, Clone, Copy)]
struct Rss {
    /// Resident now (`VmRSS`).
    now: u64,
    /// The peak (`VmHWM`).
    peak: u64,
}

fn rss_of(pid: u32) -> Rss {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        let line = status.lines().find(|l| l.starts_with(name)).unwrap();
        let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        kib * 1024
    };
    Rss {
        now: field("VmRSS:"),
        peak: field("VmHWM:"),
    }
}

const MIB: u64 = 1024 * 1024;

/// Resets the peak (`VmHWM`) of `pid` to what it holds now (proc(5), `clear_refs`).
fn reset_peak(pid: u32) {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").unwrap();
}

/// Waits (up to 30 s) until `pid` holds less than `baseline + rise`; gives what it holds then.
async fn settles_near(pid: u32, baseline: u64, rise: u64) -> u64 {
    brine_tests::fleet::eventually(
        "the master's memory to come back near where it was",
        std::time::Duration::from_secs(30),
        || async {
            let now = rss_of(pid).now;
            (now < baseline + rise).then_some(now)
        },
    )
    .await
}

/// A successful `test.ping` return of `id` for `jid` whose value is `bytes` long.
fn large_return(id: &str, jid: brine_proto::Jid, bytes: usize) -> brine_proto::JobReturn {
    let id = brine_proto::MinionId::new(id).unwrap();
    brine_proto::JobReturn::new(id, jid, "test.ping", "x".repeat(bytes))
}
