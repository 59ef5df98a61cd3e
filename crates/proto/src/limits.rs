//! Limits on untrusted bytes, checked before serde sees them.
//!
//! [`check`] walks one msgpack value without allocating and rejects anything deeper than
//! [`MAX_DEPTH`], any collection longer than [`MAX_COLLECTION_LEN`] (or longer than the bytes
//! that are left could hold), more than [`MAX_TOTAL_ITEMS`] items in all, truncated input and
//! trailing bytes. Only then is the value handed to `rmp_serde`, so a hostile length prefix can
//! never make the decoder allocate more than the frame itself.

use crate::codec::DecodeError;

/// The largest frame (ZMQ message or control-socket frame) brine accepts: 16 MiB.
pub const MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;
/// The deepest nesting of arrays and maps in one message.
pub const MAX_DEPTH: usize = 16;
/// The most elements one array or map may hold.
pub const MAX_COLLECTION_LEN: usize = 65_536;
/// The most values (of any kind, at any depth) in one message.
pub const MAX_TOTAL_ITEMS: usize = 1_000_000;
/// The largest job (encoded: function, arguments, target and the rest) a master publishes:
/// every job is stored, and sent to each of its minions. Salt-style arguments (commands, file
/// contents of a few pages, pillar overrides) are far below it; bulk data travels as files.
pub const MAX_JOB_BYTES: usize = 1024 * 1024;
/// The most minions a publication's header lists by id (see `msg::PublicationHeader::to`):
/// about 26 KiB of ids in every copy. Past it a minion asks the master before it runs a job.
pub const MAX_LISTED_RECIPIENTS: usize = 2048;
/// The most minions a job is sent to one by one, each under its own topic, so that no other
/// minion receives it. Sending a copy per minion costs the PUB socket a pass over every
/// subscriber for each copy: past a few, one copy for everyone (the others drop it before
/// decrypting) is cheaper (1000 copies made a 1000-minion ping 2× slower).
pub const MAX_TOPIC_RECIPIENTS: usize = 16;
/// The largest grains (encoded) a minion reports: the hello that carries them travels in a
/// Noise handshake message of at most 64 KiB, and the master keeps every minion's in memory. A
/// host's own grains are 1–2 KiB.
pub const MAX_GRAINS_BYTES: usize = 48 * 1024;

/// Checks that `bytes` hold exactly one msgpack value within the limits above.
pub fn check(bytes: &[u8]) -> Result<(), DecodeError> {
    if bytes.len() > MAX_FRAME_BYTES {
        return Err(DecodeError::TooLarge {
            len: bytes.len(),
            max: MAX_FRAME_BYTES,
        });
    }
    let mut walker = Walker {
        bytes,
        pos: 0,
        items: 0,
    };
    walker.value(0)?;
    if walker.pos != bytes.len() {
        return Err(DecodeError::TrailingBytes {
            extra: bytes.len() - walker.pos,
        });
    }
    Ok(())
}

struct Walker<'a> {
    bytes: &'a [u8],
    pos: usize,
    items: usize,
}

impl Walker<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], DecodeError> {
        let end = self.pos.checked_add(n).ok_or(DecodeError::Truncated)?;
        if end > self.bytes.len() {
            return Err(DecodeError::Truncated);
        }
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn uint(&mut self, width: usize) -> Result<usize, DecodeError> {
        let raw = self.take(width)?;
        let mut n: u64 = 0;
        for b in raw {
            n = (n << 8) | u64::from(*b);
        }
        usize::try_from(n).map_err(|_| DecodeError::Truncated)
    }

    fn skip(&mut self, n: usize) -> Result<(), DecodeError> {
        self.take(n).map(|_| ())
    }

    fn collection(&mut self, len: usize, per_item: usize, depth: usize) -> Result<(), DecodeError> {
        if depth + 1 > MAX_DEPTH {
            return Err(DecodeError::TooDeep { max: MAX_DEPTH });
        }
        let remaining = self.bytes.len() - self.pos;
        let items = len.checked_mul(per_item).ok_or(DecodeError::Truncated)?;
        if len > MAX_COLLECTION_LEN {
            return Err(DecodeError::CollectionTooLong {
                len,
                max: MAX_COLLECTION_LEN,
            });
        }
        // Every item takes at least one byte: a longer claim is a lie, caught before any work.
        if items > remaining {
            return Err(DecodeError::Truncated);
        }
        for _ in 0..items {
            self.value(depth + 1)?;
        }
        Ok(())
    }

    fn value(&mut self, depth: usize) -> Result<(), DecodeError> {
        self.items += 1;
        if self.items > MAX_TOTAL_ITEMS {
            return Err(DecodeError::TooManyItems {
                max: MAX_TOTAL_ITEMS,
            });
        }
        let marker = self.take(1)?[0];
        match marker {
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => Ok(()),
            0x80..=0x8f => self.collection(usize::from(marker & 0x0f), 2, depth),
            0x90..=0x9f => self.collection(usize::from(marker & 0x0f), 1, depth),
            0xa0..=0xbf => self.skip(usize::from(marker & 0x1f)),
            0xc1 => Err(DecodeError::Malformed(
                "reserved msgpack marker 0xc1".into(),
            )),
            // bin 8/16/32, str 8/16/32
            0xc4 | 0xd9 => {
                let n = self.uint(1)?;
                self.skip(n)
            }
            0xc5 | 0xda => {
                let n = self.uint(2)?;
                self.skip(n)
            }
            0xc6 | 0xdb => {
                let n = self.uint(4)?;
                self.skip(n)
            }
            // ext 8/16/32: length, type byte, data
            0xc7 => {
                let n = self.uint(1)?;
                self.skip(n + 1)
            }
            0xc8 => {
                let n = self.uint(2)?;
                self.skip(n + 1)
            }
            0xc9 => {
                let n = self.uint(4)?;
                self.skip(n.checked_add(1).ok_or(DecodeError::Truncated)?)
            }
            0xca => self.skip(4),
            0xcb => self.skip(8),
            0xcc | 0xd0 => self.skip(1),
            0xcd | 0xd1 => self.skip(2),
            0xce | 0xd2 => self.skip(4),
            0xcf | 0xd3 => self.skip(8),
            // fixext 1/2/4/8/16
            0xd4 => self.skip(2),
            0xd5 => self.skip(3),
            0xd6 => self.skip(5),
            0xd7 => self.skip(9),
            0xd8 => self.skip(17),
            0xdc => {
                let n = self.uint(2)?;
                self.collection(n, 1, depth)
            }
            0xdd => {
                let n = self.uint(4)?;
                self.collection(n, 1, depth)
            }
            0xde => {
                let n = self.uint(2)?;
                self.collection(n, 2, depth)
            }
            0xdf => {
                let n = self.uint(4)?;
                self.collection(n, 2, depth)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested_arrays(depth: usize) -> Vec<u8> {
        let mut bytes = vec![0x91; depth];
        bytes.push(0xc0);
        bytes
    }

    #[test]
    fn accepts_depth_sixteen_and_rejects_seventeen() {
        assert!(check(&nested_arrays(16)).is_ok());
        assert!(matches!(
            check(&nested_arrays(17)),
            Err(DecodeError::TooDeep { .. })
        ));
        assert!(matches!(
            check(&nested_arrays(100_000)),
            Err(DecodeError::TooDeep { .. })
        ));
    }

    #[test]
    fn rejects_lengths_without_bodies() {
        for bytes in [
            vec![0xdd, 0xff, 0xff, 0xff, 0xff],
            vec![0xdf, 0xff, 0xff, 0xff, 0xff],
            vec![0xdb, 0xff, 0xff, 0xff, 0xff],
            vec![0xc6, 0xff, 0xff, 0xff, 0xff],
            vec![0xc9, 0xff, 0xff, 0xff, 0xff, 0x01],
        ] {
            assert!(check(&bytes).is_err(), "{bytes:x?} accepted");
        }
    }

    #[test]
    fn rejects_millions_of_empty_strings() {
        let mut bytes = vec![0xdd, 0x01, 0x00, 0x00, 0x00];
        bytes.extend(std::iter::repeat_n(0xa0, 16 * 1024 * 1024 - 5));
        assert!(matches!(
            check(&bytes),
            Err(DecodeError::CollectionTooLong { .. })
        ));
    }

    #[test]
    fn rejects_trailing_bytes_and_truncation() {
        assert!(matches!(
            check(&[0xc0, 0xc0]),
            Err(DecodeError::TrailingBytes { extra: 1 })
        ));
        assert!(matches!(check(&[0x92, 0x01]), Err(DecodeError::Truncated)));
        assert!(matches!(check(&[]), Err(DecodeError::Truncated)));
    }
}
