//! Frame encoding and decoding: `u32 length (LE)` + postcard header + raw payload.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::Frame;

/// Slack allowed for a frame header beyond the largest payload: names, entries and exit
/// reasons are bounded where they enter the node, so headers stay far below this.
pub const MAX_HEADER_BYTES: usize = 64 << 10;

/// Why bytes from a peer are not a frame. Each closes the connection that sent them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The length prefix is over the limit.
    #[error("frame of {len} bytes is over the limit of {max}")]
    TooLarge {
        /// The announced length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The header does not decode (an unknown frame type, a truncated field).
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// A frame that carries no payload had bytes after its header.
    #[error("{0} bytes after a frame that carries no payload")]
    Trailing(usize),
}

/// Appends `frame` and its `payload` to `out`.
pub fn encode(frame: &Frame, payload: &[u8], out: &mut BytesMut) {
    let start = out.len();
    out.put_u32_le(0);
    let header_start = out.len();
    // Serializing a header into a growable buffer cannot fail: every field is a plain
    // number, string or vector.
    let mut writer = out.writer();
    postcard::to_io(frame, &mut writer).expect("frame headers always serialize");
    let out = writer.into_inner();
    out.put_slice(payload);
    let len = (out.len() - header_start) as u32;
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
}

/// Takes one frame off the front of `buf`: `Ok(None)` when more bytes are needed, an error
/// when what is there can never be a valid frame of at most `max_frame` bytes.
pub fn decode(buf: &mut BytesMut, max_frame: usize) -> Result<Option<(Frame, Bytes)>, DecodeError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if len > max_frame {
        return Err(DecodeError::TooLarge { len, max: max_frame });
    }
    if buf.len() < 4 + len {
        buf.reserve(4 + len - buf.len());
        return Ok(None);
    }
    buf.advance(4);
    let body = buf.split_to(len).freeze();
    let (frame, rest) =
        postcard::take_from_bytes::<Frame>(&body).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    let header_len = body.len() - rest.len();
    if frame.has_payload() {
        Ok(Some((frame, body.slice(header_len..))))
    } else if rest.is_empty() {
        Ok(Some((frame, Bytes::new())))
    } else {
        Err(DecodeError::Trailing(rest.len()))
    }
}
