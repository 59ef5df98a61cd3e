//! `pkg.*`: query, install, remove and upgrade packages through the host's package manager, with
//! Salt's names, arguments and return shapes.
//!
//! The manager is a [`Provider`], chosen from the `os_family` grain: `Debian` → apt (`dpkg-query`,
//! `apt-cache`, `apt-get`), `RedHat` → dnf (`rpm`, `dnf`); any other family fails the call and
//! names it. Every program runs through `cmd::run_program` (argv only, its own process group, a
//! timeout, capped output) with `LC_ALL=C`, so its output reads the same on every host; apt also
//! gets `DEBIAN_FRONTEND=noninteractive` and waits up to 60 s for the dpkg lock.
//!
//! A change (`install`, `remove`, `upgrade`) reads the installed packages before and after and
//! returns Salt's changes map, `{name: {"old": "1.0", "new": "1.1"}}`, `""` standing for "not
//! installed". A manager that exits non-zero fails the call with its exit code as the retcode
//! and the end of its stderr as the message (with any changes it made before failing).
//!
//! The output of the managers is parsed by the pure functions at the bottom of this file,
//! tested on output captured from apt on Debian 12 and on output in the form rpm and dnf print
//! it. dnf itself cannot run where brine's tests run: its argv and parsing are tested, not a
//! real dnf.
//!
//! Versions are ordered as each manager orders them by `pkg/version.rs`, whose tests check
//! dpkg's and rpm's orders against `dpkg` and `rpm` themselves.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use brine_proto::{Fnmatch, Map, Value};

use crate::args::{kw, opt, scalar_text, type_name, ArgError, Args, Signature};
use crate::cmd::{run_program, CmdError, ProgramOutput};
use crate::{Context, Error, Function, Handler, Outcome};

mod version;

use version::{compare_deb, compare_rpm};

/// How long a query (`dpkg-query`, `apt-cache`, `rpm`, `dnf list`) may take.
const QUERY_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a refresh of the package lists may take.
const REFRESH_TIMEOUT: Duration = Duration::from_secs(600);
/// How long an install, removal or upgrade may take.
const CHANGE_TIMEOUT: Duration = Duration::from_secs(3600);

/// How long apt waits for another apt or dpkg to release the dpkg lock.
const APT_LOCK_WAIT: &str = "DPkg::Lock::Timeout=60";

/// The longest package name or version accepted.
const MAX_NAME_LEN: usize = 255;

/// The functions of this module.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Fun {
    Version,
    ListPkgs,
    LatestVersion,
    Install,
    Remove,
    Upgrade,
    RefreshDb,
}

pub(crate) const FUNCTIONS: &[Function] = &[
    Function {
        name: "pkg.version",
        doc: "Returns a string representing the package version or an empty string if not\n\
              installed. If more than one package name is specified, a dict of name/version\n\
              pairs is returned. A name with ``*`` or ``?`` is a glob over the installed\n\
              packages and always gives a dict. Several installed versions of one package\n\
              (kernels) are joined with ``,``.\n\n\
              versions_as_list : False\n    Give each version as a list.\n\n\
              CLI Example:\n\n    brine '*' pkg.version <package name>\n    \
              brine '*' pkg.version <package1> <package2> <package3> ...\n    \
              brine '*' pkg.version 'python3*'",
        signature: Signature::new(&[kw("versions_as_list")]).varargs(),
        handler: Handler::Pkg(Fun::Version),
    },
    Function {
        name: "pkg.list_pkgs",
        doc: "List the packages currently installed in a dict::\n\n    \
              {'<package_name>': '<version>'}\n\n\
              On apt a package of a foreign architecture is named ``name:arch``; on dnf a\n\
              package of another architecture than the host's (not ``noarch``) is named\n\
              ``name.arch``, as Salt names them.\n\n\
              versions_as_list : False\n    Give each version as a list.\n\n\
              CLI Example:\n\n    brine '*' pkg.list_pkgs\n    \
              brine '*' pkg.list_pkgs versions_as_list=True",
        signature: Signature::new(&[opt("versions_as_list")]),
        handler: Handler::Pkg(Fun::ListPkgs),
    },
    Function {
        name: "pkg.latest_version",
        doc: "Return the latest version of the named package available for upgrade or\n\
              installation. If more than one package name is specified, a dict of\n\
              name/version pairs is returned.\n\n\
              If the latest version of a given package is already installed, an empty string\n\
              will be returned for that package (and for a package no repository has).\n\n\
              refresh : True\n    Refresh the package lists first (``pkg.refresh_db``).\n\
              show_installed : False\n    Return the candidate even when it is installed.\n\n\
              apt reads ``apt-cache policy``, dnf ``dnf list --available``.\n\n\
              CLI Example:\n\n    brine '*' pkg.latest_version <package name>\n    \
              brine '*' pkg.latest_version <package1> <package2> <package3> ... refresh=False",
        signature: Signature::new(&[kw("refresh"), kw("show_installed")]).varargs(),
        handler: Handler::Pkg(Fun::LatestVersion),
    },
    Function {
        name: "pkg.install",
        doc: "Install the passed package(s), add refresh=True to update the package lists\n\
              first. Packages already installed (at the requested version, if one is given)\n\
              are left alone.\n\n\
              name\n    The name of the package to be installed. Ignored if ``pkgs`` is passed.\n\
              refresh : False\n    Refresh the package lists before installing.\n\
              version\n    Install this version of ``name`` (apt: ``name=version``, downgrades\n    \
              allowed; dnf: ``name-version``). Ignored if ``pkgs`` is passed.\n\
              pkgs\n    A list of packages to install, each a name or a one-entry map of name\n    \
              to version.\n\n\
              Returns a dict containing the new package names and versions::\n\n    \
              {'<package>': {'old': '<old-version>', 'new': '<new-version>'}}\n\n\
              Dependencies installed along show up in it too. If the package manager fails,\n\
              the call fails with its exit code and the end of its error output.\n\n\
              CLI Example:\n\n    brine '*' pkg.install <package name>\n    \
              brine '*' pkg.install <package name> version=1.2.3-1 refresh=True\n    \
              brine '*' pkg.install pkgs='[\"foo\", {\"bar\": \"1.2.3-4\"}]'",
        signature: Signature::new(&[opt("name"), opt("refresh"), kw("pkgs"), kw("version")]),
        handler: Handler::Pkg(Fun::Install),
    },
    Function {
        name: "pkg.remove",
        doc: "Remove packages (apt: ``apt-get remove``, configuration files are kept; dnf:\n\
              ``dnf remove``). Names that are not installed are ignored; a name with ``*`` or\n\
              ``?`` is a glob over the installed packages.\n\n\
              name\n    The name of the package to be deleted; several may be given separated by\n    \
              commas. Ignored if ``pkgs`` is passed.\n\
              pkgs\n    A list of packages to delete.\n\n\
              Returns a dict containing the changes::\n\n    \
              {'<package>': {'old': '<old-version>', 'new': ''}}\n\n\
              CLI Example:\n\n    brine '*' pkg.remove <package name>\n    \
              brine '*' pkg.remove <package1>,<package2>,<package3>\n    \
              brine '*' pkg.remove pkgs='[\"foo\", \"bar\"]'",
        signature: Signature::new(&[opt("name"), opt("pkgs")]),
        handler: Handler::Pkg(Fun::Remove),
    },
    Function {
        name: "pkg.upgrade",
        doc: "Upgrades all packages (apt: ``apt-get upgrade``, or ``apt-get dist-upgrade``\n\
              with ``dist_upgrade=True``; dnf: ``dnf upgrade``). Configuration files changed\n\
              on the host are kept (``--force-confold``).\n\n\
              refresh : True\n    Refresh the package lists first.\n\
              dist_upgrade : False\n    apt only: allow installing and removing packages to\n    \
              upgrade others.\n\n\
              Returns a dictionary containing the changes::\n\n    \
              {'<package>': {'old': '<old-version>', 'new': '<new-version>'}}\n\n\
              CLI Example:\n\n    brine '*' pkg.upgrade\n    \
              brine '*' pkg.upgrade refresh=False dist_upgrade=True",
        signature: Signature::new(&[opt("refresh"), opt("dist_upgrade")]),
        handler: Handler::Pkg(Fun::Upgrade),
    },
    Function {
        name: "pkg.refresh_db",
        doc: "Refresh the package lists from the repositories.\n\n\
              apt (``apt-get update``): returns a dict, with the keys being package databases\n\
              and the values being the result of the update attempt: ``True`` updated,\n\
              ``False`` a problem updating it, ``None`` already up to date.\n\n\
              dnf (``dnf clean expire-cache``, ``dnf check-update``): returns ``True`` when\n\
              updates are available and ``None`` when there are none.\n\n\
              failhard : False\n    apt: fail when any database could not be fetched.\n\n\
              CLI Example:\n\n    brine '*' pkg.refresh_db\n    \
              brine '*' pkg.refresh_db failhard=True",
        signature: Signature::new(&[kw("failhard")]),
        handler: Handler::Pkg(Fun::RefreshDb),
    },
];

/// Why a `pkg.*` call failed, beyond its arguments and the programs it ran.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PkgError {
    #[error("no package manager for os_family '{0}': pkg.* knows apt (Debian) and dnf (RedHat)")]
    Unsupported(String),
    /// The manager failed after it had changed something.
    #[error("{failure}{}", changes_note(.changes))]
    Failed { failure: CmdError, changes: Map },
    #[error("error fetching package databases: {}", .0.join(", "))]
    Fetch(Vec<String>),
}

impl PkgError {
    pub(crate) fn retcode(&self) -> i32 {
        match self {
            PkgError::Failed { failure, .. } => failure.retcode(),
            PkgError::Unsupported(_) | PkgError::Fetch(_) => 1,
        }
    }
}

fn changes_note(changes: &Map) -> String {
    if changes.is_empty() {
        String::new()
    } else {
        format!(" (changes made: {})", Value::Object(changes.clone()))
    }
}

pub(crate) async fn call(ctx: &Context, fun: Fun, args: Args) -> Result<Outcome, Error> {
    match fun {
        Fun::Version => {
            let as_list = args.bool("versions_as_list", false)?;
            let names = names(&args.varargs, true)?;
            if names.is_empty() {
                return Ok(Outcome::ok(Map::new()));
            }
            let installed = provider(ctx)?.installed().await?;
            Ok(Outcome::ok(version(&installed, &names, as_list)))
        }
        Fun::ListPkgs => {
            let as_list = args.bool("versions_as_list", false)?;
            let installed = provider(ctx)?.installed().await?;
            let ret: Map = installed
                .iter()
                .map(|(name, versions)| (name.clone(), render(versions, as_list)))
                .collect();
            Ok(Outcome::ok(ret))
        }
        Fun::LatestVersion => {
            let refresh = args.bool("refresh", true)?;
            let show_installed = args.bool("show_installed", false)?;
            let names = names(&args.varargs, false)?;
            if names.is_empty() {
                return Ok(Outcome::ok(""));
            }
            let provider = provider(ctx)?;
            if refresh {
                provider.refresh(false).await?;
            }
            let installed = provider.installed().await?;
            let candidates = provider.candidates(&names).await?;
            let mut ret = Map::new();
            for name in &names {
                let candidate = candidates.get(name).cloned().unwrap_or_default();
                let versions = installed.get(name).map(Vec::as_slice).unwrap_or_default();
                let newer = !candidate.is_empty()
                    && !versions
                        .iter()
                        .any(|v| provider.compare(v, &candidate) != Ordering::Less);
                let latest = if versions.is_empty() || show_installed || newer {
                    candidate
                } else {
                    String::new()
                };
                ret.insert(name.clone(), latest.into());
            }
            Ok(Outcome::ok(single_or_map(ret, names.len() == 1)))
        }
        Fun::Install => {
            let refresh = args.bool("refresh", false)?;
            let targets = install_targets(&args)?;
            let provider = provider(ctx)?;
            if refresh {
                provider.refresh(false).await?;
            }
            let old = provider.installed().await?;
            let wanted: Vec<&Target> = targets
                .iter()
                .filter(|t| match (old.get(&t.name), &t.version) {
                    (None, _) => true,
                    (Some(_), None) => false,
                    (Some(have), Some(want)) => !have
                        .iter()
                        .any(|v| provider.compare(v, want) == Ordering::Equal),
                })
                .collect();
            if wanted.is_empty() {
                return Ok(Outcome::ok(Map::new()));
            }
            let ran = provider.run(provider.install_argv(&wanted)).await?;
            provider.finish(&old, ran).await
        }
        Fun::Remove => {
            let patterns = remove_names(&args)?;
            let provider = provider(ctx)?;
            let old = provider.installed().await?;
            let targets: BTreeSet<&String> = patterns
                .iter()
                .flat_map(|pattern| {
                    let glob = Fnmatch::if_glob(pattern);
                    old.keys().filter(move |name| match &glob {
                        Some(glob) => glob.matches(name),
                        None => *name == pattern,
                    })
                })
                .collect();
            if targets.is_empty() {
                return Ok(Outcome::ok(Map::new()));
            }
            let targets: Vec<&str> = targets.into_iter().map(String::as_str).collect();
            let ran = provider.run(provider.remove_argv(&targets)).await?;
            provider.finish(&old, ran).await
        }
        Fun::Upgrade => {
            let refresh = args.bool("refresh", true)?;
            let dist_upgrade = args.bool("dist_upgrade", false)?;
            let provider = provider(ctx)?;
            if refresh {
                provider.refresh(false).await?;
            }
            let old = provider.installed().await?;
            let ran = provider.run(provider.upgrade_argv(dist_upgrade)).await?;
            provider.finish(&old, ran).await
        }
        Fun::RefreshDb => {
            let failhard = args.bool("failhard", false)?;
            Ok(Outcome::ok(provider(ctx)?.refresh(failhard).await?))
        }
    }
}

fn provider(ctx: &Context) -> Result<Provider, PkgError> {
    Provider::for_grains(&ctx.grains)
}

/// The installed packages: name → versions, lowest first.
type Installed = BTreeMap<String, Vec<String>>;

/// One package to install.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    name: String,
    version: Option<String>,
}

/// The package manager of a host. Another manager is another variant: the compiler then points
/// at every place that must learn it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Provider {
    /// Debian and its family: dpkg-query, apt-cache, apt-get.
    Apt,
    /// Red Hat and its family: rpm, dnf.
    Dnf,
}

impl Provider {
    /// The provider for the host whose grains these are.
    fn for_grains(grains: &Map) -> Result<Self, PkgError> {
        match grains.get("os_family").and_then(Value::as_str) {
            Some("Debian") => Ok(Provider::Apt),
            Some("RedHat") => Ok(Provider::Dnf),
            other => Err(PkgError::Unsupported(
                other.unwrap_or_default().chars().take(64).collect(),
            )),
        }
    }

    /// The environment every program of this manager runs with.
    fn env(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Provider::Apt => &[
                ("LC_ALL", "C"),
                ("DEBIAN_FRONTEND", "noninteractive"),
                ("APT_LISTBUGS_FRONTEND", "none"),
                ("APT_LISTCHANGES_FRONTEND", "none"),
                ("UCF_FORCE_CONFFOLD", "1"),
            ],
            Provider::Dnf => &[("LC_ALL", "C")],
        }
    }

    async fn run_for(self, argv: Vec<String>, timeout: Duration) -> Result<ProgramOutput, Error> {
        Ok(run_program(argv, self.env(), timeout).await?)
    }

    /// Runs a change (install, remove, upgrade).
    async fn run(self, argv: Vec<String>) -> Result<ProgramOutput, Error> {
        self.run_for(argv, CHANGE_TIMEOUT).await
    }

    /// The changes a finished change made, or its failure (with the changes).
    async fn finish(self, old: &Installed, ran: ProgramOutput) -> Result<Outcome, Error> {
        let new = self.installed().await?;
        let changes = changes(old, &new);
        if ran.retcode != 0 {
            return Err(PkgError::Failed {
                failure: ran.failure(),
                changes,
            }
            .into());
        }
        Ok(Outcome::ok(changes))
    }

    /// The architecture packages of the host's own are built for, as the manager names it.
    async fn native_arch(self) -> Result<String, Error> {
        match self {
            Provider::Apt => {
                let argv = argv(&["dpkg", "--print-architecture"]);
                let out = self.run_for(argv, QUERY_TIMEOUT).await?.complete()?;
                Ok(out.stdout.trim().to_owned())
            }
            Provider::Dnf => Ok(nix::sys::utsname::uname()
                .map(|uts| uts.machine().to_string_lossy().into_owned())
                .unwrap_or_default()),
        }
    }

    async fn installed(self) -> Result<Installed, Error> {
        let arch = self.native_arch().await?;
        let out = self
            .run_for(self.list_argv(), QUERY_TIMEOUT)
            .await?
            .complete()?;
        let pairs = match self {
            Provider::Apt => parse_dpkg_query(&out.stdout, &arch),
            Provider::Dnf => parse_rpm_query(&out.stdout, &arch),
        };
        Ok(self.collect(pairs))
    }

    /// (name, version) pairs as a package list, each package's versions in order.
    fn collect(self, pairs: Vec<(String, String)>) -> Installed {
        let mut installed = Installed::new();
        for (name, version) in pairs {
            installed.entry(name).or_default().push(version);
        }
        for versions in installed.values_mut() {
            versions.sort_by(|a, b| self.compare(a, b));
            versions.dedup();
        }
        installed
    }

    fn list_argv(self) -> Vec<String> {
        match self {
            Provider::Apt => argv(&[
                "dpkg-query",
                "--show",
                "--showformat",
                "${Status}\t${Package}\t${Version}\t${Architecture}\n",
            ]),
            Provider::Dnf => argv(&[
                "rpm",
                "--query",
                "--all",
                "--nodigest",
                "--nosignature",
                "--queryformat",
                "%{NAME}\t%{EPOCH}\t%{VERSION}\t%{RELEASE}\t%{ARCH}\n",
            ]),
        }
    }

    /// The version each of `names` would be installed at, for the names the repositories have.
    async fn candidates(self, names: &[String]) -> Result<BTreeMap<String, String>, Error> {
        match self {
            Provider::Apt => {
                let mut argv = argv(&["apt-cache", "-q", "policy"]);
                argv.extend(names.iter().cloned());
                let out = self.run_for(argv, QUERY_TIMEOUT).await?.complete()?;
                Ok(parse_apt_policy(&out.stdout, names))
            }
            Provider::Dnf => {
                let arch = self.native_arch().await?;
                let mut argv = argv(&["dnf", "--quiet", "list", "--available"]);
                argv.extend(names.iter().cloned());
                let out = self.run_for(argv, QUERY_TIMEOUT).await?;
                // dnf exits 1 when nothing matches: the installed versions are the latest.
                if out.retcode == 1 && out.stderr.to_lowercase().contains("no matching packages") {
                    return Ok(BTreeMap::new());
                }
                let out = out.complete()?;
                Ok(parse_dnf_list(&out.stdout, &arch))
            }
        }
    }

    /// Refreshes the package lists; the return of `pkg.refresh_db`.
    async fn refresh(self, failhard: bool) -> Result<Value, Error> {
        match self {
            Provider::Apt => {
                let argv = argv(&["apt-get", "-q", "-o", APT_LOCK_WAIT, "update"]);
                let out = self.run_for(argv, REFRESH_TIMEOUT).await?.success()?;
                let (databases, errors) = parse_apt_update(&out.stdout);
                if failhard && !errors.is_empty() {
                    return Err(PkgError::Fetch(errors).into());
                }
                Ok(Value::Object(databases))
            }
            Provider::Dnf => {
                let clean = argv(&["dnf", "--quiet", "--assumeyes", "clean", "expire-cache"]);
                self.run_for(clean, REFRESH_TIMEOUT).await?.success()?;
                let check = argv(&["dnf", "--quiet", "--assumeyes", "check-update"]);
                let out = self.run_for(check, REFRESH_TIMEOUT).await?;
                match out.retcode {
                    100 => Ok(Value::Bool(true)),
                    0 => Ok(Value::Null),
                    _ => Err(out.failure().into()),
                }
            }
        }
    }

    fn install_argv(self, targets: &[&Target]) -> Vec<String> {
        match self {
            Provider::Apt => {
                let mut argv = apt_get_changing();
                if targets.iter().any(|t| t.version.is_some()) {
                    argv.push("--allow-downgrades".into());
                }
                argv.push("install".into());
                argv.extend(targets.iter().map(|t| match &t.version {
                    Some(v) => format!("{}={v}", t.name),
                    None => t.name.clone(),
                }));
                argv
            }
            Provider::Dnf => {
                let mut argv = argv(&["dnf", "--assumeyes", "install"]);
                argv.extend(targets.iter().map(|t| match &t.version {
                    Some(v) => format!("{}-{v}", t.name),
                    None => t.name.clone(),
                }));
                argv
            }
        }
    }

    fn remove_argv(self, names: &[&str]) -> Vec<String> {
        let mut argv = match self {
            Provider::Apt => argv(&["apt-get", "-q", "-y", "-o", APT_LOCK_WAIT, "remove"]),
            Provider::Dnf => argv(&["dnf", "--assumeyes", "remove"]),
        };
        argv.extend(names.iter().map(|n| (*n).to_owned()));
        argv
    }

    fn upgrade_argv(self, dist_upgrade: bool) -> Vec<String> {
        match self {
            Provider::Apt => {
                let mut argv = apt_get_changing();
                argv.push(
                    if dist_upgrade {
                        "dist-upgrade"
                    } else {
                        "upgrade"
                    }
                    .into(),
                );
                argv
            }
            Provider::Dnf => argv(&["dnf", "--assumeyes", "upgrade"]),
        }
    }

    /// Orders two versions as this manager does.
    fn compare(self, a: &str, b: &str) -> Ordering {
        match self {
            Provider::Apt => compare_deb(a, b),
            Provider::Dnf => compare_rpm(a, b),
        }
    }
}

/// `apt-get` as it is run for a change: quiet, yes to everything, waiting for the dpkg lock,
/// keeping configuration files changed on the host.
fn apt_get_changing() -> Vec<String> {
    argv(&[
        "apt-get",
        "-q",
        "-y",
        "-o",
        APT_LOCK_WAIT,
        "-o",
        "DPkg::Options::=--force-confold",
        "-o",
        "DPkg::Options::=--force-confdef",
    ])
}

fn argv(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

// ---- arguments -------------------------------------------------------------------------------

/// Whether a name is a glob (Salt's `*`; `?` too).
/// `s` cut for a message.
fn shown(s: &str) -> String {
    let mut out: String = s.chars().take(64).collect();
    if out.len() < s.len() {
        out.push_str("...");
    }
    out
}

/// Checks a package name: a letter or digit first (never `-`, so never an option of the
/// manager), then letters, digits and `._+-:~@`; globs only where `globs` allows them.
fn check_name(arg: &'static str, name: &str, globs: bool) -> Result<(), ArgError> {
    let extra = |c: char| "._+-:~@".contains(c) || (globs && (c == '*' || c == '?'));
    let first_ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || (globs && (c == '*' || c == '?')));
    let ok = first_ok
        && name.len() <= MAX_NAME_LEN
        && name.chars().all(|c| c.is_ascii_alphanumeric() || extra(c));
    if ok {
        Ok(())
    } else {
        Err(ArgError::Invalid {
            name: arg,
            reason: format!("is not a valid package name: '{}'", shown(name)),
        })
    }
}

/// Checks a version: a letter or digit first, then letters, digits and `.+~:_-^`.
fn check_version(arg: &'static str, version: &str) -> Result<(), ArgError> {
    let ok = version
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
        && version.len() <= MAX_NAME_LEN
        && version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".+~:_-^".contains(c));
    if ok {
        Ok(())
    } else {
        Err(ArgError::Invalid {
            name: arg,
            reason: format!("is not a valid package version: '{}'", shown(version)),
        })
    }
}

/// The package names given as `*names`.
fn names(values: &[Value], globs: bool) -> Result<Vec<String>, ArgError> {
    values
        .iter()
        .map(|value| {
            let name = scalar_text(value).ok_or(ArgError::WrongType {
                name: "names",
                expected: "package names",
                found: type_name(value),
            })?;
            check_name("names", &name, globs)?;
            Ok(name)
        })
        .collect()
}

/// What `pkg.install` was asked to install: `pkgs`, else `name` (with `version`).
fn install_targets(args: &Args) -> Result<Vec<Target>, ArgError> {
    if let Some(pkgs) = args.value("pkgs") {
        let items = list_arg("pkgs", pkgs)?;
        let mut targets = Vec::with_capacity(items.len());
        for item in items {
            let target = match &item {
                Value::Object(map) if map.len() == 1 => {
                    let (name, version) = map.iter().next().ok_or(ArgError::Missing("pkgs"))?;
                    let version = match version {
                        Value::Null => None,
                        other => Some(scalar_text(other).ok_or_else(|| ArgError::Invalid {
                            name: "pkgs",
                            reason: format!(
                                "must map a name to a version, but '{}' maps to {}",
                                shown(name),
                                type_name(other)
                            ),
                        })?),
                    };
                    Target {
                        name: name.clone(),
                        version,
                    }
                }
                other => Target {
                    name: scalar_text(other).ok_or_else(|| ArgError::Invalid {
                        name: "pkgs",
                        reason: format!(
                            "must hold names or {{name: version}} maps, got {}",
                            type_name(other)
                        ),
                    })?,
                    version: None,
                },
            };
            check_name("pkgs", &target.name, false)?;
            if let Some(version) = &target.version {
                check_version("pkgs", version)?;
            }
            targets.push(target);
        }
        return Ok(targets);
    }
    let Some(name) = args.string("name")? else {
        return Err(ArgError::Invalid {
            name: "name",
            reason: "or 'pkgs' must be given".into(),
        });
    };
    check_name("name", &name, false)?;
    let version = args.string("version")?;
    if let Some(version) = &version {
        check_version("version", version)?;
    }
    Ok(vec![Target { name, version }])
}

/// What `pkg.remove` was asked to remove: `pkgs`, else `name` split at commas.
fn remove_names(args: &Args) -> Result<Vec<String>, ArgError> {
    let (arg, names): (&'static str, Vec<String>) = match args.value("pkgs") {
        Some(pkgs) => {
            let names = list_arg("pkgs", pkgs)?
                .into_iter()
                .map(|item| match item {
                    // Salt lets remove take install's {name: version} form; the name counts.
                    Value::Object(map) if map.len() == 1 => map.keys().next().cloned(),
                    other => scalar_text(&other),
                })
                .collect::<Option<Vec<String>>>()
                .ok_or_else(|| ArgError::Invalid {
                    name: "pkgs",
                    reason: "must hold package names".into(),
                })?;
            ("pkgs", names)
        }
        None => {
            let Some(name) = args.string("name")? else {
                return Err(ArgError::Invalid {
                    name: "name",
                    reason: "or 'pkgs' must be given".into(),
                });
            };
            ("name", split_commas(&name))
        }
    };
    for name in &names {
        check_name(arg, name, true)?;
    }
    if names.is_empty() {
        return Err(ArgError::Invalid {
            name: arg,
            reason: "names no package".into(),
        });
    }
    Ok(names)
}

/// A list argument: a list, or a string of comma-separated names.
fn list_arg(arg: &'static str, value: &Value) -> Result<Vec<Value>, ArgError> {
    let items = match value {
        Value::Array(items) => items.clone(),
        Value::String(s) => split_commas(s).into_iter().map(Value::String).collect(),
        other => {
            return Err(ArgError::WrongType {
                name: arg,
                expected: "a list of packages",
                found: type_name(other),
            })
        }
    };
    if items.is_empty() {
        return Err(ArgError::Invalid {
            name: arg,
            reason: "is an empty list".into(),
        });
    }
    Ok(items)
}

fn split_commas(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

// ---- return shapes ---------------------------------------------------------------------------

/// Versions as Salt returns them: joined with `,`, or a list.
fn render(versions: &[String], as_list: bool) -> Value {
    if as_list {
        Value::from(versions.to_vec())
    } else {
        Value::from(versions.join(","))
    }
}

/// The return of `pkg.version`: one value for one plain name, a map otherwise.
fn version(installed: &Installed, names: &[String], as_list: bool) -> Value {
    let mut ret = Map::new();
    let mut globbed = false;
    for name in names {
        if let Some(glob) = Fnmatch::if_glob(name) {
            globbed = true;
            for (found, versions) in installed.iter().filter(|(found, _)| glob.matches(found)) {
                ret.insert(found.clone(), render(versions, as_list));
            }
        } else {
            let versions = installed.get(name).map(Vec::as_slice).unwrap_or_default();
            ret.insert(name.clone(), render(versions, as_list));
        }
    }
    single_or_map(ret, !globbed && names.len() == 1)
}

/// The only value of `ret` when `single`, else `ret`.
fn single_or_map(ret: Map, single: bool) -> Value {
    if single && ret.len() == 1 {
        if let Some((_, value)) = ret.into_iter().next() {
            return value;
        }
        return Value::from("");
    }
    Value::Object(ret)
}

/// Salt's changes map between two package lists: `{name: {"old": .., "new": ..}}` for every
/// package whose versions differ, `""` for absent.
fn changes(old: &Installed, new: &Installed) -> Map {
    let names: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    let mut ret = Map::new();
    for name in names {
        let before = old.get(name).map(|v| v.join(",")).unwrap_or_default();
        let after = new.get(name).map(|v| v.join(",")).unwrap_or_default();
        if before != after {
            let mut change = Map::new();
            change.insert("old".into(), before.into());
            change.insert("new".into(), after.into());
            ret.insert(name.clone(), Value::Object(change));
        }
    }
    ret
}

// ---- parsing ---------------------------------------------------------------------------------

/// The installed packages in `dpkg-query --showformat '${Status}\t${Package}\t${Version}\t
/// ${Architecture}\n'` output: (name, version) for each package whose state is installed (or
/// installed with triggers pending). A package of a foreign architecture is named `name:arch`.
fn parse_dpkg_query(out: &str, native_arch: &str) -> Vec<(String, String)> {
    out.lines()
        .filter_map(|line| {
            let mut fields = line.split('\t');
            let (status, package, version, arch) = (
                fields.next()?,
                fields.next()?,
                fields.next()?,
                fields.next()?,
            );
            let state = status.split_whitespace().nth(2)?;
            if !matches!(state, "installed" | "triggers-pending" | "triggers-awaited")
                || package.is_empty()
                || version.is_empty()
            {
                return None;
            }
            let name = if arch.is_empty() || arch == "all" || arch == native_arch {
                package.to_owned()
            } else {
                format!("{package}:{arch}")
            };
            Some((name, version.to_owned()))
        })
        .collect()
}

/// The candidate versions in `apt-cache policy <names>` output, keyed by the names asked for;
/// `(none)` and names apt does not know are left out.
fn parse_apt_policy(out: &str, names: &[String]) -> BTreeMap<String, String> {
    let mut ret = BTreeMap::new();
    let mut current: Option<&String> = None;
    for line in out.lines() {
        if !line.starts_with(char::is_whitespace) {
            current = line.strip_suffix(':').and_then(|heading| {
                names
                    .iter()
                    .find(|n| *n == heading)
                    .or_else(|| names.iter().find(|n| n.split(':').next() == Some(heading)))
            });
            continue;
        }
        let Some(rest) = line.trim_start().strip_prefix("Candidate:") else {
            continue;
        };
        let candidate = rest.trim();
        if let Some(name) = current {
            if !candidate.is_empty() && candidate != "(none)" {
                ret.insert(name.clone(), candidate.to_owned());
            }
        }
    }
    ret
}

/// What `apt-get update` said of each package database, as Salt reports it: `Get` → true,
/// `Hit` → null, `Ign` and `Err` → false; and the databases that failed (`Err`).
fn parse_apt_update(out: &str) -> (Map, Vec<String>) {
    let mut ret = Map::new();
    let mut errors = Vec::new();
    for line in out.lines() {
        let mut cols = line.split_whitespace();
        let Some(kind) = cols.next() else { continue };
        let mut ident = cols.collect::<Vec<_>>().join(" ");
        let value = if kind.starts_with("Get") {
            // "http://... InRelease [151 kB]": the size is not part of the name.
            if ident.ends_with("B]") {
                if let Some(cut) = ident.rfind(" [") {
                    ident.truncate(cut);
                }
            }
            Value::Bool(true)
        } else if kind.starts_with("Hit") {
            Value::Null
        } else if kind.starts_with("Ign") {
            Value::Bool(false)
        } else if kind.starts_with("Err") {
            if !errors.contains(&ident) {
                errors.push(ident.clone());
            }
            Value::Bool(false)
        } else {
            continue;
        };
        if !ident.is_empty() {
            ret.insert(ident, value);
        }
    }
    (ret, errors)
}

/// rpm's architectures for 32-bit x86, which Salt treats as one.
const X86_32: &[&str] = &["i386", "i486", "i586", "i686", "athlon", "geode"];

/// A package's name as Salt's rpm providers list it: `name.arch` unless the architecture is
/// the host's, `noarch` or none.
fn rpm_name(name: &str, arch: &str, native_arch: &str) -> String {
    let same = arch == native_arch
        || matches!(arch, "noarch" | "(none)" | "")
        || (X86_32.contains(&arch) && X86_32.contains(&native_arch));
    if same {
        name.to_owned()
    } else {
        format!("{name}.{arch}")
    }
}

/// The installed packages in `rpm -qa --queryformat
/// '%{NAME}\t%{EPOCH}\t%{VERSION}\t%{RELEASE}\t%{ARCH}\n'` output: (name, `[epoch:]version-
/// release`), the epoch shown only when it is not 0.
fn parse_rpm_query(out: &str, native_arch: &str) -> Vec<(String, String)> {
    out.lines()
        .filter_map(|line| {
            let mut fields = line.split('\t');
            let (name, epoch, version, release, arch) = (
                fields.next()?,
                fields.next()?,
                fields.next()?,
                fields.next()?,
                fields.next()?,
            );
            if name.is_empty() || version.is_empty() {
                return None;
            }
            let mut evr = String::new();
            if !matches!(epoch, "(none)" | "0" | "") {
                evr.push_str(epoch);
                evr.push(':');
            }
            evr.push_str(version);
            if !matches!(release, "(none)" | "") {
                evr.push('-');
                evr.push_str(release);
            }
            Some((rpm_name(name, arch, native_arch), evr))
        })
        .collect()
}

/// The newest version of each package in `dnf list --available` output (`name.arch version
/// repo` columns, a long `name.arch` alone on its line with the rest on the next), keyed as
/// [`rpm_name`] names them.
fn parse_dnf_list(out: &str, native_arch: &str) -> BTreeMap<String, String> {
    let mut ret: BTreeMap<String, String> = BTreeMap::new();
    let mut wrapped: Option<&str> = None;
    for line in out.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let indented = line.starts_with(char::is_whitespace);
        let (name_arch, version) = match (indented, cols.as_slice(), wrapped.take()) {
            (false, [name_arch], _) if name_arch.contains('.') => {
                wrapped = Some(name_arch);
                continue;
            }
            (true, [version, _repo, ..], Some(name_arch)) => (name_arch, *version),
            (false, [name_arch, version, _repo], _) => (*name_arch, *version),
            _ => continue,
        };
        let Some((name, arch)) = name_arch.rsplit_once('.') else {
            continue;
        };
        let version_ok = version.starts_with(|c: char| c.is_ascii_alphanumeric());
        if name.is_empty() || arch.is_empty() || !version_ok {
            continue;
        }
        let key = rpm_name(name, arch, native_arch);
        let newer = ret
            .get(&key)
            .is_none_or(|have| compare_rpm(version, have) == Ordering::Greater);
        if newer {
            ret.insert(key, version.to_owned());
        }
    }
    ret
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    use std::time::Instant;

    use brine_proto::MinionId;
    use serde_json::json;

    use super::*;
    use crate::tests::run;

    fn ctx_with_family(family: &str) -> Context {
        let id = MinionId::new("web1").unwrap();
        let mut grains = crate::collect_grains(&id);
        grains.insert("os_family".into(), json!(family));
        Context::new(id, grains)
    }

    async fn call(ctx: &Context, fun: &str, arg: Vec<Value>, kwarg: Value) -> Outcome {
        let Value::Object(kwarg) = kwarg else {
            panic!("kwarg must be a map")
        };
        // The calls below run apt-get; a download may take a while, a hang fails the test.
        tokio::time::timeout(
            Duration::from_secs(600),
            crate::execute(ctx, fun, arg, kwarg),
        )
        .await
        .expect("pkg call timed out")
    }

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// `dpkg-query --show --showformat '${Status}\t${Package}\t${Version}\t${Architecture}\n'`
    /// on Debian 12 (amd64), lines as captured; the last four are the states that host did
    /// not have (removed with its configuration left, a foreign architecture, a broken
    /// install, triggers pending), written in the same format.
    const DPKG_QUERY: &str = "install ok installed\tadduser\t3.134\tall\n\
        install ok installed\tbash\t5.2.15-2+b8\tamd64\n\
        install ok installed\tbsdutils\t1:2.38.1-5+deb12u3\tamd64\n\
        install ok installed\tdmsetup\t2:1.02.185-2\tamd64\n\
        install ok installed\tlibc6\t2.36-9+deb12u14\tamd64\n\
        install ok installed\ttzdata\t2025b-0+deb12u2\tall\n\
        deinstall ok config-files\tnginx-common\t1.22.1-9\tall\n\
        install ok installed\tlibc6\t2.36-9+deb12u14\ti386\n\
        install reinstreq half-installed\tbroken\t1.0-1\tamd64\n\
        hold ok triggers-pending\tman-db\t2.11.2-2\tamd64\n";

    #[test]
    fn dpkg_query_output_is_parsed() {
        let got = parse_dpkg_query(DPKG_QUERY, "amd64");
        assert_eq!(
            got,
            pairs(&[
                ("adduser", "3.134"),
                ("bash", "5.2.15-2+b8"),
                ("bsdutils", "1:2.38.1-5+deb12u3"),
                ("dmsetup", "2:1.02.185-2"),
                ("libc6", "2.36-9+deb12u14"),
                ("tzdata", "2025b-0+deb12u2"),
                ("libc6:i386", "2.36-9+deb12u14"),
                ("man-db", "2.11.2-2"),
            ])
        );
        assert!(parse_dpkg_query("", "amd64").is_empty());
        assert!(parse_dpkg_query("garbage\n\t\t\t\ninstall ok installed\tx", "amd64").is_empty());
    }

    /// `apt-cache -q policy hello bash brine-nosuch-pkg` on Debian 12, as captured (a name apt
    /// does not know prints nothing), then `libc6` with two versions in its table.
    const APT_POLICY: &str = "hello:
  Installed: (none)
  Candidate: 2.10-3
  Version table:
     2.10-3 500
        500 http://deb.debian.org/debian bookworm/main amd64 Packages
bash:
  Installed: 5.2.15-2+b8
  Candidate: 5.2.15-2+b13
  Version table:
     5.2.15-2+b13 500
        500 http://deb.debian.org/debian bookworm/main amd64 Packages
 *** 5.2.15-2+b8 100
        100 /var/lib/dpkg/status
libc6:
  Installed: 2.36-9+deb12u14
  Candidate: 2.36-9+deb12u14
  Version table:
 *** 2.36-9+deb12u14 500
        500 http://deb.debian.org/debian bookworm/main amd64 Packages
        100 /var/lib/dpkg/status
     2.36-9+deb12u7 500
        500 http://deb.debian.org/debian-security bookworm-security/main amd64 Packages
nosource:
  Installed: 1.0
  Candidate: (none)
";

    #[test]
    fn apt_cache_policy_output_is_parsed() {
        let names: Vec<String> = [
            "hello",
            "bash",
            "brine-nosuch-pkg",
            "libc6:amd64",
            "nosource",
        ]
        .map(String::from)
        .to_vec();
        let got = parse_apt_policy(APT_POLICY, &names);
        let want: BTreeMap<String, String> = pairs(&[
            ("hello", "2.10-3"),
            ("bash", "5.2.15-2+b13"),
            ("libc6:amd64", "2.36-9+deb12u14"),
        ])
        .into_iter()
        .collect();
        assert_eq!(got, want);
    }

    /// `apt-get -q update` on Debian 12, as captured: a normal run, then one through a proxy
    /// that refuses connections (apt still exits 0).
    const APT_UPDATE: &str = "Get:1 http://deb.debian.org/debian bookworm InRelease [151 kB]
Get:2 http://deb.debian.org/debian bookworm-updates InRelease [55.4 kB]
Get:3 http://deb.debian.org/debian-security bookworm-security InRelease [34.8 kB]
Fetched 241 kB in 0s (579 kB/s)
Reading package lists...
";
    const APT_UPDATE_ERR: &str = "Ign:1 http://deb.debian.org/debian bookworm InRelease
Ign:2 http://deb.debian.org/debian bookworm-updates InRelease
Ign:3 http://deb.debian.org/debian-security bookworm-security InRelease
Ign:1 http://deb.debian.org/debian bookworm InRelease
Err:1 http://deb.debian.org/debian bookworm InRelease
  Could not connect to 127.0.0.1:9 (127.0.0.1). - connect (111: Connection refused)
Err:2 http://deb.debian.org/debian bookworm-updates InRelease
  Unable to connect to 127.0.0.1:9:
Err:3 http://deb.debian.org/debian-security bookworm-security InRelease
  Unable to connect to 127.0.0.1:9:
Reading package lists...
";

    #[test]
    fn apt_get_update_output_is_parsed() {
        let (ret, errors) = parse_apt_update(APT_UPDATE);
        assert_eq!(
            Value::Object(ret),
            json!({
                "http://deb.debian.org/debian bookworm InRelease": true,
                "http://deb.debian.org/debian bookworm-updates InRelease": true,
                "http://deb.debian.org/debian-security bookworm-security InRelease": true,
            })
        );
        assert!(errors.is_empty());

        let (ret, errors) = parse_apt_update(APT_UPDATE_ERR);
        assert_eq!(
            Value::Object(ret),
            json!({
                "http://deb.debian.org/debian bookworm InRelease": false,
                "http://deb.debian.org/debian bookworm-updates InRelease": false,
                "http://deb.debian.org/debian-security bookworm-security InRelease": false,
            })
        );
        assert_eq!(errors.len(), 3);
        assert_eq!(errors[0], "http://deb.debian.org/debian bookworm InRelease");
        let (ret, _) = parse_apt_update("Hit:1 http://example.org/debian stable InRelease\n");
        assert_eq!(
            Value::Object(ret),
            json!({"http://example.org/debian stable InRelease": null})
        );
    }

    /// `rpm -qa --queryformat '%{NAME}\t%{EPOCH}\t%{VERSION}\t%{RELEASE}\t%{ARCH}\n'` in the
    /// form rpm prints it (on an EL9 x86_64 host: `(none)` for an unset tag, two kernels, a
    /// 32-bit library beside the 64-bit one, the GPG key pseudo-package). rpm does not run
    /// where the tests run.
    const RPM_QUERY: &str = "bash\t(none)\t5.1.8\t9.el9\tx86_64\n\
        shadow-utils\t2\t4.9\t8.el9\tx86_64\n\
        glibc\t(none)\t2.34\t100.el9\tx86_64\n\
        glibc\t(none)\t2.34\t100.el9\ti686\n\
        kernel-core\t(none)\t5.14.0\t427.13.1.el9_4\tx86_64\n\
        kernel-core\t(none)\t5.14.0\t362.8.1.el9_3\tx86_64\n\
        tzdata\t0\t2024a\t1.el9\tnoarch\n\
        gpg-pubkey\t(none)\t8483c65d\t5ccc5b19\t(none)\n";

    #[test]
    fn rpm_query_output_is_parsed() {
        let got = Provider::Dnf.collect(parse_rpm_query(RPM_QUERY, "x86_64"));
        let want: Installed = [
            ("bash", vec!["5.1.8-9.el9"]),
            ("glibc", vec!["2.34-100.el9"]),
            ("glibc.i686", vec!["2.34-100.el9"]),
            ("gpg-pubkey", vec!["8483c65d-5ccc5b19"]),
            (
                "kernel-core",
                vec!["5.14.0-362.8.1.el9_3", "5.14.0-427.13.1.el9_4"],
            ),
            ("shadow-utils", vec!["2:4.9-8.el9"]),
            ("tzdata", vec!["2024a-1.el9"]),
        ]
        .into_iter()
        .map(|(n, v)| (n.to_owned(), v.into_iter().map(String::from).collect()))
        .collect();
        assert_eq!(got, want);
        assert_eq!(
            version(&got, &["kernel-core".into()], false),
            json!("5.14.0-362.8.1.el9_3,5.14.0-427.13.1.el9_4")
        );
        // On a 32-bit host, 32-bit packages are its own.
        assert_eq!(rpm_name("glibc", "i686", "i686"), "glibc");
        assert_eq!(rpm_name("glibc", "i386", "i686"), "glibc");
    }

    /// `dnf list --available <names>` in the form dnf 4 prints it, from published captures:
    /// the metadata line (absent with `--quiet`), the section header, a long name wrapped
    /// onto its own line, columns padded, trailing blanks; then dnf 5's shorter form.
    const DNF_LIST: &str =
        "Last metadata expiration check: 0:12:01 ago on Tue 14 May 2024 10:01:12 AM UTC.
Available Packages
NetworkManager-config-connectivity-fedora.noarch
                                          1:1.18.4-3.el8                 baseos   
hello.x86_64                              2.10-7.el9                     epel
glibc.i686                                2.34-100.el9_4.2               baseos
glibc.x86_64                              2.34-100.el9_4.2               baseos
kernel.x86_64                             5.14.0-427.18.1.el9_4          baseos   
kernel.x86_64                             5.14.0-427.13.1.el9_4          baseos
";
    const DNF5_LIST: &str = "Available packages\nhello.x86_64 2.12.1-5.fc41 fedora\n";

    #[test]
    fn dnf_list_output_is_parsed() {
        let got = parse_dnf_list(DNF_LIST, "x86_64");
        let want: BTreeMap<String, String> = pairs(&[
            (
                "NetworkManager-config-connectivity-fedora",
                "1:1.18.4-3.el8",
            ),
            ("glibc", "2.34-100.el9_4.2"),
            ("glibc.i686", "2.34-100.el9_4.2"),
            ("hello", "2.10-7.el9"),
            ("kernel", "5.14.0-427.18.1.el9_4"),
        ])
        .into_iter()
        .collect();
        assert_eq!(got, want);
        let got = parse_dnf_list(DNF5_LIST, "x86_64");
        assert_eq!(got.get("hello").map(String::as_str), Some("2.12.1-5.fc41"));
        assert_eq!(got.len(), 1);
    }

    #[test]
    fn parsers_never_panic_on_junk() {
        let junk = [
            "",
            "\n\n\t",
            ":",
            "\t\t\t\t\t\t",
            "a.\n  ",
            ".x86_64 1 r",
            "Candidate:",
            "  Candidate: 1",
            "é\té\té\té\té",
            "Get:1 [",
            "x.y\n   \n",
            "\u{0}\u{ffff}",
        ];
        for text in junk {
            let _ = parse_dpkg_query(text, "amd64");
            let _ = parse_rpm_query(text, "x86_64");
            let _ = parse_dnf_list(text, "x86_64");
            let _ = parse_apt_policy(text, &["a".into(), "Candidate".into()]);
            let _ = parse_apt_update(text);
            for other in junk {
                let _ = compare_deb(text, other);
                let _ = compare_rpm(text, other);
            }
        }
    }

    #[test]
    fn argv_for_each_manager() {
        let plain = Target {
            name: "hello".into(),
            version: None,
        };
        let pinned = Target {
            name: "bar".into(),
            version: Some("1.2-3".into()),
        };
        let apt = [
            "apt-get",
            "-q",
            "-y",
            "-o",
            "DPkg::Lock::Timeout=60",
            "-o",
            "DPkg::Options::=--force-confold",
            "-o",
            "DPkg::Options::=--force-confdef",
        ];
        let with = |extra: &[&str]| argv(&[&apt[..], extra].concat());
        assert_eq!(
            Provider::Apt.install_argv(&[&plain]),
            with(&["install", "hello"])
        );
        assert_eq!(
            Provider::Apt.install_argv(&[&plain, &pinned]),
            with(&["--allow-downgrades", "install", "hello", "bar=1.2-3"])
        );
        assert_eq!(Provider::Apt.upgrade_argv(false), with(&["upgrade"]));
        assert_eq!(Provider::Apt.upgrade_argv(true), with(&["dist-upgrade"]));
        assert_eq!(
            Provider::Apt.remove_argv(&["hello", "libc6:i386"]),
            argv(&[
                "apt-get",
                "-q",
                "-y",
                "-o",
                "DPkg::Lock::Timeout=60",
                "remove",
                "hello",
                "libc6:i386"
            ])
        );
        assert_eq!(
            Provider::Dnf.install_argv(&[&plain, &pinned]),
            argv(&["dnf", "--assumeyes", "install", "hello", "bar-1.2-3"])
        );
        assert_eq!(
            Provider::Dnf.remove_argv(&["hello", "glibc.i686"]),
            argv(&["dnf", "--assumeyes", "remove", "hello", "glibc.i686"])
        );
        assert_eq!(
            Provider::Dnf.upgrade_argv(true),
            argv(&["dnf", "--assumeyes", "upgrade"])
        );
        assert_eq!(Provider::Dnf.list_argv()[0], "rpm");
        assert!(Provider::Apt
            .env()
            .contains(&("DEBIAN_FRONTEND", "noninteractive")));
    }

    #[test]
    fn changes_are_salts_old_new_map() {
        let old = Provider::Apt.collect(pairs(&[("a", "1"), ("b", "2"), ("c", "3")]));
        let new = Provider::Apt.collect(pairs(&[("a", "1"), ("b", "2.1"), ("d", "4")]));
        assert_eq!(
            Value::Object(changes(&old, &new)),
            json!({
                "b": {"old": "2", "new": "2.1"},
                "c": {"old": "3", "new": ""},
                "d": {"old": "", "new": "4"},
            })
        );
        assert!(changes(&old, &old).is_empty());
    }

    #[test]
    fn version_returns_a_string_for_one_name_and_a_map_for_several() {
        let installed = Provider::Apt.collect(pairs(&[("hello", "2.10-3"), ("bash", "5.2")]));
        let names = |n: &[&str]| n.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            version(&installed, &names(&["hello"]), false),
            json!("2.10-3")
        );
        assert_eq!(version(&installed, &names(&["nope"]), false), json!(""));
        assert_eq!(version(&installed, &names(&["nope"]), true), json!([]));
        assert_eq!(
            version(&installed, &names(&["hello", "nope"]), false),
            json!({"hello": "2.10-3", "nope": ""})
        );
        assert_eq!(
            version(&installed, &names(&["hel*"]), false),
            json!({"hello": "2.10-3"})
        );
        assert_eq!(version(&installed, &names(&["zz*"]), false), json!({}));
    }

    #[tokio::test]
    async fn the_provider_comes_from_os_family() {
        assert_eq!(
            Provider::for_grains(&ctx_with_family("Debian").grains).unwrap(),
            Provider::Apt
        );
        assert_eq!(
            Provider::for_grains(&ctx_with_family("RedHat").grains).unwrap(),
            Provider::Dnf
        );
        let out = call(&ctx_with_family("Arch"), "pkg.list_pkgs", vec![], json!({})).await;
        assert_eq!((out.success, out.retcode), (false, 1));
        assert_eq!(
            out.ret,
            json!("pkg.list_pkgs: no package manager for os_family 'Arch': pkg.* knows apt (Debian) and dnf (RedHat)")
        );
        let mut ctx = ctx_with_family("x");
        std::sync::Arc::make_mut(&mut ctx.grains).remove("os_family");
        let out = call(&ctx, "pkg.install", vec![json!("hello")], json!({})).await;
        assert!(
            out.ret.as_str().unwrap().contains("os_family ''"),
            "{}",
            out.ret
        );
    }

    #[tokio::test]
    async fn argument_errors_name_the_argument() {
        for (fun, arg, kwarg, want) in [
            (
                "pkg.install",
                vec![],
                json!({}),
                "argument 'name' or 'pkgs' must be given",
            ),
            (
                "pkg.install",
                vec![json!("-oAPT::Update::Pre-Invoke::=touch")],
                json!({}),
                "argument 'name' is not a valid package name: '-oAPT::Update::Pre-Invoke::=touch'",
            ),
            (
                "pkg.install",
                vec![json!("hello")],
                json!({"version": "1; reboot"}),
                "argument 'version' is not a valid package version: '1; reboot'",
            ),
            (
                "pkg.install",
                vec![],
                json!({"pkgs": 5}),
                "argument 'pkgs' must be a list of packages, got a number",
            ),
            (
                "pkg.install",
                vec![],
                json!({"pkgs": []}),
                "argument 'pkgs' is an empty list",
            ),
            (
                "pkg.install",
                vec![],
                json!({"pkgs": ["ok", {"bar": ["1"]}]}),
                "argument 'pkgs' must map a name to a version, but 'bar' maps to a list",
            ),
            (
                "pkg.install",
                vec![],
                json!({"pkgs": ["ok", "b*d"]}),
                "argument 'pkgs' is not a valid package name: 'b*d'",
            ),
            (
                "pkg.install",
                vec![json!("hello")],
                json!({"refresh": "maybe"}),
                "argument 'refresh' must be a boolean, got a string",
            ),
            (
                "pkg.remove",
                vec![json!(" , ")],
                json!({}),
                "argument 'name' names no package",
            ),
            (
                "pkg.remove",
                vec![],
                json!({"pkgs": [["x"]]}),
                "argument 'pkgs' must hold package names",
            ),
            (
                "pkg.version",
                vec![json!({"a": 1})],
                json!({}),
                "argument 'names' must be package names, got a map",
            ),
            (
                "pkg.latest_version",
                vec![json!("hell*")],
                json!({}),
                "argument 'names' is not a valid package name: 'hell*'",
            ),
            (
                "pkg.upgrade",
                vec![],
                json!({"dist_upgrade": 7}),
                "argument 'dist_upgrade' must be a boolean, got a number",
            ),
            (
                "pkg.refresh_db",
                vec![],
                json!({"cache_valid_time": 60}),
                "unexpected keyword argument 'cache_valid_time'",
            ),
        ] {
            let out = run(fun, arg, kwarg).await;
            assert_eq!((out.success, out.retcode), (false, 1), "{fun}: {}", out.ret);
            assert_eq!(out.ret, json!(format!("{fun}: {want}")));
        }
        // Nothing asked, nothing to do: Salt's returns.
        let ctx = ctx_with_family("Debian");
        assert_eq!(
            call(&ctx, "pkg.version", vec![], json!({})).await,
            Outcome::ok(Map::new())
        );
        assert_eq!(
            call(&ctx, "pkg.latest_version", vec![], json!({})).await,
            Outcome::ok("")
        );
    }

    // ---- the real apt test -------------------------------------------------------------------

    /// GNU hello: small, and it depends only on libc6.
    const PACKAGE: &str = "hello";

    /// Why the real apt test cannot run on this host, if it cannot.
    fn apt_skip_reason() -> Option<&'static str> {
        if !nix::unistd::geteuid().is_root() {
            return Some("not running as root");
        }
        let on_path = std::env::var_os("PATH").is_some_and(|path| {
            std::env::split_paths(&path).any(|dir| dir.join("apt-get").is_file())
        });
        if !on_path {
            return Some("apt-get is not installed");
        }
        None
    }

    /// Runs a command to completion for the guard, killed after `secs` (coreutils `timeout`).
    fn run_blocking(secs: &str, argv: &[&str]) -> Option<std::process::Output> {
        Command::new("timeout")
            .args(["--kill-after=10", secs])
            .args(argv)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .process_group(0)
            .output()
            .ok()
    }

    fn dpkg_installed(package: &str) -> bool {
        run_blocking(
            "60",
            &["dpkg-query", "--show", "--showformat", "${Status}", package],
        )
        .is_some_and(|out| String::from_utf8_lossy(&out.stdout).ends_with(" installed"))
    }

    /// Puts the package back as it was before the test (not installed, normally), also when the
    /// test fails half-way.
    struct Restore {
        package: &'static str,
        was_installed: bool,
    }

    impl Drop for Restore {
        fn drop(&mut self) {
            if dpkg_installed(self.package) == self.was_installed {
                return;
            }
            let verb = if self.was_installed {
                "install"
            } else {
                "remove"
            };
            let argv = [
                "apt-get",
                "-q",
                "-y",
                "-o",
                APT_LOCK_WAIT,
                verb,
                self.package,
            ];
            match run_blocking("600", &argv) {
                Some(out) if out.status.success() => {}
                other => eprintln!(
                    "could not {verb} {} after the test: {other:?}",
                    self.package
                ),
            }
        }
    }

    #[tokio::test]
    async fn apt_installs_and_removes_a_real_package() {
        if let Some(reason) = apt_skip_reason() {
            eprintln!("skipping the real apt test: {reason}");
            return;
        }
        let started = Instant::now();
        let ctx = ctx_with_family("Debian");
        let restore = Restore {
            package: PACKAGE,
            was_installed: dpkg_installed(PACKAGE),
        };

        // The one refresh of the package lists in the test run.
        let out = call(&ctx, "pkg.refresh_db", vec![], json!({})).await;
        assert!(out.success, "{}", out.ret);
        let databases = out.ret.as_object().expect("a map of databases");
        assert!(!databases.is_empty(), "{}", out.ret);
        let refreshed = started.elapsed();

        if restore.was_installed {
            let out = call(&ctx, "pkg.remove", vec![json!(PACKAGE)], json!({})).await;
            assert!(out.success, "{}", out.ret);
        }
        let out = call(&ctx, "pkg.version", vec![json!(PACKAGE)], json!({})).await;
        assert_eq!(out, Outcome::ok(""));

        let out = call(
            &ctx,
            "pkg.latest_version",
            vec![json!(PACKAGE)],
            json!({"refresh": false}),
        )
        .await;
        let candidate = out.ret.as_str().unwrap_or_default().to_owned();
        assert!(out.success && !candidate.is_empty(), "{out:?}");

        let out = call(
            &ctx,
            "pkg.install",
            vec![json!(PACKAGE)],
            json!({"version": candidate}),
        )
        .await;
        assert!(out.success, "{}", out.ret);
        assert_eq!(
            out.ret,
            json!({PACKAGE: {"old": "", "new": candidate}}),
            "hello needs nothing but libc6, so nothing else is installed"
        );
        assert!(dpkg_installed(PACKAGE));

        let out = call(&ctx, "pkg.version", vec![json!(PACKAGE)], json!({})).await;
        assert_eq!(out, Outcome::ok(candidate.as_str()));
        let out = call(
            &ctx,
            "pkg.version",
            vec![
                json!(PACKAGE),
                json!("bash"),
                json!("brine-no-such-package"),
            ],
            json!({}),
        )
        .await;
        assert_eq!(out.ret[PACKAGE], json!(candidate));
        assert!(!out.ret["bash"].as_str().unwrap().is_empty(), "{}", out.ret);
        assert_eq!(out.ret["brine-no-such-package"], json!(""));
        let out = call(&ctx, "pkg.version", vec![json!("hell?")], json!({})).await;
        assert_eq!(out.ret, json!({PACKAGE: candidate}));

        let out = call(&ctx, "pkg.list_pkgs", vec![], json!({})).await;
        assert_eq!(out.ret[PACKAGE], json!(candidate));
        assert!(out.ret.as_object().unwrap().len() > 10);
        let out = call(&ctx, "pkg.list_pkgs", vec![json!(true)], json!({})).await;
        assert_eq!(out.ret[PACKAGE], json!([candidate]));

        let out = call(
            &ctx,
            "pkg.latest_version",
            vec![json!(PACKAGE)],
            json!({"refresh": false}),
        )
        .await;
        assert_eq!(out, Outcome::ok(""), "the installed version is the latest");
        let out = call(
            &ctx,
            "pkg.latest_version",
            vec![json!(PACKAGE), json!("brine-no-such-package")],
            json!({"refresh": false, "show_installed": true}),
        )
        .await;
        assert_eq!(
            out.ret,
            json!({PACKAGE: candidate, "brine-no-such-package": ""})
        );

        let out = call(&ctx, "pkg.install", vec![json!(PACKAGE)], json!({})).await;
        assert_eq!(out, Outcome::ok(Map::new()), "already installed");

        let out = call(&ctx, "pkg.remove", vec![], json!({"pkgs": [PACKAGE]})).await;
        assert!(out.success, "{}", out.ret);
        assert_eq!(out.ret, json!({PACKAGE: {"old": candidate, "new": ""}}));
        assert!(!dpkg_installed(PACKAGE));
        let out = call(&ctx, "pkg.version", vec![json!(PACKAGE)], json!({})).await;
        assert_eq!(out, Outcome::ok(""));
        let out = call(&ctx, "pkg.remove", vec![json!(PACKAGE)], json!({})).await;
        assert_eq!(out, Outcome::ok(Map::new()), "nothing to remove");

        let out = call(
            &ctx,
            "pkg.install",
            vec![json!("brine-no-such-package")],
            json!({}),
        )
        .await;
        assert_eq!((out.success, out.retcode), (false, 100), "{}", out.ret);
        let message = out.ret.as_str().unwrap();
        assert!(
            message.starts_with("pkg.install: apt-get failed with exit code 100: ")
                && message.contains("E: Unable to locate package brine-no-such-package"),
            "{message}"
        );

        drop(restore);
        eprintln!(
            "real apt test: refresh {:.1?}, whole test {:.1?}",
            refreshed,
            started.elapsed()
        );
    }
}
