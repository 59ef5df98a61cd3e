//! Long-term keys: [`MinionKeys`] and [`MasterKeys`] (created on first start, loaded after
//! that) and [`MasterPublic`], the master's public half that minions pin.

use std::fmt;
use std::path::Path;

use curve25519_dalek::montgomery::MontgomeryPoint;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use zeroize::Zeroizing;

use crate::keyfile::{self, PUBLIC_FORBIDDEN, SECRET_FORBIDDEN};
use crate::{fingerprint, random, CryptoError, Fingerprint, KeyError};

/// The minion's key file inside its key directory.
pub const MINION_KEY_FILE: &str = "minion.key";
/// The master's key file inside its key directory (both of its secrets).
pub const MASTER_KEY_FILE: &str = "master.key";
/// Where a minion conventionally pins the master's public key, inside its key directory.
pub const MASTER_PUB_FILE: &str = "master.pub";

const MINION_FORMAT: &str = "brine-minion-key-v1";
const MASTER_FORMAT: &str = "brine-master-key-v1";
const MASTER_PUB_FORMAT: &str = "brine-master-public-v1";

const X25519_SECRET: &str = "x25519-secret";
const X25519_PUBLIC: &str = "x25519-public";
const ED25519_SECRET: &str = "ed25519-secret";
const ED25519_PUBLIC: &str = "ed25519-public";
const FINGERPRINT: &str = "fingerprint";

/// The X25519 public key of a secret (clamped as X25519 and Noise clamp it).
fn x25519_public(secret: &[u8; 32]) -> [u8; 32] {
    MontgomeryPoint::mul_base_clamped(*secret).to_bytes()
}

/// Reads the X25519 pair of a key file and checks that the public half belongs to the secret.
fn parse_x25519(
    path: &Path,
    secret_hex: &str,
    public_hex: &str,
) -> Result<(Zeroizing<[u8; 32]>, [u8; 32]), KeyError> {
    let mut secret = Zeroizing::new([0u8; 32]);
    keyfile::decode(path, X25519_SECRET, secret_hex, &mut secret[..])?;
    let mut public = [0u8; 32];
    keyfile::decode(path, X25519_PUBLIC, public_hex, &mut public)?;
    if x25519_public(&secret) != public {
        return Err(KeyError::corrupt(
            path,
            "the x25519 public key does not belong to the secret key",
        ));
    }
    Ok((secret, public))
}

/// Loads `dir/file`, or creates it on first start, under the key directory rules.
fn load_or_create<K>(
    dir: &Path,
    file: &str,
    parse: impl Fn(&Path, &[u8]) -> Result<K, KeyError>,
    generate: impl FnOnce() -> K,
    render: impl FnOnce(&K) -> Zeroizing<String>,
) -> Result<K, KeyError> {
    keyfile::ensure_dir(dir)?;
    let path = dir.join(file);
    if let Some(bytes) = keyfile::read(&path, SECRET_FORBIDDEN)? {
        return parse(&path, &bytes);
    }
    let keys = generate();
    if keyfile::create_new(&path, render(&keys).as_bytes())? {
        return Ok(keys);
    }
    // Another process created the key between our look and our write: theirs is the key.
    match keyfile::read(&path, SECRET_FORBIDDEN)? {
        Some(bytes) => parse(&path, &bytes),
        None => Err(KeyError::io(
            "reading key file",
            &path,
            std::io::ErrorKind::NotFound.into(),
        )),
    }
}

/// A minion's identity: an X25519 static key for Noise. The secret is wiped when dropped and
/// never printed (`Debug` shows the fingerprint).
pub struct MinionKeys {
    secret: Zeroizing<[u8; 32]>,
    public: [u8; 32],
}

impl MinionKeys {
    /// Fresh keys that live in memory only (tests, tools); daemons use
    /// [`MinionKeys::load_or_create`].
    pub fn generate() -> Self {
        let secret = random::secret32();
        let public = x25519_public(&secret);
        MinionKeys { secret, public }
    }

    /// Loads `dir/minion.key`, or creates it (and `dir`) on first start: dir 0700, file 0600,
    /// written atomically (temp file, then a link that never replaces an existing key, so two
    /// processes starting at once end up with the same key).
    ///
    /// Refuses ([`KeyError::Permissions`]) when the file or its directory is readable or
    /// writable by group or others, and ([`KeyError::Owner`]) when either is not owned by the
    /// current user. A file that does not hold a valid key is [`KeyError::Corrupt`] and is left
    /// alone: brine never replaces an identity on its own.
    pub fn load_or_create(dir: &Path) -> Result<Self, KeyError> {
        load_or_create(
            dir,
            MINION_KEY_FILE,
            Self::parse,
            Self::generate,
            Self::render,
        )
    }

    fn parse(path: &Path, bytes: &[u8]) -> Result<Self, KeyError> {
        let fields = keyfile::parse(path, bytes, MINION_FORMAT, &[X25519_SECRET, X25519_PUBLIC])?;
        let (secret, public) = parse_x25519(path, fields[0], fields[1])?;
        Ok(MinionKeys { secret, public })
    }

    fn render(&self) -> Zeroizing<String> {
        keyfile::render(
            "brine minion key: secret, keep this file mode 0600 in a 0700 directory",
            MINION_FORMAT,
            &[
                (X25519_SECRET, &self.secret[..]),
                (X25519_PUBLIC, &self.public),
            ],
        )
    }

    /// The X25519 public key: what the master sees as this minion's identity.
    pub fn public(&self) -> [u8; 32] {
        self.public
    }

    /// The fingerprint of [`MinionKeys::public`], as `brine-key` shows it.
    pub fn fingerprint(&self) -> Fingerprint {
        fingerprint(&self.public)
    }

    pub(crate) fn secret(&self) -> &[u8; 32] {
        &self.secret
    }
}

impl fmt::Debug for MinionKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MinionKeys")
            .field("fingerprint", &self.fingerprint().as_str())
            .finish_non_exhaustive()
    }
}

/// The master's keys: an X25519 static key (the Noise responder) and an Ed25519 signing key
/// (publications). Both secrets are wiped when dropped and never printed.
pub struct MasterKeys {
    noise_secret: Zeroizing<[u8; 32]>,
    noise_public: [u8; 32],
    /// Wipes itself on drop (ed25519-dalek's `zeroize` feature).
    signing: SigningKey,
}

impl MasterKeys {
    /// Fresh keys that live in memory only (tests, tools); the master uses
    /// [`MasterKeys::load_or_create`].
    pub fn generate() -> Self {
        let noise_secret = random::secret32();
        let noise_public = x25519_public(&noise_secret);
        let seed = random::secret32();
        let signing = SigningKey::from_bytes(&seed);
        MasterKeys {
            noise_secret,
            noise_public,
            signing,
        }
    }

    /// Loads `dir/master.key` (both secrets in one file), or creates it on first start, under
    /// the same rules as [`MinionKeys::load_or_create`].
    pub fn load_or_create(dir: &Path) -> Result<Self, KeyError> {
        load_or_create(
            dir,
            MASTER_KEY_FILE,
            Self::parse,
            Self::generate,
            Self::render,
        )
    }

    fn parse(path: &Path, bytes: &[u8]) -> Result<Self, KeyError> {
        let names = [X25519_SECRET, X25519_PUBLIC, ED25519_SECRET, ED25519_PUBLIC];
        let fields = keyfile::parse(path, bytes, MASTER_FORMAT, &names)?;
        let (noise_secret, noise_public) = parse_x25519(path, fields[0], fields[1])?;
        let mut seed = Zeroizing::new([0u8; 32]);
        keyfile::decode(path, ED25519_SECRET, fields[2], &mut seed[..])?;
        let mut sign_public = [0u8; 32];
        keyfile::decode(path, ED25519_PUBLIC, fields[3], &mut sign_public)?;
        let signing = SigningKey::from_bytes(&seed);
        if signing.verifying_key().to_bytes() != sign_public {
            return Err(KeyError::corrupt(
                path,
                "the ed25519 public key does not belong to the secret key",
            ));
        }
        Ok(MasterKeys {
            noise_secret,
            noise_public,
            signing,
        })
    }

    fn render(&self) -> Zeroizing<String> {
        let seed = Zeroizing::new(self.signing.to_bytes());
        keyfile::render(
            "brine master key: secret, keep this file mode 0600 in a 0700 directory",
            MASTER_FORMAT,
            &[
                (X25519_SECRET, &self.noise_secret[..]),
                (X25519_PUBLIC, &self.noise_public),
                (ED25519_SECRET, &seed[..]),
                (ED25519_PUBLIC, self.signing.verifying_key().as_bytes()),
            ],
        )
    }

    /// The public halves, which minions pin.
    pub fn public(&self) -> MasterPublic {
        MasterPublic {
            noise: self.noise_public,
            sign: self.signing.verifying_key().to_bytes(),
        }
    }

    /// The master's fingerprint (of [`MasterKeys::public`]), as `brine-key master-finger`
    /// shows it.
    pub fn fingerprint(&self) -> Fingerprint {
        self.public().fingerprint()
    }

    /// An Ed25519 signature of `message` (deterministic, RFC 8032). The message is signed as
    /// it is: callers put a domain tag and version in it so that a signature over one kind of
    /// message can never pass for another.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.signing.sign(message).to_bytes()
    }

    pub(crate) fn noise_secret(&self) -> &[u8; 32] {
        &self.noise_secret
    }
}

impl fmt::Debug for MasterKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKeys")
            .field("fingerprint", &self.fingerprint().as_str())
            .finish_non_exhaustive()
    }
}

/// The master's public keys, which a minion pins: the X25519 key its Noise handshakes go to
/// and the Ed25519 key its publications are signed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MasterPublic {
    pub noise: [u8; 32],
    pub sign: [u8; 32],
}

impl MasterPublic {
    /// The fingerprint over `noise || sign`: one value names both keys.
    pub fn fingerprint(&self) -> Fingerprint {
        let mut both = [0u8; 64];
        both[..32].copy_from_slice(&self.noise);
        both[32..].copy_from_slice(&self.sign);
        fingerprint(&both)
    }

    /// Checks that `signature` is the master's Ed25519 signature of `message`, strictly
    /// (`verify_strict`: no small-order keys or points, canonical `s`), so that a signature
    /// has exactly one valid encoding and cannot be altered into another that passes.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), CryptoError> {
        let key = VerifyingKey::from_bytes(&self.sign).map_err(|_| CryptoError::BadSignature)?;
        let signature = Signature::from_slice(signature).map_err(|_| CryptoError::BadSignature)?;
        key.verify_strict(message, &signature)
            .map_err(|_| CryptoError::BadSignature)
    }

    /// Stores the pinned master key for trust-on-first-use at `path` (conventionally
    /// `dir/master.pub`): mode 0600, written atomically, replacing what was there. The
    /// directory must exist. The file also shows the fingerprint, for an operator to compare.
    pub fn save(&self, path: &Path) -> Result<(), KeyError> {
        let fingerprint = self.fingerprint();
        let mut text = keyfile::render(
            "brine master public key, pinned by this minion",
            MASTER_PUB_FORMAT,
            &[(X25519_PUBLIC, &self.noise), (ED25519_PUBLIC, &self.sign)],
        )
        .to_string();
        text.push_str(FINGERPRINT);
        text.push_str(": ");
        text.push_str(fingerprint.as_str());
        text.push('\n');
        keyfile::replace(path, text.as_bytes())
    }

    /// Loads the pinned master key; `Ok(None)` when `path` does not exist (no master pinned
    /// yet). Refuses a file that is not owned by the current user or is writable by group or
    /// others (whoever can write it chooses the master), and a file whose keys are not valid
    /// or do not match its fingerprint line.
    pub fn load(path: &Path) -> Result<Option<Self>, KeyError> {
        let Some(bytes) = keyfile::read(path, PUBLIC_FORBIDDEN)? else {
            return Ok(None);
        };
        let names = [X25519_PUBLIC, ED25519_PUBLIC, FINGERPRINT];
        let fields = keyfile::parse(path, &bytes, MASTER_PUB_FORMAT, &names)?;
        let mut public = MasterPublic {
            noise: [0; 32],
            sign: [0; 32],
        };
        keyfile::decode(path, X25519_PUBLIC, fields[0], &mut public.noise)?;
        keyfile::decode(path, ED25519_PUBLIC, fields[1], &mut public.sign)?;
        match VerifyingKey::from_bytes(&public.sign) {
            Ok(key) if !key.is_weak() => {}
            _ => {
                return Err(KeyError::corrupt(
                    path,
                    "the ed25519 public key is not a valid signing key",
                ))
            }
        }
        let stated: Fingerprint = fields[2]
            .parse()
            .map_err(|_| KeyError::corrupt(path, "the fingerprint line is not a fingerprint"))?;
        if stated != public.fingerprint() {
            return Err(KeyError::corrupt(
                path,
                "the fingerprint line does not match the keys",
            ));
        }
        Ok(Some(public))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::path::PathBuf;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().mode() & 0o7777
    }

    fn chmod(path: &Path, mode: u32) {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    /// A key directory that does not exist yet, inside a fresh temporary directory.
    fn key_dir() -> (tempfile::TempDir, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("etc/brine/pki");
        (tmp, dir)
    }

    #[test]
    fn minion_keys_are_created_with_safe_modes_and_reload_identical() {
        let (_tmp, dir) = key_dir();
        let created = MinionKeys::load_or_create(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join(MINION_KEY_FILE)), 0o600);
        let loaded = MinionKeys::load_or_create(&dir).unwrap();
        assert_eq!(loaded.public(), created.public());
        assert_eq!(*loaded.secret(), *created.secret());
        assert_eq!(loaded.fingerprint(), fingerprint(&created.public()));
        // Only the key file is in the directory: no temporary file left.
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
    }

    #[test]
    fn master_keys_are_created_with_safe_modes_and_reload_identical() {
        let (_tmp, dir) = key_dir();
        let created = MasterKeys::load_or_create(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join(MASTER_KEY_FILE)), 0o600);
        let loaded = MasterKeys::load_or_create(&dir).unwrap();
        assert_eq!(loaded.public(), created.public());
        assert_eq!(*loaded.noise_secret(), *created.noise_secret());
        assert_eq!(loaded.sign(b"m"), created.sign(b"m"));
    }

    #[test]
    fn keys_differ_between_directories() {
        let (_tmp, dir) = key_dir();
        let a = MinionKeys::load_or_create(&dir.join("a")).unwrap();
        let b = MinionKeys::load_or_create(&dir.join("b")).unwrap();
        assert_ne!(a.public(), b.public());
        let m = MasterKeys::load_or_create(&dir.join("a")).unwrap();
        assert_ne!(m.public().noise, a.public());
    }

    #[test]
    fn concurrent_first_starts_agree_on_one_key() {
        let (_tmp, dir) = key_dir();
        let barrier = std::sync::Barrier::new(8);
        let publics: Vec<[u8; 32]> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    scope.spawn(|| {
                        barrier.wait();
                        MinionKeys::load_or_create(&dir).unwrap().public()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(publics.iter().all(|p| *p == publics[0]));
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
    }

    #[test]
    fn refuses_key_files_open_to_group_or_others() {
        let (_tmp, dir) = key_dir();
        let original = MinionKeys::load_or_create(&dir).unwrap().public();
        MasterKeys::load_or_create(&dir).unwrap();
        let load = |file: &str| -> Result<(), KeyError> {
            if file == MINION_KEY_FILE {
                MinionKeys::load_or_create(&dir).map(drop)
            } else {
                MasterKeys::load_or_create(&dir).map(drop)
            }
        };
        for file in [MINION_KEY_FILE, MASTER_KEY_FILE] {
            let path = dir.join(file);
            for bad in [0o640, 0o620, 0o604, 0o602, 0o644, 0o666] {
                chmod(&path, bad);
                let err = load(file).unwrap_err();
                match &err {
                    KeyError::Permissions { path: p, mode } => {
                        assert_eq!(p, &path);
                        assert_eq!(*mode, bad);
                    }
                    other => panic!("{file} {bad:o}: {other:?}"),
                }
                assert!(err.to_string().contains(&format!("0{bad:o}")), "{err}");
            }
            // Modes the rule allows.
            for fine in [0o600, 0o400, 0o700] {
                chmod(&path, fine);
                assert!(load(file).is_ok(), "{file} {fine:o}");
            }
            chmod(&path, 0o600);
        }
        // The refused file was never replaced.
        assert_eq!(MinionKeys::load_or_create(&dir).unwrap().public(), original);
    }

    #[test]
    fn refuses_key_directories_open_to_group_or_others() {
        let (_tmp, dir) = key_dir();
        MinionKeys::load_or_create(&dir).unwrap();
        for bad in [0o750, 0o770, 0o705, 0o707, 0o755, 0o777] {
            chmod(&dir, bad);
            let err = MinionKeys::load_or_create(&dir).unwrap_err();
            assert!(
                matches!(&err, KeyError::Permissions { path, mode } if path == &dir && *mode == bad),
                "{bad:o}: {err:?}"
            );
            assert!(matches!(
                MasterKeys::load_or_create(&dir),
                Err(KeyError::Permissions { .. })
            ));
        }
        // An existing directory with a bad mode is refused even before any key is in it.
        let fresh = dir.with_file_name("fresh");
        fs::create_dir(&fresh).unwrap();
        chmod(&fresh, 0o755);
        assert!(matches!(
            MinionKeys::load_or_create(&fresh),
            Err(KeyError::Permissions { .. })
        ));
        assert_eq!(fs::read_dir(&fresh).unwrap().count(), 0);
        chmod(&dir, 0o700);
        assert!(MinionKeys::load_or_create(&dir).is_ok());
    }

    #[test]
    fn refuses_key_files_owned_by_another_user() {
        let (_tmp, dir) = key_dir();
        MinionKeys::load_or_create(&dir).unwrap();
        let path = dir.join(MINION_KEY_FILE);
        let other = nix::unistd::Uid::from_raw(nix::unistd::geteuid().as_raw() + 4242);
        if let Err(err) = nix::unistd::chown(&path, Some(other), None) {
            // Only root can give a file away; elsewhere this case cannot be staged.
            eprintln!("skipping the owner check: chown failed ({err})");
            return;
        }
        let err = MinionKeys::load_or_create(&dir).unwrap_err();
        assert!(
            matches!(&err, KeyError::Owner { owner, .. } if *owner == other.as_raw()),
            "{err:?}"
        );
        assert!(err.to_string().contains("owned by uid"), "{err}");
        nix::unistd::chown(&path, Some(nix::unistd::geteuid()), None).unwrap();
        nix::unistd::chown(&dir, Some(other), None).unwrap();
        assert!(matches!(
            MinionKeys::load_or_create(&dir),
            Err(KeyError::Owner { .. })
        ));
    }

    #[test]
    fn corrupt_key_files_are_reported_and_left_alone() {
        let (_tmp, dir) = key_dir();
        let keys = MinionKeys::load_or_create(&dir).unwrap();
        let path = dir.join(MINION_KEY_FILE);
        let good = fs::read_to_string(&path).unwrap();
        let secret_hex = crate::hex::encode(keys.secret());
        let mut flipped = secret_hex.clone().into_bytes();
        flipped[10] = if flipped[10] == b'0' { b'1' } else { b'0' };
        let flipped = String::from_utf8(flipped).unwrap();
        let cases = [
            String::new(),
            "garbage".to_owned(),
            "\u{0}\u{1}binary".to_owned(),
            good.replace(&secret_hex, &flipped),
            good.replace(&secret_hex, &secret_hex[..62]),
            good.replace("x25519-public", "x25519-publik"),
            good.replace("brine-minion-key-v1", "brine-master-key-v1"),
            good.lines().take(3).collect::<Vec<_>>().join("\n"),
        ];
        for text in cases {
            fs::write(&path, &text).unwrap();
            let err = MinionKeys::load_or_create(&dir).unwrap_err();
            assert!(matches!(err, KeyError::Corrupt { .. }), "{text:?}: {err:?}");
            let message = err.to_string();
            assert!(message.starts_with("reading key file"), "{message}");
            assert!(!message.contains(&secret_hex[..16]), "{message}");
            // The damaged file is the operator's to look at: never replaced.
            assert_eq!(fs::read_to_string(&path).unwrap(), text);
        }
        fs::write(&path, &good).unwrap();
        assert_eq!(
            MinionKeys::load_or_create(&dir).unwrap().public(),
            keys.public()
        );
    }

    #[test]
    fn corrupt_master_key_file_is_reported() {
        let (_tmp, dir) = key_dir();
        let keys = MasterKeys::load_or_create(&dir).unwrap();
        let path = dir.join(MASTER_KEY_FILE);
        let good = fs::read_to_string(&path).unwrap();
        let sign_public = crate::hex::encode(&keys.public().sign);
        let other = crate::hex::encode(&MasterKeys::generate().public().sign);
        fs::write(&path, good.replace(&sign_public, &other)).unwrap();
        let err = MasterKeys::load_or_create(&dir).unwrap_err();
        assert!(
            err.to_string()
                .contains("ed25519 public key does not belong"),
            "{err}"
        );
        // A minion key file is not a master key file.
        let minion_dir = dir.join("m");
        MinionKeys::load_or_create(&minion_dir).unwrap();
        fs::copy(minion_dir.join(MINION_KEY_FILE), &path).unwrap();
        assert!(matches!(
            MasterKeys::load_or_create(&dir),
            Err(KeyError::Corrupt { .. })
        ));
    }

    #[test]
    fn a_file_where_the_directory_should_be_is_an_error() {
        let (tmp, _) = key_dir();
        let file = tmp.path().join("file");
        fs::write(&file, b"x").unwrap();
        let err = MinionKeys::load_or_create(&file).unwrap_err();
        assert!(matches!(err, KeyError::Io { .. }), "{err:?}");
        assert!(err.to_string().starts_with("using key directory"), "{err}");
    }

    #[test]
    fn debug_never_prints_secrets() {
        let minion = MinionKeys::generate();
        let master = MasterKeys::generate();
        let minion_debug = format!("{minion:?}");
        let master_debug = format!("{master:?}");
        assert!(minion_debug.contains(minion.fingerprint().as_str()));
        assert!(!minion_debug.contains(&crate::hex::encode(minion.secret())));
        assert!(!master_debug.contains(&crate::hex::encode(master.noise_secret())));
        assert!(!master_debug.contains(&crate::hex::encode(&master.signing.to_bytes())));
        for secret in [&minion.secret()[..], &master.noise_secret()[..]] {
            let bytes = format!("{secret:?}");
            assert!(!minion_debug.contains(&bytes) && !master_debug.contains(&bytes));
        }
    }

    #[test]
    fn signatures_verify_and_fail_when_anything_changes() {
        let master = MasterKeys::generate();
        let public = master.public();
        let message = b"brine publication v1: jid 42";
        let signature = master.sign(message);
        assert_eq!(public.verify(message, &signature), Ok(()));
        // Flipped bits all over the signature: every bit of the first and last byte of R
        // and of s, and a stride through the rest (each check costs a verification).
        let bits = (0..8)
            .chain(248..264)
            .chain(504..512)
            .chain((0..512).step_by(13));
        for bit in bits {
            let mut bad = signature;
            bad[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(
                public.verify(message, &bad),
                Err(CryptoError::BadSignature),
                "bit {bit}"
            );
        }
        // A flipped bit in the message, another message, the wrong key.
        let mut altered = *message;
        altered[0] ^= 1;
        assert_eq!(
            public.verify(&altered, &signature),
            Err(CryptoError::BadSignature)
        );
        assert_eq!(
            public.verify(b"another", &signature),
            Err(CryptoError::BadSignature)
        );
        let other = MasterKeys::generate();
        assert_eq!(
            other.public().verify(message, &signature),
            Err(CryptoError::BadSignature)
        );
        assert_eq!(
            public.verify(message, &other.sign(message)),
            Err(CryptoError::BadSignature)
        );
        // Wrong lengths, and a signing key that is not a valid point.
        assert_eq!(
            public.verify(message, &signature[..63]),
            Err(CryptoError::BadSignature)
        );
        assert_eq!(public.verify(message, &[]), Err(CryptoError::BadSignature));
        let mut long = signature.to_vec();
        long.push(0);
        assert_eq!(
            public.verify(message, &long),
            Err(CryptoError::BadSignature)
        );
        let broken = MasterPublic {
            sign: [0xff; 32],
            ..public
        };
        assert_eq!(
            broken.verify(message, &signature),
            Err(CryptoError::BadSignature)
        );
    }

    #[test]
    fn strict_verification_refuses_a_small_order_key() {
        // The identity point (y = 1) as a "key": every signature with R = identity and s = 0
        // passes lax verification of any message; strict verification refuses it.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let public = MasterPublic {
            noise: [0; 32],
            sign: identity,
        };
        let mut signature = [0u8; 64];
        signature[0] = 1;
        assert_eq!(
            public.verify(b"anything", &signature),
            Err(CryptoError::BadSignature)
        );
    }

    #[test]
    fn master_fingerprint_covers_both_keys() {
        let public = MasterKeys::generate().public();
        let mut both = public.noise.to_vec();
        both.extend_from_slice(&public.sign);
        assert_eq!(public.fingerprint(), fingerprint(&both));
        let mut other = public;
        other.sign[0] ^= 1;
        assert_ne!(other.fingerprint(), public.fingerprint());
    }

    #[test]
    fn pinned_master_key_round_trip() {
        let (_tmp, dir) = key_dir();
        MinionKeys::load_or_create(&dir).unwrap();
        let path = dir.join(MASTER_PUB_FILE);
        assert_eq!(MasterPublic::load(&path).unwrap(), None);
        let public = MasterKeys::generate().public();
        public.save(&path).unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(MasterPublic::load(&path).unwrap(), Some(public));
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.contains(public.fingerprint().as_str()), "{text}");
        // Saving again replaces the pin.
        let next = MasterKeys::generate().public();
        next.save(&path).unwrap();
        assert_eq!(MasterPublic::load(&path).unwrap(), Some(next));
    }

    #[test]
    fn pinned_master_key_refuses_tampering() {
        let (_tmp, dir) = key_dir();
        MinionKeys::load_or_create(&dir).unwrap();
        let path = dir.join(MASTER_PUB_FILE);
        let public = MasterKeys::generate().public();
        public.save(&path).unwrap();
        // Readable by others is fine for a public key, writable is not.
        chmod(&path, 0o644);
        assert_eq!(MasterPublic::load(&path).unwrap(), Some(public));
        for bad in [0o620, 0o602, 0o666] {
            chmod(&path, bad);
            assert!(
                matches!(MasterPublic::load(&path), Err(KeyError::Permissions { .. })),
                "{bad:o}"
            );
        }
        chmod(&path, 0o600);
        let good = fs::read_to_string(&path).unwrap();
        let other = MasterKeys::generate().public();
        let cases = [
            // A key swapped without updating the fingerprint line.
            good.replace(
                &crate::hex::encode(&public.noise),
                &crate::hex::encode(&other.noise),
            ),
            good.replace(public.fingerprint().as_str(), other.fingerprint().as_str()),
            // A signing key that is not a point, or a small-order one.
            good.replace(&crate::hex::encode(&public.sign), &"ff".repeat(32)),
            good.replace(
                &crate::hex::encode(&public.sign),
                &format!("01{}", "00".repeat(31)),
            ),
            good.replace("fingerprint", "fingerprints"),
            "format: brine-master-public-v1\n".to_owned(),
        ];
        for text in cases {
            fs::write(&path, &text).unwrap();
            assert!(
                matches!(MasterPublic::load(&path), Err(KeyError::Corrupt { .. })),
                "{text}"
            );
        }
        // Saving into a directory that does not exist is an error, not a panic.
        let missing = dir.join("missing/master.pub");
        assert!(matches!(public.save(&missing), Err(KeyError::Io { .. })));
    }
}
