//! The jobs this minion is running now: what `saltutil.running` and `saltutil.find_job` show,
//! and how `saltutil.kill_job` stops one (its task ends its function, which kills the
//! function's process group, and reports it killed).

use std::collections::HashMap;
use std::sync::Mutex;

use brine_modules::RunningJobs;
use brine_proto::{Job, Map, Value};
use tokio_util::sync::CancellationToken;

/// Running jobs by jid.
#[derive(Debug, Default)]
pub struct JobTable {
    jobs: Mutex<HashMap<String, Entry>>,
}

#[derive(Debug)]
struct Entry {
    info: Map,
    kill: CancellationToken,
}

impl JobTable {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A job starts: the token fires when it is to be killed.
    pub fn start(&self, job: &Job, started_ms: u64) -> CancellationToken {
        let kill = CancellationToken::new();
        let info = serde_json::json!({
            "jid": job.jid.as_str(),
            "fun": job.fun,
            "arg": job.arg,
            "kwarg": job.kwarg,
            "user": job.user,
            "tgt": job.target.to_string(),
            "started_ms": started_ms,
            "pid": std::process::id(),
        });
        let Value::Object(info) = info else {
            unreachable!("a json! map is a map")
        };
        self.lock().insert(
            job.jid.to_string(),
            Entry {
                info,
                kill: kill.clone(),
            },
        );
        kill
    }

    /// A job is over.
    pub fn finish(&self, jid: &str) {
        self.lock().remove(jid);
    }
}

impl RunningJobs for JobTable {
    fn running(&self) -> Vec<Map> {
        let mut all: Vec<Map> = self.lock().values().map(|e| e.info.clone()).collect();
        all.sort_by(|a, b| a["jid"].as_str().cmp(&b["jid"].as_str()));
        all
    }

    fn kill(&self, jid: &str) -> bool {
        match self.lock().get(jid) {
            Some(entry) => {
                entry.kill.cancel();
                true
            }
            None => false,
        }
    }
}
