//! `network.*`: the host's addresses (from `getifaddrs`) and `ping`, with Salt's names and
//! returns. `network.ping` runs the system's `ping` as argv through `cmd`'s machinery (its own
//! process group, output capped, killed at a time limit).

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use brine_proto::Value;
use ipnet::IpNet;

use crate::args::{kw, opt, req, ArgError, Args, Preset, Signature};
use crate::{Error, Function, Handler, Outcome};

/// The functions of this module.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Fun {
    IpAddrs,
    IpAddrs6,
    Ping,
}

/// How many echo requests `network.ping` sends unless told otherwise, as Salt's `-c 4`.
const DEFAULT_COUNT: i64 = 4;
/// The most echo requests one call sends.
const MAX_COUNT: i64 = 100;
/// The longest `-W` wait a call may ask for, in seconds.
const MAX_WAIT: i64 = 600;
/// iputils' own wait for the last reply when `-W` is not given.
const PING_DEFAULT_WAIT: u64 = 10;
/// Time given to `ping` beyond its own schedule before its process group is killed.
const PING_SLACK: Duration = Duration::from_secs(10);

pub(crate) const FUNCTIONS: &[Function] = &[
    Function {
        name: "network.ip_addrs",
        doc: "Return the IPv4 addresses of the host's interfaces, sorted. Loopback addresses\n\
              (127.0.0.0/8) are left out unless ``include_loopback=True``.\n\n\
              interface\n    Only this interface's addresses (none for an unknown interface).\n\
              include_loopback : False\n    Keep loopback addresses.\n\
              cidr\n    Only the addresses inside this network, e.g. ``10.0.0.0/8``.\n\
              type\n    ``public`` or ``private`` (as Python's ``ipaddress`` tells them): only those\n    \
              addresses. Ignored when ``cidr`` is given, as in Salt.\n\n\
              CLI Example:\n\n    brine '*' network.ip_addrs\n    \
              brine '*' network.ip_addrs interface=eth0\n    \
              brine '*' network.ip_addrs cidr=10.0.0.0/8",
        signature: Signature::new(&[
            opt("interface"),
            opt("include_loopback").with_default(Preset::Bool(false)),
            opt("cidr"),
            opt("type"),
        ]),
        handler: Handler::Network(Fun::IpAddrs),
    },
    Function {
        name: "network.ip_addrs6",
        doc: "Return the IPv6 addresses of the host's interfaces, sorted; link-local ones\n\
              included. ``::1`` is left out unless ``include_loopback=True``.\n\n\
              interface\n    Only this interface's addresses.\n\
              include_loopback : False\n    Keep ``::1``.\n\
              cidr\n    Only the addresses inside this network, e.g. ``fd00::/8``.\n\n\
              CLI Example:\n\n    brine '*' network.ip_addrs6\n    \
              brine '*' network.ip_addrs6 cidr=2001:db8::/32",
        signature: Signature::new(&[
            opt("interface"),
            opt("include_loopback").with_default(Preset::Bool(false)),
            opt("cidr"),
        ]),
        handler: Handler::Network(Fun::IpAddrs6),
    },
    Function {
        name: "network.ping",
        doc: "Ping a host with the system's ``ping -c 4`` and return its output; the job's\n\
              return code is ping's exit code, so an unreachable host fails the job. With\n\
              ``return_boolean=True``, return ``True`` or ``False`` instead (the job then\n\
              succeeds either way). Needs ``ping`` (iputils-ping) on the minion.\n\n\
              host\n    A host name or an address (letters, digits, ``.``, ``-``, ``_``, ``:``;\n    \
              not starting with ``-``).\n\
              timeout\n    Seconds to wait for each reply (ping's ``-W``).\n\
              return_boolean : False\n    Return whether the host answered.\n\
              count : 4\n    How many echo requests to send (at most 100).\n\n\
              ping is killed, with anything it started, if it runs past its own schedule by\n\
              10 seconds.\n\n\
              CLI Example:\n\n    brine '*' network.ping archlinux.org\n    \
              brine '*' network.ping 10.0.0.1 timeout=3 return_boolean=True",
        signature: Signature::new(&[
            req("host"),
            opt("timeout"),
            opt("return_boolean").with_default(Preset::Bool(false)),
            kw("count").with_default(Preset::Int(DEFAULT_COUNT)),
        ]),
        handler: Handler::Network(Fun::Ping),
    },
];

pub(crate) async fn call(fun: Fun, args: Args) -> Result<Outcome, Error> {
    match fun {
        Fun::IpAddrs => {
            let filter = Filter::from_args(&args)?;
            let kind = match args.string("type")?.as_deref() {
                None => None,
                Some("public") => Some(false),
                Some("private") => Some(true),
                Some(other) => {
                    return Err(ArgError::Invalid {
                        name: "type",
                        reason: format!(
                            "must be 'public' or 'private', got '{}'",
                            crate::shorten(other)
                        ),
                    }
                    .into())
                }
            };
            let addrs = addresses(&filter, |ip| match ip {
                IpAddr::V4(v4) => {
                    // As in Salt, a cidr decides alone.
                    let of_kind =
                        filter.cidr.is_some() || kind.is_none_or(|p| p == is_private_v4(v4));
                    (!v4.is_loopback() || filter.include_loopback) && of_kind
                }
                IpAddr::V6(_) => false,
            });
            Ok(Outcome::ok(addrs))
        }
        Fun::IpAddrs6 => {
            let filter = Filter::from_args(&args)?;
            let addrs = addresses(&filter, |ip| match ip {
                IpAddr::V6(v6) => !v6.is_loopback() || filter.include_loopback,
                IpAddr::V4(_) => false,
            });
            Ok(Outcome::ok(addrs))
        }
        Fun::Ping => ping(&args).await,
    }
}

/// The filters `ip_addrs` and `ip_addrs6` share.
#[derive(Debug)]
struct Filter {
    interface: Option<String>,
    include_loopback: bool,
    cidr: Option<IpNet>,
}

impl Filter {
    fn from_args(args: &Args) -> Result<Self, ArgError> {
        let cidr = args
            .string("cidr")?
            .map(|text| {
                text.trim().parse::<IpNet>().map_err(|_| ArgError::Invalid {
                    name: "cidr",
                    reason: format!(
                        "must be a network such as 10.0.0.0/8, got '{}'",
                        crate::shorten(&text)
                    ),
                })
            })
            .transpose()?;
        Ok(Self {
            interface: args.string("interface")?,
            include_loopback: args.bool("include_loopback", false)?,
            cidr,
        })
    }
}

/// The interface addresses that `keep` keeps and the filter admits, sorted and unique.
fn addresses(filter: &Filter, keep: impl Fn(IpAddr) -> bool) -> Vec<Value> {
    let Ok(ifaddrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    let mut ips: Vec<IpAddr> = ifaddrs
        .filter(|ifa| {
            filter
                .interface
                .as_deref()
                .is_none_or(|name| ifa.interface_name == name)
        })
        .filter_map(|ifa| {
            let addr = ifa.address?;
            if let Some(v4) = addr.as_sockaddr_in() {
                Some(IpAddr::V4(v4.ip()))
            } else {
                addr.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
            }
        })
        .filter(|ip| keep(*ip))
        .filter(|ip| filter.cidr.is_none_or(|net| net.contains(ip)))
        .collect();
    ips.sort();
    ips.dedup();
    ips.iter().map(|ip| Value::String(ip.to_string())).collect()
}

/// Python's `ipaddress.IPv4Address.is_private`.
fn is_private_v4(ip: Ipv4Addr) -> bool {
    const PRIVATE: &[&str] = &[
        "0.0.0.0/8",
        "10.0.0.0/8",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/29",
        "192.0.0.170/31",
        "192.0.2.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "240.0.0.0/4",
        "255.255.255.255/32",
    ];
    in_any(PRIVATE, IpAddr::V4(ip))
}

fn in_any(networks: &[&str], ip: IpAddr) -> bool {
    networks
        .iter()
        .filter_map(|net| net.parse::<IpNet>().ok())
        .any(|net| net.contains(&ip))
}

/// Salt's `sanitize_host` characters, checked rather than silently dropped; a leading `-` would
/// be read by ping as an option.
fn host_arg(args: &Args) -> Result<String, ArgError> {
    let host = args.required_string("host")?;
    let allowed = |c: char| c.is_ascii_alphanumeric() || ".-_:".contains(c);
    if host.is_empty() || host.len() > 255 || host.starts_with('-') || !host.chars().all(allowed) {
        return Err(ArgError::Invalid {
            name: "host",
            reason: format!(
                "must be a host name or an address, got '{}'",
                crate::shorten(&host)
            ),
        });
    }
    Ok(host)
}

/// An integer argument within `1..=max`.
fn bounded(args: &Args, name: &'static str, max: i64) -> Result<Option<i64>, ArgError> {
    match args.int(name)? {
        Some(n) if !(1..=max).contains(&n) => Err(ArgError::Invalid {
            name,
            reason: format!("must be from 1 to {max}, got {n}"),
        }),
        other => Ok(other),
    }
}

async fn ping(args: &Args) -> Result<Outcome, Error> {
    let host = host_arg(args)?;
    // Salt's timeout=False means "not given".
    let wait = match args.value("timeout") {
        Some(Value::Bool(false)) => None,
        _ => bounded(args, "timeout", MAX_WAIT)?,
    };
    let return_boolean = args.bool("return_boolean", false)?;
    let count = bounded(args, "count", MAX_COUNT)?.unwrap_or(DEFAULT_COUNT);
    let mut argv = vec!["ping".to_owned(), "-c".to_owned(), count.to_string()];
    if let Some(wait) = wait {
        argv.extend(["-W".to_owned(), wait.to_string()]);
    }
    argv.push(host);
    // ping sends one request a second and then waits for the last reply.
    let schedule = count.unsigned_abs() - 1 + wait.map_or(PING_DEFAULT_WAIT, i64::unsigned_abs);
    let limit = Duration::from_secs(schedule) + PING_SLACK;
    let (output, retcode) = crate::cmd::run_argv(argv, limit).await?;
    if return_boolean {
        return Ok(Outcome::ok(retcode == 0));
    }
    Ok(Outcome::with_retcode(output, retcode))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use std::net::Ipv6Addr;

    use super::*;
    use crate::tests::run;

    fn strings(out: &Outcome) -> Vec<&str> {
        assert!(out.success, "{out:?}");
        out.ret
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect()
    }

    #[tokio::test]
    async fn ip_addrs_leave_out_loopback_unless_asked() {
        let out = run("network.ip_addrs", vec![], json!({})).await;
        let default = strings(&out);
        assert!(
            !default.iter().any(|ip| ip.starts_with("127.")),
            "{default:?}"
        );
        assert!(default.iter().all(|ip| ip.parse::<Ipv4Addr>().is_ok()));

        let out = run(
            "network.ip_addrs",
            vec![],
            json!({"include_loopback": true}),
        )
        .await;
        let all = strings(&out);
        assert!(all.contains(&"127.0.0.1"), "{all:?}");
        assert_eq!(
            all.len(),
            default.len() + all.iter().filter(|ip| ip.starts_with("127.")).count()
        );
        let mut sorted = all.clone();
        sorted.sort_by_key(|ip| ip.parse::<Ipv4Addr>().unwrap());
        assert_eq!(all, sorted);

        let out = run(
            "network.ip_addrs",
            vec![json!("lo"), json!(true)],
            json!({}),
        )
        .await;
        assert_eq!(strings(&out), ["127.0.0.1"]);
        let out = run(
            "network.ip_addrs",
            vec![json!("no-such-if0")],
            json!({"include_loopback": true}),
        )
        .await;
        assert!(strings(&out).is_empty());
        let out = run(
            "network.ip_addrs",
            vec![],
            json!({"include_loopback": true, "cidr": "127.0.0.0/8"}),
        )
        .await;
        assert_eq!(strings(&out), ["127.0.0.1"]);

        let out = run(
            "network.ip_addrs",
            vec![],
            json!({"include_loopback": true, "type": "private"}),
        )
        .await;
        let private = strings(&out);
        assert!(private.contains(&"127.0.0.1"));
        let out = run(
            "network.ip_addrs",
            vec![],
            json!({"include_loopback": true, "type": "public"}),
        )
        .await;
        let public = strings(&out);
        assert_eq!(private.len() + public.len(), all.len());

        let out = run("network.ip_addrs", vec![], json!({"cidr": "10.0.0.0/33"})).await;
        assert_eq!(
            out.ret,
            json!("network.ip_addrs: argument 'cidr' must be a network such as 10.0.0.0/8, got '10.0.0.0/33'")
        );
        let out = run("network.ip_addrs", vec![], json!({"type": "odd"})).await;
        assert!(out.ret.as_str().unwrap().contains("argument 'type'"));
    }

    #[tokio::test]
    async fn ip_addrs6_lists_ipv6() {
        let lo_has_v6 = std::fs::read_to_string("/proc/net/if_inet6")
            .unwrap_or_default()
            .lines()
            .any(|line| line.starts_with("00000000000000000000000000000001"));
        let out = run(
            "network.ip_addrs6",
            vec![],
            json!({"include_loopback": true}),
        )
        .await;
        let all = strings(&out);
        assert_eq!(all.contains(&"::1"), lo_has_v6, "{all:?}");
        assert!(all.iter().all(|ip| ip.parse::<Ipv6Addr>().is_ok()));
        let out = run("network.ip_addrs6", vec![], json!({})).await;
        assert!(!strings(&out).contains(&"::1"));
        let out = run(
            "network.ip_addrs6",
            vec![json!("lo"), json!(true), json!("::1/128")],
            json!({}),
        )
        .await;
        assert_eq!(strings(&out).len(), usize::from(lo_has_v6));
    }

    #[test]
    fn private_is_pythons_private() {
        for ip in [
            "10.1.2.3",
            "127.0.0.1",
            "172.31.255.255",
            "192.168.0.1",
            "169.254.1.1",
        ] {
            assert!(is_private_v4(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "172.32.0.1", "100.64.0.1", "1.1.1.1"] {
            assert!(!is_private_v4(ip.parse().unwrap()), "{ip}");
        }
    }

    #[tokio::test]
    async fn ping_reaches_loopback() {
        let out = run(
            "network.ping",
            vec![json!("127.0.0.1")],
            json!({"count": 1}),
        )
        .await;
        assert!(out.success, "{out:?}");
        let text = out.ret.as_str().unwrap();
        assert!(
            text.contains("127.0.0.1") && text.contains("1 received"),
            "{text}"
        );

        let out = run(
            "network.ping",
            vec![json!("127.0.0.1"), json!(2), json!(true)],
            json!({"count": 1}),
        )
        .await;
        assert_eq!(out, Outcome::ok(true));
    }

    #[tokio::test]
    async fn ping_checks_its_arguments() {
        for host in ["-f", "a b", "", "x;reboot"] {
            let out = run("network.ping", vec![json!(host)], json!({})).await;
            assert!(!out.success);
            assert!(
                out.ret
                    .as_str()
                    .unwrap()
                    .starts_with("network.ping: argument 'host' must be"),
                "{host}: {out:?}"
            );
        }
        let out = run(
            "network.ping",
            vec![json!("127.0.0.1")],
            json!({"count": 0}),
        )
        .await;
        assert_eq!(
            out.ret,
            json!("network.ping: argument 'count' must be from 1 to 100, got 0")
        );
        let out = run(
            "network.ping",
            vec![json!("127.0.0.1"), json!("soon")],
            json!({}),
        )
        .await;
        assert_eq!(
            out.ret,
            json!("network.ping: argument 'timeout' must be an integer, got a string")
        );
    }
}
