//! Exit codes of the command-line tools, and how a job's outcome maps to one.
//!
//! Scripts depend on these numbers: change them only with a changelog entry. The texts below
//! are shown by `--help`.

use brine_proto::control::{ControlError, MinionOutcome, MinionState};

/// Every targeted minion returned, and every function succeeded.
pub const SUCCESS: u8 = 0;
/// Some function failed (a return with `success = false` or a retcode other than 0), or the
/// master could not do what was asked (job store failure, unknown jid).
pub const FAILED: u8 = 1;
/// The command line (or the request it makes) is invalid. clap uses 2 for usage errors too.
pub const USAGE: u8 = 2;
/// Some targeted minion did not return (not connected, no response, or still running).
/// Wins over [`FAILED`] when both apply.
pub const NO_RETURN: u8 = 3;
/// The target matched no minion.
pub const NO_MINIONS: u8 = 4;
/// Interrupted by Ctrl-C while waiting for returns; the job goes on (128 + SIGINT).
pub const INTERRUPTED: u8 = 130;
/// The caller may not do this: `publisher_acl`, or `brine-key` as a user other than root
/// (`EX_NOPERM` from sysexits.h).
pub const DENIED: u8 = 77;
/// The master cannot be reached, is shutting down, or the connection broke mid-answer
/// (`EX_UNAVAILABLE` from sysexits.h).
pub const UNAVAILABLE: u8 = 69;

/// The exit code section of `brine --help`.
pub const BRINE_HELP: &str = "\
Exit codes:
  0   every targeted minion returned and every function succeeded
  1   some function failed (success = false or retcode != 0), or the master's job store failed
  2   usage error: bad flags, target, function name or request
  3   some targeted minion did not return (wins over 1 when both apply)
  4   the target matched no minion
  69  the master is unreachable, busy or shutting down, or the connection broke
  77  permission denied (publisher_acl, brine-key as a user other than root, or the control
      socket: not in its group)
  130 interrupted (Ctrl-C) while waiting; the job goes on: brine-run jobs.lookup <JID>";

/// The exit code section of `brine-run --help`.
pub const BRINE_RUN_HELP: &str = "\
Exit codes:
  0   done (jobs.lookup: every expected minion returned and every function succeeded)
  1   the master could not answer (unknown jid, job store failure);
      jobs.lookup: some function failed
  2   usage error: bad flags or jid
  3   jobs.lookup: some expected minion did not return (yet); wins over 1
  69  the master is unreachable, busy or shutting down, or the connection broke
  77  permission denied (a request the master does not allow this user, or the control
      socket: not in its group)";

/// The exit code section of `brine-call --help`.
pub const BRINE_CALL_HELP: &str = "\
Exit codes:
  0   the function succeeded
  1   the function failed (success = false or retcode != 0); with --retcode-passthrough,
      its own retcode instead
  2   usage error: bad flags or function name, or a minion configuration that cannot be used";

/// The exit code section of `brine-key --help`.
pub const BRINE_KEY_HELP: &str = "\
Confirmation:
  accept, reject and delete show the keys concerned and ask \"Proceed? [y/N]\" when stdin is
  a terminal; --yes skips the question, and is required when stdin is not a terminal.

Exit codes:
  0   done (accept --all with no pending key is done too: nothing to accept)
  1   the master refused: unknown id or no key in the right state (not_found), a
      fingerprint that does not match (bad_request), or its key store failed;
      or the question was not answered yes (no key changed)
  2   usage error: bad flags, id or fingerprint; accept, reject or delete without --yes
      when stdin is not a terminal
  69  the master is unreachable, busy or shutting down, or the connection broke
  77  permission denied (brine-key is for root and the master's user; or the control socket:
      not in its group)";

/// The exit code for a finished (or looked-up) job or batch, from its minions:
/// [`NO_RETURN`] when any expected minion has no return, else [`FAILED`] when any function
/// failed (or a batch did not run it on some minion: `not_run`), else [`SUCCESS`]. A job that
/// expected no minion at all is [`NO_MINIONS`].
pub fn for_outcomes(minions: &[MinionOutcome]) -> u8 {
    if minions.is_empty() {
        return NO_MINIONS;
    }
    let missing = minions
        .iter()
        .any(|m| !m.has_return() && m.state != MinionState::NotRun);
    if missing {
        return NO_RETURN;
    }
    let failed = minions.iter().any(|m| match &m.ret {
        Some(ret) => !ret.success || ret.retcode != 0,
        None => true,
    });
    if failed {
        FAILED
    } else {
        SUCCESS
    }
}

/// The exit code for an error the master answered with.
pub fn for_master_error(code: ControlError) -> u8 {
    match code {
        ControlError::BadRequest => USAGE,
        ControlError::NoMinions => NO_MINIONS,
        ControlError::NotFound | ControlError::Storage => FAILED,
        ControlError::ShuttingDown | ControlError::Busy => UNAVAILABLE,
        ControlError::Denied => DENIED,
    }
}

#[cfg(test)]
mod tests {
    use brine_proto::{Jid, JobReturn, MinionId};

    use super::*;

    fn outcome(id: &str, state: MinionState, success: bool, retcode: i32) -> MinionOutcome {
        let id = MinionId::new(id).unwrap();
        let ret = (state == MinionState::Returned).then(|| {
            JobReturn::new(id.clone(), jid(), "test.ping", success).with_outcome(retcode, success)
        });
        MinionOutcome { id, state, ret }
    }

    fn jid() -> Jid {
        Jid::new("20261125130201123456").unwrap()
    }

    #[test]
    fn all_returned_and_succeeded_is_success() {
        let r = vec![
            outcome("a", MinionState::Returned, true, 0),
            outcome("b", MinionState::Returned, true, 0),
        ];
        assert_eq!(for_outcomes(&r), SUCCESS);
    }

    #[test]
    fn a_failed_function_is_failed() {
        let r = vec![
            outcome("a", MinionState::Returned, true, 0),
            outcome("b", MinionState::Returned, false, 1),
        ];
        assert_eq!(for_outcomes(&r), FAILED);
        // A retcode alone is enough (cmd.retcode returning 2 with success = true).
        let r = vec![outcome("a", MinionState::Returned, true, 2)];
        assert_eq!(for_outcomes(&r), FAILED);
    }

    #[test]
    fn a_missing_minion_wins_over_a_failure() {
        for state in [
            MinionState::NotConnected,
            MinionState::NoResponse,
            MinionState::Running,
            MinionState::Waiting,
            MinionState::NoKey,
        ] {
            let r = vec![
                outcome("a", MinionState::Returned, false, 1),
                outcome("b", state, true, 0),
            ];
            assert_eq!(for_outcomes(&r), NO_RETURN, "{state:?}");
        }
    }

    #[test]
    fn returned_without_a_return_counts_as_missing() {
        let mut o = outcome("a", MinionState::Returned, true, 0);
        o.ret = None;
        assert_eq!(for_outcomes(&[o]), NO_RETURN);
    }

    #[test]
    fn a_minion_a_batch_did_not_run_on_is_a_failure_not_a_missing_return() {
        let r = vec![
            outcome("a", MinionState::Returned, true, 0),
            outcome("b", MinionState::NotRun, false, 0),
        ];
        assert_eq!(for_outcomes(&r), FAILED);
    }

    #[test]
    fn no_expected_minion_is_no_minions() {
        assert_eq!(for_outcomes(&[]), NO_MINIONS);
    }

    #[test]
    fn master_errors_map_to_documented_codes() {
        assert_eq!(for_master_error(ControlError::BadRequest), USAGE);
        assert_eq!(for_master_error(ControlError::NoMinions), NO_MINIONS);
        assert_eq!(for_master_error(ControlError::NotFound), FAILED);
        assert_eq!(for_master_error(ControlError::Storage), FAILED);
        assert_eq!(for_master_error(ControlError::ShuttingDown), UNAVAILABLE);
        assert_eq!(for_master_error(ControlError::Busy), UNAVAILABLE);
    }
}
