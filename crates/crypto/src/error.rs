//! The crate's errors: [`KeyError`] for key files on disk, [`CryptoError`] for handshakes,
//! sessions, signatures and the group key.
//!
//! No message ever contains key material: errors carry paths, modes, uids and reasons only.

use std::io;
use std::path::PathBuf;

/// Loading, creating or saving a key file failed.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The operating system refused a file operation (`action` says which one).
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done, for example "reading key file".
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A key file or key directory is readable or writable by group or others.
    #[error(
        "refusing {}: mode {mode:04o} lets group or others read or write it \
         (key directories must be 0700, key files 0600)",
        path.display()
    )]
    Permissions { path: PathBuf, mode: u32 },
    /// A key file or key directory belongs to another user than the one running brine.
    #[error(
        "refusing {}: it is owned by uid {owner}, not by the user running brine (uid {current})",
        path.display()
    )]
    Owner {
        path: PathBuf,
        owner: u32,
        current: u32,
    },
    /// A key file exists but does not hold a valid key.
    #[error("reading key file {}: the file is corrupt: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
}

impl KeyError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        KeyError::Io {
            action,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn corrupt(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        KeyError::Corrupt {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

/// A handshake, a session message, a signature or a group-key ciphertext was refused.
///
/// Whatever the variant, the input must be dropped; none of them is worth retrying with the
/// same bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// The Noise handshake failed: the peer does not hold the key it claims (or that we
    /// expect), or a handshake message was altered.
    #[error("noise handshake failed: {0}")]
    Handshake(String),
    /// A ciphertext did not authenticate: it was altered, truncated, replayed, reordered or
    /// made with another key.
    #[error(
        "decrypting a message failed: it was altered, truncated, replayed or made with another key"
    )]
    Decrypt,
    /// A signature did not verify strictly against the master's signing key.
    #[error("verifying a signature failed: it was not made by the master's key over this message")]
    BadSignature,
    /// A plaintext or ciphertext is larger than the crate accepts.
    #[error("message too large for the encrypted channel")]
    TooLarge,
    /// The bytes are not shaped like the message expected (lengths, framing, trailing bytes).
    #[error("malformed message: {0}")]
    Malformed(String),
}
