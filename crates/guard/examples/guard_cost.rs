//! Measures what the guard costs on the return path: REQ→REP round trips on loopback, direct
//! and through a guard, one client and many, small messages and large.
//!
//! `cargo run --release -p brine-guard --example guard_cost [round_trips] [clients]`

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use brine_guard::{listen, Guard, GuardLimits};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use zeromq::{Endpoint, RepSocket, ReqSocket, Socket, SocketRecv, SocketSend, ZmqMessage};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let round_trips: usize = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(20_000);
    let clients: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(32);

    let cancel = CancellationToken::new();
    let tracker = TaskTracker::new();
    let mut rep = RepSocket::new();
    let Endpoint::Tcp(_, port) = rep.bind("tcp://127.0.0.1:0").await? else {
        return Err("not a tcp endpoint".into());
    };
    tracker.spawn(echo(rep, cancel.clone()));
    let direct = SocketAddr::from(([127, 0, 0, 1], port));
    let listener = listen("127.0.0.1:0".parse()?)?;
    let guard = Guard::spawn(
        "cost",
        listener,
        direct,
        GuardLimits::return_port(),
        cancel.clone(),
        &tracker,
    )?;
    let guarded = guard.local_addr();

    let targets = [("direct", direct), ("guarded", guarded)];
    // The runs alternate and each figure is the median of ROUNDS, so that whatever else the
    // machine is doing falls on both sides alike.
    one_client(direct, round_trips / 10, 200).await?;
    one_client(guarded, round_trips / 10, 200).await?;

    println!("{round_trips} round trips of 200 bytes, one client (median of {ROUNDS}):");
    let mut runs = [Vec::new(), Vec::new()];
    for _ in 0..ROUNDS {
        for (i, (_, addr)) in targets.iter().enumerate() {
            runs[i].push(bounded(one_client(*addr, round_trips, 200)).await?);
        }
    }
    report(&targets, runs, None);

    let each = round_trips / clients;
    println!("{clients} clients x {each} round trips of 200 bytes (median of {ROUNDS}):");
    let mut runs = [Vec::new(), Vec::new()];
    for _ in 0..ROUNDS {
        for (i, (_, addr)) in targets.iter().enumerate() {
            runs[i].push(bounded(many_clients(*addr, clients, each)).await?);
        }
    }
    report(&targets, runs, None);

    println!("20 round trips of 4 MiB, one client (median of {ROUNDS}):");
    let mut runs = [Vec::new(), Vec::new()];
    for _ in 0..ROUNDS {
        for (i, (_, addr)) in targets.iter().enumerate() {
            runs[i].push(bounded(one_client(*addr, 20, 4 * 1024 * 1024)).await?);
        }
    }
    report(&targets, runs, Some(4 * 1024 * 1024));
    println!("guard: {:?}", guard.stats());

    cancel.cancel();
    tracker.close();
    tracker.wait().await;
    Ok(())
}

const ROUNDS: usize = 5;

/// A run that does not finish within a minute is stuck, not slow: zeromq 0.7's REP socket can
/// deadlock a worker thread when peers connect and disconnect at the same time (its
/// `peer_disconnected` takes a blocking `scc` lock inside `poll`).
async fn bounded<E: Into<Box<dyn std::error::Error>>>(
    run: impl std::future::Future<Output = Result<Run, E>>,
) -> Result<Run, Box<dyn std::error::Error>> {
    match tokio::time::timeout(Duration::from_secs(60), run).await {
        Ok(run) => run.map_err(Into::into),
        Err(_) => Err("a run was stuck for 60 s (the REP socket hung)".into()),
    }
}

/// Prints the median run of each target, by round trips per second.
fn report(targets: &[(&str, SocketAddr); 2], runs: [Vec<Run>; 2], size: Option<usize>) {
    for ((name, _), mut runs) in targets.iter().zip(runs) {
        runs.sort_by(|a, b| a.per_sec().total_cmp(&b.per_sec()));
        let run = &runs[runs.len() / 2];
        match size {
            Some(size) => {
                let mib = (2 * size * run.latencies.len()) as f64 / (1024.0 * 1024.0);
                let rate = mib / run.elapsed.as_secs_f64();
                println!("  {name:8} {run}  {rate:>5.0} MiB/s both ways");
            }
            None => println!("  {name:8} {run}"),
        }
    }
}

async fn many_clients(
    addr: SocketAddr,
    clients: usize,
    each: usize,
) -> Result<Run, Box<dyn std::error::Error>> {
    let cpu = cpu_time();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        tasks.push(tokio::spawn(one_client(addr, each, 200)));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??.latencies);
    }
    let cpu = cpu
        .zip(cpu_time())
        .map(|(before, after)| after.saturating_sub(before));
    Ok(Run::new(latencies, started.elapsed(), cpu))
}

async fn echo(mut rep: RepSocket, cancel: CancellationToken) {
    loop {
        let received = tokio::select! {
            _ = cancel.cancelled() => return,
            received = rep.recv() => received,
        };
        if let Ok(message) = received {
            let _ = rep.send(message).await;
        }
    }
}

async fn one_client(
    addr: SocketAddr,
    round_trips: usize,
    size: usize,
) -> Result<Run, zeromq::ZmqError> {
    let mut req = ReqSocket::new();
    req.connect(&format!("tcp://{addr}")).await?;
    let payload = vec![0x5Au8; size];
    let mut latencies = Vec::with_capacity(round_trips);
    let cpu = cpu_time();
    let started = Instant::now();
    for _ in 0..round_trips {
        let sent = Instant::now();
        req.send(ZmqMessage::from(payload.clone())).await?;
        let reply = req.recv().await?;
        latencies.push(sent.elapsed());
        assert_eq!(reply.get(0).map(|f| f.len()), Some(size));
    }
    let cpu = cpu
        .zip(cpu_time())
        .map(|(before, after)| after.saturating_sub(before));
    Ok(Run::new(latencies, started.elapsed(), cpu))
}

/// This process's user + system CPU time, from /proc (Linux only; 10 ms resolution).
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The fields after the command name (which ends with ')'): utime and stime are 12 and 13.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

struct Run {
    latencies: Vec<Duration>,
    elapsed: Duration,
    /// Process CPU time (all threads: clients, guard, REP) over the run, when known.
    cpu: Option<Duration>,
}

impl Run {
    fn new(mut latencies: Vec<Duration>, elapsed: Duration, cpu: Option<Duration>) -> Self {
        latencies.sort_unstable();
        Self {
            latencies,
            elapsed,
            cpu,
        }
    }

    fn per_sec(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&self, p: f64) -> Duration {
        let at = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies.get(at).copied().unwrap_or_default()
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let per_sec = self.per_sec();
        write!(
            f,
            "{per_sec:>8.0} round trips/s  p50 {:>7.1} µs  p99 {:>7.1} µs",
            self.percentile(0.5).as_secs_f64() * 1e6,
            self.percentile(0.99).as_secs_f64() * 1e6,
        )?;
        if let Some(cpu) = self.cpu {
            let per = cpu.as_secs_f64() * 1e6 / self.latencies.len() as f64;
            write!(f, "  cpu {per:>6.1} µs/round trip")?;
        }
        Ok(())
    }
}
