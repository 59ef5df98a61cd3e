//! Local users other than root, as attackers: uids with no name, in the socket's group
//! (`nogroup`), through `setpriv`. Their connections are opened by a small Python program run
//! as that uid.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use brine_proto::control::ControlRequest;
use brine_tests::fleet::{bounded, Fleet, MinionOptions};
use brine_tests::setpriv;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const NOGROUP: u32 = 65534;
/// Every user may run it (a python3 under root's home may not be); scripts/test.sh installs it.
const SYSTEM_PYTHON: &str = "/usr/bin/python3";

/// `python3 -c HOLDER socket mode count payload-file`: opens `count` connections and on each
/// sends the payload's bytes. `hold`: all at once, then prints `ready` and holds them until its
/// stdin closes. `each`: one after the other, reading each answer to its end, then prints
/// `ready` and exits.
const HOLDER: &str = r#"
import socket, sys
path, mode, count, payload_file = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
payload = open(payload_file, "rb").read()
held = []
for _ in range(count):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        s.sendall(payload)
        if mode == "each":
            while s.recv(65536):
                pass
            s.close()
            continue
    except OSError:
        pass
    held.append(s)
print("ready", flush=True)
if mode == "hold":
    sys.stdin.read()
"#;

/// A fleet whose control socket the local users may reach, and the way to be them.
pub struct LocalUsers {
    pub setpriv: PathBuf,
    pub fleet: Fleet,
}

impl LocalUsers {
    /// A fleet (not started) with `socket_group = "nogroup"`; `None` (with a note) when this
    /// process cannot run programs as other users.
    pub async fn fleet() -> Option<Self> {
        let setpriv = setpriv()?;
        let mut fleet = Fleet::new().await;
        fleet.socket_group = "nogroup".into();
        // They need to reach the socket, the tools and the payloads inside the fleet's directory.
        std::fs::set_permissions(&fleet.dir, std::fs::Permissions::from_mode(0o711)).unwrap();
        Some(Self { setpriv, fleet })
    }

    /// [`LocalUsers::fleet`], its master started and `minion` connected.
    pub async fn started(minion: &str) -> Option<Self> {
        let mut users = Self::fleet().await?;
        users.fleet.start_master().await;
        users
            .fleet
            .add_minion(minion, MinionOptions::default())
            .await;
        users.fleet.wait_connected(&[minion]).await;
        Some(users)
    }

    fn command(&self, uid: u32) -> Command {
        let mut command = Command::new(&self.setpriv);
        command
            .arg(format!("--reuid={uid}"))
            .arg(format!("--regid={NOGROUP}"))
            .arg("--clear-groups")
            .arg("--");
        command
    }

    /// Runs `brine-run args` as `uid`.
    pub async fn brine_run(&self, uid: u32, args: &[&str]) -> std::process::Output {
        bounded(
            "brine-run as another user",
            Duration::from_secs(30),
            self.command(uid)
                .arg(&self.fleet.bins.brine_run)
                .args(args)
                .env("BRINE_SOCKET", &self.fleet.socket)
                .env("NO_COLOR", "1")
                .stdin(Stdio::null())
                .kill_on_drop(true)
                .output(),
        )
        .await
        .expect("running brine-run")
    }

    /// `count` connections of `uid` that each send `payload`, held until [`Holder::stop`].
    pub async fn hold(&self, uid: u32, count: usize, payload: &[u8]) -> Holder {
        Holder::start(self, uid, "hold", count, payload).await
    }

    /// `count` connections of `uid` one after the other, each sending `payload` and reading
    /// the master's answer to its end; returns when the last has been answered.
    pub async fn each(&self, uid: u32, count: usize, payload: &[u8]) {
        let mut holder = Holder::start(self, uid, "each", count, payload).await;
        let _ = bounded(
            "an attacker to exit",
            Duration::from_secs(20),
            holder.0.wait(),
        )
        .await;
    }
}

/// The connections of one attacker.
pub struct Holder(Child);

impl Holder {
    async fn start(users: &LocalUsers, uid: u32, mode: &str, count: usize, payload: &[u8]) -> Self {
        static PAYLOADS: AtomicUsize = AtomicUsize::new(0);
        let file = users.fleet.dir.join(format!(
            "payload-{}",
            PAYLOADS.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&file, payload).expect("writing a payload");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mut child = users
            .command(uid)
            .args([SYSTEM_PYTHON, "-c", HOLDER])
            .arg(&users.fleet.socket)
            .arg(mode)
            .arg(count.to_string())
            .arg(&file)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("starting python3 through setpriv");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = bounded(
            "the attacker's connections",
            Duration::from_secs(120),
            lines.next_line(),
        )
        .await
        .unwrap();
        assert_eq!(line.as_deref(), Some("ready"), "uid {uid} {mode}");
        Self(child)
    }

    /// Closes its connections.
    pub async fn stop(mut self) {
        drop(self.0.stdin.take());
        let _ = bounded(
            "an attacker to exit",
            Duration::from_secs(20),
            self.0.wait(),
        )
        .await;
    }
}

/// A control request as it goes on the socket.
pub fn frame(request: &ControlRequest) -> Vec<u8> {
    use tokio_util::codec::Encoder as _;
    let body = bytes::Bytes::from(brine_proto::encode(request));
    let mut frame = bytes::BytesMut::new();
    brine_proto::frame::ControlCodec
        .encode(body, &mut frame)
        .expect("a request within the frame limit");
    frame.to_vec()
}
