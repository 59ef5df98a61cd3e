//! `brine-bench baseline-client`: the minions' half of the transport baseline (see the module
//! above). N pairs of one SUB and one REQ socket, each pair a task: once connected it says
//! hello over REQ; then on every new round its SUB receives, it sends one REQ and waits for the
//! answer. It runs until it is killed.

use std::sync::Arc;

use anyhow::{anyhow, Context};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use zeromq::{ReqSocket, Socket, SocketRecv, SocketSend, SubSocket, ZmqMessage};

use super::{message, round_of, HELLO};

/// Connections made at once: the rest wait, so the listeners' backlogs never overflow.
const CONNECTING: usize = 128;

/// Runs `n` pairs against the server on `pub_port` and `rep_port` until killed; an error
/// when a pair fails.
pub async fn run(n: usize, pub_port: u16, rep_port: u16) -> anyhow::Result<()> {
    let publish = format!("tcp://127.0.0.1:{pub_port}");
    let ret = format!("tcp://127.0.0.1:{rep_port}");
    let connecting = Arc::new(Semaphore::new(CONNECTING));
    let mut pairs = JoinSet::new();
    for _ in 0..n {
        let (publish, ret, connecting) = (publish.clone(), ret.clone(), Arc::clone(&connecting));
        pairs.spawn(async move {
            let (sub, req) = {
                let _permit = connecting.acquire().await?;
                connect(&publish, &ret).await?
            };
            serve(sub, req).await
        });
    }
    match pairs.join_next().await {
        Some(Ok(Err(err))) => Err(err),
        Some(Err(err)) => Err(anyhow!("a pair's task failed: {err}")),
        Some(Ok(Ok(()))) | None => Err(anyhow!("a pair stopped")),
    }
}

async fn connect(publish: &str, ret: &str) -> anyhow::Result<(SubSocket, ReqSocket)> {
    let mut sub = SubSocket::new();
    sub.connect(publish).await.context("connecting a SUB")?;
    sub.subscribe("").await.context("subscribing")?;
    let mut req = ReqSocket::new();
    req.connect(ret).await.context("connecting a REQ")?;
    req.send(ZmqMessage::from(message(HELLO)))
        .await
        .context("saying hello")?;
    req.recv().await.context("receiving the hello's answer")?;
    Ok((sub, req))
}

/// Answers every round once, the first time it arrives.
async fn serve(mut sub: SubSocket, mut req: ReqSocket) -> anyhow::Result<()> {
    let mut answered: Option<u64> = None;
    loop {
        let publication = sub.recv().await.context("receiving a publication")?;
        let Some(round) = publication.get(0).and_then(|body| round_of(body)) else {
            continue;
        };
        if answered.is_some_and(|last| round <= last) {
            continue;
        }
        req.send(ZmqMessage::from(message(round)))
            .await
            .context("sending a request")?;
        req.recv().await.context("receiving an answer")?;
        answered = Some(round);
    }
}
