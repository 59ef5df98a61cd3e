//! Encoding and bounded decoding of messages, and the versioned [`Envelope`].
//!
//! Every message is msgpack written by `rmp_serde::to_vec_named` (maps with field names, so a
//! peer in another language reads them with any msgpack library). On the master's network
//! sockets each message travels inside an [`Envelope`]: `{v, kind, session?, body}`, where `body`
//! is the encoded message (plain), a Noise handshake message, a sealed message, or a signed
//! publication, as msgpack bin. The envelope is where the security layer plugs in (signed and
//! sealed kinds) without any message body changing.

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::{limits, PROTOCOL_VERSION};

/// Why bytes from a peer were not accepted as a message.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("message of {len} bytes is larger than the limit of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("message nests deeper than {max} levels")]
    TooDeep { max: usize },
    #[error("collection of {len} items is longer than the limit of {max}")]
    CollectionTooLong { len: usize, max: usize },
    #[error("message holds more than {max} values")]
    TooManyItems { max: usize },
    #[error("message is truncated")]
    Truncated,
    #[error("{extra} bytes follow the message")]
    TrailingBytes { extra: usize },
    #[error("unsupported protocol version {0} (this build speaks {PROTOCOL_VERSION})")]
    UnsupportedVersion(u16),
    #[error("malformed message: {0}")]
    Malformed(String),
    #[error("a {0:?} envelope is not allowed here")]
    WrongKind(BodyKind),
}

/// The kind of body an [`Envelope`] carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BodyKind {
    /// The body is the msgpack message itself. Allowed only before authentication: the
    /// `master_keys` request and its answer, and error answers outside a session.
    Plain,
    /// The body is a Noise IK handshake message whose payload is the message
    /// (`hello` from the minion, the answer to it from the master).
    Handshake,
    /// The body is the message sealed with the Noise session named by `session`.
    Sealed,
    /// The body is a [`crate::msg::SignedPublication`] (PUB only).
    Signed,
}

/// The outer frame of every message on the master's TCP sockets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// Protocol version, [`PROTOCOL_VERSION`].
    pub v: u16,
    pub kind: BodyKind,
    /// The Noise session a `sealed` request belongs to (from the master's `welcome`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<u64>,
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
}

impl Envelope {
    /// An envelope of `kind` around `body`.
    pub fn new(kind: BodyKind, session: Option<u64>, body: Vec<u8>) -> Self {
        Self {
            v: PROTOCOL_VERSION,
            kind,
            session,
            body,
        }
    }

    /// Encodes the envelope.
    pub fn to_bytes(&self) -> Vec<u8> {
        encode(self)
    }

    /// Decodes an envelope of this protocol version (the body is not looked at).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let EnvelopeRef {
            v,
            kind,
            session,
            body,
        } = EnvelopeRef::from_bytes(bytes)?;
        Ok(Self {
            v,
            kind,
            session,
            body: body.to_vec(),
        })
    }
}

/// An [`Envelope`] read in place: its body is a slice of the frame it came in. A server reads
/// requests this way, so that a large body (a sealed return of 16 MiB) is not copied before
/// it is opened, and is looked at only once its size has been admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvelopeRef<'a> {
    pub v: u16,
    pub kind: BodyKind,
    #[serde(default)]
    pub session: Option<u64>,
    #[serde(borrow)]
    pub body: &'a [u8],
}

impl<'a> EnvelopeRef<'a> {
    /// Decodes an envelope of this protocol version (the body is not looked at).
    pub fn from_bytes(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        #[derive(Deserialize)]
        struct Version {
            v: u16,
        }
        let Version { v } = decode(bytes)?;
        if v != PROTOCOL_VERSION {
            return Err(DecodeError::UnsupportedVersion(v));
        }
        decode_borrowed(bytes)
    }
}

/// Encodes a message as msgpack with named fields.
pub fn encode<T: Serialize + ?Sized>(msg: &T) -> Vec<u8> {
    // Encoding our own types into a Vec cannot fail: every map key is a string and every
    // type is serializable by construction.
    rmp_serde::to_vec_named(msg).expect("brine messages always encode")
}

/// Decodes one message from untrusted bytes, checking [`limits`] first.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    decode_borrowed(bytes)
}

/// Decodes one message that may borrow from `bytes`, checking [`limits`] first. Strings and
/// byte strings are read in place (an owned one is copied once, from the input), never
/// through a buffer of the decoder's own.
fn decode_borrowed<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, DecodeError> {
    limits::check(bytes)?;
    let mut de = rmp_serde::Deserializer::from_read_ref(bytes);
    de.set_max_depth(limits::MAX_DEPTH + 1);
    T::deserialize(&mut de).map_err(|e| DecodeError::Malformed(e.to_string()))
}

/// Encodes a message and wraps it in a plain [`Envelope`].
pub fn encode_envelope<T: Serialize + ?Sized>(msg: &T) -> Vec<u8> {
    Envelope::new(BodyKind::Plain, None, encode(msg)).to_bytes()
}

/// Unwraps a plain [`Envelope`] and decodes the message in its body.
///
/// The version is read first (from any map with a `v`), so an envelope of another version is
/// `UnsupportedVersion` even when its other fields are unknown to this build. Any kind but
/// `plain` is `WrongKind`: sealed and signed bodies are opened by their channel first.
pub fn decode_envelope<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    let envelope = Envelope::from_bytes(bytes)?;
    match envelope.kind {
        BodyKind::Plain => decode(&envelope.body),
        kind => Err(DecodeError::WrongKind(kind)),
    }
}
