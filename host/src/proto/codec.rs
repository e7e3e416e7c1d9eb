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
    encode_head(frame, payload.len(), out);
    out.put_slice(payload);
}

/// Appends the length prefix and header of `frame` for a payload of `payload_len` bytes,
/// which the caller sends right after: a large payload then goes to the stream as it is,
/// without a copy into the header's buffer.
pub fn encode_head(frame: &Frame, payload_len: usize, out: &mut BytesMut) {
    let start = out.len();
    out.put_u32_le(0);
    let header_start = out.len();
    // Serializing a header into a growable buffer cannot fail: every field is a plain
    // number, string or vector.
    let mut writer = out.writer();
    postcard::to_io(frame, &mut writer).expect("frame headers always serialize");
    let out = writer.into_inner();
    let len = (out.len() - header_start + payload_len) as u32;
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
}

/// How many more bytes the frame at the front of `buf` needs to be whole: 0 when it is, an
/// error when its length prefix is over `max_frame`.
pub fn missing(buf: &[u8], max_frame: usize) -> Result<usize, DecodeError> {
    let Some(prefix) = buf.first_chunk::<4>() else { return Ok(4 - buf.len()) };
    let len = u32::from_le_bytes(*prefix) as usize;
    if len > max_frame {
        return Err(DecodeError::TooLarge { len, max: max_frame });
    }
    Ok((4 + len).saturating_sub(buf.len()))
}

/// Takes one frame off the front of `buf`: `Ok(None)` when more bytes are needed, an error
/// when what is there can never be a valid frame of at most `max_frame` bytes.
pub fn decode(buf: &mut BytesMut, max_frame: usize) -> Result<Option<(Frame, Bytes)>, DecodeError> {
    match missing(buf, max_frame)? {
        0 => {
            let len = buf.get_u32_le() as usize;
            parse(buf.split_to(len).freeze()).map(Some)
        }
        more => {
            buf.reserve(more);
            Ok(None)
        }
    }
}

/// [`decode`] from shared bytes (a chunk as the transport received it): the frame's payload
/// is a slice of `buf`, with no copy.
pub fn decode_shared(buf: &mut Bytes, max_frame: usize) -> Result<Option<(Frame, Bytes)>, DecodeError> {
    if missing(buf, max_frame)? > 0 {
        return Ok(None);
    }
    let len = buf.get_u32_le() as usize;
    parse(buf.split_to(len)).map(Some)
}

/// Splits a frame's body into its header and payload.
fn parse(body: Bytes) -> Result<(Frame, Bytes), DecodeError> {
    let (frame, rest) =
        postcard::take_from_bytes::<Frame>(&body).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    let header_len = body.len() - rest.len();
    if frame.has_payload() {
        Ok((frame, body.slice(header_len..)))
    } else if rest.is_empty() {
        Ok((frame, Bytes::new()))
    } else {
        Err(DecodeError::Trailing(rest.len()))
    }
}

/// Cuts a byte stream that arrives in chunks into frames. A frame that lies whole in a chunk
/// is sliced out of it without a copy; only a frame that spans chunks is copied, once.
#[derive(Debug)]
pub struct FrameSplitter {
    /// What is left of the last chunk.
    chunk: Bytes,
    /// The start of a frame that spans chunks, topped up to exactly that frame.
    partial: BytesMut,
    max_frame: usize,
}

impl FrameSplitter {
    /// A splitter for frames of at most `max_frame` bytes.
    pub fn new(max_frame: usize) -> Self {
        Self { chunk: Bytes::new(), partial: BytesMut::new(), max_frame }
    }

    /// Adds the next chunk; call it only once [`next_frame`](Self::next_frame) has
    /// returned `Ok(None)` (the previous chunk is used up by then).
    pub fn push(&mut self, chunk: Bytes) {
        debug_assert!(self.chunk.is_empty(), "push before the last chunk was used up");
        self.chunk = chunk;
    }

    /// True when no bytes of an unfinished frame are held.
    pub fn is_empty(&self) -> bool {
        self.chunk.is_empty() && self.partial.is_empty()
    }

    /// The next whole frame, `Ok(None)` when more bytes are needed, or an error when the
    /// bytes can never be a frame of at most `max_frame` bytes.
    pub fn next_frame(&mut self) -> Result<Option<(Frame, Bytes)>, DecodeError> {
        loop {
            if self.partial.is_empty() {
                if let Some(frame) = decode_shared(&mut self.chunk, self.max_frame)? {
                    return Ok(Some(frame));
                }
                // The rest of the chunk begins a frame that later chunks complete.
                self.partial.extend_from_slice(&self.chunk);
                self.chunk.clear();
                return Ok(None);
            }
            let missing = missing(&self.partial, self.max_frame)?;
            if missing == 0 {
                return decode(&mut self.partial, self.max_frame);
            }
            if self.chunk.is_empty() {
                return Ok(None);
            }
            // Once the length is known, one allocation holds the whole frame.
            self.partial.reserve(missing);
            let take = missing.min(self.chunk.len());
            self.partial.extend_from_slice(&self.chunk.split_to(take));
        }
    }
}
