//! `service.*`: start, stop and query systemd services through `systemctl`, with Salt's names,
//! arguments and return shapes.
//!
//! A name without a unit type (`nginx`) means `nginx.service`, as in Salt; `sshd.socket` stays
//! as it is. Names are checked against systemd's unit name characters, so one never reaches
//! systemctl as an option. `systemctl` runs through `cmd::run_program` (argv only, its own
//! process group, a timeout, capped output) with `LC_ALL=C`.
//!
//! An action (`start`, `stop`, `restart`, `reload`, `enable`, `disable`) returns `True`, or
//! fails the call with systemctl's exit code and error output. Stopping or restarting
//! `brine-minion` itself does not wait for the job to finish (`--no-block`), since the job
//! would die with the minion it waits on.
//!
//! Tests replace systemctl with a stand-in (a shell script that records its arguments and
//! answers as systemctl does): [`systemctl`] is the one place the program is chosen, and the
//! stand-in exists only in this crate's test build.

use std::time::Duration;

use brine_proto::{Fnmatch, Map, Value};

use crate::args::{opt, req, ArgError, Args, Signature};
use crate::cmd::{run_program, ProgramOutput};
use crate::{Error, Function, Handler, Outcome};

/// The program every `service.*` function runs.
const SYSTEMCTL: &str = "systemctl";

/// How long a query (`is-active`, `is-enabled`, `show`, `list-unit-files`) may take.
const QUERY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long an action may take: systemd gives a unit 90 s to start by default, some more.
const ACTION_TIMEOUT: Duration = Duration::from_secs(600);

/// The minion's own unit: stopping or restarting it never waits for the job (Salt does the same
/// for `salt-minion`).
const MINION_UNIT: &str = "brine-minion.service";

/// The unit types systemd knows; a name ending in `.<type>` is used as it is.
const UNIT_TYPES: &[&str] = &[
    "service",
    "socket",
    "device",
    "mount",
    "automount",
    "swap",
    "target",
    "path",
    "timer",
    "slice",
    "scope",
];

/// The longest unit name systemd accepts.
const MAX_UNIT_LEN: usize = 255;

/// The functions of this module.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Fun {
    Start,
    Stop,
    Restart,
    Reload,
    Enable,
    Disable,
    Status,
    Enabled,
    Available,
    GetAll,
}

/// `name` and `no_block`, as the actions take them.
const ACTION: Signature = Signature::new(&[req("name"), opt("no_block")]);

pub(crate) const FUNCTIONS: &[Function] = &[
    Function {
        name: "service.start",
        doc: "Start the specified service with systemd (``systemctl start``).\n\n\
              Returns ``True``; if systemctl fails, the call fails with its message.\n\n\
              no_block : False\n    Set to ``True`` to start the service using ``--no-block``.\n\n\
              CLI Example:\n\n    brine '*' service.start <service name>",
        signature: ACTION,
        handler: Handler::Service(Fun::Start),
    },
    Function {
        name: "service.stop",
        doc: "Stop the specified service with systemd (``systemctl stop``).\n\n\
              Returns ``True``; if systemctl fails, the call fails with its message.\n\n\
              no_block : False\n    Set to ``True`` to stop the service using ``--no-block``.\n    \
              Defaults to ``True`` for the brine-minion service.\n\n\
              CLI Example:\n\n    brine '*' service.stop <service name>",
        signature: ACTION,
        handler: Handler::Service(Fun::Stop),
    },
    Function {
        name: "service.restart",
        doc: "Restart the specified service with systemd (``systemctl restart``).\n\n\
              Returns ``True``; if systemctl fails, the call fails with its message.\n\n\
              no_block : False\n    Set to ``True`` to restart the service using ``--no-block``.\n    \
              Defaults to ``True`` for the brine-minion service.\n\n\
              CLI Example:\n\n    brine '*' service.restart <service name>",
        signature: ACTION,
        handler: Handler::Service(Fun::Restart),
    },
    Function {
        name: "service.reload",
        doc: "Reload the specified service with systemd (``systemctl reload``).\n\n\
              Returns ``True``; if systemctl fails, the call fails with its message.\n\n\
              no_block : False\n    Set to ``True`` to reload the service using ``--no-block``.\n\n\
              CLI Example:\n\n    brine '*' service.reload <service name>",
        signature: ACTION,
        handler: Handler::Service(Fun::Reload),
    },
    Function {
        name: "service.enable",
        doc: "Enable the named service to start when the system boots (``systemctl enable``).\n\n\
              Returns ``True``; if systemctl fails, the call fails with its message.\n\n\
              no_block : False\n    Set to ``True`` to enable the service using ``--no-block``.\n\n\
              CLI Example:\n\n    brine '*' service.enable <service name>",
        signature: ACTION,
        handler: Handler::Service(Fun::Enable),
    },
    Function {
        name: "service.disable",
        doc: "Disable the named service to not start when the system boots\n\
              (``systemctl disable``).\n\n\
              Returns ``True``; if systemctl fails, the call fails with its message.\n\n\
              no_block : False\n    Set to ``True`` to disable the service using ``--no-block``.\n\n\
              CLI Example:\n\n    brine '*' service.disable <service name>",
        signature: ACTION,
        handler: Handler::Service(Fun::Disable),
    },
    Function {
        name: "service.status",
        doc: "Return the status for a service via systemd (``systemctl is-active``): ``True``\n\
              if it is active, ``False`` otherwise. If the name contains globbing (``*``,\n\
              ``?``), a dict mapping each matching service (see ``service.get_all``) to\n\
              True/False is returned. When systemctl cannot tell (systemd not running), the\n\
              call fails with its message.\n\n\
              sig\n    Not used; accepted for Salt's signature.\n\n\
              CLI Example:\n\n    brine '*' service.status <service name>\n    \
              brine '*' service.status 'nginx*'",
        signature: Signature::new(&[req("name"), opt("sig")]),
        handler: Handler::Service(Fun::Status),
    },
    Function {
        name: "service.enabled",
        doc: "Return if the named service is enabled to start on boot (``systemctl\n\
              is-enabled``); an alias is judged by the unit it names.\n\n\
              CLI Example:\n\n    brine '*' service.enabled <service name>",
        signature: Signature::new(&[req("name")]),
        handler: Handler::Service(Fun::Enabled),
    },
    Function {
        name: "service.available",
        doc: "Check that the given service is available (systemd knows a unit of that name,\n\
              template units included; a masked unit is available).\n\n\
              CLI Example:\n\n    brine '*' service.available sshd",
        signature: Signature::new(&[req("name")]),
        handler: Handler::Service(Fun::Available),
    },
    Function {
        name: "service.get_all",
        doc: "Return a sorted list of all available services: the service unit files systemd\n\
              knows (``systemctl list-unit-files --type=service``), without ``.service``;\n\
              a template unit is listed as ``name@``.\n\n\
              CLI Example:\n\n    brine '*' service.get_all",
        signature: Signature::new(&[]),
        handler: Handler::Service(Fun::GetAll),
    },
];

pub(crate) async fn call(fun: Fun, args: Args) -> Result<Outcome, Error> {
    let verb = match fun {
        Fun::Start => "start",
        Fun::Stop => "stop",
        Fun::Restart => "restart",
        Fun::Reload => "reload",
        Fun::Enable => "enable",
        Fun::Disable => "disable",
        Fun::Status => {
            let name = args.required_string("name")?;
            if let Some(glob) = Fnmatch::if_glob(&name) {
                check_unit("name", &name, true)?;
                let mut ret = Map::new();
                for service in get_all().await? {
                    if glob.matches(&service) {
                        let active = is_active(&unit("name", &service)?).await?;
                        ret.insert(service, active.into());
                    }
                }
                return Ok(Outcome::ok(ret));
            }
            return Ok(Outcome::ok(is_active(&unit("name", &name)?).await?));
        }
        Fun::Enabled => {
            let unit = unit("name", &args.required_string("name")?)?;
            return Ok(Outcome::ok(is_enabled(&unit).await?));
        }
        Fun::Available => {
            let unit = unit("name", &args.required_string("name")?)?;
            let out = systemctl_run(&["show", "--property=LoadState", &unit], QUERY_TIMEOUT)
                .await?
                .complete()?;
            return Ok(Outcome::ok(parse_available(&out.stdout)));
        }
        Fun::GetAll => {
            let all: Vec<Value> = get_all().await?.into_iter().map(Value::from).collect();
            return Ok(Outcome::ok(all));
        }
    };
    let unit = unit("name", &args.required_string("name")?)?;
    let own = unit == MINION_UNIT && matches!(fun, Fun::Stop | Fun::Restart);
    let no_block = args.bool("no_block", own)?;
    let mut argv = Vec::with_capacity(3);
    if no_block {
        argv.push("--no-block");
    }
    argv.extend([verb, &unit]);
    systemctl_run(&argv, ACTION_TIMEOUT).await?.success()?;
    Ok(Outcome::ok(true))
}

#[cfg(test)]
tokio::task_local! {
    /// Tests only: the argv that stands in for `systemctl` in the task (see the tests).
    static STAND_IN: Vec<String>;
}

/// The argv that runs systemctl: `systemctl` from `PATH`, or, in this crate's tests only, the
/// stand-in set for the task.
fn systemctl() -> Vec<String> {
    #[cfg(test)]
    if let Ok(argv) = STAND_IN.try_with(Clone::clone) {
        return argv;
    }
    vec![SYSTEMCTL.to_owned()]
}

/// Runs systemctl with `args`.
async fn systemctl_run(args: &[&str], timeout: Duration) -> Result<ProgramOutput, Error> {
    let mut argv = systemctl();
    argv.extend(args.iter().map(|a| (*a).to_owned()));
    let mut out = run_program(argv, &[("LC_ALL", "C")], timeout).await?;
    out.program = SYSTEMCTL.to_owned();
    Ok(out)
}

/// Whether `unit` is active: `is-active` exits 0 for active, 3 (4 for an unknown unit on some
/// versions) for anything else; any other exit means systemctl could not tell.
async fn is_active(unit: &str) -> Result<bool, Error> {
    let out = systemctl_run(&["is-active", unit], QUERY_TIMEOUT).await?;
    match out.retcode {
        0 => Ok(true),
        3 | 4 => Ok(false),
        _ => Err(out.failure().into()),
    }
}

/// Whether `unit` is enabled: `is-enabled` exits 0 (and an alias is judged by its unit).
async fn is_enabled(unit: &str) -> Result<bool, Error> {
    let out = systemctl_run(&["is-enabled", unit], QUERY_TIMEOUT).await?;
    if out.retcode != 0 {
        return Ok(false);
    }
    if out.stdout.trim() != "alias" {
        return Ok(true);
    }
    let id = systemctl_run(&["show", "--property=Id", "--value", unit], QUERY_TIMEOUT)
        .await?
        .complete()?;
    let target = id.stdout.trim();
    if target.is_empty() || target == unit || check_unit("name", target, false).is_err() {
        return Ok(false);
    }
    let out = systemctl_run(&["is-enabled", target], QUERY_TIMEOUT).await?;
    Ok(out.retcode == 0)
}

async fn get_all() -> Result<Vec<String>, Error> {
    let args = [
        "list-unit-files",
        "--type=service",
        "--no-legend",
        "--no-pager",
    ];
    let out = systemctl_run(&args, QUERY_TIMEOUT).await?.complete()?;
    Ok(parse_unit_files(&out.stdout))
}

/// Checks a unit name: systemd's characters (letters, digits, `:-_.@\`), not starting with
/// `-` or `.`, at most 255 bytes; `*` and `?` only where `globs` allows them.
fn check_unit(arg: &'static str, name: &str, globs: bool) -> Result<(), ArgError> {
    let allowed = |c: char| {
        c.is_ascii_alphanumeric() || ":-_.@\\".contains(c) || (globs && (c == '*' || c == '?'))
    };
    let ok = !name.is_empty()
        && name.len() <= MAX_UNIT_LEN
        && !name.starts_with(['-', '.'])
        && name.chars().all(allowed);
    if ok {
        return Ok(());
    }
    let mut shown: String = name.chars().take(64).collect();
    if shown.len() < name.len() {
        shown.push_str("...");
    }
    Err(ArgError::Invalid {
        name: arg,
        reason: format!("is not a valid unit name: '{shown}'"),
    })
}

/// The unit a service name stands for: as it is when it ends in a unit type, else with
/// `.service` added.
fn unit(arg: &'static str, name: &str) -> Result<String, ArgError> {
    check_unit(arg, name, false)?;
    let typed = name
        .rsplit_once('.')
        .is_some_and(|(_, suffix)| UNIT_TYPES.contains(&suffix));
    let unit = if typed {
        name.to_owned()
    } else {
        format!("{name}.service")
    };
    if unit.len() > MAX_UNIT_LEN {
        return Err(ArgError::Invalid {
            name: arg,
            reason: format!("is too long for a unit name ({} bytes)", unit.len()),
        });
    }
    Ok(unit)
}

/// The service names in `systemctl list-unit-files --type=service --no-legend` output (the
/// first column, `.service` cut), sorted and unique.
fn parse_unit_files(out: &str) -> Vec<String> {
    let mut names: Vec<String> = out
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter_map(|unit| unit.strip_suffix(".service"))
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// Whether `systemctl show --property=LoadState` output names a unit systemd has.
fn parse_available(out: &str) -> bool {
    out.lines()
        .find_map(|line| line.trim().strip_prefix("LoadState="))
        .is_some_and(|state| !state.is_empty() && state != "not-found")
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use serde_json::json;

    use super::*;
    use crate::tests::run;

    /// `systemctl list-unit-files --type=service --no-legend --no-pager` as systemd 252 prints
    /// it (Debian 12): unit, state, vendor preset.
    const UNIT_FILES: &str = "\
apt-daily-upgrade.service                  static          -
apt-daily.service                          static          -
getty@.service                             enabled         enabled
nginx.service                              enabled         enabled
ngircd.service                             disabled        enabled
ssh.service                                enabled         enabled
sshd.service                               alias           -
";

    /// The stand-in for systemctl: appends its arguments to `log` (one call a line) and
    /// answers as systemctl does for the units of [`UNIT_FILES`]: nginx is active and enabled,
    /// ngircd inactive and disabled, sshd an alias of ssh, `masked` refuses to start,
    /// `broken` stands for a systemd that cannot be reached, `nosuch` is unknown.
    fn stand_in_script(log: &Path) -> String {
        format!(
            r#"#!/bin/sh
printf '%s\n' "$*" >> '{log}'
case "$*" in
  "is-active nginx.service") echo active; exit 0 ;;
  "is-active broken.service")
    echo "System has not been booted with systemd as init system (PID 1). Can't operate." >&2
    echo "Failed to connect to bus: Host is down" >&2
    exit 1 ;;
  is-active\ *) echo inactive; exit 3 ;;
  "is-enabled nginx.service"|"is-enabled ssh.service") echo enabled; exit 0 ;;
  "is-enabled sshd.service") echo alias; exit 0 ;;
  "show --property=Id --value sshd.service") echo ssh.service; exit 0 ;;
  "is-enabled nosuch.service")
    echo "Failed to get unit file state for nosuch.service: No such file or directory" >&2
    exit 1 ;;
  is-enabled\ *) echo disabled; exit 1 ;;
  "show --property=LoadState nosuch.service") echo LoadState=not-found; exit 0 ;;
  "show --property=LoadState "*) echo LoadState=loaded; exit 0 ;;
  "list-unit-files --type=service --no-legend --no-pager")
    cat <<'UNITS'
{UNIT_FILES}UNITS
    exit 0 ;;
  *" masked.service")
    echo "Failed to start masked.service: Unit masked.service is masked." >&2
    exit 1 ;;
  "enable "*)
    echo "Created symlink /etc/systemd/system/multi-user.target.wants/$2 -> /lib/systemd/system/$2." >&2
    exit 0 ;;
  start\ *|stop\ *|restart\ *|reload\ *|disable\ *|"--no-block "*) exit 0 ;;
  *) echo "stand-in: unexpected arguments: $*" >&2; exit 64 ;;
esac
"#,
            log = log.display()
        )
    }

    /// A stand-in in its own directory, and the log of the calls it answered.
    struct StandIn {
        _dir: tempfile::TempDir,
        script: PathBuf,
        log: PathBuf,
    }

    impl StandIn {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let log = dir.path().join("calls");
            let script = dir.path().join("systemctl");
            std::fs::write(&script, stand_in_script(&log)).unwrap();
            Self {
                _dir: dir,
                script,
                log,
            }
        }

        /// Runs `fun` with the stand-in as systemctl. The script is run by `/bin/sh` rather than
        /// executed itself, so a fork elsewhere in the test process that still holds the file
        /// open cannot make the exec fail (ETXTBSY).
        async fn run(&self, fun: &str, arg: Vec<Value>, kwarg: Value) -> Outcome {
            let argv = vec!["/bin/sh".to_owned(), self.script.display().to_string()];
            STAND_IN.scope(argv, run(fun, arg, kwarg)).await
        }

        /// The calls so far, one line of arguments each; the log is emptied.
        fn calls(&self) -> Vec<String> {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            let _ = std::fs::remove_file(&self.log);
            text.lines().map(str::to_owned).collect()
        }
    }

    #[tokio::test]
    async fn actions_run_systemctl_with_the_unit_and_return_true() {
        let systemctl = StandIn::new();
        for (fun, arg, kwarg, want) in [
            (
                "service.start",
                json!("nginx"),
                json!({}),
                "start nginx.service",
            ),
            (
                "service.stop",
                json!("nginx"),
                json!({}),
                "stop nginx.service",
            ),
            (
                "service.restart",
                json!("nginx"),
                json!({}),
                "restart nginx.service",
            ),
            (
                "service.reload",
                json!("nginx"),
                json!({}),
                "reload nginx.service",
            ),
            (
                "service.enable",
                json!("nginx"),
                json!({}),
                "enable nginx.service",
            ),
            (
                "service.disable",
                json!("nginx"),
                json!({}),
                "disable nginx.service",
            ),
            (
                "service.start",
                json!("nginx"),
                json!({"no_block": true}),
                "--no-block start nginx.service",
            ),
            (
                "service.start",
                json!("ssh.socket"),
                json!({}),
                "start ssh.socket",
            ),
            (
                "service.start",
                json!("getty@tty1"),
                json!({}),
                "start getty@tty1.service",
            ),
            (
                "service.restart",
                json!("brine-minion"),
                json!({}),
                "--no-block restart brine-minion.service",
            ),
            (
                "service.stop",
                json!("brine-minion.service"),
                json!({"no_block": false}),
                "stop brine-minion.service",
            ),
            (
                "service.start",
                json!("brine-minion"),
                json!({}),
                "start brine-minion.service",
            ),
        ] {
            let out = systemctl.run(fun, vec![arg], kwarg).await;
            assert_eq!(out, Outcome::ok(true), "{fun}");
            assert_eq!(systemctl.calls(), [want], "{fun}");
        }
    }

    #[tokio::test]
    async fn a_failed_action_fails_with_systemctls_message() {
        let systemctl = StandIn::new();
        let out = systemctl
            .run("service.start", vec![json!("masked")], json!({}))
            .await;
        assert_eq!((out.success, out.retcode), (false, 1));
        assert_eq!(
            out.ret,
            json!("service.start: systemctl failed with exit code 1: Failed to start masked.service: Unit masked.service is masked.")
        );
        assert_eq!(systemctl.calls(), ["start masked.service"]);
        let out = systemctl
            .run("service.stop", vec![json!("masked")], json!({}))
            .await;
        assert!(!out.success);
    }

    #[tokio::test]
    async fn status_is_whether_the_unit_is_active() {
        let systemctl = StandIn::new();
        let out = systemctl
            .run("service.status", vec![json!("nginx")], json!({}))
            .await;
        assert_eq!(out, Outcome::ok(true));
        let out = systemctl
            .run(
                "service.status",
                vec![json!("ngircd"), json!("sig")],
                json!({}),
            )
            .await;
        assert_eq!(out, Outcome::ok(false));
        let out = systemctl
            .run("service.status", vec![json!("nosuch")], json!({}))
            .await;
        assert_eq!(out, Outcome::ok(false));
        assert_eq!(
            systemctl.calls(),
            [
                "is-active nginx.service",
                "is-active ngircd.service",
                "is-active nosuch.service"
            ]
        );

        let out = systemctl
            .run("service.status", vec![json!("broken")], json!({}))
            .await;
        assert_eq!((out.success, out.retcode), (false, 1));
        assert!(
            out.ret
                .as_str()
                .unwrap()
                .ends_with("Failed to connect to bus: Host is down"),
            "{}",
            out.ret
        );
        systemctl.calls();

        let out = systemctl
            .run("service.status", vec![json!("ng*")], json!({}))
            .await;
        assert_eq!(out, Outcome::ok(json!({"nginx": true, "ngircd": false})));
        assert_eq!(
            systemctl.calls(),
            [
                "list-unit-files --type=service --no-legend --no-pager",
                "is-active nginx.service",
                "is-active ngircd.service"
            ]
        );
    }

    #[tokio::test]
    async fn enabled_available_and_get_all_read_the_answers() {
        let systemctl = StandIn::new();
        let check = |fun: &'static str, name: &'static str| {
            let systemctl = &systemctl;
            async move { systemctl.run(fun, vec![json!(name)], json!({})).await }
        };
        assert_eq!(check("service.enabled", "nginx").await, Outcome::ok(true));
        assert_eq!(check("service.enabled", "ngircd").await, Outcome::ok(false));
        assert_eq!(check("service.enabled", "nosuch").await, Outcome::ok(false));
        assert_eq!(systemctl.calls().len(), 3);
        assert_eq!(check("service.enabled", "sshd").await, Outcome::ok(true));
        assert_eq!(
            systemctl.calls(),
            [
                "is-enabled sshd.service",
                "show --property=Id --value sshd.service",
                "is-enabled ssh.service"
            ]
        );

        assert_eq!(check("service.available", "nginx").await, Outcome::ok(true));
        assert_eq!(
            check("service.available", "nosuch").await,
            Outcome::ok(false)
        );
        assert_eq!(
            systemctl.calls(),
            [
                "show --property=LoadState nginx.service",
                "show --property=LoadState nosuch.service"
            ]
        );

        let out = systemctl.run("service.get_all", vec![], json!({})).await;
        assert_eq!(
            out,
            Outcome::ok(json!([
                "apt-daily",
                "apt-daily-upgrade",
                "getty@",
                "nginx",
                "ngircd",
                "ssh",
                "sshd"
            ]))
        );
        assert_eq!(
            systemctl.calls(),
            ["list-unit-files --type=service --no-legend --no-pager"]
        );
    }

    #[tokio::test]
    async fn bad_names_never_reach_systemctl() {
        let systemctl = StandIn::new();
        for (fun, arg, kwarg, want) in [
            (
                "service.start",
                vec![json!("--now")],
                json!({}),
                "argument 'name' is not a valid unit name: '--now'",
            ),
            (
                "service.stop",
                vec![json!("a b")],
                json!({}),
                "argument 'name' is not a valid unit name: 'a b'",
            ),
            (
                "service.status",
                vec![json!("../x")],
                json!({}),
                "argument 'name' is not a valid unit name: '../x'",
            ),
            (
                "service.enabled",
                vec![json!("ng*")],
                json!({}),
                "argument 'name' is not a valid unit name: 'ng*'",
            ),
            (
                "service.available",
                vec![json!("x".repeat(250))],
                json!({}),
                "argument 'name' is too long for a unit name (258 bytes)",
            ),
            (
                "service.start",
                vec![],
                json!({}),
                "missing required argument 'name'",
            ),
            (
                "service.start",
                vec![json!("nginx")],
                json!({"no_block": "maybe"}),
                "argument 'no_block' must be a boolean, got a string",
            ),
            (
                "service.get_all",
                vec![json!("x")],
                json!({}),
                "takes at most 0 positional argument(s), 1 given",
            ),
        ] {
            let out = systemctl.run(fun, arg, kwarg).await;
            assert_eq!((out.success, out.retcode), (false, 1), "{fun}: {}", out.ret);
            assert_eq!(out.ret, json!(format!("{fun}: {want}")));
        }
        assert!(systemctl.calls().is_empty());
    }

    #[test]
    fn unit_files_and_load_state_are_parsed() {
        assert_eq!(parse_unit_files(""), Vec::<String>::new());
        // Older systemd prints two columns; other unit types are not services.
        assert_eq!(
            parse_unit_files(
                "b.service enabled\na.service static\nx.socket enabled\n\n.service x\n"
            ),
            ["a", "b"]
        );
        assert!(parse_available("LoadState=masked\n"));
        assert!(!parse_available("LoadState=not-found\n"));
        assert!(!parse_available(""));
        assert!(!parse_available("LoadState=\n"));
    }

    #[tokio::test]
    async fn without_a_stand_in_systemctl_is_the_real_one() {
        assert_eq!(systemctl(), ["systemctl"]);
        let inside = STAND_IN
            .scope(vec!["/bin/sh".into(), "x".into()], async { systemctl() })
            .await;
        assert_eq!(inside, ["/bin/sh", "x"]);
    }
}
