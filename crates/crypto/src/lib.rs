//! brine-crypto: the only crate in brine that touches key material and cryptographic
//! primitives: key files, the Noise channel, publication signatures and the group key.
//!
//! # What is here
//!
//! - **Identities.** [`MinionKeys`] (an X25519 key) and [`MasterKeys`] (an X25519 key for
//!   Noise and an Ed25519 key for signing) are created on first start in a key directory
//!   (0700, files 0600, written atomically, never replaced) and refused when the directory or
//!   file is open to group or others or belongs to another user. A minion pins the master's
//!   [`MasterPublic`] (compared by [`Fingerprint`], or saved on first use).
//! - **The REQ channel.** [`initiate`] / [`respond`] / [`Initiator::finish`] /
//!   [`Responder::accept`] run Noise IK in one request and one reply (see the `noise` module
//!   docs for the message sequence and what msg1 may carry). The master learns the minion's
//!   authenticated key from [`Responder::remote_static`]; the minion id is bound to that key.
//!   Both sides then hold a [`Session`] that seals and opens messages of up to 16 MiB.
//! - **Publications.** The master signs with [`MasterKeys::sign`], minions check with
//!   [`MasterPublic::verify`] (strict Ed25519), and the payload is encrypted with the
//!   [`GroupKey`] of the current epoch (XChaCha20-Poly1305).
//!
//! # Architecture invariants
//!
//! - Only this crate depends on cryptographic crates or reads key files; other crates see
//!   public keys as `[u8; 32]`, fingerprints, sealed bytes and signatures.
//! - No secret is ever printed: `Debug` on key types shows fingerprints or epochs, errors
//!   carry paths and reasons, never key bytes. Secrets are wiped on drop (`zeroize`).
//!   Known gap: snow keeps its own copies of the static and session keys and does not wipe
//!   them when a handshake or session is dropped.
//! - An existing key file is never overwritten, chmod-ed or "repaired": brine refuses to start
//!   and says why.
//! - Every decoder here takes untrusted bytes without panicking and with its size bounded
//!   before any allocation ([`MAX_SEALED`], [`MAX_NOISE_MESSAGE`], 16 KiB key files).
//! - The crate does no network I/O and keeps no global state.
//!
//! # Crates
//!
//! - `snow` 0.10: the widely used pure-Rust Noise implementation; IK gives mutual
//!   authentication in one round trip, with only the X25519, ChaChaPoly and BLAKE2s
//!   resolvers enabled (no ring, no AES).
//! - `ed25519-dalek` 2: the standard Rust Ed25519, with `verify_strict` (no malleable
//!   signatures, no weak keys) and zeroize-on-drop signing keys.
//! - `curve25519-dalek` 4: already under both of the above; used only to derive an X25519
//!   public key from its secret and to spot low-order keys.
//! - `chacha20poly1305` 0.10: RustCrypto's audited AEAD; the XChaCha20 variant's 24-byte
//!   nonces are safe to pick at random, so the group key needs no nonce counter.
//! - `sha2` 0.10: SHA-256 for fingerprints, the hash `salt-key` shows operators.
//! - `getrandom` 0.3: the operating system's generator, the same version snow uses, so key
//!   bytes and nonces come from one source and no `rand_core` is needed.
//! - `zeroize` 1: wipes secrets on drop in a way the compiler cannot optimise away.
//! - `nix` (already in the workspace): `geteuid()` for the key owner check, without unsafe.

mod error;
mod fingerprint;
mod group;
mod hex;
mod keyfile;
mod keys;
mod noise;
mod random;
mod session;

pub use error::{CryptoError, KeyError};
pub use fingerprint::{fingerprint, Fingerprint, ParseFingerprintError};
pub use group::{GroupKey, GROUP_NONCE_LEN, GROUP_TAG_LEN};
pub use keys::{
    MasterKeys, MasterPublic, MinionKeys, MASTER_KEY_FILE, MASTER_PUB_FILE, MINION_KEY_FILE,
};
pub use noise::{
    initiate, respond, Initiator, Responder, MAX_HELLO, MAX_NOISE_MESSAGE, MAX_REPLY,
    MSG1_OVERHEAD, MSG2_OVERHEAD,
};
pub use session::{sealed_len, Session, MAX_MESSAGE, MAX_SEALED};

#[cfg(test)]
mod tests {
    use super::*;

    /// The daemons keep keys in an `Arc` shared by tasks and move handshakes and sessions
    /// between tasks: that must keep compiling.
    #[test]
    fn types_cross_threads() {
        fn send_sync<T: Send + Sync>() {}
        fn send<T: Send>() {}
        send_sync::<MinionKeys>();
        send_sync::<MasterKeys>();
        send_sync::<MasterPublic>();
        send_sync::<GroupKey>();
        send_sync::<Fingerprint>();
        send::<Initiator>();
        send::<Responder>();
        send::<Session>();
        send_sync::<KeyError>();
        send_sync::<CryptoError>();
    }
}
