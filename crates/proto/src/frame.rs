//! The one framing of the control socket: a 4-byte big-endian length, then that many bytes of
//! msgpack, at most [`MAX_FRAME_BYTES`]. The master, the CLI and the test harness all frame
//! with [`ControlCodec`]; a reader that must not reserve a frame before its bytes arrive (the
//! master's admission of requests from local users) reads the header with [`frame_len`].
//!
//! The codec moves bytes; it does no I/O of its own.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::limits::MAX_FRAME_BYTES;

/// The length prefix of a control frame.
pub const FRAME_HEADER_BYTES: usize = 4;

/// Why a control frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("a frame of {len} bytes is larger than the {MAX_FRAME_BYTES} bytes a frame may have")]
    TooLarge { len: usize },
    #[error("the connection closed in the middle of a frame")]
    Truncated,
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl From<FrameError> for std::io::Error {
    fn from(err: FrameError) -> Self {
        match err {
            FrameError::Io(err) => err,
            FrameError::Truncated => std::io::Error::new(std::io::ErrorKind::UnexpectedEof, err),
            FrameError::TooLarge { .. } => {
                std::io::Error::new(std::io::ErrorKind::InvalidData, err)
            }
        }
    }
}

/// The body length a frame header announces, refused past [`MAX_FRAME_BYTES`].
pub fn frame_len(header: [u8; FRAME_HEADER_BYTES]) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes(header) as usize;
    if len > MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge { len });
    }
    Ok(len)
}

/// Frames and unframes control messages (see the module documentation). It keeps no state:
/// a frame is taken once all of it has arrived, and an announced length reserves nothing.
#[derive(Debug, Default)]
pub struct ControlCodec;

impl Decoder for ControlCodec {
    type Item = BytesMut;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, FrameError> {
        let Some(header) = src.get(..FRAME_HEADER_BYTES) else {
            return Ok(None);
        };
        let len = frame_len(header.try_into().expect("four bytes"))?;
        if src.len() < FRAME_HEADER_BYTES + len {
            return Ok(None);
        }
        src.advance(FRAME_HEADER_BYTES);
        Ok(Some(src.split_to(len)))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, FrameError> {
        match self.decode(src)? {
            Some(frame) => Ok(Some(frame)),
            None if src.is_empty() => Ok(None),
            None => Err(FrameError::Truncated),
        }
    }
}

impl Encoder<Bytes> for ControlCodec {
    type Error = FrameError;

    fn encode(&mut self, body: Bytes, dst: &mut BytesMut) -> Result<(), FrameError> {
        let len = u32::try_from(body.len())
            .ok()
            .filter(|len| *len as usize <= MAX_FRAME_BYTES)
            .ok_or(FrameError::TooLarge { len: body.len() })?;
        dst.reserve(FRAME_HEADER_BYTES + body.len());
        dst.put_u32(len);
        dst.put_slice(&body);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_the_end_of_a_stream_is_clean_or_truncated() {
        let mut codec = ControlCodec;
        let mut buf = BytesMut::new();
        codec
            .encode(Bytes::from_static(b"hello"), &mut buf)
            .unwrap();
        assert_eq!(&buf[..], b"\0\0\0\x05hello");
        assert_eq!(&codec.decode_eof(&mut buf).unwrap().unwrap()[..], b"hello");
        assert!(codec.decode_eof(&mut buf).unwrap().is_none());
        let mut cut = BytesMut::from(&b"\0\0\0\x05hel"[..]);
        assert!(
            codec.decode(&mut cut).unwrap().is_none(),
            "waits for the rest"
        );
        assert!(codec.decode(&mut cut).unwrap().is_none(), "and again");
        cut.extend_from_slice(b"lo\0\0");
        assert_eq!(&codec.decode(&mut cut).unwrap().unwrap()[..], b"hello");
        assert!(matches!(
            codec.decode_eof(&mut cut),
            Err(FrameError::Truncated)
        ));
    }

    #[test]
    fn a_frame_past_the_limit_is_refused_both_ways() {
        let mut codec = ControlCodec;
        let mut huge = BytesMut::from(&[0xff, 0xff, 0xff, 0xff][..]);
        assert!(matches!(
            codec.decode(&mut huge),
            Err(FrameError::TooLarge { len: 0xffff_ffff })
        ));
        let body = Bytes::from(vec![0; MAX_FRAME_BYTES + 1]);
        assert!(matches!(
            codec.encode(body, &mut BytesMut::new()),
            Err(FrameError::TooLarge { .. })
        ));
        assert_eq!(frame_len([0, 0, 1, 0]).unwrap(), 256);
    }
}
