//! The client→server half of a ZMTP 3.x connection, parsed incrementally and checked against
//! limits before any of its bytes reach the zeromq crate. No I/O, no allocation.
//!
//! # The sequence
//!
//! A peer that connects to one of our ports speaks first, and what it says must be, in order:
//!
//! 1. **The greeting**, exactly 64 bytes: the signature (`0xFF`, eight padding bytes, `0x7F`),
//!    the version (major `3`, any minor: 3.0 and 3.1 are the same framing), the security
//!    mechanism (20 bytes, `"NULL"` padded with zeros: the zeromq crate has no CURVE or PLAIN,
//!    so a peer asking for them could only be refused later, after it has cost us a
//!    connection), the as-server flag (`0`: the peer connected to us, so it is the client)
//!    and 31 bytes of filler, which we ignore. Each byte is checked as it arrives, so an HTTP
//!    request is refused at its first byte. libzmq sends the greeting in two steps (the
//!    10-byte signature, then the rest once it has seen ours); we accept any split.
//! 2. **The READY command**, one command frame (flags `0x04`, or `0x06` with a long size,
//!    never `MORE`), at most [`StreamLimits::max_command`] bytes: the command name `READY`
//!    (one length byte and the name), then properties, each a name (one length byte, 1-255
//!    characters from `A-Z a-z 0-9 - _ . +`) and a value (a 4-byte big-endian length and the
//!    bytes). The properties must fill the frame exactly and include `Socket-Type`. With the
//!    NULL mechanism nothing else may come first; this completes the client's half of the
//!    handshake.
//! 3. **Messages**, each one or more message frames: a flags byte (`MORE` `0x01`: another
//!    frame of this message follows; `LONG` `0x02`: an 8-byte big-endian size follows instead
//!    of a 1-byte one; the reserved bits `0xF8` must be zero), the size, the body. A frame
//!    larger than [`StreamLimits::max_frame`], a message with more than
//!    [`StreamLimits::max_frames_per_message`] frames or more than
//!    [`StreamLimits::max_message`] bytes is refused as soon as its header says so, before
//!    the body is sent. Command frames after READY are refused too: the zeromq crate knows no
//!    command but READY, so PING, SUBSCRIBE and ERROR could only break the connection later.
//!    A connection may send at most [`StreamLimits::max_messages`] messages: a subscriber has
//!    nothing to say beyond its few subscriptions.
//! 4. **On a publishing port** ([`StreamLimits::subscriptions_only`]) every message is one
//!    frame whose first body byte is `0x01` (subscribe) or `0x00` (cancel), the ZMTP 3.0 form
//!    of a subscription; anything else is refused before the zeromq crate logs it.
//!
//! Bodies are skipped, never stored: the parser's state is a few integers, whatever the
//! peer sends. After a [`Violation`] the stream is dead and every further call returns it
//! again.
//!
//! A relay that budgets large messages asks the parser to pause ([`ClientStream::pausing`],
//! [`ClientStream::feed_until_pause`]) right after each frame header that makes a message
//! larger than its threshold (the bytes it announces need budget before they are passed on)
//! and right after such a message's last byte (its budget can go back, and its upstream
//! connection, which read it, can be replaced).

use std::fmt;

const SIGNATURE_LEN: usize = 10;
const GREETING_LEN: usize = 64;
const MAJOR_AT: usize = 10;
const MECHANISM: std::ops::Range<usize> = 12..32;
const AS_SERVER_AT: usize = 32;

const MORE: u8 = 0x01;
const LONG: u8 = 0x02;
const COMMAND: u8 = 0x04;
const RESERVED: u8 = !(MORE | LONG | COMMAND);

const READY: &[u8] = b"READY";
const SOCKET_TYPE: &[u8] = b"socket-type";
/// The longest zeromq socket type name ("ROUTER", "DEALER"...), with room to spare.
const MAX_SOCKET_TYPE: usize = 16;

/// What one connection may send; see [`crate::GuardLimits`] for the operator's view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamLimits {
    /// Largest message frame body, in bytes.
    pub max_frame: u64,
    /// Most frames in one multipart message.
    pub max_frames_per_message: usize,
    /// Largest sum of the frame bodies of one message, in bytes.
    pub max_message: u64,
    /// Largest command frame body (the READY command), in bytes.
    pub max_command: u64,
    /// Most messages one connection may send in its life.
    pub max_messages: u64,
    /// Every message must be a subscription or a cancellation: one frame, first byte `0x01`
    /// or `0x00`.
    pub subscriptions_only: bool,
    /// The first `early_messages` messages (what a peer says before it can have proven
    /// anything) may be at most `max_early_message` bytes each.
    pub early_messages: u64,
    pub max_early_message: u64,
}

/// Why a connection's byte stream was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    #[error("not a ZMTP 3 greeting: byte {offset} is {byte:#04x}")]
    BadSignature { offset: usize, byte: u8 },
    #[error("ZMTP major version {0} is not 3")]
    UnsupportedVersion(u8),
    #[error("security mechanism {0} is not NULL")]
    UnsupportedMechanism(Mechanism),
    #[error("as-server flag {0:#04x} from a connecting peer")]
    AsServer(u8),
    #[error("expected the READY command, got {0}")]
    ExpectedReady(&'static str),
    #[error("malformed READY command: {0}")]
    MalformedReady(&'static str),
    #[error("command of {size} bytes exceeds the limit of {limit}")]
    CommandTooLarge { size: u64, limit: u64 },
    #[error("reserved frame flag bits set: {0:#04x}")]
    ReservedFlags(u8),
    #[error("command frame after the handshake")]
    UnexpectedCommand,
    #[error("frame of {size} bytes exceeds the limit of {limit}")]
    FrameTooLarge { size: u64, limit: u64 },
    #[error("message has more than {limit} frames")]
    TooManyFrames { limit: usize },
    #[error("message of at least {size} bytes exceeds the limit of {limit}")]
    MessageTooLarge { size: u64, limit: u64 },
    #[error("more than {limit} messages on one connection")]
    TooManyMessages { limit: u64 },
    #[error("not a subscription: {0}")]
    NotASubscription(&'static str),
}

/// The 20-byte mechanism field of a refused greeting, shown printable.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Mechanism([u8; 20]);

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.0.split(|&b| b == 0).next().unwrap_or_default();
        write!(f, "\"{}\"", name.escape_ascii())
    }
}

impl fmt::Debug for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Where the parser stands in the sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// `at` greeting bytes seen.
    Greeting { at: usize },
    /// Expecting a frame's flags byte.
    Flags,
    /// Reading a frame's size: `left` bytes of it still to come.
    Size { flags: u8, left: u8, size: u64 },
    /// Inside the READY command's body, `left` bytes still to come.
    Ready { part: ReadyPart, left: u64 },
    /// Inside a message frame's body, `left` bytes still to come.
    Body { left: u64, last: bool },
    /// The first body byte of a subscription frame (`left` bytes in all).
    SubscriptionFlag { left: u64, last: bool },
    /// Refused; the connection must be closed.
    Failed,
}

/// Where the parser stands inside the READY command's body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadyPart {
    NameLen,
    Name { len: u8, at: u8 },
    PropertyNameLen,
    PropertyName { len: u8, at: u8, socket_type: bool },
    ValueLen { at: u8, len: u32, socket_type: bool },
    Value { left: u32, socket_type: bool },
}

/// Where [`ClientStream::feed_until_pause`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pause {
    /// A frame header made its message large: the bytes it announces (and, the first time,
    /// those of the message before it) need this much budget before they are passed on.
    Claim(u64),
    /// A large message ended.
    LargeEnd,
}

/// The parser for one connection's client→server bytes.
#[derive(Debug, Clone)]
pub struct ClientStream {
    limits: StreamLimits,
    state: State,
    mechanism: [u8; 20],
    socket_type_seen: bool,
    /// The Socket-Type the peer named, for a handshake of its own upstream.
    socket_type: [u8; MAX_SOCKET_TYPE],
    socket_type_len: u8,
    handshake_done: bool,
    frames_in_message: usize,
    message_bytes: u64,
    messages: u64,
    violation: Option<Violation>,
    /// A message of more bytes than this is large (`u64::MAX`: none is).
    large_message: u64,
    /// Bytes of the current message claimed so far.
    claimed: u64,
    /// Where the last byte fed asks the relay to stop.
    pause: Option<Pause>,
}

impl ClientStream {
    pub fn new(limits: StreamLimits) -> Self {
        Self {
            limits,
            state: State::Greeting { at: 0 },
            mechanism: [0; 20],
            socket_type_seen: false,
            socket_type: [0; MAX_SOCKET_TYPE],
            socket_type_len: 0,
            handshake_done: false,
            frames_in_message: 0,
            message_bytes: 0,
            messages: 0,
            violation: None,
            large_message: u64::MAX,
            claimed: 0,
            pause: None,
        }
    }

    /// From now on, [`feed_until_pause`](Self::feed_until_pause) stops at the headers and the
    /// ends of messages larger than `large_message` bytes. When the message under way is
    /// larger already, returns its bytes so far: they need budget as a [`Pause::Claim`] would.
    pub fn pause_at_large(&mut self, large_message: u64) -> Option<u64> {
        self.large_message = large_message;
        (self.message_bytes > large_message).then(|| {
            self.claimed = self.message_bytes;
            self.message_bytes
        })
    }

    /// The Socket-Type the peer's READY named, once the handshake is done.
    pub fn socket_type(&self) -> &[u8] {
        &self.socket_type[..usize::from(self.socket_type_len)]
    }

    /// Whether the 10-byte signature has been seen (and was valid).
    pub fn signature_seen(&self) -> bool {
        !matches!(self.state, State::Greeting { at } if at < SIGNATURE_LEN)
    }

    /// Whether the greeting and the READY command have been seen.
    pub fn handshake_done(&self) -> bool {
        self.handshake_done
    }

    /// How many complete messages have been seen.
    pub fn messages(&self) -> u64 {
        self.messages
    }

    /// Checks the next bytes of the stream. `Ok` means every byte of `data` may be passed on.
    pub fn feed(&mut self, data: &[u8]) -> Result<(), Violation> {
        let mut rest = data;
        while !rest.is_empty() {
            let (used, _) = self.feed_until_pause(rest)?;
            rest = &rest[used..];
        }
        Ok(())
    }

    /// Checks the next bytes of the stream up to the first [`Pause`], if any: `Ok((n,
    /// pause))` means the first `n` bytes of `data` may be passed on (once the pause is dealt
    /// with), and the rest is still to be fed.
    pub fn feed_until_pause(&mut self, data: &[u8]) -> Result<(usize, Option<Pause>), Violation> {
        if let Some(violation) = &self.violation {
            return Err(violation.clone());
        }
        let mut rest = data;
        while let Some((&byte, tail)) = rest.split_first() {
            if let State::Body { left, last } = self.state {
                // Bodies are skipped in one step, whatever their size.
                let take = usize::try_from(left).map_or(rest.len(), |left| left.min(rest.len()));
                rest = &rest[take..];
                let left = left - take as u64;
                self.state = State::Body { left, last };
                if left == 0 {
                    self.end_frame(last);
                }
            } else {
                if let Err(violation) = self.byte(byte) {
                    self.state = State::Failed;
                    self.violation = Some(violation.clone());
                    return Err(violation);
                }
                rest = tail;
            }
            if let Some(pause) = self.pause.take() {
                return Ok((data.len() - rest.len(), Some(pause)));
            }
        }
        Ok((data.len(), None))
    }

    fn byte(&mut self, byte: u8) -> Result<(), Violation> {
        match self.state {
            State::Greeting { at } => self.greeting(at, byte),
            State::Flags => self.flags(byte),
            State::Size { flags, left, size } => {
                let size = size << 8 | u64::from(byte);
                if left > 1 {
                    self.state = State::Size {
                        flags,
                        left: left - 1,
                        size,
                    };
                    Ok(())
                } else {
                    self.frame_size(flags, size)
                }
            }
            State::Ready { part, left } => self.ready(part, left - 1, byte),
            State::SubscriptionFlag { left, last } => {
                if byte > 1 {
                    return Err(Violation::NotASubscription(
                        "first byte is not 0x01 or 0x00",
                    ));
                }
                if left == 1 {
                    self.end_frame(last);
                } else {
                    self.state = State::Body {
                        left: left - 1,
                        last,
                    };
                }
                Ok(())
            }
            // `feed` skips bodies and stops at a failure.
            State::Body { .. } | State::Failed => unreachable!("handled by feed"),
        }
    }

    fn greeting(&mut self, at: usize, byte: u8) -> Result<(), Violation> {
        match at {
            0 if byte != 0xFF => return Err(Violation::BadSignature { offset: at, byte }),
            9 if byte != 0x7F => return Err(Violation::BadSignature { offset: at, byte }),
            MAJOR_AT if byte != 3 => return Err(Violation::UnsupportedVersion(byte)),
            _ if MECHANISM.contains(&at) => {
                self.mechanism[at - MECHANISM.start] = byte;
                if at + 1 == MECHANISM.end {
                    let mut null = [0; 20];
                    null[..4].copy_from_slice(b"NULL");
                    if self.mechanism != null {
                        return Err(Violation::UnsupportedMechanism(Mechanism(self.mechanism)));
                    }
                }
            }
            AS_SERVER_AT if byte != 0 => return Err(Violation::AsServer(byte)),
            _ => {}
        }
        self.state = if at + 1 == GREETING_LEN {
            State::Flags
        } else {
            State::Greeting { at: at + 1 }
        };
        Ok(())
    }

    fn flags(&mut self, flags: u8) -> Result<(), Violation> {
        if flags & RESERVED != 0 {
            return Err(Violation::ReservedFlags(flags));
        }
        let command = flags & COMMAND != 0;
        if !self.handshake_done {
            if !command {
                return Err(Violation::ExpectedReady("a message frame"));
            }
            if flags & MORE != 0 {
                return Err(Violation::ExpectedReady("a command with the MORE flag"));
            }
        } else if command {
            return Err(Violation::UnexpectedCommand);
        } else if self.frames_in_message == 0 && self.messages >= self.limits.max_messages {
            return Err(Violation::TooManyMessages {
                limit: self.limits.max_messages,
            });
        } else if self.frames_in_message >= self.limits.max_frames_per_message {
            return Err(Violation::TooManyFrames {
                limit: self.limits.max_frames_per_message,
            });
        }
        let left = if flags & LONG != 0 { 8 } else { 1 };
        self.state = State::Size {
            flags,
            left,
            size: 0,
        };
        Ok(())
    }

    fn frame_size(&mut self, flags: u8, size: u64) -> Result<(), Violation> {
        if !self.handshake_done {
            if size > self.limits.max_command {
                return Err(Violation::CommandTooLarge {
                    size,
                    limit: self.limits.max_command,
                });
            }
            if size == 0 {
                return Err(Violation::MalformedReady("empty command frame"));
            }
            self.state = State::Ready {
                part: ReadyPart::NameLen,
                left: size,
            };
            return Ok(());
        }
        if size > self.limits.max_frame {
            return Err(Violation::FrameTooLarge {
                size,
                limit: self.limits.max_frame,
            });
        }
        // Both are bounded by the limits already checked, so this cannot overflow.
        let message_bytes = self.message_bytes + size;
        let limit = if self.messages < self.limits.early_messages {
            self.limits.max_early_message.min(self.limits.max_message)
        } else {
            self.limits.max_message
        };
        if message_bytes > limit {
            return Err(Violation::MessageTooLarge {
                size: message_bytes,
                limit,
            });
        }
        self.message_bytes = message_bytes;
        if message_bytes > self.large_message && message_bytes > self.claimed {
            self.pause = Some(Pause::Claim(message_bytes - self.claimed));
            self.claimed = message_bytes;
        }
        self.frames_in_message += 1;
        let last = flags & MORE == 0;
        if self.limits.subscriptions_only {
            if !last {
                return Err(Violation::NotASubscription("more than one frame"));
            }
            if size == 0 {
                return Err(Violation::NotASubscription("empty frame"));
            }
            self.state = State::SubscriptionFlag { left: size, last };
        } else if size == 0 {
            self.end_frame(last);
        } else {
            self.state = State::Body { left: size, last };
        }
        Ok(())
    }

    fn end_frame(&mut self, last: bool) {
        if last {
            self.messages += 1;
            self.frames_in_message = 0;
            self.message_bytes = 0;
            if self.claimed > 0 {
                self.claimed = 0;
                self.pause = Some(Pause::LargeEnd);
            }
        }
        self.state = State::Flags;
    }

    /// One byte of the READY body; `left` is what remains of the body after it.
    fn ready(&mut self, part: ReadyPart, left: u64, byte: u8) -> Result<(), Violation> {
        let part = match part {
            ReadyPart::NameLen if usize::from(byte) != READY.len() => {
                return Err(Violation::ExpectedReady("another command"))
            }
            ReadyPart::NameLen => ReadyPart::Name { len: byte, at: 0 },
            ReadyPart::Name { len, at } => {
                if byte != READY[usize::from(at)] {
                    return Err(Violation::ExpectedReady("another command"));
                }
                if at + 1 == len {
                    ReadyPart::PropertyNameLen
                } else {
                    ReadyPart::Name { len, at: at + 1 }
                }
            }
            ReadyPart::PropertyNameLen if byte == 0 => {
                return Err(Violation::MalformedReady("empty property name"))
            }
            ReadyPart::PropertyNameLen => ReadyPart::PropertyName {
                len: byte,
                at: 0,
                socket_type: usize::from(byte) == SOCKET_TYPE.len(),
            },
            ReadyPart::PropertyName {
                len,
                at,
                socket_type,
            } => {
                if !(byte.is_ascii_alphanumeric() || b"-_.+".contains(&byte)) {
                    return Err(Violation::MalformedReady("invalid property name"));
                }
                // Property names are case-insensitive (ZMTP 3, RFC 23).
                let socket_type =
                    socket_type && byte.to_ascii_lowercase() == SOCKET_TYPE[usize::from(at)];
                if at + 1 == len {
                    ReadyPart::ValueLen {
                        at: 0,
                        len: 0,
                        socket_type,
                    }
                } else {
                    ReadyPart::PropertyName {
                        len,
                        at: at + 1,
                        socket_type,
                    }
                }
            }
            ReadyPart::ValueLen {
                at,
                len,
                socket_type,
            } => {
                let len = len << 8 | u32::from(byte);
                if at < 3 {
                    ReadyPart::ValueLen {
                        at: at + 1,
                        len,
                        socket_type,
                    }
                } else {
                    if u64::from(len) > left {
                        return Err(Violation::MalformedReady(
                            "property value overruns the frame",
                        ));
                    }
                    if socket_type {
                        if len == 0 {
                            return Err(Violation::MalformedReady("empty Socket-Type"));
                        }
                        // No zeromq socket type is longer; the socket would refuse it.
                        if len as usize > MAX_SOCKET_TYPE {
                            return Err(Violation::MalformedReady("Socket-Type too long"));
                        }
                        self.socket_type_seen = true;
                        self.socket_type_len = 0;
                    }
                    if len == 0 {
                        ReadyPart::PropertyNameLen
                    } else {
                        ReadyPart::Value {
                            left: len,
                            socket_type,
                        }
                    }
                }
            }
            ReadyPart::Value { left, socket_type } => {
                if socket_type {
                    self.socket_type[usize::from(self.socket_type_len)] = byte;
                    self.socket_type_len += 1;
                }
                if left > 1 {
                    ReadyPart::Value {
                        left: left - 1,
                        socket_type,
                    }
                } else {
                    ReadyPart::PropertyNameLen
                }
            }
        };
        if left > 0 {
            self.state = State::Ready { part, left };
            return Ok(());
        }
        if part != ReadyPart::PropertyNameLen {
            return Err(Violation::MalformedReady(
                "truncated by the end of the frame",
            ));
        }
        if !self.socket_type_seen {
            return Err(Violation::MalformedReady("no Socket-Type property"));
        }
        self.handshake_done = true;
        self.state = State::Flags;
        Ok(())
    }
}

/// A NULL-mechanism handshake, as a zeromq socket of `socket_type` sends it (the same from
/// either side): a ZMTP 3.0 greeting and a READY command. The guard answers every peer with
/// it itself, as the upstream socket, so that the zeromq socket sees no peer before that
/// peer's first message has been checked; and it opens a fresh upstream connection with it,
/// as the peer ([`ClientStream::socket_type`]).
pub fn handshake(socket_type: &[u8]) -> Vec<u8> {
    let mut bytes = vec![0u8; GREETING_LEN];
    bytes[0] = 0xFF;
    bytes[9] = 0x7F;
    bytes[MAJOR_AT] = 3;
    bytes[MECHANISM.start..MECHANISM.start + 4].copy_from_slice(b"NULL");
    let mut body = vec![READY.len() as u8];
    body.extend_from_slice(READY);
    body.push(11);
    body.extend_from_slice(b"Socket-Type");
    body.extend_from_slice(&(socket_type.len() as u32).to_be_bytes());
    body.extend_from_slice(socket_type);
    assert!(body.len() <= 255, "a socket type is a short word");
    bytes.extend_from_slice(&[COMMAND, body.len() as u8]);
    bytes.extend_from_slice(&body);
    bytes
}

/// Finds the end of the upstream socket's own greeting and READY command, which the guard has
/// answered the peer with already ([`handshake`]): what follows is relayed.
#[derive(Debug, Clone, Default)]
pub struct UpstreamHandshake {
    /// Greeting bytes seen.
    greeting: usize,
    /// The READY frame's size bytes still to come, and the size so far.
    size_left: Option<(u8, u64)>,
    /// The READY frame's body bytes still to come.
    body_left: Option<u64>,
}

impl UpstreamHandshake {
    /// Takes the next bytes from upstream: `Some(n)` when the handshake ended after `n` of
    /// them (the rest is the peer's), `None` when it goes on. A zeromq socket that sends
    /// something else is a bug of ours, refused as such.
    pub fn feed(&mut self, data: &[u8]) -> Result<Option<usize>, &'static str> {
        for (at, &byte) in data.iter().enumerate() {
            if self.greeting < GREETING_LEN {
                self.greeting += 1;
                continue;
            }
            match (self.size_left, self.body_left) {
                (None, None) => {
                    self.size_left = match byte {
                        COMMAND => Some((1, 0)),
                        b if b == COMMAND | LONG => Some((8, 0)),
                        _ => return Err("the upstream socket did not send READY"),
                    };
                }
                (Some((left, size)), None) => {
                    let size = size << 8 | u64::from(byte);
                    if left > 1 {
                        self.size_left = Some((left - 1, size));
                    } else if size == 0 {
                        return Err("the upstream socket sent an empty command");
                    } else {
                        self.body_left = Some(size);
                    }
                }
                (_, Some(left)) => {
                    if left == 1 {
                        return Ok(Some(at + 1));
                    }
                    self.body_left = Some(left - 1);
                }
            }
        }
        Ok(None)
    }
}

/// Counts the messages the upstream socket sends (its replies), past its handshake. Our own
/// socket's bytes are trusted: only the frame boundaries are followed.
#[derive(Debug, Clone, Copy, Default)]
pub struct Replies {
    /// Complete messages seen.
    messages: u64,
    state: ReplyState,
}

#[derive(Debug, Clone, Copy, Default)]
enum ReplyState {
    #[default]
    Flags,
    Size {
        more: bool,
        left: u8,
        size: u64,
    },
    Body {
        more: bool,
        left: u64,
    },
}

impl Replies {
    /// How many complete messages have been seen.
    pub fn messages(&self) -> u64 {
        self.messages
    }

    /// Takes the next bytes from upstream.
    pub fn feed(&mut self, data: &[u8]) {
        let mut rest = data;
        while let Some((&byte, tail)) = rest.split_first() {
            self.state = match self.state {
                ReplyState::Body { more, left } => {
                    let take = usize::try_from(left).map_or(rest.len(), |l| l.min(rest.len()));
                    rest = &rest[take..];
                    self.body(more, left - take as u64)
                }
                ReplyState::Flags => {
                    rest = tail;
                    ReplyState::Size {
                        more: byte & MORE != 0,
                        left: if byte & LONG != 0 { 8 } else { 1 },
                        size: 0,
                    }
                }
                ReplyState::Size { more, left, size } => {
                    rest = tail;
                    let size = size << 8 | u64::from(byte);
                    if left > 1 {
                        ReplyState::Size {
                            more,
                            left: left - 1,
                            size,
                        }
                    } else {
                        self.body(more, size)
                    }
                }
            };
        }
    }

    fn body(&mut self, more: bool, left: u64) -> ReplyState {
        if left > 0 {
            return ReplyState::Body { more, left };
        }
        if !more {
            self.messages += 1;
        }
        ReplyState::Flags
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LIMITS: StreamLimits = StreamLimits {
        max_frame: 1024,
        max_frames_per_message: 8,
        max_message: 4096,
        max_command: 512,
        max_messages: u64::MAX,
        subscriptions_only: false,
        early_messages: 0,
        max_early_message: 0,
    };

    const SUBSCRIBER: StreamLimits = StreamLimits {
        max_frame: 256,
        max_frames_per_message: 1,
        max_message: 256,
        max_messages: 4,
        subscriptions_only: true,
        ..LIMITS
    };

    fn greeting() -> Vec<u8> {
        let mut g = vec![0u8; 64];
        g[0] = 0xFF;
        g[9] = 0x7F;
        g[10] = 3;
        g[11] = 1;
        g[12..16].copy_from_slice(b"NULL");
        g
    }

    fn command(body: &[u8]) -> Vec<u8> {
        let mut out = if body.len() > 255 {
            let mut h = vec![COMMAND | LONG];
            h.extend_from_slice(&(body.len() as u64).to_be_bytes());
            h
        } else {
            vec![COMMAND, body.len() as u8]
        };
        out.extend_from_slice(body);
        out
    }

    fn ready_body(properties: &[(&str, &[u8])]) -> Vec<u8> {
        let mut body = vec![5];
        body.extend_from_slice(b"READY");
        for (name, value) in properties {
            body.push(name.len() as u8);
            body.extend_from_slice(name.as_bytes());
            body.extend_from_slice(&(value.len() as u32).to_be_bytes());
            body.extend_from_slice(value);
        }
        body
    }

    fn ready() -> Vec<u8> {
        command(&ready_body(&[("Socket-Type", b"REQ"), ("Identity", b"")]))
    }

    fn frame(body: &[u8], more: bool) -> Vec<u8> {
        let more = if more { MORE } else { 0 };
        let mut out = if body.len() > 255 {
            let mut h = vec![LONG | more];
            h.extend_from_slice(&(body.len() as u64).to_be_bytes());
            h
        } else {
            vec![more, body.len() as u8]
        };
        out.extend_from_slice(body);
        out
    }

    fn handshake() -> Vec<u8> {
        [greeting(), ready()].concat()
    }

    fn feed(bytes: &[u8]) -> (ClientStream, Result<(), Violation>) {
        let mut stream = ClientStream::new(LIMITS);
        let verdict = stream.feed(bytes);
        (stream, verdict)
    }

    #[test]
    fn a_request_is_accepted() {
        let bytes = [handshake(), frame(b"", true), frame(&[7; 300], false)].concat();
        let (stream, verdict) = feed(&bytes);
        assert_eq!(verdict, Ok(()));
        assert!(stream.handshake_done());
        assert_eq!(stream.messages(), 1);
    }

    #[test]
    fn progress_is_reported_at_the_right_byte() {
        let mut stream = ClientStream::new(LIMITS);
        let greeting = greeting();
        stream.feed(&greeting[..9]).unwrap();
        assert!(!stream.signature_seen());
        stream.feed(&greeting[9..10]).unwrap();
        assert!(stream.signature_seen());
        stream.feed(&greeting[10..]).unwrap();
        let ready = ready();
        stream.feed(&ready[..ready.len() - 1]).unwrap();
        assert!(!stream.handshake_done());
        stream.feed(&ready[ready.len() - 1..]).unwrap();
        assert!(stream.handshake_done());
        let message = [frame(b"", true), frame(b"abc", false)].concat();
        stream.feed(&message[..message.len() - 1]).unwrap();
        assert_eq!(stream.messages(), 0);
        stream.feed(&message[message.len() - 1..]).unwrap();
        assert_eq!(stream.messages(), 1);
    }

    #[test]
    fn http_is_refused_at_the_first_byte() {
        let (_, verdict) = feed(b"G");
        assert_eq!(
            verdict,
            Err(Violation::BadSignature {
                offset: 0,
                byte: b'G'
            })
        );
    }

    #[test]
    fn bad_greetings_are_refused() {
        let cases: Vec<(usize, u8, Violation)> = vec![
            (
                9,
                0x7E,
                Violation::BadSignature {
                    offset: 9,
                    byte: 0x7E,
                },
            ),
            (10, 2, Violation::UnsupportedVersion(2)),
            (10, 4, Violation::UnsupportedVersion(4)),
            (32, 1, Violation::AsServer(1)),
        ];
        for (at, byte, violation) in cases {
            let mut g = greeting();
            g[at] = byte;
            assert_eq!(feed(&g).1, Err(violation), "byte {at} = {byte}");
        }
        for mechanism in [&b"CURVE"[..], b"PLAIN", b"NUL", b"NULLX", b"null"] {
            let mut g = greeting();
            g[12..32].fill(0);
            g[12..12 + mechanism.len()].copy_from_slice(mechanism);
            let verdict = feed(&g).1;
            assert!(
                matches!(verdict, Err(Violation::UnsupportedMechanism(_))),
                "{verdict:?}"
            );
        }
        let mut g = greeting();
        g[12..32].fill(0);
        g[12..17].copy_from_slice(b"CURVE");
        assert_eq!(
            feed(&g).1.unwrap_err().to_string(),
            "security mechanism \"CURVE\" is not NULL"
        );
    }

    #[test]
    fn bad_ready_commands_are_refused() {
        let too_long = command(&ready_body(&[("Socket-Type", &[b'R'; 600])]));
        let mut truncated_value = ready_body(&[("Socket-Type", b"REQ")]);
        truncated_value.pop();
        let cases: Vec<(Vec<u8>, Violation)> = vec![
            (
                frame(b"hello", false),
                Violation::ExpectedReady("a message frame"),
            ),
            (
                {
                    let mut c = command(&ready_body(&[("Socket-Type", b"REQ")]));
                    c[0] |= MORE;
                    c
                },
                Violation::ExpectedReady("a command with the MORE flag"),
            ),
            (
                command(b"\x05ERROR\x03bad"),
                Violation::ExpectedReady("another command"),
            ),
            (
                command(b"\x04PING"),
                Violation::ExpectedReady("another command"),
            ),
            (
                command(&ready_body(&[])),
                Violation::MalformedReady("no Socket-Type property"),
            ),
            (
                command(&ready_body(&[("Identity", b"x")])),
                Violation::MalformedReady("no Socket-Type property"),
            ),
            (
                command(&ready_body(&[("Socket-Type", b"")])),
                Violation::MalformedReady("empty Socket-Type"),
            ),
            (
                command(&ready_body(&[("Socket Type", b"REQ")])),
                Violation::MalformedReady("invalid property name"),
            ),
            (
                command(&truncated_value),
                Violation::MalformedReady("property value overruns the frame"),
            ),
            (
                command(&[ready_body(&[("Socket-Type", b"REQ")]), vec![3, b'a']].concat()),
                Violation::MalformedReady("truncated by the end of the frame"),
            ),
            (
                command(&[ready_body(&[("Socket-Type", b"REQ")]), vec![0]].concat()),
                Violation::MalformedReady("empty property name"),
            ),
            (
                command(b""),
                Violation::MalformedReady("empty command frame"),
            ),
            (
                too_long,
                Violation::CommandTooLarge {
                    size: 622,
                    limit: 512,
                },
            ),
            (
                [vec![COMMAND | LONG], (1u64 << 60).to_be_bytes().to_vec()].concat(),
                Violation::CommandTooLarge {
                    size: 1 << 60,
                    limit: 512,
                },
            ),
            (vec![0x84, 0], Violation::ReservedFlags(0x84)),
        ];
        for (bytes, violation) in cases {
            let verdict = feed(&[greeting(), bytes.clone()].concat()).1;
            assert_eq!(
                verdict,
                Err(violation),
                "case {:02x?}",
                &bytes[..bytes.len().min(16)]
            );
        }
    }

    #[test]
    fn socket_type_is_case_insensitive() {
        let bytes = [greeting(), command(&ready_body(&[("socket-TYPE", b"SUB")]))].concat();
        let (stream, verdict) = feed(&bytes);
        assert_eq!(verdict, Ok(()));
        assert!(stream.handshake_done());
    }

    #[test]
    fn a_frame_claiming_2_pow_60_bytes_is_refused_at_its_header() {
        let mut bytes = handshake();
        bytes.push(LONG);
        bytes.extend_from_slice(&(1u64 << 60).to_be_bytes());
        assert_eq!(
            feed(&bytes).1,
            Err(Violation::FrameTooLarge {
                size: 1 << 60,
                limit: 1024
            })
        );
        let mut bytes = handshake();
        bytes.push(LONG);
        bytes.extend_from_slice(&u64::MAX.to_be_bytes());
        assert!(matches!(
            feed(&bytes).1,
            Err(Violation::FrameTooLarge { .. })
        ));
    }

    #[test]
    fn empty_multipart_frames_stop_at_the_frame_limit() {
        let mut stream = ClientStream::new(LIMITS);
        stream.feed(&handshake()).unwrap();
        for _ in 0..LIMITS.max_frames_per_message {
            stream.feed(&frame(b"", true)).unwrap();
        }
        assert_eq!(
            stream.feed(&[MORE]),
            Err(Violation::TooManyFrames { limit: 8 })
        );
        // Dead from now on, whatever comes.
        assert_eq!(
            stream.feed(&frame(b"", false)),
            Err(Violation::TooManyFrames { limit: 8 })
        );
        assert_eq!(stream.messages(), 0);
    }

    #[test]
    fn the_frame_limit_is_per_message() {
        let mut stream = ClientStream::new(LIMITS);
        stream.feed(&handshake()).unwrap();
        for _ in 0..100 {
            for _ in 0..LIMITS.max_frames_per_message - 1 {
                stream.feed(&frame(b"x", true)).unwrap();
            }
            stream.feed(&frame(b"x", false)).unwrap();
        }
        assert_eq!(stream.messages(), 100);
    }

    #[test]
    fn sizes_at_the_limits() {
        let at_limit = [handshake(), frame(&[1; 1024], false)].concat();
        assert_eq!(feed(&at_limit).1, Ok(()));
        let over = [handshake(), frame(&[1; 1025], false)].concat();
        assert_eq!(
            feed(&over).1,
            Err(Violation::FrameTooLarge {
                size: 1025,
                limit: 1024
            })
        );
        let four = [
            handshake(),
            frame(&[1; 1024], true),
            frame(&[1; 1024], true),
            frame(&[1; 1024], true),
            frame(&[1; 1024], false),
        ]
        .concat();
        assert_eq!(feed(&four).1, Ok(()));
        let five = [
            handshake(),
            frame(&[1; 1024], true),
            frame(&[1; 1024], true),
            frame(&[1; 1024], true),
            frame(&[1; 1024], true),
            frame(&[1], false),
        ]
        .concat();
        assert_eq!(
            feed(&five).1,
            Err(Violation::MessageTooLarge {
                size: 4097,
                limit: 4096
            })
        );
    }

    #[test]
    fn commands_after_the_handshake_are_refused() {
        let bytes = [handshake(), command(b"\x04PING\x00\x00")].concat();
        assert_eq!(feed(&bytes).1, Err(Violation::UnexpectedCommand));
    }

    fn subscriber(bytes: &[u8]) -> (ClientStream, Result<(), Violation>) {
        let mut stream = ClientStream::new(SUBSCRIBER);
        let verdict = stream.feed(bytes);
        (stream, verdict)
    }

    #[test]
    fn a_subscriber_may_subscribe_and_cancel() {
        let bytes = [
            handshake(),
            frame(b"\x01", false),
            frame(b"\x01topic", false),
            frame(b"\x00topic", false),
        ]
        .concat();
        let (stream, verdict) = subscriber(&bytes);
        assert_eq!(verdict, Ok(()));
        assert_eq!(stream.messages(), 3);
    }

    #[test]
    fn a_subscriber_sends_only_subscriptions() {
        let cases = [
            (frame(b"\x02x", false), "first byte is not 0x01 or 0x00"),
            (frame(b"", false), "empty frame"),
            (frame(b"\x01", true), "more than one frame"),
        ];
        for (message, reason) in cases {
            let bytes = [handshake(), frame(b"\x01", false), message].concat();
            assert_eq!(
                subscriber(&bytes).1,
                Err(Violation::NotASubscription(reason))
            );
        }
        // The frame limit holds for subscriptions too.
        let long = [handshake(), frame(&[1; 300], false)].concat();
        assert!(matches!(
            subscriber(&long).1,
            Err(Violation::FrameTooLarge { size: 300, .. })
        ));
    }

    #[test]
    fn a_connection_sends_at_most_max_messages() {
        let one = frame(b"\x01a", false);
        let allowed = [handshake(), one.repeat(4)].concat();
        assert_eq!(subscriber(&allowed).1, Ok(()));
        // The fifth is refused at its first byte, before any of it is passed on.
        let mut stream = ClientStream::new(SUBSCRIBER);
        stream.feed(&allowed).unwrap();
        assert_eq!(
            stream.feed(&one[..1]),
            Err(Violation::TooManyMessages { limit: 4 })
        );
    }

    fn valid_stream() -> Vec<u8> {
        [
            handshake(),
            frame(b"", true),
            frame(&[9; 700], false),
            frame(b"", false),
            frame(b"a", true),
            frame(b"b", true),
            frame(&[3; 255], false),
        ]
        .concat()
    }

    proptest! {
        #[test]
        fn any_split_gives_the_same_verdict(
            cut in proptest::collection::vec(0usize..2000, 0..12),
            corrupt in proptest::option::of((0usize..2000, any::<u8>())),
        ) {
            let mut bytes = valid_stream();
            if let Some((at, byte)) = corrupt {
                let at = at % bytes.len();
                bytes[at] = byte;
            }
            let (whole, whole_verdict) = feed(&bytes);
            let mut cuts: Vec<usize> = cut.into_iter().map(|c| c % bytes.len()).collect();
            cuts.sort_unstable();
            let mut parts = ClientStream::new(LIMITS);
            let mut verdict = Ok(());
            let mut from = 0;
            for to in cuts.into_iter().chain([bytes.len()]) {
                verdict = parts.feed(&bytes[from..to]);
                if verdict.is_err() {
                    break;
                }
                from = to;
            }
            prop_assert_eq!(verdict, whole_verdict);
            prop_assert_eq!(parts.messages(), whole.messages());
            prop_assert_eq!(parts.handshake_done(), whole.handshake_done());
        }

        #[test]
        fn arbitrary_bytes_never_panic(
            prefix in any::<bool>(),
            bytes in proptest::collection::vec(any::<u8>(), 0..4096),
        ) {
            let mut stream = ClientStream::new(LIMITS);
            if prefix {
                stream.feed(&handshake()).unwrap();
            }
            let _ = stream.feed(&bytes);
        }
    }

    #[test]
    fn large_messages_pause_at_their_headers_and_ends() {
        let mut stream = ClientStream::new(LIMITS);
        stream.feed(&handshake()).unwrap();
        assert_eq!(stream.pause_at_large(600), None);
        let small = [frame(b"", true), frame(&[1; 500], false)].concat();
        let large = [frame(&[2; 400], true), frame(&[3; 300], false)].concat();
        let bytes = [small.clone(), large, small.clone()].concat();
        // The small message passes; the large one's second header asks for all its 700 bytes.
        let (used, pause) = stream.feed_until_pause(&bytes).unwrap();
        let second_header = small.len() + 9 + 400 + 9;
        assert_eq!((used, pause), (second_header, Some(Pause::Claim(700))));
        let (ended, pause) = stream.feed_until_pause(&bytes[used..]).unwrap();
        assert_eq!(pause, Some(Pause::LargeEnd));
        assert_eq!(stream.messages(), 2);
        assert_eq!(
            stream.feed_until_pause(&bytes[used + ended..]).unwrap(),
            (small.len(), None)
        );
        assert_eq!(stream.socket_type(), b"REQ");
    }

    #[test]
    fn a_message_already_large_is_claimed_when_pausing_starts() {
        let mut stream = ClientStream::new(LIMITS);
        stream
            .feed(&[handshake(), frame(&[1; 900], false)[..20].to_vec()].concat())
            .unwrap();
        assert_eq!(stream.pause_at_large(600), Some(900));
        let (_, pause) = stream.feed_until_pause(&[1; 889]).unwrap();
        assert_eq!(pause, Some(Pause::LargeEnd));
    }

    #[test]
    fn replies_are_counted_at_their_last_frame() {
        let reply = [frame(b"", true), frame(&[5; 70_000], false)].concat();
        let mut replies = Replies::default();
        for piece in reply.chunks(1000) {
            assert_eq!(replies.messages(), 0);
            replies.feed(piece);
        }
        assert_eq!(replies.messages(), 1);
        replies.feed(&[reply.clone(), reply].concat());
        assert_eq!(replies.messages(), 3);
    }

    #[test]
    fn a_valid_stream_byte_by_byte() {
        let bytes = valid_stream();
        let mut stream = ClientStream::new(LIMITS);
        for byte in &bytes {
            stream.feed(std::slice::from_ref(byte)).unwrap();
        }
        assert_eq!(stream.messages(), 3);
    }
}
