//! A real PostgreSQL server for the tests of the shared store (issue 13): initialised in a
//! temporary directory, listening on 127.0.0.1 only, on a free port, with its unix socket in
//! that directory, stopped and deleted when dropped. Run as the `postgres` user when the tests
//! run as root (PostgreSQL refuses to run as root), as the test's own user otherwise.
//!
//! The server binaries come from Debian's `postgresql` package (scripts/test.sh installs it as
//! root); a test that cannot start a server says why and skips ([`Postgres::start`] gives
//! None). It is fast and not durable (`fsync = off`): these tests kill and restart it, they do
//! not pull the plug.

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// How long `pg_ctl` may take to start or stop the server (its own timeout, in seconds).
const PG_CTL_WAIT_SECS: &str = "60";

/// A running PostgreSQL server of the test's own.
#[derive(Debug)]
pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// The command prefix that runs a program as the server's user (empty: as this process).
    as_user: Vec<OsString>,
    port: u16,
}

impl Postgres {
    /// Initialises and starts a server; None, with a note on stderr saying why, when this
    /// machine cannot run one.
    pub fn start() -> Option<Self> {
        let Some(bin) = server_binaries() else {
            eprintln!(
                "note: no PostgreSQL server binaries (/usr/lib/postgresql/*/bin): install Debian's \
                 postgresql package (scripts/test.sh does, as root); skipped"
            );
            return None;
        };
        let as_user = if crate::fleet::is_root() {
            let setpriv = crate::setpriv()?;
            if !Command::new("id")
                .arg("postgres")
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
            {
                eprintln!("note: no postgres user (Debian's postgresql package makes it); skipped");
                return None;
            }
            vec![
                setpriv.into_os_string(),
                "--reuid=postgres".into(),
                "--regid=postgres".into(),
                "--init-groups".into(),
            ]
        } else {
            Vec::new()
        };
        let dir = tempfile::Builder::new()
            .prefix("brine-pg-")
            .tempdir()
            .expect("a temporary directory");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))
            .expect("the directory opened to the server's user");
        let server = Self {
            dir,
            bin,
            as_user,
            port: crate::free_port(),
        };
        let data = server.data_dir();
        server.run(
            "initdb",
            &[
                "--pgdata".as_ref(),
                data.as_os_str(),
                "--username=postgres".as_ref(),
                "--auth=trust".as_ref(),
                "--encoding=UTF8".as_ref(),
                "--no-sync".as_ref(),
            ],
        );
        server.start_again();
        Some(server)
    }

    /// The connection string of the `postgres` database, as a master's `store` setting takes
    /// it.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server at once (`pg_ctl stop -m immediate`: as a crash, no checkpoint).
    pub fn kill(&self) {
        let data = self.data_dir();
        self.run(
            "pg_ctl",
            &[
                "stop".as_ref(),
                "-D".as_ref(),
                data.as_os_str(),
                "-m".as_ref(),
                "immediate".as_ref(),
                "-w".as_ref(),
                "-t".as_ref(),
                PG_CTL_WAIT_SECS.as_ref(),
            ],
        );
    }

    /// Starts the server (again), on the same port and data, and waits until it accepts
    /// connections.
    pub fn start_again(&self) {
        let data = self.data_dir();
        let log = self.dir.path().join("server.log");
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off -c max_connections=200",
            self.port,
            self.dir.path().display()
        );
        self.run(
            "pg_ctl",
            &[
                "start".as_ref(),
                "-D".as_ref(),
                data.as_os_str(),
                "-l".as_ref(),
                log.as_os_str(),
                "-o".as_ref(),
                options.as_ref(),
                "-w".as_ref(),
                "-t".as_ref(),
                PG_CTL_WAIT_SECS.as_ref(),
            ],
        );
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Runs one of the server's programs as its user; a failure fails the test, with the
    /// server's log.
    fn run(&self, program: &str, args: &[&std::ffi::OsStr]) {
        let (first, rest) = match self.as_user.split_first() {
            Some((first, rest)) => (first.clone(), rest.to_vec()),
            None => (self.bin.join(program).into_os_string(), Vec::new()),
        };
        let mut command = Command::new(first);
        command.args(rest);
        if !self.as_user.is_empty() {
            command.arg(self.bin.join(program));
        }
        let out = command
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap_or_else(|e| panic!("running {program}: {e}"));
        if !out.status.success() {
            let log =
                std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
            panic!(
                "{program} failed: {}{}\nserver log:\n{log}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.data_dir();
        if data.join("postmaster.pid").exists() {
            self.kill();
        }
    }
}

/// The newest installed server's `bin` directory.
fn server_binaries() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| Some(entry.ok()?.path().join("bin")))
        .filter(|bin| bin.join("initdb").is_file() && bin.join("pg_ctl").is_file())
        .collect();
    versions.sort_by_key(|bin| version_of(bin));
    versions.pop()
}

fn version_of(bin: &Path) -> u32 {
    bin.parent()
        .and_then(Path::file_name)
        .and_then(|v| v.to_str()?.parse().ok())
        .unwrap_or(0)
}
