//! Key files on disk: the owner and mode checks, atomic creation that never replaces an
//! existing key, and the small `name: value` text format the files are written in.
//!
//! A key file looks like this (hex values, any case on reading):
//!
//! ```text
//! # brine minion key: secret, keep this file mode 0600 in a 0700 directory
//! format: brine-minion-key-v1
//! x25519-secret: 5f1c…
//! x25519-public: 9a0b…
//! ```
//!
//! Every key file also stores the public halves, which the loader derives again from the
//! secrets and compares: a damaged file is reported as corrupt instead of silently becoming
//! another identity.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::{hex, random, KeyError};

/// Mode bits that must be clear on a secret key file and on its directory: read or write by
/// group or others.
pub(crate) const SECRET_FORBIDDEN: u32 = 0o066;

/// Mode bits that must be clear on a public file that brine trusts (the pinned master key):
/// write by group or others. Reading it is harmless.
pub(crate) const PUBLIC_FORBIDDEN: u32 = 0o022;

/// No key file is ever this large; a larger one is refused before it is read.
const MAX_KEY_FILE_LEN: u64 = 16 * 1024;

fn current_uid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// Refuses `path` when it is not owned by the current user or has any of `forbidden` set.
fn check(path: &Path, meta: &fs::Metadata, forbidden: u32) -> Result<(), KeyError> {
    let current = current_uid();
    if meta.uid() != current {
        return Err(KeyError::Owner {
            path: path.to_owned(),
            owner: meta.uid(),
            current,
        });
    }
    let mode = meta.mode() & 0o7777;
    if mode & forbidden != 0 {
        return Err(KeyError::Permissions {
            path: path.to_owned(),
            mode,
        });
    }
    Ok(())
}

/// Makes sure `dir` exists as a key directory: creates it (and its parents) with mode 0700
/// when missing, and refuses an existing one that is not ours or is open to group or others.
/// An existing directory is never chmod-ed: a wrong mode is the operator's to fix.
pub(crate) fn ensure_dir(dir: &Path) -> Result<(), KeyError> {
    match fs::metadata(dir) {
        Ok(meta) => {
            if !meta.is_dir() {
                let source = io::Error::new(io::ErrorKind::NotADirectory, "not a directory");
                return Err(KeyError::io("using key directory", dir, source));
            }
            check(dir, &meta, SECRET_FORBIDDEN)
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|err| KeyError::io("creating key directory", dir, err))?;
            // The umask may have taken bits away from 0700; never adds any.
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
                .map_err(|err| KeyError::io("setting the mode of key directory", dir, err))?;
            let meta =
                fs::metadata(dir).map_err(|err| KeyError::io("reading key directory", dir, err))?;
            check(dir, &meta, SECRET_FORBIDDEN)
        }
        Err(err) => Err(KeyError::io("reading key directory", dir, err)),
    }
}

/// Reads a key file after checking it (on the open file, so the checked file is the one read).
/// `Ok(None)` when it does not exist. The bytes are wiped when dropped.
pub(crate) fn read(path: &Path, forbidden: u32) -> Result<Option<Zeroizing<Vec<u8>>>, KeyError> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(KeyError::io("opening key file", path, err)),
    };
    let meta = file
        .metadata()
        .map_err(|err| KeyError::io("reading key file", path, err))?;
    if !meta.is_file() {
        return Err(KeyError::corrupt(path, "not a regular file"));
    }
    check(path, &meta, forbidden)?;
    if meta.len() > MAX_KEY_FILE_LEN {
        return Err(too_long(path));
    }
    // Reserve once: a growing Vec would leave copies of the secret in freed memory.
    let mut bytes = Zeroizing::new(Vec::with_capacity(MAX_KEY_FILE_LEN as usize + 1));
    file.take(MAX_KEY_FILE_LEN + 1)
        .read_to_end(&mut bytes)
        .map_err(|err| KeyError::io("reading key file", path, err))?;
    if bytes.len() as u64 > MAX_KEY_FILE_LEN {
        return Err(too_long(path));
    }
    Ok(Some(bytes))
}

fn too_long(path: &Path) -> KeyError {
    KeyError::corrupt(
        path,
        format!("larger than any key file ({MAX_KEY_FILE_LEN} bytes)"),
    )
}

/// Creates `path` with `contents` and mode 0600, atomically and without ever replacing a file
/// that is already there: the bytes go to a temporary file in the same directory, which is
/// then hard-linked to `path` (the link fails if `path` exists). On a file system without hard
/// links it falls back to a rename when `path` is absent, which leaves a tiny window for two
/// creators racing.
///
/// Returns `false` when `path` already existed: someone else created the key first, and the
/// caller should load theirs.
pub(crate) fn create_new(path: &Path, contents: &[u8]) -> Result<bool, KeyError> {
    let tmp = temp_path(path);
    let result = write_temp(&tmp, contents).and_then(|()| match fs::hard_link(&tmp, path) {
        Ok(()) => Ok(true),
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(_) if fs::symlink_metadata(path).is_ok() => Ok(false),
        Err(_) => fs::rename(&tmp, path)
            .map(|()| true)
            .map_err(|err| KeyError::io("creating key file", path, err)),
    });
    remove_temp(&tmp);
    if let Ok(true) = result {
        sync_dir(path)?;
    }
    result
}

/// Writes `contents` to `path` (mode 0600) atomically, replacing what was there.
pub(crate) fn replace(path: &Path, contents: &[u8]) -> Result<(), KeyError> {
    let tmp = temp_path(path);
    let result = write_temp(&tmp, contents).and_then(|()| {
        fs::rename(&tmp, path).map_err(|err| KeyError::io("writing key file", path, err))
    });
    if result.is_err() {
        remove_temp(&tmp);
    }
    result?;
    sync_dir(path)
}

fn write_temp(tmp: &Path, contents: &[u8]) -> Result<(), KeyError> {
    let action = "writing temporary key file";
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(tmp)
        .map_err(|err| KeyError::io(action, tmp, err))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(|err| KeyError::io(action, tmp, err))
}

fn remove_temp(tmp: &Path) {
    // Already gone after a rename; any other failure leaves a 0600 file nobody else can read.
    let _ = fs::remove_file(tmp);
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

fn temp_path(path: &Path) -> PathBuf {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let mut tag = [0u8; 8];
    random::fill(&mut tag);
    parent(path).join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        hex::encode(&tag)
    ))
}

/// Makes the new directory entry durable, so a crash right after start does not lose the key.
fn sync_dir(path: &Path) -> Result<(), KeyError> {
    let dir = parent(path);
    File::open(dir)
        .and_then(|dir| dir.sync_all())
        .map_err(|err| KeyError::io("syncing key directory", dir, err))
}

/// Renders a key file: a comment line, `format: <format>`, then one `name: hex` line per field.
/// The text is wiped when dropped.
pub(crate) fn render(comment: &str, format: &str, fields: &[(&str, &[u8])]) -> Zeroizing<String> {
    let len = comment.len()
        + format.len()
        + 20
        + fields
            .iter()
            .map(|(name, value)| name.len() + 3 + value.len() * 2)
            .sum::<usize>();
    // Reserved up front so that the secret is never copied by a reallocation.
    let mut text = Zeroizing::new(String::with_capacity(len));
    text.push_str("# ");
    text.push_str(comment);
    text.push_str("\nformat: ");
    text.push_str(format);
    text.push('\n');
    for (name, value) in fields {
        text.push_str(name);
        text.push_str(": ");
        hex::encode_into(value, &mut text);
        text.push('\n');
    }
    debug_assert!(text.len() <= len);
    text
}

/// Parses the `name: value` lines of a key file: blank lines and `#` comments are skipped,
/// the first field must be `format: <format>`, then each of `names` exactly once and nothing
/// else. Returns the values in the order of `names`.
///
/// Error messages never quote a value, which may be a secret.
pub(crate) fn parse<'a>(
    path: &Path,
    bytes: &'a [u8],
    format: &str,
    names: &[&str],
) -> Result<Vec<&'a str>, KeyError> {
    let text = std::str::from_utf8(bytes).map_err(|_| KeyError::corrupt(path, "not UTF-8 text"))?;
    let mut fields = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            line.split_once(':')
                .map(|(name, value)| (name.trim(), value.trim()))
                .ok_or_else(|| KeyError::corrupt(path, "a line is not `name: value`"))
        });
    match fields.next().transpose()? {
        Some(("format", found)) if found == format => {}
        Some(("format", _)) => {
            return Err(KeyError::corrupt(
                path,
                format!("unknown format (this brine reads {format})"),
            ))
        }
        _ => {
            return Err(KeyError::corrupt(
                path,
                format!("the first field is not `format: {format}`"),
            ))
        }
    }
    let mut values: Vec<Option<&str>> = vec![None; names.len()];
    for field in fields {
        let (name, value) = field?;
        let Some(index) = names.iter().position(|known| *known == name) else {
            return Err(KeyError::corrupt(
                path,
                format!("unknown field {}", printable_name(name)),
            ));
        };
        if values[index].replace(value).is_some() {
            return Err(KeyError::corrupt(
                path,
                format!("field {name} appears twice"),
            ));
        }
    }
    names
        .iter()
        .zip(values)
        .map(|(name, value)| {
            value.ok_or_else(|| KeyError::corrupt(path, format!("field {name} is missing")))
        })
        .collect()
}

/// A field name fit to quote in an error: short and made of name characters only, so a
/// damaged line holding a secret is never echoed.
fn printable_name(name: &str) -> String {
    let plain = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if plain && name.len() <= 24 {
        format!("{name:?}")
    } else {
        "(name not shown)".to_owned()
    }
}

/// Decodes the hex `value` of field `name` into `out`, which says how many bytes it must hold.
pub(crate) fn decode(path: &Path, name: &str, value: &str, out: &mut [u8]) -> Result<(), KeyError> {
    if hex::decode_into(value, out) {
        Ok(())
    } else {
        Err(KeyError::corrupt(
            path,
            format!("field {name} is not {} hex digits", out.len() * 2),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FORMAT: &str = "brine-test-v1";

    fn parse_text(text: &str) -> Result<Vec<&str>, KeyError> {
        parse(Path::new("k"), text.as_bytes(), FORMAT, &["a", "b"])
    }

    #[test]
    fn render_then_parse() {
        let text = render("a test key", FORMAT, &[("a", &[1, 2]), ("b", &[0xff])]);
        assert_eq!(
            text.as_str(),
            "# a test key\nformat: brine-test-v1\na: 0102\nb: ff\n"
        );
        assert_eq!(parse_text(&text).unwrap(), ["0102", "ff"]);
        // Order, comments, blank lines and spacing are free.
        let loose = "\n# c\n  format:brine-test-v1 \n\nb :  ff\n# d\na: 0102\n";
        assert_eq!(parse_text(loose).unwrap(), ["0102", "ff"]);
    }

    #[test]
    fn parse_refuses_what_it_does_not_know() {
        let cases = [
            ("", "not `format"),
            ("a: 01\nformat: brine-test-v1\nb: 02", "not `format"),
            ("format: brine-test-v2\na: 01\nb: 02", "unknown format"),
            ("format: brine-test-v1\na: 01", "field b is missing"),
            (
                "format: brine-test-v1\na: 01\na: 01\nb: 02",
                "appears twice",
            ),
            (
                "format: brine-test-v1\na: 01\nb: 02\nc: 03",
                "unknown field \"c\"",
            ),
            ("format: brine-test-v1\na: 01\nb 02", "not `name: value`"),
            (
                "format: brine-test-v1\na: 01\nb: 02\n0123456789abcdef0123456789: 1",
                "(name not shown)",
            ),
        ];
        for (text, expected) in cases {
            let err = parse_text(text).unwrap_err().to_string();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
        let err = parse(Path::new("k"), b"\xff\xfe", FORMAT, &["a"]).unwrap_err();
        assert!(err.to_string().contains("not UTF-8"), "{err}");
    }

    #[test]
    fn decode_names_the_field_but_not_the_value() {
        let mut out = [0u8; 2];
        let err = decode(Path::new("k"), "a", "secretzz", &mut out).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("field a is not 4 hex digits"), "{text}");
        assert!(!text.contains("secretzz"), "{text}");
    }

    #[test]
    fn create_new_never_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        assert!(create_new(&path, b"first").unwrap());
        assert!(!create_new(&path, b"second").unwrap());
        assert_eq!(fs::read(&path).unwrap(), b"first");
        let mode = fs::metadata(&path).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // No temporary file is left behind.
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn replace_overwrites_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        replace(&path, b"first").unwrap();
        replace(&path, b"second").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"second");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn read_refuses_oversized_files_and_directories() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big");
        fs::write(&path, vec![b'#'; MAX_KEY_FILE_LEN as usize + 1]).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(
            read(&path, SECRET_FORBIDDEN),
            Err(KeyError::Corrupt { .. })
        ));
        assert!(matches!(
            read(dir.path(), SECRET_FORBIDDEN),
            Err(KeyError::Corrupt { .. })
        ));
        assert!(read(&dir.path().join("absent"), SECRET_FORBIDDEN)
            .unwrap()
            .is_none());
    }
}
