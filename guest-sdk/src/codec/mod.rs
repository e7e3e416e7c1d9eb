//! Message and argument encoding: CBOR (RFC 8949) through serde.
//!
//! The codec is Spore's own, small and allocation-free on the common paths, because every
//! message crosses it twice and a guest's code size is shipped with every remote spawn of a
//! new module. It writes the forms wit/MESSAGES.md specifies (definite lengths where serde
//! knows them, externally tagged enums, structs as maps with text keys, pids as tag
//! [`PID_TAG`](crate::PID_TAG)) and reads any well-formed CBOR of those shapes, including
//! indefinite lengths and every float width, from other languages' encoders.
//!
//! Entry arguments are a CBOR array, one element per parameter. The `spore` CLI passes its
//! command-line arguments as an array of text strings; when an entry's parameters are not
//! all strings, each text is parsed into the parameter's type (`"3"` into a `u32`).

use crate::prelude::*;

mod decode;
mod encode;
#[cfg(test)]
mod tests;

use serde::de::{self, DeserializeOwned};
use serde::{Deserialize, Serialize};

/// The serde name through which [`Pid`](crate::Pid) asks this codec for its CBOR tag (other
/// serde formats see a plain newtype struct around `(node-name, incarnation, index)`).
pub(crate) const PID_MARKER: &str = "\0spore:pid";

/// The serde name through which a call's arguments ask for tag [`CALL_TAG`](crate::rpc::CALL_TAG).
pub(crate) const CALL_MARKER: &str = "\0spore:call";

/// Why a message or argument list could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodecError(pub String);

impl core::fmt::Display for CodecError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.0)
    }
}

impl core::error::Error for CodecError {}

impl serde::ser::Error for CodecError {
    fn custom<T: core::fmt::Display>(msg: T) -> Self {
        CodecError(msg.to_string())
    }
}

impl serde::de::Error for CodecError {
    fn custom<T: core::fmt::Display>(msg: T) -> Self {
        CodecError(msg.to_string())
    }

    fn invalid_type(unexpected: de::Unexpected, expected: &dyn de::Expected) -> Self {
        CodecError(format!("invalid type: {}, expected {expected}", describe(unexpected)))
    }

    fn invalid_value(unexpected: de::Unexpected, expected: &dyn de::Expected) -> Self {
        CodecError(format!("invalid value: {}, expected {expected}", describe(unexpected)))
    }
}

/// What serde found instead of what it expected, in words. Serde's own `Display` of it
/// prints floats, which would link float formatting (about 12 KB) into every guest.
fn describe(unexpected: de::Unexpected) -> String {
    use de::Unexpected as U;
    match unexpected {
        U::Bool(b) => format!("boolean `{b}`"),
        U::Unsigned(n) => format!("integer `{n}`"),
        U::Signed(n) => format!("integer `{n}`"),
        U::Float(_) => "a floating-point number".into(),
        U::Char(c) => format!("character `{c}`"),
        U::Str(text) => format!("text \"{text}\""),
        U::Bytes(_) => "a byte string".into(),
        U::Unit => "null".into(),
        U::Option => "an optional value".into(),
        U::NewtypeStruct => "a newtype struct".into(),
        U::Seq => "an array".into(),
        U::Map => "a map".into(),
        U::Enum => "an enum".into(),
        U::UnitVariant => "a unit variant".into(),
        U::NewtypeVariant => "a newtype variant".into(),
        U::TupleVariant => "a tuple variant".into(),
        U::StructVariant => "a struct variant".into(),
        U::Other(other) => other.into(),
    }
}

/// Encodes `value` as CBOR.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    let mut encoder = encode::Encoder::with_capacity(96);
    value.serialize(&mut encoder)?;
    Ok(encoder.into_bytes())
}

/// Largest buffer [`with_encoded`] keeps for the next message.
const KEPT_BUFFER_BYTES: usize = 64 << 10;

process_local! {
    /// The buffer messages are encoded into before a send (the host copies them out).
    static SEND_BUFFER: core::cell::Cell<Vec<u8>> = core::cell::Cell::new(Vec::new());
}

/// Encodes `value` into a buffer reused from message to message and passes the bytes to
/// `f`: a send copies them to the host at once, so it needs no allocation of its own.
pub(crate) fn with_encoded<T: Serialize + ?Sized, R>(
    value: &T,
    f: impl FnOnce(&[u8]) -> R,
) -> Result<R, CodecError> {
    // Taken, not borrowed: encoding may (through a pid's node name) re-enter.
    let mut buffer = SEND_BUFFER.with(core::cell::Cell::take);
    buffer.clear();
    let mut encoder = encode::Encoder::from_vec(buffer);
    let encoded = value.serialize(&mut encoder);
    let buffer = encoder.into_bytes();
    let result = encoded.map(|()| f(&buffer));
    if buffer.capacity() <= KEPT_BUFFER_BYTES {
        SEND_BUFFER.with(|kept| kept.set(buffer));
    }
    result
}

/// Splits the arguments of a process spawned by a call (tag
/// [`CALL_TAG`](crate::rpc::CALL_TAG) over `[caller, reference, args]`) into the caller,
/// the reference its answer is tagged with, and the entry's own arguments.
pub(crate) fn split_call(bytes: &[u8]) -> Option<(crate::Pid, u64, &[u8])> {
    let mut decoder = decode::Decoder::new(bytes);
    let (caller, reference) = decoder.call_header().ok()?;
    Some((caller, reference, decoder.rest()))
}

/// Decodes one CBOR item, the whole of `bytes`, into a `T` (which may borrow from `bytes`).
pub fn decode<'de, T: Deserialize<'de>>(bytes: &'de [u8]) -> Result<T, CodecError> {
    let mut decoder = decode::Decoder::new(bytes);
    let value = T::deserialize(&mut decoder)?;
    decoder.end()?;
    Ok(value)
}

/// Decodes an entry's argument list: a CBOR array of the parameters, or (from the command
/// line) an array of texts parsed into the parameter types.
pub fn decode_args<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let bytes = if bytes.is_empty() { &[0x80][..] } else { bytes };
    let typed = decode::<T>(bytes);
    if typed.is_ok() || !decode::Decoder::new(bytes).texts_only() {
        return typed.map_err(|e| CodecError(format!("bad arguments: {e}")));
    }
    let mut decoder = decode::Decoder::parsing_texts(bytes);
    T::deserialize(&mut decoder)
        .and_then(|value| decoder.end().map(|()| value))
        .map_err(|e| CodecError(format!("bad arguments: {e}")))
}
