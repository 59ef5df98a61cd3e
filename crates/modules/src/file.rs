//! `file.*`: look at and change files on the minion, with Salt's names, arguments and returns.
//!
//! Every path is the caller's, a job argument: `~` and `~user` are expanded as Salt expands them,
//! and the result must be absolute (the minion's working directory is nobody's choice). The only
//! path built here is `file.replace`'s backup, the file's own path plus a suffix without `/`,
//! and temporary files beside the file being written. Everything runs on the blocking pool.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use brine_proto::{Map, Value};
use nix::sys::stat::{utimensat, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Group, Uid, User};
use regex::bytes::{Captures, Regex, RegexBuilder};

use crate::args::{opt, req, scalar_text, type_name, ArgError, Args, Preset, Signature};
use crate::{blocking, Error, Function, Handler, Outcome};

/// The functions of this module.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Fun {
    FileExists,
    DirectoryExists,
    GetHash,
    Stats,
    Read,
    Write,
    Touch,
    Remove,
    Mkdir,
    Replace,
    Contains,
}

/// `file.get_hash`'s default algorithm, as Salt's.
const DEFAULT_FORM: &str = "sha256";
/// `file.get_hash`'s default read size, as Salt's.
const DEFAULT_CHUNK_SIZE: i64 = 65_536;
/// The largest read size `chunk_size` may ask for.
const MAX_CHUNK_SIZE: usize = 1024 * 1024;
/// The most bytes `file.read` returns: a return must fit in one frame (16 MiB) with room to spare.
pub(crate) const MAX_READ_BYTES: u64 = 8 * 1024 * 1024;
/// The largest file `file.replace` edits (it holds the file, the result and a diff in memory).
const MAX_EDIT_BYTES: u64 = 64 * 1024 * 1024;
/// `file.replace`'s default flags: Python's `re.MULTILINE`.
const DEFAULT_FLAGS: i64 = 8;
/// `file.replace`'s default backup suffix, as Salt's.
const DEFAULT_BACKUP: &str = ".bak";
/// How much `file.contains` reads at a time.
const CONTAINS_CHUNK: usize = 64 * 1024;

pub(crate) const FUNCTIONS: &[Function] = &[
    Function {
        name: "file.file_exists",
        doc: "Return ``True`` if the path is an existing regular file (a symlink is followed),\n\
              ``False`` otherwise.\n\n\
              path\n    An absolute path; ``~`` and ``~user`` are expanded.\n\n\
              CLI Example:\n\n    brine '*' file.file_exists /etc/passwd",
        signature: Signature::new(&[req("path")]),
        handler: Handler::File(Fun::FileExists),
    },
    Function {
        name: "file.directory_exists",
        doc: "Return ``True`` if the path is an existing directory (a symlink is followed),\n\
              ``False`` otherwise.\n\n\
              path\n    An absolute path; ``~`` and ``~user`` are expanded.\n\n\
              CLI Example:\n\n    brine '*' file.directory_exists /etc",
        signature: Signature::new(&[req("path")]),
        handler: Handler::File(Fun::DirectoryExists),
    },
    Function {
        name: "file.get_hash",
        doc: "Get the hash sum of a file, as a hex string. The file is read in chunks, never\n\
              whole.\n\n\
              path\n    The file to hash.\n\
              form : sha256\n    The algorithm: md5, sha1, sha224, sha256, sha384 or sha512.\n\
              chunk_size : 65536\n    How many bytes to read at a time (at most 1 MiB).\n\n\
              CLI Example:\n\n    brine '*' file.get_hash /etc/shadow\n    \
              brine '*' file.get_hash /etc/passwd md5",
        signature: Signature::new(&[
            req("path"),
            opt("form").with_default(Preset::Str(DEFAULT_FORM)),
            opt("chunk_size").with_default(Preset::Int(DEFAULT_CHUNK_SIZE)),
        ]),
        handler: Handler::File(Fun::GetHash),
    },
    Function {
        name: "file.stats",
        doc: "Return a map of information about the path: ``inode``, ``uid``, ``gid``,\n\
              ``user``, ``group`` (the name, or the id when it has none), ``atime``, ``mtime``,\n\
              ``ctime`` (seconds since the epoch, with fractions), ``size``, ``mode`` (an octal\n\
              string such as ``\"0644\"``), ``type`` (``file``, ``dir``, ``link``, ``char``,\n\
              ``block``, ``pipe`` or ``socket``) and ``target`` (the path with every symlink\n\
              resolved). A broken symlink is described by itself; a missing path fails.\n\n\
              path\n    The path to describe.\n\
              hash_type\n    Also return ``sum``, the file's hash with this algorithm (see\n    \
              ``file.get_hash``).\n\
              follow_symlinks : True\n    Describe what a symlink points to; ``False`` describes the link.\n\n\
              CLI Example:\n\n    brine '*' file.stats /etc/passwd\n    \
              brine '*' file.stats /etc/localtime follow_symlinks=False",
        signature: Signature::new(&[
            req("path"),
            opt("hash_type"),
            opt("follow_symlinks").with_default(Preset::Bool(true)),
        ]),
        handler: Handler::File(Fun::Stats),
    },
    Function {
        name: "file.read",
        doc: "Return the contents of a file as a string. It must be UTF-8 text unless\n\
              ``binary=True``, which returns the bytes base64-encoded (a return carries no raw\n\
              bytes). At most 8 MiB are returned; a larger file fails.\n\n\
              path\n    The file to read.\n\
              binary : False\n    Return the contents base64-encoded.\n\n\
              CLI Example:\n\n    brine '*' file.read /etc/hosts\n    \
              brine '*' file.read /bin/true binary=True",
        signature: Signature::new(&[
            req("path"),
            opt("binary").with_default(Preset::Bool(false)),
        ]),
        handler: Handler::File(Fun::Read),
    },
    Function {
        name: "file.write",
        doc: "Write text to a file, replacing what it held (the file is created if missing):\n\
              each further argument is one line, and every line ends with a newline. The\n\
              lines may also be given as ``args=[...]``. Returns ``Wrote N lines to \"path\"``.\n\n\
              path\n    The file to write.\n\n\
              CLI Example:\n\n    brine '*' file.write /etc/motd 'Welcome' 'to this host'\n    \
              brine '*' file.write /tmp/one args='[a, b]'",
        signature: Signature::new(&[req("path"), crate::args::kw("args")]).varargs(),
        handler: Handler::File(Fun::Write),
    },
    Function {
        name: "file.touch",
        doc: "Just like the ``touch`` command: create the file if it does not exist, and set\n\
              its access and modification times (a symlink is followed). Returns ``True``\n\
              when the file exists afterwards.\n\n\
              name\n    The file to touch.\n\
              atime\n    Access time, in seconds since the epoch (default: now).\n\
              mtime\n    Modification time, in seconds since the epoch (default: now).\n\n\
              CLI Example:\n\n    brine '*' file.touch /var/log/emptyfile\n    \
              brine '*' file.touch /tmp/stamp mtime=1700000000",
        signature: Signature::new(&[req("name"), opt("atime"), opt("mtime")]),
        handler: Handler::File(Fun::Touch),
    },
    Function {
        name: "file.remove",
        doc: "Remove the named file, symlink (never what it points to) or directory tree.\n\
              Returns ``True`` when something was removed and ``False`` when the path did not\n\
              exist. ``/`` itself is never removed.\n\n\
              path\n    An absolute path.\n\n\
              CLI Example:\n\n    brine '*' file.remove /tmp/foo",
        signature: Signature::new(&[req("path")]),
        handler: Handler::File(Fun::Remove),
    },
    Function {
        name: "file.mkdir",
        doc: "Ensure that a directory exists, creating its missing parents too; each directory\n\
              created gets the given owner and mode (an existing one is left as it is).\n\
              Returns ``True``.\n\n\
              dir_path\n    The directory.\n\
              user\n    The owner of the directories created: a name or a uid.\n\
              group\n    Their group: a name or a gid.\n\
              mode\n    Their mode, in octal: ``0755``, ``'0750'``, ``750``.\n\n\
              CLI Example:\n\n    brine '*' file.mkdir /opt/jetty/context\n    \
              brine '*' file.mkdir /srv/app user=www-data group=www-data mode=0750",
        signature: Signature::new(&[req("dir_path"), opt("user"), opt("group"), opt("mode")]),
        handler: Handler::File(Fun::Mkdir),
    },
    Function {
        name: "file.replace",
        doc: "Replace occurrences of a pattern in a file. If ``show_changes`` is ``True``, the\n\
              unified diff of what changed is returned (``\"\"`` when nothing did), otherwise\n\
              ``True`` when changes were made and ``False`` when none were. A symlink is\n\
              resolved to its target, which is edited in place.\n\n\
              The pattern is a regular expression in the syntax of Rust's ``regex`` crate,\n\
              which is Python's for everything but look-around and back-references in the\n\
              pattern. The replacement is written as for Python's ``re.sub``: ``\\1`` and\n\
              ``\\g<name>`` insert groups, ``\\n`` is a newline, ``\\\\`` a backslash.\n\n\
              path\n    The file to edit: text (Salt's test: no NUL byte, mostly printable), at\n    \
              most 64 MiB.\n\
              pattern\n    The regular expression to find.\n\
              repl\n    The replacement text.\n\
              count : 0\n    The most occurrences to replace; 0 replaces them all.\n\
              flags : 8\n    Python's ``re`` flags, as a list of names (``[IGNORECASE, MULTILINE]``;\n    \
              also DOTALL, VERBOSE, ASCII) or as their integer sum. The default, 8, is\n    \
              MULTILINE, so ``^`` and ``$`` match at every line.\n\
              bufsize : 1\n    Accepted for Salt's positional order and ignored: the whole file is read.\n\
              append_if_not_found : False\n    When the pattern is not found, append the content (``not_found_content``,\n    \
              or ``repl``) as a line, unless that line is already there.\n\
              prepend_if_not_found : False\n    The same, at the start of the file.\n\
              not_found_content\n    What to append or prepend; defaults to ``repl``.\n\
              backup : .bak\n    Before changing the file, keep a copy of it at the file's path plus this\n    \
              suffix (no ``/``). ``False`` keeps no copy.\n\
              dry_run : False\n    Change nothing; return what would change.\n\
              search_only : False\n    Change nothing; return ``True`` when the pattern matches, ``False`` otherwise.\n\
              show_changes : True\n    Return the diff rather than ``True``/``False``.\n\
              ignore_if_missing : False\n    Return ``False`` for a missing file instead of failing.\n\
              preserve_inode : True\n    Write the file in place, keeping its inode (hard links keep sharing it).\n    \
              ``False`` writes a new file beside it, with the same owner and mode, and\n    \
              renames it over the old one.\n\
              backslash_literal : False\n    Take every backslash in ``repl`` literally (no group references).\n\n\
              CLI Example:\n\n    brine '*' file.replace /etc/httpd/httpd.conf pattern='LogLevel warn' repl='LogLevel info'\n    \
              brine '*' file.replace /some/file pattern='before' repl='after' flags='[MULTILINE, IGNORECASE]'\n    \
              brine '*' file.replace /etc/ssh/sshd_config '^#?(PermitRootLogin) .*' '\\1 no' backup=False",
        signature: Signature::new(&[
            req("path"),
            req("pattern"),
            req("repl"),
            opt("count").with_default(Preset::Int(0)),
            opt("flags").with_default(Preset::Int(DEFAULT_FLAGS)),
            opt("bufsize").with_default(Preset::Int(1)),
            opt("append_if_not_found").with_default(Preset::Bool(false)),
            opt("prepend_if_not_found").with_default(Preset::Bool(false)),
            opt("not_found_content"),
            opt("backup").with_default(Preset::Str(DEFAULT_BACKUP)),
            opt("dry_run").with_default(Preset::Bool(false)),
            opt("search_only").with_default(Preset::Bool(false)),
            opt("show_changes").with_default(Preset::Bool(true)),
            opt("ignore_if_missing").with_default(Preset::Bool(false)),
            opt("preserve_inode").with_default(Preset::Bool(true)),
            opt("backslash_literal").with_default(Preset::Bool(false)),
        ]),
        handler: Handler::File(Fun::Replace),
    },
    Function {
        name: "file.contains",
        doc: "Return ``True`` if the file contains the text (surrounding whitespace of the\n\
              text removed), ``False`` if it does not or if the file does not exist. The file\n\
              is read in chunks, never whole.\n\n\
              path\n    The file to search.\n\
              text\n    The text to find: a plain substring, not a pattern.\n\n\
              CLI Example:\n\n    brine '*' file.contains /etc/crontab 'mymaintenance.sh'",
        signature: Signature::new(&[req("path"), req("text")]),
        handler: Handler::File(Fun::Contains),
    },
];

/// Why a file function failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FileError {
    #[error("path not found: {0}")]
    PathNotFound(String),
    #[error("file not found: {0}")]
    FileNotFound(String),
    #[error("cannot {action} '{path}': {source}")]
    Io {
        action: &'static str,
        path: String,
        source: io::Error,
    },
    #[error("could not remove '{path}': {source}")]
    Remove { path: String, source: io::Error },
    #[error("refusing to remove '/'")]
    RemoveRoot,
    #[error("'{path}' holds more than the {max} bytes that {fun} handles")]
    TooLarge {
        path: String,
        max: u64,
        fun: &'static str,
    },
    #[error("'{0}' is not UTF-8 text; read it with binary=True")]
    NotUtf8(String),
    #[error("cannot perform string replacements on a binary file: {0}")]
    Binary(String),
    #[error("'{0}' is not a regular file")]
    NotAFile(String),
    #[error("'{0}' exists and is not a directory")]
    NotADirectory(String),
}

/// An I/O failure while doing `action` to `path`.
fn io_error<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> Error + 'a {
    move |source| {
        FileError::Io {
            action,
            path: path.display().to_string(),
            source,
        }
        .into()
    }
}

fn is_missing(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::NotFound
}

pub(crate) async fn call(fun: Fun, args: Args) -> Result<Outcome, Error> {
    blocking(move || run(fun, &args)).await
}

fn run(fun: Fun, args: &Args) -> Result<Outcome, Error> {
    match fun {
        Fun::FileExists => Ok(Outcome::ok(path_arg(args, "path")?.is_file())),
        Fun::DirectoryExists => Ok(Outcome::ok(path_arg(args, "path")?.is_dir())),
        Fun::GetHash => {
            let path = path_arg(args, "path")?;
            let form = hash_form(args, "form")?.unwrap_or(HashForm::Sha256);
            let chunk = chunk_size(args)?;
            Ok(Outcome::ok(hash_file(&path, form, chunk)?))
        }
        Fun::Stats => stats(args),
        Fun::Read => read(args),
        Fun::Write => write(args),
        Fun::Touch => touch(args),
        Fun::Remove => remove(args),
        Fun::Mkdir => mkdir(args),
        Fun::Replace => replace(args),
        Fun::Contains => contains(args),
    }
}

/// The path argument `name`: `~` expanded, and absolute.
fn path_arg(args: &Args, name: &'static str) -> Result<PathBuf, ArgError> {
    let raw = args.required_string(name)?;
    let path = expand_user(&raw);
    if !path.is_absolute() {
        return Err(ArgError::Invalid {
            name,
            reason: format!("must be an absolute path, got '{}'", crate::shorten(&raw)),
        });
    }
    Ok(path)
}

/// Python's `os.path.expanduser`: a leading `~` becomes the minion's home, `~user` that user's;
/// anything else, or an unknown user, is left as it is.
fn expand_user(raw: &str) -> PathBuf {
    let Some(rest) = raw.strip_prefix('~') else {
        return PathBuf::from(raw);
    };
    let (user, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let home = if user.is_empty() {
        std::env::var_os("HOME")
            .map(PathBuf::from)
            .or_else(|| Some(User::from_uid(Uid::current()).ok()??.dir))
    } else {
        User::from_name(user).ok().flatten().map(|u| u.dir)
    };
    let Some(home) = home else {
        return PathBuf::from(raw);
    };
    let mut bytes = home.into_os_string().into_vec();
    while bytes.last() == Some(&b'/') {
        bytes.pop();
    }
    bytes.extend_from_slice(tail.as_bytes());
    if bytes.is_empty() {
        bytes.push(b'/');
    }
    PathBuf::from(std::ffi::OsString::from_vec(bytes))
}

/// A hash algorithm of `file.get_hash`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HashForm {
    Md5,
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

fn hash_form(args: &Args, name: &'static str) -> Result<Option<HashForm>, ArgError> {
    let Some(form) = args.string(name)? else {
        return Ok(None);
    };
    let parsed = match form.to_ascii_lowercase().as_str() {
        "md5" => HashForm::Md5,
        "sha1" => HashForm::Sha1,
        "sha224" => HashForm::Sha224,
        "sha256" => HashForm::Sha256,
        "sha384" => HashForm::Sha384,
        "sha512" => HashForm::Sha512,
        _ => {
            return Err(ArgError::Invalid {
                name,
                reason: format!(
                    "must be one of md5, sha1, sha224, sha256, sha384, sha512, got '{}'",
                    crate::shorten(&form)
                ),
            })
        }
    };
    Ok(Some(parsed))
}

fn chunk_size(args: &Args) -> Result<usize, ArgError> {
    let size = args.int("chunk_size")?.unwrap_or(DEFAULT_CHUNK_SIZE);
    if size < 1 {
        return Err(ArgError::Invalid {
            name: "chunk_size",
            reason: format!("must be a positive number of bytes, got {size}"),
        });
    }
    Ok(usize::try_from(size).map_or(MAX_CHUNK_SIZE, |s| s.min(MAX_CHUNK_SIZE)))
}

/// The hex digest of the file at `path`.
fn hash_file(path: &Path, form: HashForm, chunk: usize) -> Result<String, Error> {
    let file = File::open(path).map_err(io_error("read", path))?;
    let digest = match form {
        HashForm::Md5 => digest_of::<md5::Md5>(file, chunk),
        HashForm::Sha1 => digest_of::<sha1::Sha1>(file, chunk),
        HashForm::Sha224 => digest_of::<sha2::Sha224>(file, chunk),
        HashForm::Sha256 => digest_of::<sha2::Sha256>(file, chunk),
        HashForm::Sha384 => digest_of::<sha2::Sha384>(file, chunk),
        HashForm::Sha512 => digest_of::<sha2::Sha512>(file, chunk),
    };
    digest.map_err(io_error("read", path))
}

fn digest_of<D: sha2::Digest>(mut file: File, chunk: usize) -> io::Result<String> {
    let mut hasher = D::new();
    let mut buf = vec![0u8; chunk];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

fn stats(args: &Args) -> Result<Outcome, Error> {
    let path = path_arg(args, "path")?;
    let hash_type = hash_form(args, "hash_type")?;
    let follow = args.bool("follow_symlinks", true)?;
    let link = fs::symlink_metadata(&path).map_err(|err| match is_missing(&err) {
        true => FileError::PathNotFound(path.display().to_string()).into(),
        false => io_error("stat", &path)(err),
    })?;
    let meta = if follow && link.file_type().is_symlink() {
        match fs::metadata(&path) {
            Ok(meta) => meta,
            // A broken symlink is described by itself, as Salt does.
            Err(err) if is_missing(&err) => link,
            Err(err) => return Err(io_error("stat", &path)(err)),
        }
    } else {
        link
    };
    let seconds = |secs: i64, nanos: i64| secs as f64 + nanos as f64 / 1e9;
    let mut ret = Map::new();
    ret.insert("inode".into(), meta.ino().into());
    ret.insert("uid".into(), meta.uid().into());
    ret.insert("gid".into(), meta.gid().into());
    ret.insert("user".into(), user_name(meta.uid()));
    ret.insert("group".into(), group_name(meta.gid()));
    ret.insert(
        "atime".into(),
        seconds(meta.atime(), meta.atime_nsec()).into(),
    );
    ret.insert(
        "mtime".into(),
        seconds(meta.mtime(), meta.mtime_nsec()).into(),
    );
    ret.insert(
        "ctime".into(),
        seconds(meta.ctime(), meta.ctime_nsec()).into(),
    );
    ret.insert("size".into(), meta.size().into());
    ret.insert(
        "mode".into(),
        format!("{:04o}", meta.mode() & 0o7777).into(),
    );
    if let Some(form) = hash_type {
        ret.insert("sum".into(), hash_file(&path, form, MAX_CHUNK_SIZE)?.into());
    }
    ret.insert("type".into(), file_type(&meta.file_type()).into());
    ret.insert(
        "target".into(),
        real_path(&path).to_string_lossy().into_owned().into(),
    );
    Ok(Outcome::ok(ret))
}

/// Salt's name for a file type.
fn file_type(ft: &fs::FileType) -> &'static str {
    if ft.is_dir() {
        "dir"
    } else if ft.is_symlink() {
        "link"
    } else if ft.is_char_device() {
        "char"
    } else if ft.is_block_device() {
        "block"
    } else if ft.is_fifo() {
        "pipe"
    } else if ft.is_socket() {
        "socket"
    } else {
        "file"
    }
}

/// A user's name, or the uid itself when no user has it (as Salt's `uid_to_user`).
fn user_name(uid: u32) -> Value {
    match User::from_uid(Uid::from_raw(uid)) {
        Ok(Some(user)) => user.name.into(),
        _ => uid.into(),
    }
}

/// A group's name, or the gid itself when no group has it.
fn group_name(gid: u32) -> Value {
    match Group::from_gid(Gid::from_raw(gid)) {
        Ok(Some(group)) => group.name.into(),
        _ => gid.into(),
    }
}

/// Python's `os.path.realpath`: every symlink resolved; for a broken one, as far as it goes.
fn real_path(path: &Path) -> PathBuf {
    if let Ok(real) = fs::canonicalize(path) {
        return real;
    }
    let parent = path.parent().and_then(|dir| fs::canonicalize(dir).ok());
    match (parent, path.file_name()) {
        (Some(dir), Some(name)) => {
            let joined = dir.join(name);
            match fs::read_link(&joined) {
                Ok(target) => dir.join(target),
                Err(_) => joined,
            }
        }
        _ => path.to_path_buf(),
    }
}

/// Reads at most `max` bytes of `path`; more is an error naming `fun`.
fn read_capped(path: &Path, max: u64, fun: &'static str) -> Result<Vec<u8>, Error> {
    let file = File::open(path).map_err(io_error("read", path))?;
    let mut bytes = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(io_error("read", path))?;
    if bytes.len() as u64 > max {
        return Err(FileError::TooLarge {
            path: path.display().to_string(),
            max,
            fun,
        }
        .into());
    }
    Ok(bytes)
}

fn read(args: &Args) -> Result<Outcome, Error> {
    let path = path_arg(args, "path")?;
    let binary = args.bool("binary", false)?;
    let bytes = read_capped(&path, MAX_READ_BYTES, "file.read")?;
    if binary {
        return Ok(Outcome::ok(
            base64::engine::general_purpose::STANDARD.encode(bytes),
        ));
    }
    let text =
        String::from_utf8(bytes).map_err(|_| FileError::NotUtf8(path.display().to_string()))?;
    Ok(Outcome::ok(text))
}

fn write(args: &Args) -> Result<Outcome, Error> {
    let path = path_arg(args, "path")?;
    // As in Salt, `args=` given by name replaces the positional lines.
    let lines: Vec<&Value> = match args.value("args") {
        Some(Value::Array(items)) => items.iter().collect(),
        Some(one) => vec![one],
        None => args.varargs.iter().collect(),
    };
    let mut contents = String::new();
    for line in &lines {
        let text = scalar_text(line).ok_or(ArgError::WrongType {
            name: "args",
            expected: "lines of text",
            found: type_name(line),
        })?;
        contents.push_str(&text);
        contents.push('\n');
    }
    fs::write(&path, contents).map_err(io_error("write", &path))?;
    Ok(Outcome::ok(format!(
        "Wrote {} lines to \"{}\"",
        lines.len(),
        path.display()
    )))
}

fn touch(args: &Args) -> Result<Outcome, Error> {
    let path = path_arg(args, "name")?;
    let at = |name: &'static str| -> Result<TimeSpec, ArgError> {
        Ok(match args.int(name)? {
            Some(secs) => TimeSpec::new(secs as nix::libc::time_t, 0),
            None => TimeSpec::UTIME_NOW,
        })
    };
    let (atime, mtime) = (at("atime")?, at("mtime")?);
    if !path.exists() {
        OpenOptions::new()
            .append(true)
            .create(true)
            .open(&path)
            .map_err(io_error("create", &path))?;
    }
    utimensat(None, &path, &atime, &mtime, UtimensatFlags::FollowSymlink)
        .map_err(|errno| io_error("set the times of", &path)(io::Error::from(errno)))?;
    Ok(Outcome::ok(path.exists()))
}

fn remove(args: &Args) -> Result<Outcome, Error> {
    let path = path_arg(args, "path")?;
    let failed = |source: io::Error| -> Error {
        FileError::Remove {
            path: path.display().to_string(),
            source,
        }
        .into()
    };
    let meta = match fs::symlink_metadata(&path) {
        Ok(meta) => meta,
        Err(err) if is_missing(&err) => return Ok(Outcome::ok(false)),
        Err(err) => return Err(failed(err)),
    };
    if meta.is_dir() {
        // `meta` describes the path itself, so a symlink to a directory is not a directory here.
        if fs::canonicalize(&path).is_ok_and(|real| real == Path::new("/")) {
            return Err(FileError::RemoveRoot.into());
        }
        fs::remove_dir_all(&path).map_err(failed)?;
    } else {
        fs::remove_file(&path).map_err(failed)?;
    }
    Ok(Outcome::ok(true))
}

fn mkdir(args: &Args) -> Result<Outcome, Error> {
    let path = path_arg(args, "dir_path")?;
    let uid = owner_arg(args, "user")?;
    let gid = group_arg(args, "group")?;
    let mode = mode_arg(args, "mode")?;
    if path.is_dir() {
        return Ok(Outcome::ok(true));
    }
    // The path and its missing ancestors, deepest first.
    let mut missing = Vec::new();
    let mut current = Some(path.as_path());
    while let Some(dir) = current {
        match fs::symlink_metadata(dir) {
            Ok(_) if dir.is_dir() => break,
            Ok(_) => return Err(FileError::NotADirectory(dir.display().to_string()).into()),
            // Under a file: the walk up finds that file and fails there.
            Err(err) if is_missing(&err) || err.kind() == io::ErrorKind::NotADirectory => {
                missing.push(dir)
            }
            Err(err) => return Err(io_error("look at", dir)(err)),
        }
        current = dir.parent();
    }
    for dir in missing.into_iter().rev() {
        match fs::create_dir(dir) {
            Ok(()) => {}
            // Made by someone else meanwhile: theirs, left as it is.
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => continue,
            Err(err) => return Err(io_error("create directory", dir)(err)),
        }
        if let Some(mode) = mode {
            fs::set_permissions(dir, fs::Permissions::from_mode(mode))
                .map_err(io_error("set the mode of", dir))?;
        }
        if uid.is_some() || gid.is_some() {
            nix::unistd::chown(dir, uid, gid)
                .map_err(|errno| io_error("set the owner of", dir)(io::Error::from(errno)))?;
        }
    }
    Ok(Outcome::ok(true))
}

/// A user given by name or uid.
fn owner_arg(args: &Args, name: &'static str) -> Result<Option<Uid>, ArgError> {
    let Some(user) = args.string(name)? else {
        return Ok(None);
    };
    if let Ok(uid) = user.parse::<u32>() {
        return Ok(Some(Uid::from_raw(uid)));
    }
    match User::from_name(&user) {
        Ok(Some(found)) => Ok(Some(found.uid)),
        _ => Err(ArgError::Invalid {
            name,
            reason: format!("names no user of this host: '{}'", crate::shorten(&user)),
        }),
    }
}

/// A group given by name or gid.
fn group_arg(args: &Args, name: &'static str) -> Result<Option<Gid>, ArgError> {
    let Some(group) = args.string(name)? else {
        return Ok(None);
    };
    if let Ok(gid) = group.parse::<u32>() {
        return Ok(Some(Gid::from_raw(gid)));
    }
    match Group::from_name(&group) {
        Ok(Some(found)) => Ok(Some(found.gid)),
        _ => Err(ArgError::Invalid {
            name,
            reason: format!("names no group of this host: '{}'", crate::shorten(&group)),
        }),
    }
}

/// An octal mode. A number's digits are read as octal digits, as Salt reads them, so `0755` and
/// `755` (which YAML turns into the number 755) and `'0o755'` all mean `rwxr-xr-x`.
fn mode_arg(args: &Args, name: &'static str) -> Result<Option<u32>, ArgError> {
    let Some(text) = args.string(name)? else {
        return Ok(None);
    };
    let trimmed = text.trim();
    let digits = trimmed
        .strip_prefix("0o")
        .or_else(|| trimmed.strip_prefix("0O"))
        .unwrap_or(trimmed);
    let mode = (!digits.is_empty() && digits.bytes().all(|b| (b'0'..=b'7').contains(&b)))
        .then(|| u32::from_str_radix(digits, 8).ok())
        .flatten()
        .filter(|mode| *mode <= 0o7777);
    mode.map(Some).ok_or_else(|| ArgError::Invalid {
        name,
        reason: format!(
            "must be an octal mode such as '0755', got '{}'",
            crate::shorten(&text)
        ),
    })
}

/// Python `re` flags as `file.replace` takes them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Flags {
    ignore_case: bool,
    multi_line: bool,
    dot_all: bool,
    verbose: bool,
    ascii: bool,
}

impl Flags {
    /// Python's values: I=2, L=4, M=8, S=16, U=32, X=64, A=256 (L and U change nothing here).
    fn from_bits(bits: i64) -> Option<Self> {
        const KNOWN: i64 = 2 | 4 | 8 | 16 | 32 | 64 | 256;
        (bits & !KNOWN == 0).then_some(Self {
            ignore_case: bits & 2 != 0,
            multi_line: bits & 8 != 0,
            dot_all: bits & 16 != 0,
            verbose: bits & 64 != 0,
            ascii: bits & 256 != 0,
        })
    }

    fn from_name(name: &str) -> Option<i64> {
        Some(match name.trim().to_ascii_uppercase().as_str() {
            "I" | "IGNORECASE" => 2,
            "L" | "LOCALE" => 4,
            "M" | "MULTILINE" => 8,
            "S" | "DOTALL" => 16,
            "U" | "UNICODE" => 32,
            "X" | "VERBOSE" => 64,
            "A" | "ASCII" => 256,
            _ => return None,
        })
    }

    fn regex(self, pattern: &str) -> Result<Regex, regex::Error> {
        RegexBuilder::new(pattern)
            .case_insensitive(self.ignore_case)
            .multi_line(self.multi_line)
            .dot_matches_new_line(self.dot_all)
            .ignore_whitespace(self.verbose)
            .unicode(!self.ascii)
            .build()
    }
}

fn flags_arg(args: &Args) -> Result<Flags, ArgError> {
    const NAME: &str = "flags";
    let invalid = |reason: String| ArgError::Invalid { name: NAME, reason };
    let bits = match args.value(NAME) {
        None => DEFAULT_FLAGS,
        Some(Value::Number(n)) => n
            .as_i64()
            .ok_or_else(|| invalid(format!("must be a whole number, got {n}")))?,
        Some(Value::String(s)) => match s.trim().parse::<i64>() {
            Ok(bits) => bits,
            Err(_) => Flags::from_name(s)
                .ok_or_else(|| invalid(format!("names no re flag: '{}'", crate::shorten(s))))?,
        },
        Some(Value::Array(items)) => {
            let mut bits = 0;
            for item in items {
                let name = scalar_text(item).ok_or(ArgError::WrongType {
                    name: NAME,
                    expected: "a list of flag names",
                    found: type_name(item),
                })?;
                bits |= Flags::from_name(&name).ok_or_else(|| {
                    invalid(format!("names no re flag: '{}'", crate::shorten(&name)))
                })?;
            }
            bits
        }
        Some(other) => {
            return Err(ArgError::WrongType {
                name: NAME,
                expected: "a list of flag names or an integer",
                found: type_name(other),
            })
        }
    };
    Flags::from_bits(bits).ok_or_else(|| invalid(format!("holds unknown re flag bits: {bits}")))
}

/// One piece of a `re.sub`-style replacement template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(Vec<u8>),
    Group(usize),
    Named(String),
}

/// A replacement template in Python's `re.sub` syntax.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Template(Vec<Piece>);

impl Template {
    /// Parses `repl`; with `literal`, every character stands for itself.
    fn parse(repl: &str, literal: bool) -> Result<Self, String> {
        if literal {
            return Ok(Self(vec![Piece::Literal(repl.as_bytes().to_vec())]));
        }
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut chars = repl.chars().peekable();
        let flush = |text: &mut String, pieces: &mut Vec<Piece>| {
            if !text.is_empty() {
                pieces.push(Piece::Literal(std::mem::take(text).into_bytes()));
            }
        };
        while let Some(c) = chars.next() {
            if c != '\\' {
                text.push(c);
                continue;
            }
            let Some(escape) = chars.next() else {
                return Err("ends with a lone backslash".into());
            };
            match escape {
                'g' => {
                    if chars.next() != Some('<') {
                        return Err("has '\\g' without '<name>'".into());
                    }
                    let name: String = chars.by_ref().take_while(|&c| c != '>').collect();
                    if name.is_empty() {
                        return Err("has an empty group name in '\\g<>'".into());
                    }
                    flush(&mut text, &mut pieces);
                    pieces.push(match name.parse::<usize>() {
                        Ok(n) => Piece::Group(n),
                        Err(_) => Piece::Named(name),
                    });
                }
                '0'..='9' => {
                    // After `\0` only octal digits belong to the escape.
                    let belongs = |c: &char| match escape {
                        '0' => ('0'..='7').contains(c),
                        _ => c.is_ascii_digit(),
                    };
                    let mut digits = String::from(escape);
                    while digits.len() < 3 && chars.peek().is_some_and(belongs) {
                        digits.extend(chars.next());
                    }
                    let octal = u8::from_str_radix(&digits, 8).ok();
                    if escape == '0' || (digits.len() == 3 && octal.is_some()) {
                        // An octal escape: `\0`, `\012`, `\101`.
                        let value = octal.ok_or("has an invalid octal escape")?;
                        text.push(char::from(value));
                    } else {
                        // A group number is at most two digits; a third is literal text.
                        let (number, rest) = digits.split_at(digits.len().min(2));
                        flush(&mut text, &mut pieces);
                        pieces.push(Piece::Group(number.parse().unwrap_or_default()));
                        text.push_str(rest);
                    }
                }
                'n' => text.push('\n'),
                't' => text.push('\t'),
                'r' => text.push('\r'),
                'f' => text.push('\x0c'),
                'v' => text.push('\x0b'),
                'a' => text.push('\x07'),
                'b' => text.push('\x08'),
                '\\' => text.push('\\'),
                c if c.is_ascii_alphabetic() => {
                    return Err(format!("has an unknown escape '\\{c}'"))
                }
                c => {
                    text.push('\\');
                    text.push(c);
                }
            }
        }
        flush(&mut text, &mut pieces);
        Ok(Self(pieces))
    }

    /// Checks that every group the template names exists in `regex`.
    fn check(&self, regex: &Regex) -> Result<(), String> {
        for piece in &self.0 {
            match piece {
                Piece::Group(n) if *n >= regex.captures_len() => {
                    return Err(format!(
                        "refers to group {n}, but the pattern has {}",
                        regex.captures_len() - 1
                    ))
                }
                Piece::Named(name) if !regex.capture_names().flatten().any(|g| g == name) => {
                    return Err(format!(
                        "refers to group '{}', which the pattern does not name",
                        crate::shorten(name)
                    ))
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn expand(&self, caps: &Captures<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        for piece in &self.0 {
            match piece {
                Piece::Literal(bytes) => out.extend_from_slice(bytes),
                Piece::Group(n) => {
                    out.extend_from_slice(caps.get(*n).map_or(&[], |m| m.as_bytes()))
                }
                Piece::Named(name) => {
                    out.extend_from_slice(caps.name(name).map_or(&[], |m| m.as_bytes()))
                }
            }
        }
        out
    }
}

/// Salt's `files.is_text` on the first 512 bytes: no NUL, and UTF-8 or at most 30 % bytes that
/// are not printable ASCII or common whitespace.
fn is_text(bytes: &[u8]) -> bool {
    let block = &bytes[..bytes.len().min(512)];
    if block.contains(&0) {
        return false;
    }
    if block.is_empty() {
        return true;
    }
    match std::str::from_utf8(block) {
        Ok(_) => return true,
        // A character cut by the end of the block is still text.
        Err(err) if err.error_len().is_none() => return true,
        Err(_) => {}
    }
    let text = |b: &u8| (32..127).contains(b) || b"\n\r\t\x0c\x08".contains(b);
    let nontext = block.iter().filter(|b| !text(b)).count();
    nontext as f64 / block.len() as f64 <= 0.30
}

/// `file.replace`'s backup suffix: `None` for no backup.
fn backup_arg(args: &Args) -> Result<Option<String>, ArgError> {
    const NAME: &str = "backup";
    let suffix = match args.value(NAME) {
        None | Some(Value::Bool(true)) => DEFAULT_BACKUP.to_owned(),
        Some(Value::Bool(false)) => return Ok(None),
        Some(value) => scalar_text(value).ok_or(ArgError::WrongType {
            name: NAME,
            expected: "a file name suffix or False",
            found: type_name(value),
        })?,
    };
    if suffix.is_empty() || suffix.eq_ignore_ascii_case("false") {
        return Ok(None);
    }
    if suffix.contains(['/', '\0']) {
        return Err(ArgError::Invalid {
            name: NAME,
            reason: "must be a file name suffix, without '/'".into(),
        });
    }
    Ok(Some(suffix))
}

fn replace(args: &Args) -> Result<Outcome, Error> {
    let given = path_arg(args, "path")?;
    let pattern = args.required_string("pattern")?;
    let repl = args.required_string("repl")?;
    let count = match args.int("count")?.unwrap_or(0) {
        n if n < 0 => {
            return Err(ArgError::Invalid {
                name: "count",
                reason: format!("must be 0 (all) or more, got {n}"),
            }
            .into())
        }
        n => usize::try_from(n).unwrap_or(usize::MAX),
    };
    let flags = flags_arg(args)?;
    // bufsize only keeps Salt's positional order: the whole file is read.
    let _ = args.value("bufsize");
    let append = args.bool("append_if_not_found", false)?;
    let prepend = args.bool("prepend_if_not_found", false)?;
    let not_found_content = args.string("not_found_content")?;
    let backup = backup_arg(args)?;
    let dry_run = args.bool("dry_run", false)?;
    let search_only = args.bool("search_only", false)?;
    let show_changes = args.bool("show_changes", true)?;
    let ignore_if_missing = args.bool("ignore_if_missing", false)?;
    let preserve_inode = args.bool("preserve_inode", true)?;
    let backslash_literal = args.bool("backslash_literal", false)?;
    if search_only && (append || prepend) {
        return Err(ArgError::Invalid {
            name: "search_only",
            reason: "cannot be used with append_if_not_found or prepend_if_not_found".into(),
        }
        .into());
    }
    if append && prepend {
        return Err(ArgError::Invalid {
            name: "prepend_if_not_found",
            reason: "cannot be used with append_if_not_found".into(),
        }
        .into());
    }
    let regex = flags.regex(&pattern).map_err(|err| ArgError::Invalid {
        name: "pattern",
        reason: format!("is not a valid regular expression: {err}"),
    })?;
    let template = Template::parse(&repl, backslash_literal)
        .and_then(|t| t.check(&regex).map(|()| t))
        .map_err(|reason| ArgError::Invalid {
            name: "repl",
            reason,
        })?;

    let path = real_path(&given);
    let meta = match fs::metadata(&path) {
        Ok(meta) => meta,
        Err(err) if is_missing(&err) && ignore_if_missing => return Ok(Outcome::ok(false)),
        Err(err) if is_missing(&err) => {
            return Err(FileError::FileNotFound(given.display().to_string()).into())
        }
        Err(err) => return Err(io_error("stat", &path)(err)),
    };
    if !meta.is_file() {
        return Err(FileError::NotAFile(path.display().to_string()).into());
    }
    let original = read_capped(&path, MAX_EDIT_BYTES, "file.replace")?;
    if !is_text(&original) {
        return Err(FileError::Binary(path.display().to_string()).into());
    }
    if search_only {
        return Ok(Outcome::ok(regex.is_match(&original)));
    }

    let mut replaced = 0usize;
    let mut new = regex
        .replacen(&original, count, |caps: &Captures<'_>| {
            replaced += 1;
            template.expand(caps)
        })
        .into_owned();
    if append || prepend {
        let content = not_found_content.unwrap_or_else(|| repl.clone());
        // The content already there as a line counts as found, so a second run adds nothing.
        let line = flags
            .regex(&format!("^{}(?:$|\r\n)", regex::escape(&content)))
            .map_err(|err| ArgError::Invalid {
                name: "not_found_content",
                reason: format!("is too long to search for: {err}"),
            })?;
        if replaced == 0 && !line.is_match(&original) {
            if prepend {
                let mut front = content.into_bytes();
                front.push(b'\n');
                front.append(&mut new);
                new = front;
            } else {
                if new.last().is_some_and(|&b| b != b'\n') {
                    new.push(b'\n');
                }
                new.extend_from_slice(content.as_bytes());
                new.push(b'\n');
            }
        }
    }
    let changed = new != original;
    if changed && !dry_run {
        if let Some(suffix) = &backup {
            let mut name = path.clone().into_os_string();
            name.push(suffix);
            write_beside(&PathBuf::from(name), &original, &meta)?;
        }
        if preserve_inode {
            OpenOptions::new()
                .write(true)
                .truncate(true)
                .open(&path)
                .and_then(|mut file| file.write_all(&new))
                .map_err(io_error("write", &path))?;
        } else {
            write_beside(&path, &new, &meta)?;
        }
    }
    if show_changes {
        Ok(Outcome::ok(unified_diff(&original, &new)))
    } else {
        Ok(Outcome::ok(changed))
    }
}

/// Writes `contents` to `path` through a new file beside it, with `like`'s mode and owner, renamed
/// over `path`: a symlink or another file already at `path` is replaced, never written through.
fn write_beside(path: &Path, contents: &[u8], like: &fs::Metadata) -> Result<(), Error> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    let prefix = format!(
        ".{}.",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    );
    let write = || -> io::Result<()> {
        let mut temp = tempfile::Builder::new()
            .prefix(&prefix)
            .suffix(".brine-tmp")
            .tempfile_in(dir)?;
        temp.write_all(contents)?;
        let file = temp.as_file();
        // Owner first: a chown clears the setuid and setgid bits, so the mode comes after it.
        // Only root can give a file away; anyone else keeps their own.
        if let Err(err) = std::os::unix::fs::fchown(file, Some(like.uid()), Some(like.gid())) {
            if err.kind() != io::ErrorKind::PermissionDenied {
                return Err(err);
            }
        }
        file.set_permissions(fs::Permissions::from_mode(like.mode() & 0o7777))?;
        temp.persist(path).map(drop).map_err(|err| err.error)
    };
    write().map_err(io_error("write", path))
}

/// The unified diff of two texts as Python's `difflib.unified_diff` writes it (no file names,
/// three lines of context); `""` when they are equal.
fn unified_diff(old: &[u8], new: &[u8]) -> String {
    if old == new {
        return String::new();
    }
    let (old, new) = (String::from_utf8_lossy(old), String::from_utf8_lossy(new));
    similar::TextDiff::from_lines(old.as_ref(), new.as_ref())
        .unified_diff()
        .context_radius(3)
        .header("", "")
        .to_string()
}

fn contains(args: &Args) -> Result<Outcome, Error> {
    let path = path_arg(args, "path")?;
    let text = args.required_string("text")?;
    let needle = text.trim().as_bytes();
    let mut file = match File::open(&path) {
        Ok(file) => file,
        Err(err) if is_missing(&err) => return Ok(Outcome::ok(false)),
        Err(err) => return Err(io_error("read", &path)(err)),
    };
    let finder = memchr::memmem::Finder::new(needle);
    // The tail of what was read, so that a match across two reads is found.
    let keep = needle.len().saturating_sub(1);
    let mut window = Vec::with_capacity(CONTAINS_CHUNK + keep);
    let mut buf = vec![0u8; CONTAINS_CHUNK];
    loop {
        let n = file.read(&mut buf).map_err(io_error("read", &path))?;
        if n == 0 {
            return Ok(Outcome::ok(false));
        }
        window.extend_from_slice(&buf[..n]);
        if finder.find(&window).is_some() {
            return Ok(Outcome::ok(true));
        }
        let cut = window.len().saturating_sub(keep);
        window.drain(..cut);
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use serde_json::json;

    use super::*;
    use crate::tests::run as call;

    fn p(path: &Path) -> Value {
        json!(path.to_str().unwrap())
    }

    fn err(out: &Outcome) -> &str {
        assert!(!out.success, "expected a failure: {out:?}");
        assert_eq!(out.retcode, 1);
        out.ret.as_str().unwrap()
    }

    #[tokio::test]
    async fn exists_tells_files_from_directories() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        fs::write(&file, "x").unwrap();
        let link = dir.path().join("l");
        symlink(&file, &link).unwrap();
        for (fun, path, expected) in [
            ("file.file_exists", &file, true),
            ("file.file_exists", &link, true),
            ("file.file_exists", &dir.path().to_path_buf(), false),
            ("file.file_exists", &dir.path().join("nope"), false),
            ("file.directory_exists", &dir.path().to_path_buf(), true),
            ("file.directory_exists", &file, false),
        ] {
            let out = call(fun, vec![p(path)], json!({})).await;
            assert_eq!(out, Outcome::ok(expected), "{fun} {}", path.display());
        }
        let out = call("file.file_exists", vec![json!("etc/passwd")], json!({})).await;
        assert_eq!(
            err(&out),
            "file.file_exists: argument 'path' must be an absolute path, got 'etc/passwd'"
        );
        let out = call("file.file_exists", vec![], json!({})).await;
        assert_eq!(
            err(&out),
            "file.file_exists: missing required argument 'path'"
        );
    }

    #[test]
    fn tilde_expands_like_python() {
        let root = User::from_uid(Uid::from_raw(0)).unwrap().unwrap();
        let home = root.dir.to_str().unwrap().trim_end_matches('/').to_owned();
        assert_eq!(expand_user("~root/x"), PathBuf::from(format!("{home}/x")));
        assert_eq!(
            expand_user("~root").to_str().unwrap(),
            if home.is_empty() { "/" } else { &home }
        );
        assert_eq!(
            expand_user("~no-such-user-brine/x"),
            PathBuf::from("~no-such-user-brine/x")
        );
        assert_eq!(expand_user("/a/~b"), PathBuf::from("/a/~b"));
        assert!(expand_user("~").is_absolute());
    }

    #[tokio::test]
    async fn get_hash_knows_every_form() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("abc");
        fs::write(&file, "abc").unwrap();
        for (form, digest) in [
            (
                None,
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            ),
            (Some("md5"), "900150983cd24fb0d6963f7d28e17f72"),
            (Some("sha1"), "a9993e364706816aba3e25717850c26c9cd0d89d"),
            (
                Some("sha224"),
                "23097d223405d8228642a477bda255b32aadbce4bda0b3f7e36c9da7",
            ),
            (
                Some("SHA256"),
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            ),
            (
                Some("sha384"),
                "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed\
                 8086072ba1e7cc2358baeca134c825a7",
            ),
            (
                Some("sha512"),
                "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a\
                 2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
            ),
        ] {
            let mut arg = vec![p(&file)];
            arg.extend(form.map(|f| json!(f)));
            let out = call("file.get_hash", arg, json!({"chunk_size": 2})).await;
            assert_eq!(out, Outcome::ok(digest), "{form:?}");
        }
        let out = call("file.get_hash", vec![p(&file), json!("crc32")], json!({})).await;
        assert!(err(&out).starts_with("file.get_hash: argument 'form' must be one of md5"));
        let out = call("file.get_hash", vec![p(&file)], json!({"chunk_size": 0})).await;
        assert!(err(&out).contains("argument 'chunk_size'"));
        let missing = dir.path().join("missing");
        let out = call("file.get_hash", vec![p(&missing)], json!({})).await;
        assert!(err(&out).starts_with(&format!(
            "file.get_hash: cannot read '{}'",
            missing.display()
        )));
    }

    #[tokio::test]
    async fn stats_describe_files_links_and_directories() {
        let dir = tempfile::tempdir().unwrap();
        let real_dir = dir.path().canonicalize().unwrap();
        let file = dir.path().join("f");
        fs::write(&file, "hello").unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o4750)).unwrap();
        let meta = fs::metadata(&file).unwrap();
        let out = call("file.stats", vec![p(&file)], json!({"hash_type": "md5"})).await;
        assert!(out.success, "{out:?}");
        let ret = out.ret.as_object().unwrap();
        assert_eq!(ret["mode"], json!("4750"));
        assert_eq!(ret["type"], json!("file"));
        assert_eq!(ret["size"], json!(5));
        assert_eq!(ret["inode"], json!(meta.ino()));
        assert_eq!(ret["uid"], json!(meta.uid()));
        assert_eq!(ret["gid"], json!(meta.gid()));
        assert_eq!(ret["user"], user_name(meta.uid()));
        assert_eq!(ret["group"], group_name(meta.gid()));
        assert_eq!(ret["sum"], json!("5d41402abc4b2a76b9719d911017c592"));
        assert_eq!(ret["target"], json!(real_dir.join("f").to_str().unwrap()));
        let mtime = ret["mtime"].as_f64().unwrap();
        assert!((mtime - meta.mtime() as f64).abs() < 1.0, "{mtime}");
        for key in ["atime", "ctime"] {
            assert!(ret[key].as_f64().unwrap() > 1e9, "{key}");
        }

        let link = dir.path().join("l");
        symlink("f", &link).unwrap();
        let out = call("file.stats", vec![p(&link)], json!({})).await;
        assert_eq!(out.ret["type"], json!("file"));
        assert_eq!(out.ret["mode"], json!("4750"));
        let out = call(
            "file.stats",
            vec![p(&link), Value::Null, json!(false)],
            json!({}),
        )
        .await;
        assert_eq!(out.ret["type"], json!("link"));
        assert_eq!(out.ret["mode"], json!("0777"));
        assert_eq!(
            out.ret["target"],
            json!(real_dir.join("f").to_str().unwrap())
        );

        let broken = dir.path().join("broken");
        symlink("gone", &broken).unwrap();
        let out = call("file.stats", vec![p(&broken)], json!({})).await;
        assert_eq!(out.ret["type"], json!("link"));
        assert_eq!(
            out.ret["target"],
            json!(real_dir.join("gone").to_str().unwrap())
        );

        let out = call("file.stats", vec![p(dir.path())], json!({})).await;
        assert_eq!(out.ret["type"], json!("dir"));

        let missing = dir.path().join("missing");
        let out = call("file.stats", vec![p(&missing)], json!({})).await;
        assert_eq!(
            err(&out),
            format!("file.stats: path not found: {}", missing.display())
        );
    }

    #[tokio::test]
    async fn read_returns_text_or_base64() {
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("t");
        fs::write(&text, "line 1\nlíne 2\n").unwrap();
        let out = call("file.read", vec![p(&text)], json!({})).await;
        assert_eq!(out, Outcome::ok("line 1\nlíne 2\n"));

        let bin = dir.path().join("b");
        fs::write(&bin, [0u8, 0xff, 0x10]).unwrap();
        let out = call("file.read", vec![p(&bin), json!(true)], json!({})).await;
        assert_eq!(out, Outcome::ok("AP8Q"));
        let out = call("file.read", vec![p(&bin)], json!({})).await;
        assert!(err(&out).contains("is not UTF-8 text; read it with binary=True"));

        let big = dir.path().join("big");
        File::create(&big)
            .unwrap()
            .set_len(MAX_READ_BYTES + 1)
            .unwrap();
        let out = call("file.read", vec![p(&big)], json!({"binary": true})).await;
        assert!(err(&out).contains("holds more than the 8388608 bytes that file.read handles"));
        fs::OpenOptions::new()
            .write(true)
            .open(&big)
            .unwrap()
            .set_len(MAX_READ_BYTES)
            .unwrap();
        let out = call("file.read", vec![p(&big)], json!({})).await;
        assert_eq!(out.ret.as_str().unwrap().len() as u64, MAX_READ_BYTES);

        let out = call("file.read", vec![json!("/proc/self/status")], json!({})).await;
        assert!(
            out.ret.as_str().unwrap().contains("Pid:"),
            "files of size 0 in /proc are read"
        );
        let out = call("file.read", vec![p(dir.path())], json!({})).await;
        assert!(err(&out).starts_with("file.read: cannot read"));
    }

    #[tokio::test]
    async fn write_writes_one_line_per_argument() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("w");
        fs::write(&file, "old content that is longer\n").unwrap();
        let out = call(
            "file.write",
            vec![p(&file), json!("first"), json!(2), json!(true)],
            json!({}),
        )
        .await;
        assert_eq!(
            out,
            Outcome::ok(format!("Wrote 3 lines to \"{}\"", file.display()))
        );
        assert_eq!(fs::read_to_string(&file).unwrap(), "first\n2\ntrue\n");

        let out = call(
            "file.write",
            vec![p(&file), json!("ignored")],
            json!({"args": ["a", "b"]}),
        )
        .await;
        assert!(out.success);
        assert_eq!(fs::read_to_string(&file).unwrap(), "a\nb\n");
        let out = call("file.write", vec![p(&file)], json!({})).await;
        assert_eq!(
            out.ret,
            json!(format!("Wrote 0 lines to \"{}\"", file.display()))
        );
        assert_eq!(fs::read_to_string(&file).unwrap(), "");

        let out = call("file.write", vec![p(&file), json!({"a": 1})], json!({})).await;
        assert_eq!(
            err(&out),
            "file.write: argument 'args' must be lines of text, got a map"
        );
        let out = call(
            "file.write",
            vec![p(&dir.path().join("no/such/dir"))],
            json!({}),
        )
        .await;
        assert!(err(&out).starts_with("file.write: cannot write"));
    }

    #[tokio::test]
    async fn touch_creates_and_sets_times() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t");
        let out = call("file.touch", vec![p(&file)], json!({})).await;
        assert_eq!(out, Outcome::ok(true));
        assert_eq!(fs::metadata(&file).unwrap().len(), 0);

        fs::write(&file, "keep").unwrap();
        let out = call(
            "file.touch",
            vec![p(&file), json!(1_000_000_000), json!("1100000000")],
            json!({}),
        )
        .await;
        assert_eq!(out, Outcome::ok(true));
        let meta = fs::metadata(&file).unwrap();
        assert_eq!((meta.atime(), meta.mtime()), (1_000_000_000, 1_100_000_000));
        assert_eq!(fs::read_to_string(&file).unwrap(), "keep");

        let out = call(
            "file.touch",
            vec![p(&file)],
            json!({"mtime": 1_200_000_000}),
        )
        .await;
        assert!(out.success);
        let meta = fs::metadata(&file).unwrap();
        assert_eq!(meta.mtime(), 1_200_000_000);
        assert!(meta.atime() > 1_600_000_000, "atime is now");

        let out = call("file.touch", vec![p(&file)], json!({"atime": "yesterday"})).await;
        assert_eq!(
            err(&out),
            "file.touch: argument 'atime' must be an integer, got a string"
        );
        let out = call(
            "file.touch",
            vec![p(&dir.path().join("no/dir/f"))],
            json!({}),
        )
        .await;
        assert!(err(&out).starts_with("file.touch: cannot create"));
    }

    #[tokio::test]
    async fn remove_takes_files_links_and_trees() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        fs::write(&file, "x").unwrap();
        let out = call("file.remove", vec![p(&file)], json!({})).await;
        assert_eq!(out, Outcome::ok(true));
        assert!(!file.exists());
        let out = call("file.remove", vec![p(&file)], json!({})).await;
        assert_eq!(out, Outcome::ok(false));

        let tree = dir.path().join("tree");
        fs::create_dir_all(tree.join("a/b")).unwrap();
        fs::write(tree.join("a/b/c"), "x").unwrap();
        let kept = dir.path().join("kept");
        fs::create_dir(&kept).unwrap();
        fs::write(kept.join("k"), "x").unwrap();
        symlink(&kept, tree.join("a/link")).unwrap();
        let link = dir.path().join("link");
        symlink(&kept, &link).unwrap();

        let out = call("file.remove", vec![p(&link)], json!({})).await;
        assert_eq!(out, Outcome::ok(true));
        assert!(fs::symlink_metadata(&link).is_err());
        let out = call("file.remove", vec![p(&tree)], json!({})).await;
        assert_eq!(out, Outcome::ok(true));
        assert!(!tree.exists());
        assert!(
            kept.join("k").exists(),
            "links inside a tree are not followed"
        );

        let out = call("file.remove", vec![json!("/")], json!({})).await;
        assert_eq!(err(&out), "file.remove: refusing to remove '/'");
        let out = call("file.remove", vec![json!("/tmp/..")], json!({})).await;
        assert_eq!(err(&out), "file.remove: refusing to remove '/'");
        let out = call("file.remove", vec![json!("tmp/x")], json!({})).await;
        assert!(err(&out).contains("argument 'path' must be an absolute path"));
    }

    #[tokio::test]
    async fn mkdir_creates_parents_with_owner_and_mode() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("a/b/c");
        let me = User::from_uid(Uid::effective()).unwrap().unwrap();
        let my_group = Group::from_gid(Gid::effective()).unwrap().unwrap();
        let out = call(
            "file.mkdir",
            vec![p(&deep), json!(me.name), json!(my_group.name), json!(750)],
            json!({}),
        )
        .await;
        assert_eq!(out, Outcome::ok(true));
        for d in ["a", "a/b", "a/b/c"] {
            let meta = fs::metadata(dir.path().join(d)).unwrap();
            assert!(meta.is_dir());
            assert_eq!(meta.mode() & 0o7777, 0o750, "{d}");
            assert_eq!(
                (meta.uid(), meta.gid()),
                (me.uid.as_raw(), my_group.gid.as_raw())
            );
        }
        // An existing directory is left as it is.
        let out = call("file.mkdir", vec![p(&deep)], json!({"mode": "0o700"})).await;
        assert_eq!(out, Outcome::ok(true));
        assert_eq!(fs::metadata(&deep).unwrap().mode() & 0o7777, 0o750);

        let other = dir.path().join("x/y");
        let out = call(
            "file.mkdir",
            vec![p(&other)],
            json!({"mode": "0711", "user": 0}),
        )
        .await;
        if Uid::effective().is_root() {
            assert_eq!(out, Outcome::ok(true));
            assert_eq!(fs::metadata(&other).unwrap().mode() & 0o7777, 0o711);
        }

        let file = dir.path().join("file");
        fs::write(&file, "").unwrap();
        let out = call("file.mkdir", vec![p(&file.join("sub"))], json!({})).await;
        assert_eq!(
            err(&out),
            format!(
                "file.mkdir: '{}' exists and is not a directory",
                file.display()
            )
        );
        let out = call(
            "file.mkdir",
            vec![p(&dir.path().join("m"))],
            json!({"mode": "0799"}),
        )
        .await;
        assert_eq!(
            err(&out),
            "file.mkdir: argument 'mode' must be an octal mode such as '0755', got '0799'"
        );
        let out = call(
            "file.mkdir",
            vec![p(&dir.path().join("m"))],
            json!({"user": "no-such-user-brine"}),
        )
        .await;
        assert_eq!(
            err(&out),
            "file.mkdir: argument 'user' names no user of this host: 'no-such-user-brine'"
        );
        let out = call(
            "file.mkdir",
            vec![p(&dir.path().join("m"))],
            json!({"group": "no-such-group-brine"}),
        )
        .await;
        assert!(err(&out).contains("argument 'group' names no group"));
        assert!(
            !dir.path().join("m").exists(),
            "bad arguments create nothing"
        );
    }

    #[test]
    fn modes_read_like_salt() {
        const SIG: Signature = Signature::new(&[opt("mode")]);
        let args = |v: Value| crate::args::bind(&SIG, vec![v], Map::new()).unwrap();
        for (given, mode) in [
            (json!(755), 0o755),
            (json!("0755"), 0o755),
            (json!("0o640"), 0o640),
            (json!("4755"), 0o4755),
            (json!(0), 0),
        ] {
            assert_eq!(
                mode_arg(&args(given.clone()), "mode").unwrap(),
                Some(mode),
                "{given}"
            );
        }
        for bad in [
            json!("rwx"),
            json!(8),
            json!("17777"),
            json!(""),
            json!(7.5),
        ] {
            assert!(mode_arg(&args(bad.clone()), "mode").is_err(), "{bad}");
        }
    }

    #[test]
    fn templates_follow_python_re_sub() {
        let regex = Flags::default().regex(r"(?P<key>\w+)=(\w+)").unwrap();
        let expand = |repl: &str| {
            let template = Template::parse(repl, false).unwrap();
            template.check(&regex).unwrap();
            let caps = regex.captures(b"a=1").unwrap();
            String::from_utf8(template.expand(&caps)).unwrap()
        };
        assert_eq!(expand(r"\2=\1"), "1=a");
        assert_eq!(expand(r"\g<key>:\g<2>:\g<0>"), "a:1:a=1");
        assert_eq!(expand(r"$1 \\ \n\t"), "$1 \\ \n\t");
        assert_eq!(expand(r"\101\0x"), "A\0x");
        assert_eq!(expand(r"\08"), "\08");
        assert_eq!(expand(r"\1\&"), "a\\&");
        assert_eq!(expand(r"\100"), "@");
        assert!(Template::parse(r"\q", false).is_err());
        assert!(Template::parse("x\\", false).is_err());
        assert!(Template::parse(r"\g<", false).is_err());
        assert!(Template::parse(r"\gx", false).is_err());
        assert!(Template::parse(r"\3", false)
            .unwrap()
            .check(&regex)
            .is_err());
        assert!(Template::parse(r"\g<nope>", false)
            .unwrap()
            .check(&regex)
            .is_err());
        let literal = Template::parse(r"\1\n", true).unwrap();
        assert_eq!(literal, Template(vec![Piece::Literal(br"\1\n".to_vec())]));
    }

    #[test]
    fn flags_take_names_and_numbers() {
        const SIG: Signature = Signature::new(&[opt("flags")]);
        let args = |v: Value| crate::args::bind(&SIG, vec![v], Map::new()).unwrap();
        let none = crate::args::bind(&SIG, vec![], Map::new()).unwrap();
        assert_eq!(
            flags_arg(&none).unwrap(),
            Flags {
                multi_line: true,
                ..Flags::default()
            }
        );
        let both = Flags {
            multi_line: true,
            ignore_case: true,
            ..Flags::default()
        };
        assert_eq!(
            flags_arg(&args(json!(["MULTILINE", "ignorecase"]))).unwrap(),
            both
        );
        assert_eq!(flags_arg(&args(json!(10))).unwrap(), both);
        assert_eq!(flags_arg(&args(json!("10"))).unwrap(), both);
        assert_eq!(
            flags_arg(&args(json!("DOTALL"))).unwrap(),
            Flags {
                dot_all: true,
                ..Flags::default()
            }
        );
        assert!(flags_arg(&args(json!(["NOPE"])))
            .unwrap_err()
            .to_string()
            .contains("'flags'"));
        assert!(flags_arg(&args(json!(1))).is_err());
        assert!(flags_arg(&args(json!({"a": 1}))).is_err());
    }

    #[test]
    fn text_is_told_from_binary_as_salt_does() {
        assert!(is_text(b""));
        assert!(is_text("plain\ttext\r\n".as_bytes()));
        assert!(is_text("ünïcödé".as_bytes()));
        assert!(!is_text(b"a\0b"));
        assert!(is_text(b"latin-1 caf\xe9 ok"));
        assert!(!is_text(&[0xff; 100]));
        let cut = "é".repeat(300);
        assert!(is_text(cut.as_bytes()), "a character cut at 512 bytes");
    }

    #[tokio::test]
    async fn replace_edits_in_place_with_a_backup_and_returns_the_diff() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("conf");
        fs::write(&file, "a=1\nb=2\nc=3\n").unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o640)).unwrap();
        let inode = fs::metadata(&file).unwrap().ino();
        let out = call(
            "file.replace",
            vec![p(&file), json!("^b=.*$"), json!("b=20")],
            json!({}),
        )
        .await;
        assert_eq!(
            out,
            Outcome::ok("--- \n+++ \n@@ -1,3 +1,3 @@\n a=1\n-b=2\n+b=20\n c=3\n")
        );
        assert_eq!(fs::read_to_string(&file).unwrap(), "a=1\nb=20\nc=3\n");
        let meta = fs::metadata(&file).unwrap();
        assert_eq!((meta.ino(), meta.mode() & 0o7777), (inode, 0o640));
        let backup = dir.path().join("conf.bak");
        assert_eq!(fs::read_to_string(&backup).unwrap(), "a=1\nb=2\nc=3\n");
        assert_eq!(fs::metadata(&backup).unwrap().mode() & 0o7777, 0o640);

        // Nothing to change: an empty diff, and the backup is not touched.
        fs::write(&backup, "old backup").unwrap();
        let out = call(
            "file.replace",
            vec![p(&file), json!("^b=.*$"), json!("b=20")],
            json!({}),
        )
        .await;
        assert_eq!(out, Outcome::ok(""));
        assert_eq!(fs::read_to_string(&backup).unwrap(), "old backup");
        let out = call(
            "file.replace",
            vec![p(&file), json!("zzz"), json!("y")],
            json!({"show_changes": false}),
        )
        .await;
        assert_eq!(out, Outcome::ok(false));
    }

    #[tokio::test]
    async fn replace_takes_salts_options() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("conf");
        let reset = || fs::write(&file, "Key one\nkey two\nkey three\n").unwrap();
        let contents = || fs::read_to_string(&file).unwrap();
        let replace = |pattern: &str, repl: &str, kwarg: Value| {
            call(
                "file.replace",
                vec![p(&file), json!(pattern), json!(repl)],
                kwarg,
            )
        };

        reset();
        let out = replace(
            "^key (\\w+)",
            "\\1=key",
            json!({"backup": false, "show_changes": false}),
        )
        .await;
        assert_eq!(out, Outcome::ok(true));
        assert_eq!(contents(), "Key one\ntwo=key\nthree=key\n");
        assert!(!dir.path().join("conf.bak").exists());

        reset();
        let out = replace(
            "^key",
            "K",
            json!({"count": 1, "flags": ["IGNORECASE", "MULTILINE"], "backup": ".orig"}),
        )
        .await;
        assert!(out.success, "{out:?}");
        assert_eq!(contents(), "K one\nkey two\nkey three\n");
        assert!(dir.path().join("conf.orig").exists());

        reset();
        let out = replace(
            "^key",
            "K",
            json!({"flags": ["IGNORECASE"], "backup": false}),
        )
        .await;
        assert!(out.success);
        assert_eq!(
            contents(),
            "K one\nkey two\nkey three\n",
            "without MULTILINE ^ is the start"
        );

        reset();
        let out = replace("two", "2", json!({"dry_run": true})).await;
        assert_eq!(
            out.ret,
            json!("--- \n+++ \n@@ -1,3 +1,3 @@\n Key one\n-key two\n+key 2\n key three\n")
        );
        assert_eq!(contents(), "Key one\nkey two\nkey three\n");
        assert!(!dir.path().join("conf.bak").exists());

        let out = replace("t[wh]", "", json!({"search_only": true})).await;
        assert_eq!(out, Outcome::ok(true));
        let out = replace("four", "", json!({"search_only": true})).await;
        assert_eq!(out, Outcome::ok(false));

        let out = replace(
            "^four.*",
            "key four",
            json!({"append_if_not_found": true, "backup": false}),
        )
        .await;
        assert_eq!(
            out.ret,
            json!("--- \n+++ \n@@ -1,3 +1,4 @@\n Key one\n key two\n key three\n+key four\n")
        );
        assert_eq!(contents(), "Key one\nkey two\nkey three\nkey four\n");
        let out = replace(
            "^four.*",
            "key four",
            json!({"append_if_not_found": true, "backup": false}),
        )
        .await;
        assert_eq!(out, Outcome::ok(""), "the line is there already");
        let out = replace(
            "^zero.*",
            "unused",
            json!({"prepend_if_not_found": true, "not_found_content": "key zero", "backup": false}),
        )
        .await;
        assert!(out.success, "{out:?}");
        assert_eq!(
            contents(),
            "key zero\nKey one\nkey two\nkey three\nkey four\n"
        );

        fs::write(&file, "no newline").unwrap();
        let out = replace(
            "^x",
            "y",
            json!({"append_if_not_found": true, "backup": false, "show_changes": false}),
        )
        .await;
        assert_eq!(out, Outcome::ok(true));
        assert_eq!(contents(), "no newline\ny\n");

        fs::write(&file, "path C:\\dir\n").unwrap();
        let out = replace(
            "C:.*",
            "D:\\new",
            json!({"backslash_literal": true, "backup": false}),
        )
        .await;
        assert!(out.success, "{out:?}");
        assert_eq!(contents(), "path D:\\new\n");
    }

    #[tokio::test]
    async fn replace_through_a_new_inode_keeps_owner_and_mode() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("conf");
        fs::write(&file, "x\n").unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o604)).unwrap();
        let link = dir.path().join("link");
        symlink("conf", &link).unwrap();
        let before = fs::metadata(&file).unwrap();
        let out = call(
            "file.replace",
            vec![p(&link), json!("x"), json!("y")],
            json!({"preserve_inode": false}),
        )
        .await;
        assert!(out.success, "{out:?}");
        let after = fs::metadata(&file).unwrap();
        assert_ne!(after.ino(), before.ino());
        assert_eq!(after.mode() & 0o7777, 0o604);
        assert_eq!((after.uid(), after.gid()), (before.uid(), before.gid()));
        assert_eq!(fs::read_to_string(&file).unwrap(), "y\n");
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink(),
            "the link stays"
        );
        assert_eq!(
            fs::read_to_string(dir.path().join("conf.bak")).unwrap(),
            "x\n"
        );
        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n.to_string_lossy().ends_with(".brine-tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[tokio::test]
    async fn replace_refuses_what_it_cannot_do() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        fs::write(&file, "text\n").unwrap();
        let replace = |path: &Path, pattern: &str, repl: &str, kwarg: Value| {
            call(
                "file.replace",
                vec![p(path), json!(pattern), json!(repl)],
                kwarg,
            )
        };
        let missing = dir.path().join("missing");
        let out = replace(&missing, "a", "b", json!({})).await;
        assert_eq!(
            err(&out),
            format!("file.replace: file not found: {}", missing.display())
        );
        let out = replace(&missing, "a", "b", json!({"ignore_if_missing": true})).await;
        assert_eq!(out, Outcome::ok(false));

        let bin = dir.path().join("bin");
        fs::write(&bin, b"\0\x01\x02").unwrap();
        let out = replace(&bin, "a", "b", json!({})).await;
        assert!(err(&out).contains("cannot perform string replacements on a binary file"));
        let out = replace(dir.path(), "a", "b", json!({})).await;
        assert!(err(&out).contains("is not a regular file"));

        let out = replace(&file, "(", "b", json!({})).await;
        assert!(err(&out)
            .starts_with("file.replace: argument 'pattern' is not a valid regular expression"));
        let out = replace(&file, "(t)", "\\2", json!({})).await;
        assert_eq!(
            err(&out),
            "file.replace: argument 'repl' refers to group 2, but the pattern has 1"
        );
        let out = replace(&file, "t", "b", json!({"count": -1})).await;
        assert!(err(&out).contains("argument 'count'"));
        let out = replace(&file, "t", "b", json!({"backup": "/../../etc/x"})).await;
        assert!(err(&out).contains("argument 'backup' must be a file name suffix"));
        let out = replace(
            &file,
            "t",
            "b",
            json!({"search_only": true, "append_if_not_found": true}),
        )
        .await;
        assert!(err(&out).contains("argument 'search_only'"));
        let out = replace(
            &file,
            "t",
            "b",
            json!({"prepend_if_not_found": true, "append_if_not_found": true}),
        )
        .await;
        assert!(err(&out).contains("argument 'prepend_if_not_found'"));
        assert_eq!(
            fs::read_to_string(&file).unwrap(),
            "text\n",
            "nothing was changed"
        );
    }

    #[tokio::test]
    async fn contains_finds_text_across_reads() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("big");
        let mut contents = vec![b'.'; CONTAINS_CHUNK - 3];
        contents.extend_from_slice(b"needle");
        contents.extend(vec![b'.'; 1000]);
        fs::write(&file, &contents).unwrap();
        let contains =
            |path: &Path, text: &str| call("file.contains", vec![p(path), json!(text)], json!({}));
        assert_eq!(contains(&file, "needle").await, Outcome::ok(true));
        assert_eq!(
            contains(&file, "  needle\n").await,
            Outcome::ok(true),
            "text is stripped"
        );
        assert_eq!(contains(&file, "needles").await, Outcome::ok(false));
        assert_eq!(
            contains(&dir.path().join("missing"), "x").await,
            Outcome::ok(false)
        );
        let out = contains(dir.path(), "x").await;
        assert!(err(&out).starts_with("file.contains: cannot read"));
    }
}
