//! The minion's link to the master's REP socket: one task owns the [`ReqClient`] and says, in
//! order, everything the minion has to say.
//!
//! On start, and whenever the link had to be rebuilt or the master does not know this minion,
//! the link re-synchronises: `hello`, then every spooled return, then `pending` (catch-up).
//! Between commands it sends a `keepalive` every interval the master asked for. A return leaves
//! the spool only once the master has answered `ok` (stored) or `error refused` (it can never
//! be stored); on `error unavailable` it is kept and sent again later.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use brine_proto::msg::ReplyError;
use brine_proto::{Jid, Job, JobReturn, Map, MasterReply, MinionId, MinionRequest};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::client::{Cancelled, ReqClient};
use crate::journal::Journal;

/// What the rest of the minion asks the link to say.
#[derive(Debug)]
pub enum Command {
    Receipt(Jid),
    Return(JobReturn),
    CatchUp,
    Goodbye,
}

/// What the link tells the rest of the minion.
#[derive(Debug)]
pub enum LinkEvent {
    /// The master answered hello; it ticks at this interval.
    Welcome { tick_interval: Duration },
    /// Jobs the master says are live for this minion (catch-up).
    Jobs(Vec<Job>),
}

/// The state of the link task.
#[derive(Debug)]
pub struct Link {
    pub id: MinionId,
    pub version: String,
    pub grains: Map,
    pub client: ReqClient,
    pub journal: Arc<Mutex<Journal>>,
    pub events: mpsc::Sender<LinkEvent>,
    pub stop: CancellationToken,
    pub keepalive_interval: Duration,
    pub unavailable_pause: Duration,
    /// Re-synchronise before the next command.
    pub resync: bool,
}

impl Link {
    /// Runs until the command channel closes (after goodbye) or `stop` fires.
    pub async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        loop {
            if self.resync && self.resynchronise().await.is_err() {
                return;
            }
            let command = tokio::select! {
                _ = self.stop.cancelled() => return,
                command = commands.recv() => command,
                _ = tokio::time::sleep(self.keepalive_interval) => {
                    let keepalive = MinionRequest::Keepalive { id: self.id.clone() };
                    if self.ask(&keepalive).await.is_err() {
                        return;
                    }
                    continue;
                }
            };
            let done = match command {
                None => return,
                Some(Command::Goodbye) => {
                    let goodbye = MinionRequest::Goodbye {
                        id: self.id.clone(),
                    };
                    if self.client.request_once(&goodbye).await.is_none() {
                        debug!("the master did not hear goodbye");
                    }
                    return;
                }
                Some(Command::Receipt(jid)) => {
                    let receipt = MinionRequest::Receipt {
                        id: self.id.clone(),
                        jid,
                    };
                    self.ask(&receipt).await.map(drop)
                }
                Some(Command::Return(ret)) => self.send_return(ret).await,
                Some(Command::CatchUp) => self.catch_up().await,
            };
            if done.is_err() {
                return;
            }
        }
    }

    fn journal(&self) -> std::sync::MutexGuard<'_, Journal> {
        self.journal.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// hello, spooled returns, pending.
    async fn resynchronise(&mut self) -> Result<(), Cancelled> {
        self.resync = false;
        self.hello().await?;
        let spooled = match self.journal().spooled() {
            Ok(spooled) => spooled,
            Err(err) => {
                warn!(cause = %err, "cannot read the return spool");
                Vec::new()
            }
        };
        for ret in spooled {
            self.send_return(ret).await?;
        }
        self.catch_up().await
    }

    async fn hello(&mut self) -> Result<(), Cancelled> {
        let hello = MinionRequest::Hello {
            id: self.id.clone(),
            version: self.version.clone(),
            grains: self.grains.clone(),
        };
        loop {
            let answer = self.client.request(&hello, &self.stop).await?;
            match answer.reply {
                MasterReply::Welcome {
                    keepalive_interval_ms,
                    tick_interval_ms,
                    ..
                } => {
                    info!(minion = %self.id, "connected to the master");
                    self.keepalive_interval = Duration::from_millis(keepalive_interval_ms.max(10));
                    let tick_interval = Duration::from_millis(tick_interval_ms.max(10));
                    let _ = self.events.send(LinkEvent::Welcome { tick_interval }).await;
                    return Ok(());
                }
                other => {
                    warn!(reply = ?other, "the master did not welcome this minion; retrying");
                    self.pause().await?;
                }
            }
        }
    }

    /// Asks until the master gives an answer that is not "unknown minion" or "unavailable".
    async fn ask(&mut self, request: &MinionRequest) -> Result<MasterReply, Cancelled> {
        loop {
            let answer = self.client.request(request, &self.stop).await?;
            if answer.reconnected {
                self.resync = true;
            }
            match answer.reply {
                MasterReply::Error {
                    code: ReplyError::UnknownMinion,
                    ..
                } => {
                    self.hello().await?;
                    self.resync = true;
                }
                MasterReply::Error {
                    code: ReplyError::Unavailable,
                    message,
                } => {
                    warn!(%message, "the master is unavailable; retrying");
                    self.pause().await?;
                }
                reply => return Ok(reply),
            }
        }
    }

    async fn pause(&self) -> Result<(), Cancelled> {
        tokio::select! {
            _ = self.stop.cancelled() => Err(Cancelled),
            _ = tokio::time::sleep(self.unavailable_pause) => Ok(()),
        }
    }

    async fn send_return(&mut self, ret: JobReturn) -> Result<(), Cancelled> {
        let jid = ret.jid.clone();
        match self.ask(&MinionRequest::Return(ret)).await? {
            MasterReply::Ok {} => debug!(%jid, "return acknowledged"),
            MasterReply::Error { code, message } => {
                warn!(%jid, ?code, %message, "the master refused a return; dropping it")
            }
            other => warn!(%jid, reply = ?other, "unexpected answer to a return; dropping it"),
        }
        if let Err(err) = self.journal().unspool(&jid) {
            warn!(%jid, cause = %err, "cannot remove an acknowledged return from the spool");
        }
        Ok(())
    }

    async fn catch_up(&mut self) -> Result<(), Cancelled> {
        let pending = MinionRequest::Pending {
            id: self.id.clone(),
        };
        match self.ask(&pending).await? {
            MasterReply::Jobs { jobs } => {
                if !jobs.is_empty() {
                    debug!(jobs = jobs.len(), "catch-up found jobs");
                    let _ = self.events.send(LinkEvent::Jobs(jobs)).await;
                }
            }
            other => warn!(reply = ?other, "unexpected answer to a catch-up"),
        }
        Ok(())
    }
}
