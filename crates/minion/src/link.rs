//! The minion's link to the master's REP socket: one task owns the [`ReqClient`] and says, in
//! order, everything the minion has to say.
//!
//! Whenever the client opens a new session (at start, and after any failure or master
//! restart), the link re-synchronises: every spooled return, then `pending` (catch-up).
//! Between commands it sends a `keepalive` every interval the master asked for. A return leaves
//! the spool only once the master has answered `ok` (stored) or `error refused` (it can never
//! be stored); on `error unavailable` it is kept and sent again later.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use brine_crypto::GroupKey;
use brine_proto::msg::ReplyError;
use brine_proto::{Jid, Job, JobReturn, Map, MasterReply, MinionId, MinionRequest};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::client::{Cancelled, ReqClient, Welcome};
use crate::journal::Journal;

/// What the rest of the minion asks the link to say.
#[derive(Debug)]
pub enum Command {
    Receipt(Jid),
    /// A job for many minions, whose target matches this one: a receipt asks the master
    /// whether it expects this minion; only then does the job come back as [`LinkEvent::Jobs`].
    Claim(Job),
    Return(JobReturn),
    CatchUp,
    /// A publication named a newer group key epoch.
    FetchGroupKey,
    /// The grains changed: tell the master, and say them in every hello from now on.
    Grains(Map),
    Goodbye,
}

/// What the link tells the rest of the minion.
#[derive(Debug)]
pub enum LinkEvent {
    /// A new session: the master's keys, clock, tick interval and group key.
    Welcome(Box<Welcome>),
    /// A newer group key.
    GroupKey(GroupKey),
    /// Jobs the master says are live for this minion (catch-up, or a confirmed claim).
    Jobs(Vec<Job>),
}

/// The state of the link task.
#[derive(Debug)]
pub struct Link {
    pub id: MinionId,
    pub client: ReqClient,
    pub journal: Arc<Mutex<Journal>>,
    pub events: mpsc::Sender<LinkEvent>,
    pub stop: CancellationToken,
    pub keepalive_interval: Duration,
    pub unavailable_pause: Duration,
    /// Re-synchronise before the next command (a new session was opened).
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
                Some(Command::Claim(job)) => self.claim(job).await,
                Some(Command::Return(ret)) => self.send_return(ret).await,
                Some(Command::CatchUp) => self.catch_up().await,
                Some(Command::FetchGroupKey) => self.fetch_group_key().await,
                Some(Command::Grains(grains)) => {
                    self.client.set_hello_grains(grains.clone());
                    let update = MinionRequest::Grains {
                        id: self.id.clone(),
                        grains,
                    };
                    self.ask(&update).await.map(drop)
                }
            };
            if done.is_err() {
                return;
            }
        }
    }

    fn journal(&self) -> std::sync::MutexGuard<'_, Journal> {
        self.journal.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Hands `job` back to run once the master says it expects this minion.
    async fn claim(&mut self, job: Job) -> Result<(), Cancelled> {
        let receipt = MinionRequest::Receipt {
            id: self.id.clone(),
            jid: job.jid.clone(),
        };
        match self.ask(&receipt).await? {
            MasterReply::Ok {} => {
                let _ = self.events.send(LinkEvent::Jobs(vec![job])).await;
            }
            other => {
                debug!(jid = %job.jid, answer = ?other, "the master does not expect this minion to run the job")
            }
        }
        Ok(())
    }

    /// Spooled returns, then pending.
    async fn resynchronise(&mut self) -> Result<(), Cancelled> {
        self.resync = false;
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

    /// Asks until the master gives an answer that is not "unavailable". A new session on the
    /// way is announced to the minion and makes the link re-synchronise.
    async fn ask(&mut self, request: &MinionRequest) -> Result<MasterReply, Cancelled> {
        loop {
            let answer = self.client.request(request, &self.stop).await?;
            if let Some(welcome) = answer.welcome {
                info!(minion = %self.id, "connected to the master");
                self.keepalive_interval = welcome.keepalive_interval;
                self.resync = true;
                let _ = self
                    .events
                    .send(LinkEvent::Welcome(Box::new(welcome)))
                    .await;
            }
            match answer.reply {
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
        self.journal().unspool(&jid);
        Ok(())
    }

    async fn fetch_group_key(&mut self) -> Result<(), Cancelled> {
        let request = MinionRequest::GroupKey {
            id: self.id.clone(),
        };
        match self.ask(&request).await? {
            MasterReply::GroupKey { epoch, key } => match <[u8; 32]>::try_from(key.as_slice()) {
                Ok(key) => {
                    debug!(epoch, "new group key");
                    let _ = self
                        .events
                        .send(LinkEvent::GroupKey(GroupKey::from_bytes(epoch, key)))
                        .await;
                }
                Err(_) => warn!("the master sent a group key of the wrong length"),
            },
            other => warn!(reply = ?other, "unexpected answer to a group key request"),
        }
        // What could not be read under the old key is fetched over the session.
        self.catch_up().await
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
