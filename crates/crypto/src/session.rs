//! [`Session`]: the encrypted channel after a Noise handshake, carrying messages of up to
//! 16 MiB although one Noise message holds at most 65535 bytes.
//!
//! A sealed message is a sequence of chunks, each one Noise transport message behind its
//! length:
//!
//! ```text
//! sealed  = chunk+
//! chunk   = len:u16be  noise(len bytes: ciphertext + 16-byte tag)
//! stream  = total:u32be  plaintext          (what the chunks carry, in order)
//! ```
//!
//! The stream is cut into pieces of 65519 bytes (the last one shorter), one per chunk. Every
//! chunk is encrypted under the next nonce of its direction, so chunks cannot be reordered,
//! dropped, repeated or moved to another message; the total length sits inside the first
//! (encrypted) chunk, so cutting a message at a chunk boundary is noticed too. The layout is
//! fully determined by the total, and [`Session::open`] accepts exactly that layout.
//!
//! [`Session::open`] is all-or-nothing: a message that fails leaves the session as it was
//! (the receiving nonce is put back), so garbage injected by a third party does not break
//! the channel. A message that really went missing does: everything after it fails to open,
//! and the peers must handshake again.

use std::fmt;

use snow::TransportState;

use crate::noise::MAX_NOISE_MESSAGE;
use crate::CryptoError;

/// The largest plaintext a session carries in one message: 16 MiB.
pub const MAX_MESSAGE: usize = 16 * 1024 * 1024;

/// Poly1305 tag on every Noise message.
const TAG: usize = 16;
/// Bytes of a chunk's length prefix.
const PREFIX: usize = 2;
/// Plaintext bytes one chunk carries at most.
const CHUNK_PLAIN: usize = MAX_NOISE_MESSAGE - TAG;
/// The total length at the start of the stream.
const HEADER: usize = 4;

/// The size of a sealed message whose plaintext is `plaintext_len` bytes long.
pub const fn sealed_len(plaintext_len: usize) -> usize {
    let stream = plaintext_len + HEADER;
    stream + stream.div_ceil(CHUNK_PLAIN) * (PREFIX + TAG)
}

/// The largest sealed message, i.e. the frame-size limit for a transport that carries them.
pub const MAX_SEALED: usize = sealed_len(MAX_MESSAGE);

/// A Noise transport session. Messages of any size up to 16 MiB: Noise messages are limited
/// to 65535 bytes, so [`Session::seal`] splits into chunks (each its own Noise message,
/// framed with a u16 length) and [`Session::open`] reassembles; a truncated, reordered,
/// replayed or altered message is an error. Each direction's nonce advances per chunk, so a
/// replayed message fails to open.
pub struct Session {
    transport: TransportState,
    remote_static: [u8; 32],
}

impl Session {
    pub(crate) fn new(transport: TransportState, remote_static: [u8; 32]) -> Self {
        Session {
            transport,
            remote_static,
        }
    }

    /// The peer's authenticated X25519 static key (the master's for a minion, the minion's
    /// for the master).
    pub fn remote_static(&self) -> [u8; 32] {
        self.remote_static
    }

    /// Encrypts `plaintext` (at most [`MAX_MESSAGE`] bytes) into one sealed message of
    /// [`sealed_len`] bytes, for the peer's [`Session::open`].
    pub fn seal(&mut self, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if plaintext.len() > MAX_MESSAGE {
            return Err(CryptoError::TooLarge);
        }
        let total = u32::try_from(plaintext.len()).map_err(|_| CryptoError::TooLarge)?;
        let mut sealed = Vec::with_capacity(sealed_len(plaintext.len()));
        let (head, tail) = plaintext.split_at(plaintext.len().min(CHUNK_PLAIN - HEADER));
        let mut first = Vec::with_capacity(HEADER + head.len());
        first.extend_from_slice(&total.to_be_bytes());
        first.extend_from_slice(head);
        self.seal_chunk(&first, &mut sealed)?;
        for chunk in tail.chunks(CHUNK_PLAIN) {
            self.seal_chunk(chunk, &mut sealed)?;
        }
        debug_assert_eq!(sealed.len(), sealed_len(plaintext.len()));
        Ok(sealed)
    }

    fn seal_chunk(&mut self, chunk: &[u8], sealed: &mut Vec<u8>) -> Result<(), CryptoError> {
        let len = chunk.len() + TAG;
        let prefix = u16::try_from(len).map_err(|_| CryptoError::TooLarge)?;
        sealed.extend_from_slice(&prefix.to_be_bytes());
        let start = sealed.len();
        sealed.resize(start + len, 0);
        self.transport
            .write_message(chunk, &mut sealed[start..])
            .map_err(|err| CryptoError::Malformed(format!("sealing a chunk: {err}")))?;
        Ok(())
    }

    /// Decrypts one message from the peer's [`Session::seal`]. Fails, and leaves the session
    /// unchanged, when the message was altered, truncated, extended, reordered or replayed.
    pub fn open(&mut self, sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut plaintext = Vec::new();
        self.open_all_or_nothing(sealed, &mut plaintext)?;
        Ok(plaintext)
    }

    /// Authenticates one message from the peer's [`Session::seal`] and moves past it as
    /// [`Session::open`] does, keeping none of its plaintext (it is decrypted a chunk at a
    /// time into one small buffer): for a message the receiver will not handle, answered in
    /// the session all the same.
    pub fn discard(&mut self, sealed: &[u8]) -> Result<(), CryptoError> {
        self.open_all_or_nothing(sealed, &mut Discard(Vec::new()))
    }

    fn open_all_or_nothing(
        &mut self,
        sealed: &[u8],
        plaintext: &mut impl Plaintext,
    ) -> Result<(), CryptoError> {
        if sealed.len() > MAX_SEALED {
            return Err(CryptoError::TooLarge);
        }
        let nonce = self.transport.receiving_nonce();
        let opened = self.open_chunks(sealed, plaintext);
        if opened.is_err() {
            self.transport.set_receiving_nonce(nonce);
        }
        opened
    }

    fn open_chunks(
        &mut self,
        sealed: &[u8],
        plaintext: &mut impl Plaintext,
    ) -> Result<(), CryptoError> {
        let mut rest = sealed;
        let first = next_chunk(&mut rest)?;
        let mut head = vec![0u8; first.len() - TAG];
        let len = self.open_chunk(first, &mut head)?;
        if len < HEADER {
            return Err(CryptoError::Malformed(
                "first chunk shorter than its header".to_owned(),
            ));
        }
        let mut total = [0u8; HEADER];
        total.copy_from_slice(&head[..HEADER]);
        let total = u32::from_be_bytes(total) as usize;
        if total > MAX_MESSAGE {
            return Err(CryptoError::TooLarge);
        }
        if sealed_len(total) != sealed.len() || len != (total + HEADER).min(CHUNK_PLAIN) {
            return Err(CryptoError::Malformed(format!(
                "message announces {total} bytes but is {} bytes long sealed",
                sealed.len()
            )));
        }
        // `total` was authenticated and matches the sealed size: safe to reserve.
        plaintext.reserve(total);
        plaintext
            .next(len - HEADER)
            .copy_from_slice(&head[HEADER..len]);
        let mut opened = len - HEADER;
        while opened < total {
            let chunk = next_chunk(&mut rest)?;
            let expected = (total - opened).min(CHUNK_PLAIN);
            if chunk.len() != expected + TAG {
                return Err(CryptoError::Malformed(format!(
                    "chunk of {} bytes where {} were due",
                    chunk.len(),
                    expected + TAG
                )));
            }
            self.open_chunk(chunk, plaintext.next(expected))?;
            opened += expected;
        }
        if !rest.is_empty() {
            return Err(CryptoError::Malformed(format!(
                "{} bytes after the last chunk",
                rest.len()
            )));
        }
        Ok(())
    }

    fn open_chunk(&mut self, chunk: &[u8], out: &mut [u8]) -> Result<usize, CryptoError> {
        self.transport
            .read_message(chunk, out)
            .map_err(|err| match err {
                snow::Error::Decrypt => CryptoError::Decrypt,
                other => CryptoError::Malformed(format!("opening a chunk: {other}")),
            })
    }
}

/// Where [`Session::open_chunks`] puts what it decrypts, a chunk at a time.
trait Plaintext {
    /// The message's plaintext will be `total` bytes long.
    fn reserve(&mut self, total: usize);
    /// Room for the next `len` bytes of plaintext.
    fn next(&mut self, len: usize) -> &mut [u8];
}

/// The whole plaintext, in order.
impl Plaintext for Vec<u8> {
    fn reserve(&mut self, total: usize) {
        self.reserve_exact(total);
    }

    fn next(&mut self, len: usize) -> &mut [u8] {
        let start = self.len();
        self.resize(start + len, 0);
        &mut self[start..]
    }
}

/// One chunk's room, reused: the plaintext is authenticated and thrown away.
struct Discard(Vec<u8>);

impl Plaintext for Discard {
    fn reserve(&mut self, _total: usize) {}

    fn next(&mut self, len: usize) -> &mut [u8] {
        self.0.resize(len, 0);
        &mut self.0[..]
    }
}

/// Splits the next `len:u16be noise` chunk off `rest`.
fn next_chunk<'a>(rest: &mut &'a [u8]) -> Result<&'a [u8], CryptoError> {
    let [high, low, tail @ ..] = *rest else {
        return Err(CryptoError::Malformed(
            "truncated message: missing a chunk length".to_owned(),
        ));
    };
    let len = usize::from(u16::from_be_bytes([*high, *low]));
    if len < TAG {
        return Err(CryptoError::Malformed(format!(
            "chunk of {len} bytes, shorter than its tag"
        )));
    }
    if tail.len() < len {
        return Err(CryptoError::Malformed(format!(
            "truncated message: chunk of {len} bytes with {} left",
            tail.len()
        )));
    }
    let (chunk, tail) = tail.split_at(len);
    *rest = tail;
    Ok(chunk)
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("initiator", &self.transport.is_initiator())
            .field("peer", &crate::fingerprint(&self.remote_static).as_str())
            .field("chunks_sent", &self.transport.sending_nonce())
            .field("chunks_received", &self.transport.receiving_nonce())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{initiate, respond, MasterKeys, MinionKeys};
    use proptest::prelude::*;

    /// (minion's session, master's session) after a real handshake.
    fn pair() -> (Session, Session) {
        let minion = MinionKeys::generate();
        let master = MasterKeys::generate();
        let (initiator, msg1) = initiate(&minion, &master.public(), b"").unwrap();
        let (master_session, msg2) = respond(&master, &msg1).unwrap().accept(b"").unwrap();
        let (minion_session, _) = initiator.finish(&msg2).unwrap();
        (minion_session, master_session)
    }

    /// Deterministic, non-repeating test data.
    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 + i / 251) as u8).collect()
    }

    #[test]
    fn sealed_len_matches_the_layout() {
        assert_eq!(sealed_len(0), 4 + 18);
        assert_eq!(sealed_len(CHUNK_PLAIN - HEADER), MAX_NOISE_MESSAGE + 2);
        assert_eq!(
            sealed_len(CHUNK_PLAIN - HEADER + 1),
            MAX_NOISE_MESSAGE + 2 + 1 + 18
        );
        assert_eq!(MAX_SEALED, MAX_MESSAGE + 4 + 257 * 18);
    }

    #[test]
    fn round_trips_both_ways_at_the_boundaries() {
        let (mut minion, mut master) = pair();
        let sizes = [
            0,
            1,
            200,
            CHUNK_PLAIN - HEADER,
            CHUNK_PLAIN - HEADER + 1,
            65535,
            65536,
            2 * CHUNK_PLAIN - HEADER,
            1024 * 1024,
            MAX_MESSAGE,
        ];
        for size in sizes {
            let plaintext = data(size);
            let sealed = minion.seal(&plaintext).unwrap();
            assert_eq!(sealed.len(), sealed_len(size), "size {size}");
            assert_eq!(master.open(&sealed).unwrap(), plaintext, "size {size}");
            let sealed = master.seal(&plaintext).unwrap();
            assert_eq!(minion.open(&sealed).unwrap(), plaintext, "size {size}");
        }
    }

    #[test]
    fn too_large_is_refused_before_any_work() {
        let (mut minion, mut master) = pair();
        assert_eq!(
            minion.seal(&vec![0u8; MAX_MESSAGE + 1]).unwrap_err(),
            CryptoError::TooLarge
        );
        assert_eq!(
            master.open(&vec![0u8; MAX_SEALED + 1]).unwrap_err(),
            CryptoError::TooLarge
        );
        // The refused seal did not move the nonce: the next message still opens.
        let sealed = minion.seal(b"after").unwrap();
        assert_eq!(master.open(&sealed).unwrap(), b"after");
    }

    #[test]
    fn replayed_messages_fail() {
        let (mut minion, mut master) = pair();
        let first = minion.seal(b"restart nginx").unwrap();
        assert_eq!(master.open(&first).unwrap(), b"restart nginx");
        assert_eq!(master.open(&first).unwrap_err(), CryptoError::Decrypt);
        let second = minion.seal(b"second").unwrap();
        assert_eq!(master.open(&first).unwrap_err(), CryptoError::Decrypt);
        assert_eq!(master.open(&second).unwrap(), b"second");
        // A multi-chunk message replayed.
        let big = minion.seal(&data(200_000)).unwrap();
        master.open(&big).unwrap();
        assert!(master.open(&big).is_err());
        // A message reflected back to its sender fails too (each direction has its keys).
        let mine = minion.seal(b"mine").unwrap();
        assert!(minion.open(&mine).is_err());
        assert_eq!(master.open(&mine).unwrap(), b"mine");
    }

    #[test]
    fn out_of_order_messages_fail() {
        let (mut minion, mut master) = pair();
        let one = minion.seal(b"one").unwrap();
        let two = minion.seal(b"two").unwrap();
        assert!(master.open(&two).is_err());
        assert_eq!(master.open(&one).unwrap(), b"one");
        assert_eq!(master.open(&two).unwrap(), b"two");
    }

    #[test]
    fn every_truncation_and_extension_fails_and_leaves_the_session_usable() {
        let (mut minion, mut master) = pair();
        // Three chunks, so truncations fall inside and between chunks.
        let plaintext = data(2 * CHUNK_PLAIN + 10);
        let sealed = minion.seal(&plaintext).unwrap();
        let boundaries = [
            0,
            1,
            2,
            17,
            18,
            MAX_NOISE_MESSAGE + 2,
            2 * (MAX_NOISE_MESSAGE + 2),
        ];
        for len in boundaries.into_iter().chain((0..sealed.len()).step_by(997)) {
            assert!(master.open(&sealed[..len]).is_err(), "len {len}");
        }
        let mut extended = sealed.clone();
        extended.extend_from_slice(&[0, 16]);
        extended.extend_from_slice(&[0; 16]);
        assert!(master.open(&extended).is_err());
        let mut trailing = sealed.clone();
        trailing.push(0);
        assert!(master.open(&trailing).is_err());
        assert_eq!(master.open(&sealed).unwrap(), plaintext);
    }

    #[test]
    fn dropping_or_swapping_chunks_fails() {
        let (mut minion, mut master) = pair();
        let plaintext = data(3 * CHUNK_PLAIN);
        let sealed = minion.seal(&plaintext).unwrap();
        let full = MAX_NOISE_MESSAGE + 2;
        // Swap the second and third chunks (both full-size).
        let mut swapped = sealed.clone();
        swapped[full..2 * full].copy_from_slice(&sealed[2 * full..3 * full]);
        swapped[2 * full..3 * full].copy_from_slice(&sealed[full..2 * full]);
        assert_eq!(master.open(&swapped).unwrap_err(), CryptoError::Decrypt);
        // Drop the second chunk.
        let mut dropped = sealed[..full].to_vec();
        dropped.extend_from_slice(&sealed[2 * full..]);
        assert!(master.open(&dropped).is_err());
        // A chunk of another message spliced in at the same position.
        let other = minion.seal(&plaintext).unwrap();
        let mut spliced = sealed.clone();
        spliced[full..2 * full].copy_from_slice(&other[full..2 * full]);
        assert_eq!(master.open(&spliced).unwrap_err(), CryptoError::Decrypt);
        assert_eq!(master.open(&sealed).unwrap(), plaintext);
    }

    #[test]
    fn every_flipped_bit_fails() {
        let (mut minion, mut master) = pair();
        let sealed = minion.seal(&data(200)).unwrap();
        for bit in 0..sealed.len() * 8 {
            let mut bad = sealed.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(master.open(&bad).is_err(), "bit {bit}");
        }
        // A flipped bit in the last chunk of a large message.
        let big = data(100_000);
        let sealed_big = minion.seal(&big).unwrap();
        let mut bad = sealed_big.clone();
        let last = bad.len() - 1;
        bad[last] ^= 0x80;
        assert_eq!(master.open(&bad).unwrap_err(), CryptoError::Decrypt);
        // None of that disturbed the session.
        assert_eq!(master.open(&sealed).unwrap(), data(200));
        assert_eq!(master.open(&sealed_big).unwrap(), big);
    }

    #[test]
    fn discard_moves_past_a_message_as_open_does_and_only_if_it_opens() {
        let (mut minion, mut master) = pair();
        let big = data(3 * CHUNK_PLAIN + 7);
        let sealed_big = minion.seal(&big).unwrap();
        let mut bad = sealed_big.clone();
        bad[CHUNK_PLAIN] ^= 1;
        assert_eq!(master.discard(&bad).unwrap_err(), CryptoError::Decrypt);
        master.discard(&sealed_big).unwrap();
        assert!(master.discard(&sealed_big).is_err(), "a replay");
        let small = minion.seal(&data(200)).unwrap();
        assert_eq!(master.open(&small).unwrap(), data(200));
        // And the other way round: the session still answers.
        let answer = master.seal(b"unavailable").unwrap();
        assert_eq!(minion.open(&answer).unwrap(), b"unavailable");
    }

    #[test]
    fn a_session_from_another_handshake_cannot_open() {
        let (mut minion, _) = pair();
        let (_, mut other_master) = pair();
        let sealed = minion.seal(b"secret").unwrap();
        assert_eq!(
            other_master.open(&sealed).unwrap_err(),
            CryptoError::Decrypt
        );
    }

    #[test]
    fn debug_shows_counters_not_keys() {
        let (mut minion, _) = pair();
        minion.seal(&data(70_000)).unwrap();
        let text = format!("{minion:?}");
        assert!(text.contains("chunks_sent: 2"), "{text}");
        assert!(text.contains("initiator: true"), "{text}");
    }

    /// Message lengths for the property tests: small ones, lengths around the first and
    /// second chunk boundaries, and anything up to a little over two chunks.
    fn message_len() -> impl Strategy<Value = usize> {
        let first = CHUNK_PLAIN - HEADER;
        let second = 2 * CHUNK_PLAIN - HEADER;
        prop_oneof![
            0..300usize,
            first - 40..first + 40,
            second - 40..second + 40,
            0..140_000usize,
        ]
    }

    /// `len` pseudo-random bytes from `seed` (xorshift64): generating large messages byte by
    /// byte through proptest would dominate the test's time.
    fn noise_bytes(len: usize, seed: u64) -> Vec<u8> {
        let mut state = seed | 1;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn seal_open_round_trips(
            messages in proptest::collection::vec((any::<bool>(), message_len(), any::<u64>()), 1..6)
        ) {
            let (mut minion, mut master) = pair();
            for (from_minion, len, seed) in messages {
                let (sender, receiver) = if from_minion {
                    (&mut minion, &mut master)
                } else {
                    (&mut master, &mut minion)
                };
                let plaintext = noise_bytes(len, seed);
                let sealed = sender.seal(&plaintext).unwrap();
                prop_assert_eq!(sealed.len(), sealed_len(plaintext.len()));
                prop_assert_eq!(receiver.open(&sealed).unwrap(), plaintext);
            }
        }

        #[test]
        fn arbitrary_bytes_never_open(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let (mut minion, mut master) = pair();
            prop_assert!(master.open(&bytes).is_err());
            // ... and never disturb the session.
            let sealed = minion.seal(b"still here").unwrap();
            prop_assert_eq!(master.open(&sealed).unwrap(), b"still here");
        }
    }
}
