//! The transport baseline: what one job round costs the bare zeromq crate on this machine,
//! with no cryptography, no storage and no brine code, so that every brine figure can also be
//! read as a ratio to it.
//!
//! Two processes, like a master and its minions: [`server`] binds a PUB and a REP socket on
//! loopback (with the master's listen backlog); [`client`] connects N SUB and N REQ sockets to
//! them. A round is one PUB message of [`BODY`] bytes; every SUB that receives it sends one
//! REQ of [`BODY`] bytes and waits for the REP's two-byte answer. The round's time runs from
//! just before the PUB send until the server has answered the N-th REQ of that round.
//!
//! The message sequence:
//!
//! 1. The server binds and prints `listening <pub port> <rep port>`.
//! 2. The runner starts the client. Each pair connects its SUB (subscribing to everything)
//!    and its REQ, then sends a [`HELLO`] REQ; the server answers them until it has N.
//! 3. Sync: the server publishes round 0 every 20 ms (a subscription that reaches the PUB
//!    after a message was sent never sees it) and answers REQs until each of the N pairs has
//!    sent one for round 0; then it prints `synced`. A pair answers each round once, however
//!    often it sees it. (Publishing before every pair is connected would flood the pairs
//!    that are, and starve the connections still being made.)
//! 4. Rounds 1..=R, 50 ms apart: the server publishes round k, answers REQs until it has N of
//!    round k, and prints `round <k> <nanoseconds>`; then `done`.
//!
//! [`measure`] is the runner's side: it starts both, reads the rounds and kills both.

pub mod client;
pub mod server;

use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use tokio::process::Command;

use crate::proc::Child;

/// The size of the published message and of each REQ: about a small signed job or return.
pub const BODY: usize = 100;

/// The round a pair's first REQ carries: it is connected.
pub const HELLO: u64 = u64::MAX;

/// A message of [`BODY`] bytes carrying `round`.
pub fn message(round: u64) -> Vec<u8> {
    let mut body = vec![b'.'; BODY];
    body[..8].copy_from_slice(&round.to_le_bytes());
    body
}

/// The round a message carries.
pub fn round_of(body: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(body.get(..8)?.try_into().ok()?))
}

/// Runs `reps` baseline rounds with `n` pairs: the time of each. `exe` is this program;
/// the logs go to `dir`.
pub async fn measure(exe: &Path, dir: &Path, n: usize, reps: u32) -> anyhow::Result<Vec<Duration>> {
    let mut command = Command::new(exe);
    command.args([
        "baseline-server",
        "--n",
        &n.to_string(),
        "--rounds",
        &reps.to_string(),
    ]);
    let mut server = Child::spawn(
        "baseline-server",
        command,
        &dir.join("baseline-server.log"),
        true,
    )?;
    let listening = server
        .next_line(Duration::from_secs(10), "its ports")
        .await?;
    let (publish, ret) = parse_listening(&listening)?;

    let mut command = Command::new(exe);
    command.args([
        "baseline-client",
        "--n",
        &n.to_string(),
        "--pub-port",
        &publish.to_string(),
        "--rep-port",
        &ret.to_string(),
    ]);
    let mut client = Child::spawn(
        "baseline-client",
        command,
        &dir.join("baseline-client.log"),
        false,
    )?;

    let sync_timeout = Duration::from_secs(30) + Duration::from_millis(20) * n as u32;
    let synced = server
        .next_line(sync_timeout, "that every client is subscribed")
        .await
        .map_err(|err| match client.ensure_running() {
            Err(client_err) => client_err,
            Ok(()) => err,
        })?;
    if synced != "synced" {
        bail!("baseline-server said {synced:?}, expected \"synced\"");
    }
    let mut rounds = Vec::new();
    for k in 1..=reps {
        let line = server
            .next_line(Duration::from_secs(60), &format!("round {k}"))
            .await?;
        rounds.push(parse_round(&line, k)?);
    }
    // Both are killed here: the client first, so no peer of the server is left waiting.
    drop(client);
    drop(server);
    Ok(rounds)
}

fn parse_listening(line: &str) -> anyhow::Result<(u16, u16)> {
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        ["listening", publish, ret] => Ok((
            publish.parse().context("the PUB port")?,
            ret.parse().context("the REP port")?,
        )),
        _ => Err(anyhow!("baseline-server said {line:?}, expected its ports")),
    }
}

fn parse_round(line: &str, k: u32) -> anyhow::Result<Duration> {
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        ["round", round, nanos] if round.parse() == Ok(k) => Ok(Duration::from_nanos(
            nanos.parse().context("a round's nanoseconds")?,
        )),
        _ => Err(anyhow!("baseline-server said {line:?}, expected round {k}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_carry_their_round() {
        let body = message(7);
        assert_eq!(body.len(), BODY);
        assert_eq!(round_of(&body), Some(7));
        assert_eq!(round_of(b"short"), None);
    }

    #[test]
    fn server_lines_parse() {
        assert_eq!(
            parse_listening("listening 4505 4506").unwrap(),
            (4505, 4506)
        );
        assert!(parse_listening("ready").is_err());
        assert_eq!(
            parse_round("round 2 1500000", 2).unwrap(),
            Duration::from_micros(1500)
        );
        assert!(parse_round("round 3 1500000", 2).is_err());
    }
}
