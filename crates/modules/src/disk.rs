//! `disk.*`: file-system usage, as Salt's `disk.usage` reports `df -P`: the mounts from
//! `/proc/self/mounts`, each measured with `statvfs` on the blocking pool (a hung network mount
//! blocks a pool thread, never the minion's runtime).

use std::collections::HashMap;
use std::io;
use std::os::unix::fs::MetadataExt;

use brine_proto::{Map, Value};
use nix::sys::statvfs::{statvfs, Statvfs};

use crate::args::{opt, ArgError, Args, Signature};
use crate::{blocking, Error, Function, Handler, Outcome};

/// The functions of this module.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Fun {
    Usage,
}

pub(crate) const FUNCTIONS: &[Function] = &[Function {
    name: "disk.usage",
    doc: "Return usage information for the mounted file systems, as ``df -P`` shows it: a map\n\
          of each mount point to ``filesystem``, ``1K-blocks``, ``used``, ``available`` (in\n\
          KiB, as strings, as Salt returns them) and ``capacity`` (``\"NN%\"``, rounded up as\n\
          ``df`` rounds it). As ``df`` does, file systems without blocks (``proc``, ``sysfs``,\n\
          ...) are left out, and of a device mounted at several points only the shortest is\n\
          shown.\n\n\
          args\n    df's flags, as Salt passes them: ``a`` shows every mount (none left out),\n    \
          ``l`` only local file systems; ``k`` and ``P`` are accepted and change nothing.\n\n\
          CLI Example:\n\n    brine '*' disk.usage\n    \
          brine '*' disk.usage args=l",
    signature: Signature::new(&[opt("args")]),
    handler: Handler::Disk(Fun::Usage),
}];

/// Why a disk function failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DiskError {
    #[error("cannot read {MOUNTS}: {0}")]
    Mounts(io::Error),
}

const MOUNTS: &str = "/proc/self/mounts";

/// File-system types that `df -l` leaves out: network and cluster file systems.
const REMOTE_TYPES: &[&str] = &[
    "afs",
    "ceph",
    "cifs",
    "coda",
    "fuse.glusterfs",
    "fuse.sshfs",
    "gfs",
    "gfs2",
    "glusterfs",
    "lustre",
    "ncpfs",
    "nfs",
    "nfs4",
    "ocfs2",
    "smb3",
    "smbfs",
    "sshfs",
    "9p",
];

/// What `args` asked for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct DfFlags {
    all: bool,
    local: bool,
}

fn df_flags(args: &Args) -> Result<DfFlags, ArgError> {
    let mut flags = DfFlags::default();
    for flag in args.string("args")?.unwrap_or_default().chars() {
        match flag {
            'a' => flags.all = true,
            'l' => flags.local = true,
            'k' | 'P' => {}
            other => {
                return Err(ArgError::Invalid {
                    name: "args",
                    reason: format!("may hold only the df flags a, l, k and P, not '{other}'"),
                })
            }
        }
    }
    Ok(flags)
}

pub(crate) async fn call(fun: Fun, args: Args) -> Result<Outcome, Error> {
    match fun {
        Fun::Usage => {
            let flags = df_flags(&args)?;
            blocking(move || usage(flags)).await
        }
    }
}

/// One line of `/proc/self/mounts`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mount {
    device: String,
    dir: String,
    fstype: String,
}

/// The mounts in `text`, in order; the kernel escapes space, tab, newline and `\` as octal.
fn parse_mounts(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split(' ');
            let (device, dir, fstype) = (fields.next()?, fields.next()?, fields.next()?);
            Some(Mount {
                device: unescape(device),
                dir: unescape(dir),
                fstype: unescape(fstype),
            })
        })
        .collect()
}

/// Undoes the kernel's `\ooo` escapes.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)))
            .and_then(|d| u8::from_str_radix(std::str::from_utf8(d).ok()?, 8).ok());
        match octal {
            Some(byte) => {
                out.push(byte);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What `df -P` shows for one file system, in KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Usage {
    total: u64,
    used: u64,
    available: u64,
    /// Percent used, rounded up; `None` when the file system has no room at all.
    capacity: Option<u64>,
}

/// df's arithmetic: blocks of `fragment` bytes, KiB rounded up, capacity against the space an
/// unprivileged user can have (used + available), rounded up.
fn usage_of(fragment: u64, blocks: u64, free: u64, available: u64) -> Usage {
    let kib = |n: u64| (u128::from(n) * u128::from(fragment)).div_ceil(1024) as u64;
    let used = blocks.saturating_sub(free);
    let room = u128::from(used) + u128::from(available);
    let capacity = (room > 0).then(|| (u128::from(used) * 100).div_ceil(room) as u64);
    Usage {
        total: kib(blocks),
        used: kib(used),
        available: kib(available),
        capacity,
    }
}

/// df's figures for one `statvfs` answer.
// `c_ulong` and `fsblkcnt_t` are narrower than u64 on some targets, so the conversions stay.
#[allow(clippy::useless_conversion)]
fn usage_from(stat: &Statvfs) -> Usage {
    usage_of(
        u64::from(stat.fragment_size()),
        u64::from(stat.blocks()),
        u64::from(stat.blocks_free()),
        u64::from(stat.blocks_available()),
    )
}

fn usage(flags: DfFlags) -> Result<Outcome, Error> {
    let text = std::fs::read_to_string(MOUNTS).map_err(DiskError::Mounts)?;
    let mounts = parse_mounts(&text);
    // A later mount at the same point hides the earlier one.
    let mut last_at: HashMap<&str, usize> = HashMap::new();
    for (i, mount) in mounts.iter().enumerate() {
        last_at.insert(&mount.dir, i);
    }
    let mut shown: Vec<(u64, &Mount, Usage)> = Vec::new();
    for (i, mount) in mounts.iter().enumerate() {
        if last_at.get(mount.dir.as_str()) != Some(&i) {
            continue;
        }
        if flags.local && REMOTE_TYPES.contains(&mount.fstype.as_str()) {
            continue;
        }
        // A mount that cannot be measured (no permission, gone meanwhile) is skipped, as df
        // skips it after a message.
        let Ok(stat) = statvfs(mount.dir.as_str()) else {
            continue;
        };
        if stat.blocks() == 0 && !flags.all {
            continue;
        }
        let dev = std::fs::metadata(&mount.dir).map_or(0, |m| m.dev());
        let usage = usage_from(&stat);
        if !flags.all && dev != 0 {
            // One device at several points (bind mounts): df shows the shortest point.
            if let Some(seen) = shown.iter_mut().find(|(d, _, _)| *d == dev) {
                if mount.dir.len() < seen.1.dir.len() {
                    *seen = (dev, mount, usage);
                }
                continue;
            }
        }
        shown.push((dev, mount, usage));
    }
    let mut ret = Map::new();
    for (_, mount, usage) in shown {
        let mut entry = Map::new();
        entry.insert("filesystem".into(), mount.device.clone().into());
        entry.insert("1K-blocks".into(), usage.total.to_string().into());
        entry.insert("used".into(), usage.used.to_string().into());
        entry.insert("available".into(), usage.available.to_string().into());
        let capacity = usage
            .capacity
            .map_or("-".to_owned(), |pct| format!("{pct}%"));
        entry.insert("capacity".into(), capacity.into());
        ret.insert(mount.dir.clone(), Value::Object(entry));
    }
    Ok(Outcome::ok(ret))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::tests::run;

    #[tokio::test]
    async fn usage_reports_the_root_file_system() {
        let out = run("disk.usage", vec![], json!({})).await;
        assert!(out.success, "{out:?}");
        let ret = out.ret.as_object().unwrap();
        let root = ret["/"].as_object().unwrap();
        let mut keys: Vec<&str> = root.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            ["1K-blocks", "available", "capacity", "filesystem", "used"]
        );
        let stat = statvfs("/").unwrap();
        let expected = u128::from(stat.blocks()) * u128::from(stat.fragment_size()) / 1024;
        let total: u128 = root["1K-blocks"].as_str().unwrap().parse().unwrap();
        assert!(total.abs_diff(expected) <= 1, "{total} {expected}");
        let capacity = root["capacity"].as_str().unwrap();
        let pct: u64 = capacity.strip_suffix('%').unwrap().parse().unwrap();
        assert!(pct <= 100);
        for key in ["used", "available"] {
            root[key].as_str().unwrap().parse::<u64>().unwrap();
        }
        assert!(
            ret.keys().all(|dir| dir != "/proc" && dir != "/sys"),
            "{ret:?}"
        );

        let all = run("disk.usage", vec![json!("a")], json!({})).await;
        assert!(all.ret.get("/proc").is_some(), "'a' shows everything");
        let local = run("disk.usage", vec![], json!({"args": "lkP"})).await;
        assert!(local.ret.get("/").is_some());

        let out = run("disk.usage", vec![json!("h")], json!({})).await;
        assert_eq!(
            out.ret,
            json!("disk.usage: argument 'args' may hold only the df flags a, l, k and P, not 'h'")
        );
        assert!(!out.success);
    }

    #[test]
    fn mounts_are_parsed_and_unescaped() {
        let mounts = parse_mounts(
            "/dev/sda1 / ext4 rw 0 0\n\
             //srv/share /mnt/my\\040share cifs rw 0 0\n\
             short\n",
        );
        assert_eq!(
            mounts,
            [
                Mount {
                    device: "/dev/sda1".into(),
                    dir: "/".into(),
                    fstype: "ext4".into()
                },
                Mount {
                    device: "//srv/share".into(),
                    dir: "/mnt/my share".into(),
                    fstype: "cifs".into()
                },
            ]
        );
        assert_eq!(unescape("a\\011b\\134c\\9"), "a\tb\\c\\9");
    }

    #[test]
    fn arithmetic_matches_df() {
        // `df -P /` on a test machine: 264212084 27879356 67406532 30%
        let u = usage_of(4096, 66_053_021, 59_083_182, 16_851_633);
        assert_eq!(
            (u.total, u.used, u.available, u.capacity),
            (264_212_084, 27_879_356, 67_406_532, Some(30))
        );
        assert_eq!(usage_of(4096, 10, 10, 0).capacity, None);
        assert_eq!(usage_of(512, 3, 0, 0).total, 2, "KiB round up");
        assert_eq!(usage_of(4096, 1000, 999, 999).capacity, Some(1));
    }
}
