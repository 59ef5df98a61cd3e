//! [`GroupKey`]: the epoch-numbered symmetric key that encrypts publications for accepted
//! minions (XChaCha20-Poly1305 with random nonces).
//!
//! The master makes a new key, with the next epoch, when a minion is rejected or deleted and
//! once a day; accepted minions fetch it over their [`crate::Session`]. Publications carry the
//! epoch next to the nonce so a minion picks the right key. Every accepted minion can read
//! every publication made under the key it holds: the group key gives confidentiality from
//! outsiders and removed minions, not between accepted ones.

use std::fmt;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

use crate::{random, CryptoError};

/// Length of a group-key nonce.
pub const GROUP_NONCE_LEN: usize = 24;
/// What encryption adds to a plaintext: the Poly1305 tag.
pub const GROUP_TAG_LEN: usize = 16;

/// Put in front of the caller's associated data, with the epoch, so that a ciphertext is
/// bound to the epoch it was made for and to this use of the key.
const AAD_DOMAIN: &[u8] = b"brine group key v1\0";

/// The symmetric key that encrypts publications for accepted minions. Rotates (new epoch)
/// when a minion is rejected or deleted, and daily. The key is wiped when dropped; `Debug`
/// shows only the epoch.
#[derive(Clone)]
pub struct GroupKey {
    epoch: u32,
    key: Zeroizing<[u8; 32]>,
}

impl GroupKey {
    /// A fresh random key for `epoch`.
    pub fn generate(epoch: u32) -> Self {
        GroupKey {
            epoch,
            key: random::secret32(),
        }
    }

    /// The key for `epoch` as received from the master (or stored by it).
    pub fn from_bytes(epoch: u32, key: [u8; 32]) -> Self {
        GroupKey {
            epoch,
            key: Zeroizing::new(key),
        }
    }

    /// The epoch this key belongs to.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// A copy of the key, to send to an accepted minion over its session. The caller owns
    /// the copy: keep it short-lived (wrap it in `zeroize::Zeroizing` when it is kept).
    pub fn key_bytes(&self) -> [u8; 32] {
        *self.key
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        // The cipher wipes its copy of the key when dropped (chacha20poly1305 does so always).
        XChaCha20Poly1305::new((&*self.key).into())
    }

    fn full_aad(&self, aad: &[u8]) -> Vec<u8> {
        let mut full = Vec::with_capacity(AAD_DOMAIN.len() + 4 + aad.len());
        full.extend_from_slice(AAD_DOMAIN);
        full.extend_from_slice(&self.epoch.to_be_bytes());
        full.extend_from_slice(aad);
        full
    }

    /// XChaCha20-Poly1305 with a random 24-byte nonce; `aad` is authenticated, not encrypted
    /// (the epoch is authenticated too). Returns the nonce and the ciphertext
    /// (`plaintext.len() + 16` bytes). Random 192-bit nonces never repeat in practice, so one
    /// key can encrypt any number of publications.
    ///
    /// # Panics
    /// When the operating system's random number generator fails.
    pub fn encrypt(&self, plaintext: &[u8], aad: &[u8]) -> ([u8; GROUP_NONCE_LEN], Vec<u8>) {
        let mut nonce = [0u8; GROUP_NONCE_LEN];
        random::fill(&mut nonce);
        let payload = Payload {
            msg: plaintext,
            aad: &self.full_aad(aad),
        };
        let ciphertext = self
            .cipher()
            .encrypt(XNonce::from_slice(&nonce), payload)
            .expect("XChaCha20-Poly1305 encrypts any message that fits in memory");
        (nonce, ciphertext)
    }

    /// Decrypts what [`GroupKey::encrypt`] made with this key, epoch and `aad`. Any other
    /// key, epoch, associated data, nonce or a changed bit is [`CryptoError::Decrypt`]; a
    /// nonce that is not 24 bytes is [`CryptoError::Malformed`].
    pub fn decrypt(
        &self,
        nonce: &[u8],
        ciphertext: &[u8],
        aad: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        if nonce.len() != GROUP_NONCE_LEN {
            return Err(CryptoError::Malformed(format!(
                "group-key nonce of {} bytes, expected {GROUP_NONCE_LEN}",
                nonce.len()
            )));
        }
        let payload = Payload {
            msg: ciphertext,
            aad: &self.full_aad(aad),
        };
        self.cipher()
            .decrypt(XNonce::from_slice(nonce), payload)
            .map_err(|_| CryptoError::Decrypt)
    }
}

impl fmt::Debug for GroupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupKey")
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AAD: &[u8] = b"jid=20250101 expires=1735689600";

    #[test]
    fn round_trip() {
        let key = GroupKey::generate(7);
        assert_eq!(key.epoch(), 7);
        for len in [0, 1, 200, 70_000] {
            let plaintext: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let (nonce, ciphertext) = key.encrypt(&plaintext, AAD);
            assert_eq!(ciphertext.len(), len + GROUP_TAG_LEN);
            assert_eq!(key.decrypt(&nonce, &ciphertext, AAD).unwrap(), plaintext);
        }
        // The same key received as bytes decrypts too.
        let (nonce, ciphertext) = key.encrypt(b"job", AAD);
        let received = GroupKey::from_bytes(7, key.key_bytes());
        assert_eq!(received.decrypt(&nonce, &ciphertext, AAD).unwrap(), b"job");
    }

    #[test]
    fn nonces_are_fresh() {
        let key = GroupKey::generate(1);
        let (n1, c1) = key.encrypt(b"same", b"");
        let (n2, c2) = key.encrypt(b"same", b"");
        assert_ne!(n1, n2);
        assert_ne!(c1, c2);
    }

    #[test]
    fn wrong_key_epoch_aad_nonce_or_bit_fails() {
        let key = GroupKey::generate(7);
        let (nonce, ciphertext) = key.encrypt(b"cmd.run uptime", AAD);
        let fails = |key: &GroupKey, nonce: &[u8], ciphertext: &[u8], aad: &[u8]| {
            key.decrypt(nonce, ciphertext, aad).unwrap_err()
        };
        // Wrong key, and the next epoch's key.
        assert_eq!(
            fails(&GroupKey::generate(7), &nonce, &ciphertext, AAD),
            CryptoError::Decrypt
        );
        assert_eq!(
            fails(&GroupKey::generate(8), &nonce, &ciphertext, AAD),
            CryptoError::Decrypt
        );
        // The right key bytes labelled with another epoch.
        let relabelled = GroupKey::from_bytes(8, key.key_bytes());
        assert_eq!(
            fails(&relabelled, &nonce, &ciphertext, AAD),
            CryptoError::Decrypt
        );
        // Wrong or missing associated data.
        assert_eq!(
            fails(&key, &nonce, &ciphertext, b"jid=2"),
            CryptoError::Decrypt
        );
        assert_eq!(fails(&key, &nonce, &ciphertext, b""), CryptoError::Decrypt);
        // Every flipped bit of the ciphertext and of the nonce.
        for bit in 0..ciphertext.len() * 8 {
            let mut bad = ciphertext.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(
                fails(&key, &nonce, &bad, AAD),
                CryptoError::Decrypt,
                "bit {bit}"
            );
        }
        for bit in 0..GROUP_NONCE_LEN * 8 {
            let mut bad = nonce;
            bad[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(
                fails(&key, &bad, &ciphertext, AAD),
                CryptoError::Decrypt,
                "bit {bit}"
            );
        }
        // Truncated ciphertexts and malformed nonces.
        for len in 0..ciphertext.len() {
            assert_eq!(
                fails(&key, &nonce, &ciphertext[..len], AAD),
                CryptoError::Decrypt
            );
        }
        assert!(matches!(
            fails(&key, &nonce[..12], &ciphertext, AAD),
            CryptoError::Malformed(_)
        ));
        assert!(matches!(
            fails(&key, &[], &ciphertext, AAD),
            CryptoError::Malformed(_)
        ));
        assert_eq!(
            key.decrypt(&nonce, &ciphertext, AAD).unwrap(),
            b"cmd.run uptime"
        );
    }

    #[test]
    fn debug_hides_the_key() {
        let key = GroupKey::from_bytes(3, [0xab; 32]);
        let text = format!("{key:?}");
        assert_eq!(text, "GroupKey { epoch: 3, .. }");
    }
}
