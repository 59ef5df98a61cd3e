//! `saltutil.*`: the minion's own housekeeping: the jobs it is running, stopping one, and
//! finding out its grains again.
//!
//! The running jobs are the minion daemon's ([`crate::RunningJobs`]); outside a daemon
//! (`brine-call`) none run, and `kill_job` has nothing to stop.

use brine_proto::{Map, Value};

use crate::args::{req, Args, Signature};
use crate::{Context, Error, Function, Handler, Outcome};

/// The functions of this module.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Fun {
    Running,
    FindJob,
    KillJob,
    RefreshGrains,
}

pub(crate) const FUNCTIONS: &[Function] = &[
    Function {
        name: "saltutil.running",
        doc: "Return the jobs the minion is running now, one map each: jid, fun, arg, kwarg,\n\
              user, tgt, started_ms (the minion's clock, ms since 1970), pid (the minion's\n\
              process: jobs run inside it).\n\n\
              CLI Example:\n\n    brine '*' saltutil.running",
        signature: Signature::new(&[]),
        handler: Handler::Saltutil(Fun::Running),
    },
    Function {
        name: "saltutil.find_job",
        doc: "Return the data of the running job with this jid, as saltutil.running shows it,\n\
              or an empty map when no such job runs.\n\n\
              jid\n    The job id.\n\n\
              CLI Example:\n\n    brine '*' saltutil.find_job 20261202120000123456",
        signature: Signature::new(&[req("jid")]),
        handler: Handler::Saltutil(Fun::FindJob),
    },
    Function {
        name: "saltutil.kill_job",
        doc: "Stop the running job with this jid: its commands are killed with their whole\n\
              process group and its return says it was killed. Returns True; fails when no\n\
              such job runs.\n\n\
              jid\n    The job id.\n\n\
              CLI Example:\n\n    brine '*' saltutil.kill_job 20261202120000123456",
        signature: Signature::new(&[req("jid")]),
        handler: Handler::Saltutil(Fun::KillJob),
    },
    Function {
        name: "saltutil.refresh_grains",
        doc: "Find out the host's grains again and reread the stored ones; the master hears of\n\
              any change at once. Returns True.\n\n\
              CLI Example:\n\n    brine '*' saltutil.refresh_grains",
        signature: Signature::new(&[]),
        handler: Handler::Saltutil(Fun::RefreshGrains),
    },
];

pub(crate) async fn call(ctx: &Context, fun: Fun, args: Args) -> Result<Outcome, Error> {
    let running = || ctx.jobs.as_ref().map(|j| j.running()).unwrap_or_default();
    match fun {
        Fun::Running => Ok(Outcome::ok(
            running().into_iter().map(Value::Object).collect::<Vec<_>>(),
        )),
        Fun::FindJob => {
            let jid = args.required_string("jid")?;
            let found = running()
                .into_iter()
                .find(|job| job.get("jid").and_then(Value::as_str) == Some(jid.as_str()));
            Ok(Outcome::ok(found.unwrap_or_else(Map::new)))
        }
        Fun::KillJob => {
            let jid = args.required_string("jid")?;
            if ctx.jobs.as_ref().is_some_and(|j| j.kill(&jid)) {
                Ok(Outcome::ok(true))
            } else {
                Err(Error::Unavailable(format!("no job {jid} is running here")))
            }
        }
        Fun::RefreshGrains => {
            let store = ctx
                .grain_store
                .clone()
                .ok_or_else(|| Error::Unavailable("grains cannot be refreshed here".into()))?;
            // It reads /proc, the interfaces and a file: off the minion's one runtime worker.
            crate::blocking(move || Ok(store.refresh()?)).await?;
            Ok(Outcome::ok(true))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use brine_proto::MinionId;
    use serde_json::json;

    use super::*;
    use crate::{execute, GrainStore, RunningJobs};

    #[derive(Debug, Default)]
    struct Table(Mutex<Vec<Map>>);

    impl RunningJobs for Table {
        fn running(&self) -> Vec<Map> {
            self.0.lock().unwrap().clone()
        }
        fn kill(&self, jid: &str) -> bool {
            let mut jobs = self.0.lock().unwrap();
            let before = jobs.len();
            jobs.retain(|j| j["jid"] != json!(jid));
            jobs.len() < before
        }
    }

    async fn run(ctx: &Context, fun: &str, arg: Vec<Value>) -> Outcome {
        tokio::time::timeout(
            std::time::Duration::from_secs(10),
            execute(ctx, fun, arg, Map::new()),
        )
        .await
        .expect("execute timed out")
    }

    #[tokio::test]
    async fn running_find_and_kill_use_the_daemons_table() {
        let table = Arc::new(Table::default());
        let job = match json!({"jid": "20261202120000000001", "fun": "test.sleep"}) {
            Value::Object(m) => m,
            _ => unreachable!(),
        };
        table.0.lock().unwrap().push(job);
        let mut ctx = Context::new(MinionId::new("web1").unwrap(), Map::new());
        ctx.jobs = Some(table.clone());
        let out = run(&ctx, "saltutil.running", vec![]).await;
        assert_eq!(out.ret[0]["fun"], json!("test.sleep"));
        let out = run(
            &ctx,
            "saltutil.find_job",
            vec![json!("20261202120000000001")],
        )
        .await;
        assert_eq!(out.ret["fun"], json!("test.sleep"));
        let out = run(&ctx, "saltutil.find_job", vec![json!("1")]).await;
        assert_eq!(out.ret, json!({}));
        let out = run(
            &ctx,
            "saltutil.kill_job",
            vec![json!("20261202120000000001")],
        )
        .await;
        assert_eq!(out.ret, json!(true));
        let out = run(
            &ctx,
            "saltutil.kill_job",
            vec![json!("20261202120000000001")],
        )
        .await;
        assert!(!out.success);
        assert_eq!(
            out.ret,
            json!("saltutil.kill_job: no job 20261202120000000001 is running here")
        );
        let out = run(&ctx, "saltutil.kill_job", vec![]).await;
        assert_eq!(
            out.ret,
            json!("saltutil.kill_job: missing required argument 'jid'")
        );
    }

    #[tokio::test]
    async fn grains_change_through_the_store_and_not_without_one() {
        let dir = tempfile::tempdir().unwrap();
        let id = MinionId::new("web1").unwrap();
        let store = Arc::new(GrainStore::open(&id, Map::new(), dir.path()).unwrap());
        let ctx = Context::with_store(id.clone(), Arc::clone(&store));
        let out = run(
            &ctx,
            "grains.setval",
            vec![json!("role"), json!(["web", "db"])],
        )
        .await;
        assert_eq!(out.ret, json!({"role": ["web", "db"]}));
        assert_eq!(store.current()["role"], json!(["web", "db"]));
        let ctx = Context::with_store(id.clone(), Arc::clone(&store));
        let out = run(&ctx, "grains.get", vec![json!("role:1")]).await;
        assert_eq!(out.ret, json!("db"), "a new job sees the new grains");
        let out = run(&ctx, "grains.delval", vec![json!("role")]).await;
        assert_eq!(out.ret, json!({"role": null}));
        assert_eq!(store.current()["role"], Value::Null);
        let mut kwarg = Map::new();
        kwarg.insert("destructive".into(), json!(true));
        let out = execute(&ctx, "grains.delval", vec![json!("role")], kwarg).await;
        assert!(out.success);
        assert!(!store.current().contains_key("role"));
        let out = run(&ctx, "saltutil.refresh_grains", vec![]).await;
        assert_eq!(out.ret, json!(true));

        let fixed = Context::new(id, Map::new());
        let out = run(&fixed, "grains.setval", vec![json!("a"), json!(1)]).await;
        assert_eq!(
            out.ret,
            json!("grains.setval: grains cannot be changed here")
        );
        let out = run(&fixed, "saltutil.running", vec![]).await;
        assert_eq!(out.ret, json!([]));
    }
}
