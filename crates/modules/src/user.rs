//! `user.*` and `group.*`: the host's accounts, with Salt's return shapes. Lookups go through
//! the C library (`getpwnam`, `getgrnam`, `getgrouplist`), so NSS sources such as LDAP answer
//! too; they run on the blocking pool, since a directory service may be slow.

use std::ffi::CString;
use std::io;

use brine_proto::{Map, Value};
use nix::unistd::{getgrouplist, Group, User};

use crate::args::{req, Args, Signature};
use crate::{blocking, Error, Function, Handler, Outcome};

/// The functions of this module.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Fun {
    Info,
    ListUsers,
    GroupInfo,
}

pub(crate) const FUNCTIONS: &[Function] = &[
    Function {
        name: "user.info",
        doc: "Return user information as a map: ``name``, ``uid``, ``gid``, ``home``,\n\
              ``shell``, ``passwd`` (what the passwd entry holds, usually ``x``), ``groups``\n\
              (the names of every group the user is in, the primary one included, sorted), and\n\
              the GECOS fields ``fullname``, ``roomnumber``, ``workphone``, ``homephone`` and\n\
              ``other``. An unknown user gives ``{}``.\n\n\
              name\n    The user's login name.\n\n\
              CLI Example:\n\n    brine '*' user.info root",
        signature: Signature::new(&[req("name")]),
        handler: Handler::User(Fun::Info),
    },
    Function {
        name: "user.list_users",
        doc: "Return the names of the local users (those in ``/etc/passwd``), sorted.\n\n\
              CLI Example:\n\n    brine '*' user.list_users",
        signature: Signature::new(&[]),
        handler: Handler::User(Fun::ListUsers),
    },
    Function {
        name: "group.info",
        doc: "Return information about a group as a map: ``name``, ``gid``, ``passwd`` and\n\
              ``members`` (the users listed in the group, not those whose primary group it\n\
              is). An unknown group gives ``{}``.\n\n\
              name\n    The group's name.\n\n\
              CLI Example:\n\n    brine '*' group.info wheel",
        signature: Signature::new(&[req("name")]),
        handler: Handler::User(Fun::GroupInfo),
    },
];

/// Why an account function failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UserError {
    #[error("cannot look up {what} '{name}': {source}")]
    Lookup {
        what: &'static str,
        name: String,
        source: nix::Error,
    },
    #[error("cannot read {PASSWD}: {0}")]
    Passwd(io::Error),
}

const PASSWD: &str = "/etc/passwd";

pub(crate) async fn call(fun: Fun, args: Args) -> Result<Outcome, Error> {
    blocking(move || match fun {
        Fun::Info => info(&args.required_string("name")?),
        Fun::ListUsers => list_users(),
        Fun::GroupInfo => group_info(&args.required_string("name")?),
    })
    .await
}

fn lookup_error(what: &'static str, name: &str) -> impl FnOnce(nix::Error) -> UserError {
    let name = crate::shorten(name);
    move |source| UserError::Lookup { what, name, source }
}

fn info(name: &str) -> Result<Outcome, Error> {
    let Some(user) = User::from_name(name).map_err(lookup_error("user", name))? else {
        return Ok(Outcome::ok(Map::new()));
    };
    let groups = group_names(&user).map_err(lookup_error("the groups of", name))?;
    let gecos = user.gecos.to_string_lossy().into_owned();
    let mut ret = Map::new();
    ret.insert("name".into(), user.name.clone().into());
    ret.insert("uid".into(), user.uid.as_raw().into());
    ret.insert("gid".into(), user.gid.as_raw().into());
    ret.insert(
        "home".into(),
        user.dir.to_string_lossy().into_owned().into(),
    );
    ret.insert(
        "shell".into(),
        user.shell.to_string_lossy().into_owned().into(),
    );
    ret.insert(
        "passwd".into(),
        user.passwd.to_string_lossy().into_owned().into(),
    );
    ret.insert("groups".into(), groups.into());
    for (key, value) in GECOS_FIELDS.iter().zip(gecos_fields(&gecos)) {
        ret.insert((*key).into(), value.into());
    }
    Ok(Outcome::ok(ret))
}

/// Salt's names for the GECOS fields, in order.
const GECOS_FIELDS: [&str; 5] = ["fullname", "roomnumber", "workphone", "homephone", "other"];

/// The five comma-separated GECOS fields, missing ones empty; the last keeps any further commas.
fn gecos_fields(gecos: &str) -> [String; 5] {
    let mut parts = gecos.splitn(5, ',').map(str::to_owned);
    std::array::from_fn(|_| parts.next().unwrap_or_default())
}

/// The names of the groups `user` is in, the primary group included, sorted and unique.
fn group_names(user: &User) -> nix::Result<Vec<String>> {
    let Ok(name) = CString::new(user.name.as_bytes()) else {
        return Ok(Vec::new());
    };
    let mut names: Vec<String> = getgrouplist(&name, user.gid)?
        .into_iter()
        .filter_map(|gid| Group::from_gid(gid).ok().flatten())
        .map(|group| group.name)
        .collect();
    names.sort();
    names.dedup();
    Ok(names)
}

fn list_users() -> Result<Outcome, Error> {
    let text = std::fs::read_to_string(PASSWD).map_err(UserError::Passwd)?;
    Ok(Outcome::ok(passwd_names(&text)))
}

/// The user names of a passwd file, sorted and unique (NIS `+`/`-` lines and comments left out).
fn passwd_names(text: &str) -> Vec<String> {
    let mut names: Vec<String> = text
        .lines()
        .filter_map(|line| line.split(':').next())
        .map(str::trim)
        .filter(|name| !name.is_empty() && !name.starts_with(['#', '+', '-']))
        .map(str::to_owned)
        .collect();
    names.sort();
    names.dedup();
    names
}

fn group_info(name: &str) -> Result<Outcome, Error> {
    let Some(group) = Group::from_name(name).map_err(lookup_error("group", name))? else {
        return Ok(Outcome::ok(Map::new()));
    };
    let mut ret = Map::new();
    ret.insert("name".into(), group.name.into());
    ret.insert("gid".into(), group.gid.as_raw().into());
    ret.insert(
        "passwd".into(),
        group.passwd.to_string_lossy().into_owned().into(),
    );
    ret.insert(
        "members".into(),
        Value::from(group.mem.into_iter().map(Value::from).collect::<Vec<_>>()),
    );
    Ok(Outcome::ok(ret))
}

#[cfg(test)]
mod tests {
    use nix::unistd::{Gid, Uid};
    use serde_json::json;

    use super::*;
    use crate::tests::run;

    #[tokio::test]
    async fn info_describes_root() {
        let out = run("user.info", vec![json!("root")], json!({})).await;
        assert!(out.success, "{out:?}");
        let root = User::from_uid(Uid::from_raw(0)).unwrap().unwrap();
        let ret = &out.ret;
        assert_eq!(ret["name"], json!("root"));
        assert_eq!(
            (ret["uid"].clone(), ret["gid"].clone()),
            (json!(0), json!(0))
        );
        assert_eq!(ret["home"], json!(root.dir.to_str().unwrap()));
        assert_eq!(ret["shell"], json!(root.shell.to_str().unwrap()));
        assert_eq!(ret["passwd"], json!(root.passwd.to_str().unwrap()));
        let root_group = Group::from_gid(Gid::from_raw(0)).unwrap().unwrap();
        let groups = ret["groups"].as_array().unwrap();
        assert!(groups.contains(&json!(root_group.name)), "{groups:?}");
        let fullname = root.gecos.to_str().unwrap().split(',').next().unwrap();
        assert_eq!(ret["fullname"], json!(fullname));
        for key in GECOS_FIELDS {
            assert!(ret[key].is_string(), "{key}");
        }
        assert_eq!(ret.as_object().unwrap().len(), 12);
    }

    #[tokio::test]
    async fn unknown_names_give_empty_maps() {
        for fun in ["user.info", "group.info"] {
            let out = run(fun, vec![json!("no-such-name-brine")], json!({})).await;
            assert_eq!(out, Outcome::ok(json!({})), "{fun}");
            let out = run(fun, vec![json!("nul\0name")], json!({})).await;
            assert_eq!(out, Outcome::ok(json!({})), "{fun}");
            let out = run(fun, vec![], json!({})).await;
            assert_eq!(
                out.ret,
                json!(format!("{fun}: missing required argument 'name'"))
            );
        }
    }

    #[tokio::test]
    async fn list_users_reads_passwd() {
        let out = run("user.list_users", vec![], json!({})).await;
        let names: Vec<&str> = out
            .ret
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert!(names.contains(&"root"), "{names:?}");
        assert!(names.windows(2).all(|w| w[0] < w[1]), "sorted");
        assert_eq!(
            passwd_names("root:x:0:0::/root:/bin/sh\n# note\n+nis\nbin:x:1:1::/:/bin/false\n\nroot:x:0:0::/:\n"),
            ["bin", "root"]
        );
    }

    #[tokio::test]
    async fn group_info_lists_members() {
        let root_group = Group::from_gid(Gid::from_raw(0)).unwrap().unwrap();
        let out = run("group.info", vec![json!(root_group.name)], json!({})).await;
        assert!(out.success, "{out:?}");
        assert_eq!(out.ret["gid"], json!(0));
        assert_eq!(out.ret["name"], json!(root_group.name));
        assert_eq!(out.ret["members"], json!(root_group.mem));
        assert!(out.ret["passwd"].is_string());
        assert_eq!(out.ret.as_object().unwrap().len(), 4);
    }

    #[test]
    fn gecos_has_five_fields() {
        assert_eq!(
            gecos_fields("Ann Smith,12,555-1,555-2,x,y"),
            ["Ann Smith", "12", "555-1", "555-2", "x,y"].map(String::from)
        );
        assert_eq!(
            gecos_fields("root"),
            ["root", "", "", "", ""].map(String::from)
        );
        assert_eq!(gecos_fields(""), ["", "", "", "", ""].map(String::from));
    }
}
