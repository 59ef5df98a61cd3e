//! Grains: the static facts a minion reports about its host ([`collect_grains`]), and the
//! `grains.*` functions that read them.
//!
//! Collection reads local files and system calls only (no network lookups) and never fails: a
//! fact that cannot be read is reported as `""`, `0` or `[]`.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use brine_proto::{Map, MinionId, Value};

use crate::args::{kw, opt, req, Args, Preset, Signature};
use crate::{Context, Error, Function, Handler, Outcome};

/// The functions of this module.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Fun {
    Items,
    Item,
    Get,
    Ls,
    SetVal,
    DelVal,
}

pub(crate) const FUNCTIONS: &[Function] = &[
    Function {
        name: "grains.items",
        doc: "Return all of the minion's grains.\n\n\
              CLI Example:\n\n    brine '*' grains.items",
        signature: Signature::new(&[]),
        handler: Handler::Grains(Fun::Items),
    },
    Function {
        name: "grains.item",
        doc: "Return one or more grains, as a map of name to value (``\"\"`` for a missing one).\n\
              Nested grains are named with ``:``.\n\n\
              CLI Example:\n\n    brine '*' grains.item os osrelease",
        signature: Signature::new(&[]).varargs(),
        handler: Handler::Grains(Fun::Item),
    },
    Function {
        name: "grains.get",
        doc: "Attempt to retrieve the named value from grains; if the named value is not\n\
              available return the passed default (``\"\"`` when none is given). The value\n\
              can be a nested key, its levels separated by ``:``, e.g. ``pkg:apache`` for\n\
              ``grains['pkg']['apache']``; list items are named by their index.\n\n\
              key\n    The grain to return.\n\
              default : \"\"\n    What to return when the grain is missing.\n\
              delimiter : \":\"\n    The separator of nested keys.\n\n\
              CLI Example:\n\n    brine '*' grains.get os\n    \
              brine '*' grains.get ipv4:0",
        signature: Signature::new(&[
            req("key"),
            opt("default").with_default(Preset::Str("")),
            kw("delimiter").with_default(Preset::Str(":")),
        ]),
        handler: Handler::Grains(Fun::Get),
    },
    Function {
        name: "grains.setval",
        doc:
            "Set a grain to a value, kept across restarts in the minion's state_dir/grains.json;\n\
              it wins over the grains the minion finds out and the ones in its configuration.\n\
              The master hears of the change at once, so grain targets see it. Returns\n\
              ``{key: val}``.\n\n\
              key\n    The grain's name.\n\
              val : None\n    Its new value (any value: string, number, list, map).\n\n\
              CLI Example:\n\n    brine '*' grains.setval role web\n    \
              brine '*' grains.setval roles '[web, cache]'",
        signature: Signature::new(&[req("key"), opt("val")]),
        handler: Handler::Grains(Fun::SetVal),
    },
    Function {
        name: "grains.delval",
        doc:
            "Delete a grain: set it to None, or with ``destructive=True`` forget the stored value\n\
              altogether (a grain the minion finds out itself, or one from its configuration,\n\
              then shows again). Returns ``{key: None}``.\n\n\
              key\n    The grain's name.\n\
              destructive : False\n    Remove the key instead of setting it to None.\n\n\
              CLI Example:\n\n    brine '*' grains.delval role\n    \
              brine '*' grains.delval role destructive=True",
        signature: Signature::new(&[req("key"), kw("destructive")]),
        handler: Handler::Grains(Fun::DelVal),
    },
    Function {
        name: "grains.ls",
        doc: "Return a sorted list of all available grain names.\n\n\
              CLI Example:\n\n    brine '*' grains.ls",
        signature: Signature::new(&[]),
        handler: Handler::Grains(Fun::Ls),
    },
];

pub(crate) async fn call(ctx: &Context, fun: Fun, args: Args) -> Result<Outcome, Error> {
    let store = || {
        ctx.grain_store
            .clone()
            .ok_or_else(|| Error::Unavailable("grains cannot be changed here".into()))
    };
    match fun {
        Fun::SetVal => {
            let key = args.required_string("key")?;
            let value = args.value("val").cloned().unwrap_or(Value::Null);
            let (store, k, v) = (store()?, key.clone(), value.clone());
            // A file write and its fsync: off the minion's one runtime worker.
            crate::blocking(move || Ok(store.set(&k, v)?)).await?;
            let mut ret = Map::new();
            ret.insert(key, value);
            Ok(Outcome::ok(ret))
        }
        Fun::DelVal => {
            let key = args.required_string("key")?;
            let (store, k) = (store()?, key.clone());
            if args.bool("destructive", false)? {
                crate::blocking(move || Ok(store.forget(&k)?)).await?;
            } else {
                crate::blocking(move || Ok(store.set(&k, Value::Null)?)).await?;
            }
            let mut ret = Map::new();
            ret.insert(key, Value::Null);
            Ok(Outcome::ok(ret))
        }
        Fun::Items => Ok(Outcome::ok(Map::clone(&ctx.grains))),
        Fun::Item => {
            let mut ret = Map::new();
            for key in &args.varargs {
                let key = crate::args::scalar_text(key).unwrap_or_default();
                let value = lookup(&ctx.grains, &key, ":")
                    .cloned()
                    .unwrap_or_else(missing);
                ret.insert(key, value);
            }
            Ok(Outcome::ok(ret))
        }
        Fun::Get => {
            let key = args.required_string("key")?;
            let delimiter = args.string("delimiter")?.unwrap_or_else(|| ":".into());
            let found = lookup(&ctx.grains, &key, &delimiter).cloned();
            let ret = match found {
                Some(value) => value,
                None => args.value("default").cloned().unwrap_or_else(missing),
            };
            Ok(Outcome::ok(ret))
        }
        Fun::Ls => {
            let mut names: Vec<&String> = ctx.grains.keys().collect();
            names.sort();
            Ok(Outcome::ok(
                names
                    .into_iter()
                    .map(|k| Value::String(k.clone()))
                    .collect::<Vec<_>>(),
            ))
        }
    }
}

/// What Salt returns for a missing grain.
fn missing() -> Value {
    Value::String(String::new())
}

/// The value at `key` in `grains`, descending through maps by name and lists by index at each
/// `delimiter` (an empty delimiter means no nesting).
fn lookup<'a>(grains: &'a Map, key: &str, delimiter: &str) -> Option<&'a Value> {
    if let Some(value) = grains.get(key) {
        return Some(value);
    }
    if delimiter.is_empty() {
        return None;
    }
    let mut parts = key.split(delimiter);
    let mut current = grains.get(parts.next()?)?;
    for part in parts {
        current = match current {
            Value::Object(map) => map.get(part)?,
            Value::Array(items) => items.get(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(current)
}

/// Collects this host's grains for minion `id`.
pub fn collect_grains(id: &MinionId) -> Map {
    let release = read_os_release();
    let os = os_name(&release);
    let os_family = os_family(&release, &os);
    let (kernelrelease, cpuarch) = match nix::sys::utsname::uname() {
        Ok(uts) => (
            uts.release().to_string_lossy().into_owned(),
            uts.machine().to_string_lossy().into_owned(),
        ),
        Err(_) => (String::new(), String::new()),
    };
    let fqdn = hostname::get()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    let host = fqdn.split('.').next().unwrap_or_default().to_owned();
    let field = |name: &str| release.get(name).cloned().unwrap_or_default();

    let mut grains = Map::new();
    let mut set = |key: &str, value: Value| {
        grains.insert(key.to_owned(), value);
    };
    set("id", id.as_str().into());
    set("os", os.into());
    set("os_family", os_family.into());
    set("osfullname", field("NAME").into());
    set("osrelease", field("VERSION_ID").into());
    set("oscodename", field("VERSION_CODENAME").into());
    set("kernel", capitalize(std::env::consts::OS).into());
    set("kernelrelease", kernelrelease.into());
    set("cpuarch", cpuarch.into());
    set("host", host.into());
    set("fqdn", fqdn.into());
    set("num_cpus", num_cpus().into());
    set("mem_total", mem_total_mib().into());
    let (ipv4, ipv6) = ip_addresses();
    set("ipv4", ipv4.into());
    set("ipv6", ipv6.into());
    set("machine_id", read_trimmed("/etc/machine-id").into());
    set("brine_version", env!("CARGO_PKG_VERSION").into());
    grains
}

/// A file's contents without surrounding whitespace, or `""` if it cannot be read.
fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// `/etc/os-release` (or `/usr/lib/os-release`) as a map; empty when neither exists.
fn read_os_release() -> HashMap<String, String> {
    ["/etc/os-release", "/usr/lib/os-release"]
        .iter()
        .find_map(|path| std::fs::read_to_string(path).ok())
        .map(|text| parse_os_release(&text))
        .unwrap_or_default()
}

/// Parses os-release's `KEY=value` lines; values may be quoted with shell rules.
fn parse_os_release(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .map(|(key, raw)| {
            let value = shlex::split(raw)
                .map(|words| words.join(" "))
                .unwrap_or_else(|| raw.trim().to_owned());
            (key.trim().to_owned(), value)
        })
        .collect()
}

/// Salt's spelling of an os-release `ID`.
const OS_NAMES: &[(&str, &str)] = &[
    ("almalinux", "AlmaLinux"),
    ("alpine", "Alpine"),
    ("amzn", "Amazon"),
    ("arch", "Arch"),
    ("centos", "CentOS"),
    ("debian", "Debian"),
    ("fedora", "Fedora"),
    ("gentoo", "Gentoo"),
    ("linuxmint", "Mint"),
    ("manjaro", "Manjaro"),
    ("nixos", "NixOS"),
    ("ol", "OEL"),
    ("opensuse", "openSUSE"),
    ("opensuse-leap", "Leap"),
    ("opensuse-tumbleweed", "openSUSE Tumbleweed"),
    ("raspbian", "Raspbian"),
    ("rhel", "RedHat"),
    ("rocky", "Rocky"),
    ("sles", "SUSE"),
    ("ubuntu", "Ubuntu"),
];

/// The `os` grain: Salt's name for the distribution.
fn os_name(release: &HashMap<String, String>) -> String {
    let id = release
        .get("ID")
        .map(|s| s.to_ascii_lowercase())
        .unwrap_or_default();
    if let Some((_, name)) = OS_NAMES.iter().find(|(known, _)| *known == id) {
        return (*name).to_owned();
    }
    if !id.is_empty() {
        return capitalize(&id);
    }
    match release
        .get("NAME")
        .and_then(|n| n.split_whitespace().next())
    {
        Some(word) => word.to_owned(),
        None => "Linux".to_owned(),
    }
}

/// `s` with its first letter upper-cased: "linux" -> "Linux".
fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .into_iter()
        .flat_map(char::to_uppercase)
        .chain(chars)
        .collect()
}

/// The `os_family` grain, from `ID` then `ID_LIKE`, as Salt groups distributions.
fn os_family(release: &HashMap<String, String>, os: &str) -> String {
    const FAMILIES: &[(&str, &str)] = &[
        ("debian", "Debian"),
        ("ubuntu", "Debian"),
        ("rhel", "RedHat"),
        ("fedora", "RedHat"),
        ("centos", "RedHat"),
        ("suse", "Suse"),
        ("opensuse", "Suse"),
        ("sles", "Suse"),
        ("arch", "Arch"),
        ("alpine", "Alpine"),
        ("gentoo", "Gentoo"),
    ];
    let ids = release.get("ID").into_iter().chain(release.get("ID_LIKE"));
    for word in ids.flat_map(|s| s.split_whitespace()) {
        let word = word.to_ascii_lowercase();
        if let Some((_, family)) = FAMILIES.iter().find(|(id, _)| *id == word) {
            return (*family).to_owned();
        }
    }
    os.to_owned()
}

/// The number of online CPUs.
fn num_cpus() -> u64 {
    use nix::unistd::{sysconf, SysconfVar};
    match sysconf(SysconfVar::_NPROCESSORS_ONLN) {
        Ok(Some(n)) if n > 0 => n as u64,
        _ => std::thread::available_parallelism().map_or(0, |n| n.get() as u64),
    }
}

/// `MemTotal` from `/proc/meminfo`, in MiB.
fn mem_total_mib() -> u64 {
    parse_mem_total(&std::fs::read_to_string("/proc/meminfo").unwrap_or_default())
}

fn parse_mem_total(meminfo: &str) -> u64 {
    meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse::<u64>().ok())
        .map_or(0, |kib| kib / 1024)
}

/// Every IPv4 and every IPv6 address of the host's interfaces, loopback included, each list
/// sorted and unique.
fn ip_addresses() -> (Vec<Value>, Vec<Value>) {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return (Vec::new(), Vec::new());
    };
    let (mut v4, mut v6): (Vec<Ipv4Addr>, Vec<Ipv6Addr>) = (Vec::new(), Vec::new());
    for addr in addrs.filter_map(|ifa| ifa.address) {
        if let Some(sin) = addr.as_sockaddr_in() {
            v4.push(sin.ip());
        } else if let Some(sin6) = addr.as_sockaddr_in6() {
            v6.push(sin6.ip());
        }
    }
    fn texts<T: Ord + ToString>(mut ips: Vec<T>) -> Vec<Value> {
        ips.sort();
        ips.dedup();
        ips.iter().map(|ip| Value::String(ip.to_string())).collect()
    }
    (texts(v4), texts(v6))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::tests::run;

    fn ctx_with(grains: Value) -> Context {
        let Value::Object(grains) = grains else {
            unreachable!("test grains are a map")
        };
        Context::new(MinionId::new("web1").unwrap(), grains)
    }

    async fn call_with(ctx: &Context, fun: &str, arg: Vec<Value>, kwarg: Value) -> Outcome {
        let Value::Object(kwarg) = kwarg else {
            unreachable!("test kwargs are a map")
        };
        let job = crate::execute(ctx, fun, arg, kwarg);
        tokio::time::timeout(std::time::Duration::from_secs(10), job)
            .await
            .unwrap()
    }

    #[test]
    fn collects_the_basic_grains() {
        let grains = collect_grains(&MinionId::new("web1").unwrap());
        assert_eq!(grains["id"], json!("web1"));
        assert_eq!(grains["kernel"], json!("Linux"));
        assert_eq!(grains["brine_version"], json!(env!("CARGO_PKG_VERSION")));
        assert!(grains["num_cpus"].as_u64().unwrap() >= 1);
        assert!(grains["mem_total"].as_u64().unwrap() >= 1);
        assert!(!grains["kernelrelease"].as_str().unwrap().is_empty());
        let ipv4 = grains["ipv4"].as_array().unwrap();
        assert!(ipv4.contains(&json!("127.0.0.1")), "{ipv4:?}");
        for key in ["os", "os_family", "osrelease", "host", "fqdn", "machine_id"] {
            assert!(grains[key].is_string(), "{key} missing");
        }
    }

    #[test]
    fn os_release_is_understood() {
        let debian = parse_os_release(
            "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\n\
             VERSION_ID=\"12\"\nID=debian\n# comment\n",
        );
        assert_eq!(debian["VERSION_ID"], "12");
        assert_eq!(debian["NAME"], "Debian GNU/Linux");
        assert_eq!(os_name(&debian), "Debian");
        assert_eq!(os_family(&debian, "Debian"), "Debian");

        let rocky = parse_os_release("ID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\n");
        assert_eq!(
            (os_name(&rocky), os_family(&rocky, "Rocky")),
            ("Rocky".into(), "RedHat".into())
        );
        let pop = parse_os_release("ID=pop\nID_LIKE=\"ubuntu debian\"\n");
        assert_eq!(
            (os_name(&pop), os_family(&pop, "Pop")),
            ("Pop".into(), "Debian".into())
        );
        let nothing = parse_os_release("");
        assert_eq!(os_name(&nothing), "Linux");
        assert_eq!(parse_mem_total("MemTotal:       16318412 kB\n"), 15935);
        assert_eq!(parse_mem_total("garbage"), 0);
    }

    #[tokio::test]
    async fn get_descends_and_defaults() {
        let ctx = ctx_with(json!({
            "os": "Debian",
            "a": {"b": {"c": 1}},
            "ipv4": ["127.0.0.1", "10.0.0.2"],
            "x:y": "flat",
        }));
        let get = |arg: Vec<Value>, kwarg: Value| call_with(&ctx, "grains.get", arg, kwarg);
        assert_eq!(
            get(vec![json!("os")], json!({})).await,
            Outcome::ok("Debian")
        );
        assert_eq!(get(vec![json!("a:b:c")], json!({})).await, Outcome::ok(1));
        assert_eq!(
            get(vec![json!("a:b")], json!({})).await,
            Outcome::ok(json!({"c": 1}))
        );
        assert_eq!(
            get(vec![json!("ipv4:1")], json!({})).await,
            Outcome::ok("10.0.0.2")
        );
        assert_eq!(
            get(vec![json!("x:y")], json!({})).await,
            Outcome::ok("flat")
        );
        assert_eq!(get(vec![json!("a:zz")], json!({})).await, Outcome::ok(""));
        assert_eq!(
            get(vec![json!("nope"), json!("dflt")], json!({})).await,
            Outcome::ok("dflt")
        );
        assert_eq!(
            get(vec![json!("a.b.c")], json!({"delimiter": "."})).await,
            Outcome::ok(1)
        );
        let out = get(vec![], json!({})).await;
        assert_eq!(
            out.ret,
            json!("grains.get: missing required argument 'key'")
        );

        let out = call_with(
            &ctx,
            "grains.item",
            vec![json!("os"), json!("nope")],
            json!({}),
        )
        .await;
        assert_eq!(out.ret, json!({"os": "Debian", "nope": ""}));
        let out = call_with(&ctx, "grains.ls", vec![], json!({})).await;
        assert_eq!(out.ret, json!(["a", "ipv4", "os", "x:y"]));
    }

    #[tokio::test]
    async fn items_returns_the_collected_grains() {
        let out = run("grains.items", vec![], json!({})).await;
        assert_eq!(out.ret["id"], json!("web1"));
        assert!(out.success);
    }
}
