//! `brine-bench baseline-server`: the master's half of the transport baseline (see the
//! module above for the message sequence). One PUB and one REP socket on loopback, bound with
//! the listen backlog the master uses; the REP answers one request at a time, as the master's
//! does.

use std::io::Write;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use tokio::sync::oneshot;
use zeromq::{PubSocket, RepSocket, Socket, SocketRecv, SocketSend, ZmqMessage};

use super::{message, round_of, HELLO};

/// How often round 0 is published while the clients subscribe.
const SYNC_TICK: Duration = Duration::from_millis(20);
/// The pause before each timed round, so one round's stragglers never overlap the next.
const ROUND_GAP: Duration = Duration::from_millis(50);

/// Serves `n` clients for `rounds` timed rounds.
pub async fn run(n: usize, rounds: u32) -> anyhow::Result<()> {
    let mut publisher = PubSocket::new();
    let pub_port = bind(&mut publisher).await?;
    let mut replier = RepSocket::new();
    let rep_port = bind(&mut replier).await?;
    say(&format!("listening {pub_port} {rep_port}"))?;
    answer_round(&mut replier, HELLO, n).await?;

    // Sync: a task publishes round 0 until every pair has answered it, then hands the socket
    // back.
    let (stop, stopped) = oneshot::channel::<()>();
    let ticker = tokio::spawn(async move {
        let mut stopped = stopped;
        let mut tick = tokio::time::interval(SYNC_TICK);
        loop {
            tokio::select! {
                _ = &mut stopped => return Ok::<_, zeromq::ZmqError>(publisher),
                _ = tick.tick() => publisher.send(ZmqMessage::from(message(0))).await?,
            }
        }
    });
    answer_round(&mut replier, 0, n).await?;
    let _ = stop.send(());
    let mut publisher = ticker
        .await
        .context("the sync publisher task")?
        .context("publishing the sync round")?;
    say("synced")?;

    for k in 1..=u64::from(rounds) {
        tokio::time::sleep(ROUND_GAP).await;
        let started = Instant::now();
        publisher
            .send(ZmqMessage::from(message(k)))
            .await
            .context("publishing a round")?;
        answer_round(&mut replier, k, n).await?;
        say(&format!("round {k} {}", started.elapsed().as_nanos()))?;
    }
    say("done")
}

/// Binds `socket` on a free loopback port with a backlog of 1024; the port.
async fn bind<S: Socket>(socket: &mut S) -> anyhow::Result<u16> {
    let listener = brine_guard::listen(SocketAddr::from(([127, 0, 0, 1], 0)))
        .context("binding a loopback listener")?;
    let port = listener.local_addr()?.port();
    socket
        .bind_listener(listener)
        .await
        .context("binding a zeromq socket")?;
    Ok(port)
}

/// Answers every request until `n` of them carried `round`.
async fn answer_round(replier: &mut RepSocket, round: u64, n: usize) -> anyhow::Result<()> {
    let mut seen = 0;
    while seen < n {
        let request = replier.recv().await.context("receiving a request")?;
        let body = request.get(0).ok_or_else(|| anyhow!("an empty request"))?;
        if round_of(body) == Some(round) {
            seen += 1;
        }
        replier
            .send(ZmqMessage::from("ok"))
            .await
            .context("answering a request")?;
    }
    Ok(())
}

/// One line to the runner, flushed at once.
fn say(line: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .context("writing to stdout")
}
