//! The Noise IK handshake between a minion (initiator) and the master (responder), done in
//! one request and one reply so it fits brine's REQ/REP channel.
//!
//! Message sequence (`Noise_IK_25519_ChaChaPoly_BLAKE2s`, prologue `brine noise v1`):
//!
//! ```text
//! minion                                         master
//!   initiate(keys, pinned master, hello)
//!   msg1 = e, es, s, ss, encrypt(hello)  ───────▶  respond(master keys, msg1)
//!                                                  learns the minion's static key
//!                                                  (Responder::remote_static) and hello;
//!                                                  decides whether that key is accepted
//!                                        ◀───────  msg2 = e, ee, se, encrypt(reply)
//!   Initiator::finish(msg2)                        Responder::accept(reply)
//!   ⇒ Session + reply                              ⇒ Session
//! ```
//!
//! What each side knows afterwards:
//! - The minion knows it talks to the holder of the pinned master key: only that key can
//!   produce a msg2 that decrypts. A wrong or impostor master fails in [`Initiator::finish`].
//! - The master knows the minion holds the secret of [`Responder::remote_static`]: msg1's
//!   payload is encrypted under a key that needs it (the `ss` step). A minion using a wrong
//!   master key fails in [`respond`].
//!
//! Limits of IK's first message, which callers must design around:
//! - msg1 can be **replayed**: an eavesdropper who resends it makes `respond` succeed again
//!   and see the same payload. It cannot go further (msg2 and the session keys need the
//!   minion's ephemeral secret), so the hello payload must be harmless to repeat: an
//!   introduction, never a request that acts. Requests go through the [`Session`].
//! - msg1's payload is not forward-secret: whoever later steals the master's X25519 secret can
//!   read recorded hellos. Everything after the handshake is forward-secret.

use std::fmt;
use std::sync::LazyLock;

use curve25519_dalek::montgomery::MontgomeryPoint;
use snow::params::NoiseParams;
use snow::{Builder, HandshakeState};

use crate::{CryptoError, MasterKeys, MasterPublic, MinionKeys, Session};

const PATTERN: &str = "Noise_IK_25519_ChaChaPoly_BLAKE2s";

/// Bound into every handshake hash: a change of brine's use of Noise changes this string, and
/// peers that disagree fail the handshake instead of misreading each other.
const PROLOGUE: &[u8] = b"brine noise v1";

/// The largest Noise message (handshake or transport), in bytes.
pub const MAX_NOISE_MESSAGE: usize = 65535;

/// msg1 = ephemeral key (32) + encrypted static key (32 + 16 tag) + payload tag (16).
pub const MSG1_OVERHEAD: usize = 32 + 32 + 16 + 16;
/// msg2 = ephemeral key (32) + payload tag (16).
pub const MSG2_OVERHEAD: usize = 32 + 16;

/// The largest payload [`initiate`] takes (the minion's hello).
pub const MAX_HELLO: usize = MAX_NOISE_MESSAGE - MSG1_OVERHEAD;
/// The largest payload [`Responder::accept`] takes (the master's reply).
pub const MAX_REPLY: usize = MAX_NOISE_MESSAGE - MSG2_OVERHEAD;

static PARAMS: LazyLock<NoiseParams> = LazyLock::new(|| {
    PATTERN
        .parse()
        .expect("brine's Noise pattern name is valid")
});

fn handshake_error(stage: &str, err: snow::Error) -> CryptoError {
    CryptoError::Handshake(format!("{stage}: {err}"))
}

/// The minion's side of a handshake in flight: made by [`initiate`], finished with the
/// master's msg2.
pub struct Initiator {
    state: HandshakeState,
    master: [u8; 32],
}

/// Starts a handshake with the master whose key the minion has pinned, carrying `payload`
/// (at most [`MAX_HELLO`] bytes, and see the module docs: it can be replayed). Returns the
/// state to finish with, and msg1 to send.
pub fn initiate(
    keys: &MinionKeys,
    master: &MasterPublic,
    payload: &[u8],
) -> Result<(Initiator, Vec<u8>), CryptoError> {
    if payload.len() > MAX_HELLO {
        return Err(CryptoError::TooLarge);
    }
    let build = |err| handshake_error("setting up the initiator", err);
    let mut state = Builder::new(PARAMS.clone())
        .local_private_key(keys.secret())
        .and_then(|b| b.remote_public_key(&master.noise))
        .and_then(|b| b.prologue(PROLOGUE))
        .and_then(|b| b.build_initiator())
        .map_err(build)?;
    let mut msg1 = vec![0u8; payload.len() + MSG1_OVERHEAD];
    let len = state
        .write_message(payload, &mut msg1)
        .map_err(|err| handshake_error("writing the first message", err))?;
    msg1.truncate(len);
    let initiator = Initiator {
        state,
        master: master.noise,
    };
    Ok((initiator, msg1))
}

impl Initiator {
    /// Reads the master's msg2. Succeeds only if it came from the holder of the pinned master
    /// key and answers this very msg1; returns the session and the master's payload.
    pub fn finish(mut self, msg2: &[u8]) -> Result<(Session, Vec<u8>), CryptoError> {
        if msg2.len() > MAX_NOISE_MESSAGE {
            return Err(CryptoError::Malformed(format!(
                "handshake reply of {} bytes, larger than a Noise message",
                msg2.len()
            )));
        }
        if msg2.len() < MSG2_OVERHEAD {
            return Err(CryptoError::Malformed(format!(
                "handshake reply of {} bytes, shorter than {MSG2_OVERHEAD}",
                msg2.len()
            )));
        }
        let mut payload = vec![0u8; msg2.len() - MSG2_OVERHEAD];
        let len = self
            .state
            .read_message(msg2, &mut payload)
            .map_err(|err| handshake_error("reading the master's reply", err))?;
        payload.truncate(len);
        let transport = self
            .state
            .into_transport_mode()
            .map_err(|err| handshake_error("entering transport mode", err))?;
        Ok((Session::new(transport, self.master), payload))
    }
}

impl fmt::Debug for Initiator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Initiator")
            .field("master", &crate::fingerprint(&self.master).as_str())
            .finish_non_exhaustive()
    }
}

/// The master's side of a handshake whose msg1 checked out: it knows the minion's
/// authenticated static key and its hello, and answers with [`Responder::accept`] (or drops
/// it, when the key is not accepted).
pub struct Responder {
    state: HandshakeState,
    remote_static: [u8; 32],
    payload: Vec<u8>,
}

/// Reads a minion's msg1 with the master's keys. Fails when msg1 was not made for this
/// master's key, was altered, or names a static key that can be claimed without its secret
/// (a low-order point).
pub fn respond(keys: &MasterKeys, msg1: &[u8]) -> Result<Responder, CryptoError> {
    if msg1.len() > MAX_NOISE_MESSAGE {
        return Err(CryptoError::Malformed(format!(
            "handshake message of {} bytes, larger than a Noise message",
            msg1.len()
        )));
    }
    if msg1.len() < MSG1_OVERHEAD {
        return Err(CryptoError::Malformed(format!(
            "handshake message of {} bytes, shorter than {MSG1_OVERHEAD}",
            msg1.len()
        )));
    }
    let mut state = Builder::new(PARAMS.clone())
        .local_private_key(keys.noise_secret())
        .and_then(|b| b.prologue(PROLOGUE))
        .and_then(|b| b.build_responder())
        .map_err(|err| handshake_error("setting up the responder", err))?;
    let mut payload = vec![0u8; msg1.len() - MSG1_OVERHEAD];
    let len = state
        .read_message(msg1, &mut payload)
        .map_err(|err| handshake_error("reading the minion's first message", err))?;
    payload.truncate(len);
    let remote_static: [u8; 32] = state
        .get_remote_static()
        .and_then(|key| key.try_into().ok())
        .ok_or_else(|| CryptoError::Handshake("the minion sent no static key".to_owned()))?;
    if is_low_order(&remote_static) {
        return Err(CryptoError::Handshake(
            "the minion's static key is a low-order point".to_owned(),
        ));
    }
    Ok(Responder {
        state,
        remote_static,
        payload,
    })
}

/// True for the X25519 public keys whose shared secret with any key is all zeros: with one of
/// those as a "static key", the `ss` step proves nothing, so anyone could claim it. X25519
/// clamps every scalar to a multiple of 8, so those are exactly the points (on the curve or
/// its twist) that 8 times sends to the identity, which encodes as zero. Four ladder steps
/// instead of a full scalar multiplication.
fn is_low_order(public: &[u8; 32]) -> bool {
    let eight = [true, false, false, false];
    MontgomeryPoint(*public)
        .mul_bits_be(eight.into_iter())
        .to_bytes()
        == [0u8; 32]
}

impl Responder {
    /// The minion's authenticated X25519 public key: its identity. The minion id is the one
    /// bound to this key, never one named in a message.
    pub fn remote_static(&self) -> [u8; 32] {
        self.remote_static
    }

    /// The minion's hello (msg1's decrypted payload). Authenticated, but replayable.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// Answers with `reply_payload` (at most [`MAX_REPLY`] bytes); returns the session and
    /// msg2 to send.
    pub fn accept(mut self, reply_payload: &[u8]) -> Result<(Session, Vec<u8>), CryptoError> {
        if reply_payload.len() > MAX_REPLY {
            return Err(CryptoError::TooLarge);
        }
        let mut msg2 = vec![0u8; reply_payload.len() + MSG2_OVERHEAD];
        let len = self
            .state
            .write_message(reply_payload, &mut msg2)
            .map_err(|err| handshake_error("writing the reply", err))?;
        msg2.truncate(len);
        let transport = self
            .state
            .into_transport_mode()
            .map_err(|err| handshake_error("entering transport mode", err))?;
        Ok((Session::new(transport, self.remote_static), msg2))
    }
}

impl fmt::Debug for Responder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Responder")
            .field("minion", &crate::fingerprint(&self.remote_static).as_str())
            .field("payload_len", &self.payload.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn flip(bytes: &[u8], bit: usize) -> Vec<u8> {
        let mut out = bytes.to_vec();
        out[bit / 8] ^= 1 << (bit % 8);
        out
    }

    #[test]
    fn round_trip_with_payloads_both_ways() {
        let minion = MinionKeys::generate();
        let master = MasterKeys::generate();
        let (initiator, msg1) = initiate(&minion, &master.public(), b"hello from web1").unwrap();
        assert_eq!(msg1.len(), MSG1_OVERHEAD + 15);
        let responder = respond(&master, &msg1).unwrap();
        assert_eq!(responder.payload(), b"hello from web1");
        // The responder learns the initiator's real static key.
        assert_eq!(responder.remote_static(), minion.public());
        let (mut master_session, msg2) = responder.accept(b"welcome, group key epoch 7").unwrap();
        assert_eq!(msg2.len(), MSG2_OVERHEAD + 26);
        let (mut minion_session, reply) = initiator.finish(&msg2).unwrap();
        assert_eq!(reply, b"welcome, group key epoch 7");
        assert_eq!(minion_session.remote_static(), master.public().noise);
        assert_eq!(master_session.remote_static(), minion.public());

        let sealed = minion_session.seal(b"request").unwrap();
        assert_eq!(master_session.open(&sealed).unwrap(), b"request");
        let sealed = master_session.seal(b"response").unwrap();
        assert_eq!(minion_session.open(&sealed).unwrap(), b"response");
    }

    #[test]
    fn empty_and_largest_payloads() {
        let minion = MinionKeys::generate();
        let master = MasterKeys::generate();
        let (initiator, msg1) = initiate(&minion, &master.public(), b"").unwrap();
        let responder = respond(&master, &msg1).unwrap();
        assert!(responder.payload().is_empty());
        let (_, msg2) = responder.accept(b"").unwrap();
        assert!(initiator.finish(&msg2).unwrap().1.is_empty());

        let hello = vec![7u8; MAX_HELLO];
        let (initiator, msg1) = initiate(&minion, &master.public(), &hello).unwrap();
        assert_eq!(msg1.len(), MAX_NOISE_MESSAGE);
        let responder = respond(&master, &msg1).unwrap();
        assert_eq!(responder.payload(), &hello[..]);
        let reply = vec![9u8; MAX_REPLY];
        let (_, msg2) = responder.accept(&reply).unwrap();
        assert_eq!(initiator.finish(&msg2).unwrap().1, reply);

        let too_big = vec![0u8; MAX_HELLO + 1];
        assert_eq!(
            initiate(&minion, &master.public(), &too_big).unwrap_err(),
            CryptoError::TooLarge
        );
        let (_, msg1) = initiate(&minion, &master.public(), b"").unwrap();
        let responder = respond(&master, &msg1).unwrap();
        assert_eq!(
            responder.accept(&vec![0u8; MAX_REPLY + 1]).unwrap_err(),
            CryptoError::TooLarge
        );
    }

    #[test]
    fn initiator_with_the_wrong_master_key_fails_at_the_responder() {
        let minion = MinionKeys::generate();
        let master = MasterKeys::generate();
        let impostor = MasterKeys::generate();
        let (_, msg1) = initiate(&minion, &impostor.public(), b"hello").unwrap();
        let err = respond(&master, &msg1).unwrap_err();
        assert!(matches!(err, CryptoError::Handshake(_)), "{err:?}");
    }

    #[test]
    fn impostor_master_cannot_answer() {
        // An impostor who receives msg1 meant for the real master cannot read it; the best it
        // can do is answer its own handshake, which the minion refuses.
        let minion = MinionKeys::generate();
        let master = MasterKeys::generate();
        let impostor = MasterKeys::generate();
        let (initiator, msg1) = initiate(&minion, &master.public(), b"hello").unwrap();
        assert!(respond(&impostor, &msg1).is_err());
        let (_, own_msg1) = initiate(&minion, &impostor.public(), b"hello").unwrap();
        let (_, msg2) = respond(&impostor, &own_msg1).unwrap().accept(b"").unwrap();
        assert!(matches!(
            initiator.finish(&msg2),
            Err(CryptoError::Handshake(_))
        ));
    }

    #[test]
    fn every_flipped_bit_in_msg1_fails() {
        let minion = MinionKeys::generate();
        let master = MasterKeys::generate();
        let (_, msg1) = initiate(&minion, &master.public(), b"hi").unwrap();
        for bit in 0..msg1.len() * 8 {
            let bad = flip(&msg1, bit);
            match respond(&master, &bad) {
                Err(CryptoError::Handshake(_)) => {}
                other => panic!("bit {bit}: {other:?}"),
            }
        }
    }

    #[test]
    fn every_flipped_bit_in_msg2_fails() {
        let minion = MinionKeys::generate();
        let master = MasterKeys::generate();
        let handshake = || {
            let (initiator, msg1) = initiate(&minion, &master.public(), b"hi").unwrap();
            let (_, msg2) = respond(&master, &msg1).unwrap().accept(b"ok").unwrap();
            (initiator, msg2)
        };
        let (_, msg2) = handshake();
        for bit in 0..msg2.len() * 8 {
            // finish() consumes the initiator: a fresh handshake for every flipped bit.
            let (initiator, msg2) = handshake();
            assert!(
                matches!(
                    initiator.finish(&flip(&msg2, bit)),
                    Err(CryptoError::Handshake(_))
                ),
                "bit {bit}"
            );
        }
    }

    #[test]
    fn msg2_from_another_handshake_fails() {
        let minion = MinionKeys::generate();
        let master = MasterKeys::generate();
        let (first, _) = initiate(&minion, &master.public(), b"one").unwrap();
        let (_, msg1) = initiate(&minion, &master.public(), b"two").unwrap();
        let (_, msg2) = respond(&master, &msg1).unwrap().accept(b"").unwrap();
        assert!(first.finish(&msg2).is_err());
    }

    #[test]
    fn truncated_and_oversized_handshake_messages_fail() {
        let minion = MinionKeys::generate();
        let master = MasterKeys::generate();
        let (initiator, msg1) = initiate(&minion, &master.public(), b"hello").unwrap();
        for len in 0..msg1.len() {
            assert!(respond(&master, &msg1[..len]).is_err(), "len {len}");
        }
        let mut long = msg1.clone();
        long.push(0);
        assert!(respond(&master, &long).is_err());
        assert!(matches!(
            respond(&master, &vec![0u8; MAX_NOISE_MESSAGE + 1]),
            Err(CryptoError::Malformed(_))
        ));
        let (_, msg2) = respond(&master, &msg1).unwrap().accept(b"reply").unwrap();
        let (again, _) = initiate(&minion, &master.public(), b"hello").unwrap();
        assert!(matches!(
            again.finish(&msg2[..10]),
            Err(CryptoError::Malformed(_))
        ));
        assert!(initiator.finish(&msg2).is_ok());
    }

    #[test]
    fn replayed_msg1_goes_no_further_than_the_hello() {
        // Documented IK property: a replayed msg1 is read again, but whoever replays it cannot
        // finish the handshake or read anything after it.
        let minion = MinionKeys::generate();
        let master = MasterKeys::generate();
        let (initiator, msg1) = initiate(&minion, &master.public(), b"hello").unwrap();
        let (mut real, msg2) = respond(&master, &msg1).unwrap().accept(b"").unwrap();
        let (mut minion_session, _) = initiator.finish(&msg2).unwrap();
        let replayed = respond(&master, &msg1).unwrap();
        assert_eq!(replayed.remote_static(), minion.public());
        let (mut attacker_facing, _) = replayed.accept(b"").unwrap();
        // The minion's real traffic opens only in the real session.
        let sealed = minion_session.seal(b"run job").unwrap();
        assert!(attacker_facing.open(&sealed).is_err());
        assert_eq!(real.open(&sealed).unwrap(), b"run job");
    }

    /// The u-coordinates of the points of order 1, 2, 4 and 8 (curve and twist), as libsodium
    /// lists them, little-endian, and their non-canonical encodings (adding p, or setting the
    /// ignored top bit).
    fn low_order_points() -> Vec<[u8; 32]> {
        let hex_points = [
            "0000000000000000000000000000000000000000000000000000000000000000",
            "0100000000000000000000000000000000000000000000000000000000000000",
            "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
            "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
            "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
            "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
            "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        ];
        let mut points = Vec::new();
        for text in hex_points {
            let mut point = [0u8; 32];
            assert!(crate::hex::decode_into(text, &mut point));
            points.push(point);
            let mut high = point;
            high[31] |= 0x80;
            points.push(high);
        }
        points
    }

    #[test]
    fn low_order_keys_are_recognised() {
        for point in low_order_points() {
            assert!(is_low_order(&point), "{point:02x?}");
            // The property that matters: X25519 with any secret gives all zeros.
            let shared = MontgomeryPoint(point).mul_clamped([0x42; 32]).to_bytes();
            assert_eq!(shared, [0u8; 32]);
        }
        for _ in 0..32 {
            assert!(!is_low_order(&MinionKeys::generate().public()));
        }
        assert!(!is_low_order(&MasterKeys::generate().public().noise));
        // The base point (u = 9) is a usable key.
        let mut nine = [0u8; 32];
        nine[0] = 9;
        assert!(!is_low_order(&nine));
    }

    #[test]
    fn debug_shows_no_secrets() {
        let minion = MinionKeys::generate();
        let master = MasterKeys::generate();
        let (initiator, msg1) = initiate(&minion, &master.public(), b"hello").unwrap();
        let responder = respond(&master, &msg1).unwrap();
        let text = format!("{initiator:?} {responder:?}");
        assert!(text.contains(minion.fingerprint().as_str()), "{text}");
        assert!(!text.contains("hello"), "{text}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn arbitrary_bytes_never_panic_the_responder(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            static MASTER: LazyLock<MasterKeys> = LazyLock::new(MasterKeys::generate);
            prop_assert!(respond(&MASTER, &bytes).is_err());
        }

        #[test]
        fn arbitrary_bytes_never_panic_the_initiator(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            static MASTER: LazyLock<MasterKeys> = LazyLock::new(MasterKeys::generate);
            let minion = MinionKeys::generate();
            let (initiator, _) = initiate(&minion, &MASTER.public(), b"").unwrap();
            prop_assert!(initiator.finish(&bytes).is_err());
        }
    }
}
