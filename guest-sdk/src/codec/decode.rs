//! The CBOR reader: a serde `Deserializer` over a byte slice that borrows strings and byte
//! strings from it and never allocates for definite-length items.

use crate::prelude::*;

use alloc::borrow::Cow;

use serde::de::{self, DeserializeSeed, Visitor};

use super::encode::{INDEFINITE, major, simple};
use super::{CodecError, PID_MARKER};
use crate::pid::{PID_TAG, Pid};
use crate::rpc::CALL_TAG;

/// A pid's tag ([`PID_TAG`], in four bytes) and the head of its definite array of three.
const CANONICAL_PID_HEAD: [u8; 6] = {
    let tag = PID_TAG.to_be_bytes();
    [major::TAG | 26, tag[4], tag[5], tag[6], tag[7], major::ARRAY | 3]
};

/// How deeply arrays, maps and tags may nest: a hostile message cannot exhaust the stack.
const MAX_DEPTH: u32 = 256;

/// The head of an item: major type, additional information and its argument.
#[derive(Clone, Copy)]
struct Head {
    major: u8,
    info: u8,
    value: u64,
}

impl Head {
    /// Whether an indefinite-length string, array or map follows.
    fn indefinite(self) -> bool {
        self.info == INDEFINITE
    }
}

/// An item as [`Decoder::item`] read it; arrays and maps give their length (`None` when
/// indefinite) and leave their elements to be read.
enum Item<'de> {
    Unsigned(u64),
    Negative(i64),
    Bytes(Cow<'de, [u8]>),
    Text(Cow<'de, str>),
    Array(Option<usize>),
    Map(Option<usize>),
    Bool(bool),
    Null,
    F32(f32),
    F64(f64),
}

/// Reads one CBOR item from a slice.
pub(super) struct Decoder<'de> {
    input: &'de [u8],
    pos: usize,
    depth: u32,
    /// Whether a text may stand for a number, a boolean or a character, parsed from it:
    /// entry arguments from the command line.
    texts: bool,
}

/// An error with a fixed text.
fn error(text: &str) -> CodecError {
    CodecError(text.to_owned())
}

/// The input ended inside an item.
fn truncated() -> CodecError {
    error("the message ends inside an item")
}

impl<'de> Decoder<'de> {
    /// A decoder at the start of `input`.
    pub(super) fn new(input: &'de [u8]) -> Self {
        Self { input, pos: 0, depth: 0, texts: false }
    }

    /// A decoder at the start of `input` that parses texts into the numbers, booleans and
    /// characters asked for. The same type as [`Decoder::new`]'s, so that decoding a
    /// type both ways costs a guest no second copy of its deserialization code.
    pub(super) fn parsing_texts(input: &'de [u8]) -> Self {
        Self { texts: true, ..Self::new(input) }
    }

    /// Whether the input is an array of texts and nothing else.
    pub(super) fn texts_only(mut self) -> bool {
        let Ok(array) = self.head() else { return false };
        if array.major != major::ARRAY {
            return false;
        }
        let mut left = array.value;
        loop {
            let ended = if array.indefinite() { self.at_break().unwrap_or(false) } else { left == 0 };
            if ended {
                return self.end().is_ok();
            }
            left = left.saturating_sub(1);
            match self.head() {
                Ok(head) if head.major == major::TEXT && self.string(head).is_ok() => {}
                _ => return false,
            }
        }
    }

    /// The next item, consumed, if texts are parsed and it is one.
    fn text_to_parse(&mut self) -> Result<Option<Cow<'de, str>>, CodecError> {
        if !self.texts || self.peek()? & 0xe0 != major::TEXT {
            return Ok(None);
        }
        match self.item()? {
            Item::Text(text) => Ok(Some(text)),
            _ => Err(error("expected a text")),
        }
    }

    /// Reads the head of a call's arguments, tag `CALL_TAG` over `[caller, reference, args]`,
    /// up to `args`.
    pub(super) fn call_header(&mut self) -> Result<(crate::Pid, u64), CodecError> {
        let tag = self.head()?;
        let array = self.head()?;
        if tag.major != major::TAG || tag.value != CALL_TAG || array.major != major::ARRAY || array.value != 3
        {
            return Err(error("not a call"));
        }
        let caller = self.pid()?;
        let Item::Unsigned(reference) = self.item()? else {
            return Err(error("a call's reference is an unsigned integer"));
        };
        Ok((caller, reference))
    }

    /// The input not read yet.
    pub(super) fn rest(&self) -> &'de [u8] {
        &self.input[self.pos..]
    }

    /// Fails unless the whole input has been read.
    pub(super) fn end(&self) -> Result<(), CodecError> {
        if self.pos == self.input.len() { Ok(()) } else { Err(error("trailing bytes after the message")) }
    }

    /// The next byte, not consumed.
    #[inline]
    fn peek(&self) -> Result<u8, CodecError> {
        self.input.get(self.pos).copied().ok_or_else(truncated)
    }

    /// Consumes the next byte if it is a break (the end of an indefinite-length item).
    #[inline]
    fn at_break(&mut self) -> Result<bool, CodecError> {
        let at = self.peek()? == simple::BREAK;
        self.pos += usize::from(at);
        Ok(at)
    }

    /// Consumes the next `n` bytes.
    #[inline]
    fn take(&mut self, n: usize) -> Result<&'de [u8], CodecError> {
        let end = self.pos.checked_add(n).filter(|&end| end <= self.input.len()).ok_or_else(truncated)?;
        let bytes = &self.input[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    /// Consumes the head of the next item. The common short head (argument below 24) is
    /// read inline; longer ones out of line.
    #[inline]
    fn head(&mut self) -> Result<Head, CodecError> {
        let initial = self.peek()?;
        self.pos += 1;
        let (major, info) = (initial & 0xe0, initial & 0x1f);
        if info < 24 {
            return Ok(Head { major, info, value: u64::from(info) });
        }
        self.long_head(major, info)
    }

    /// The rest of a head whose additional information is 24 or more.
    #[inline(never)]
    fn long_head(&mut self, major: u8, info: u8) -> Result<Head, CodecError> {
        let value = match info {
            // 1, 2, 4 or 8 bytes, big-endian: one loop is less code than four conversions.
            24..=27 => self.take(1 << (info - 24))?.iter().fold(0, |value, &b| value << 8 | u64::from(b)),
            INDEFINITE if matches!(major, major::BYTES | major::TEXT | major::ARRAY | major::MAP) => 0,
            INDEFINITE => return Err(error("a break outside an indefinite-length item")),
            _ => return Err(error("a malformed item head (reserved additional information)")),
        };
        Ok(Head { major, info, value })
    }

    /// The length of a definite string, array or map; at most the bytes left, since every
    /// element takes one byte at least (so a claimed length cannot make anyone reserve memory).
    fn length(&self, head: Head) -> Result<usize, CodecError> {
        usize::try_from(head.value)
            .ok()
            .filter(|&len| len <= self.input.len() - self.pos)
            .ok_or_else(truncated)
    }

    /// Goes one level deeper into arrays, maps or tags.
    fn enter(&mut self) -> Result<(), CodecError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(error("the message nests too deeply"));
        }
        Ok(())
    }

    /// Comes back up one level.
    fn leave(&mut self) {
        self.depth -= 1;
    }

    /// The content of a byte or text string whose head is `head`: borrowed when definite,
    /// the chunks joined when indefinite.
    fn string(&mut self, head: Head) -> Result<Cow<'de, [u8]>, CodecError> {
        if !head.indefinite() {
            let len = self.length(head)?;
            return Ok(Cow::Borrowed(self.take(len)?));
        }
        let mut joined = Vec::new();
        while !self.at_break()? {
            let chunk = self.head()?;
            if chunk.major != head.major || chunk.indefinite() {
                return Err(error("a chunk of another type inside an indefinite-length string"));
            }
            let len = self.length(chunk)?;
            joined.extend_from_slice(self.take(len)?);
        }
        Ok(Cow::Owned(joined))
    }

    /// Consumes the next item without looking at it.
    fn skip(&mut self) -> Result<(), CodecError> {
        let head = self.head()?;
        match head.major {
            major::BYTES | major::TEXT => {
                self.string(head)?;
            }
            major::ARRAY | major::MAP => {
                self.enter()?;
                if head.indefinite() {
                    while !self.at_break()? {
                        self.skip()?;
                    }
                } else {
                    let items = if head.major == major::MAP { 2 } else { 1 };
                    for _ in 0..self.length(head)? * items {
                        self.skip()?;
                    }
                }
                self.leave();
            }
            major::TAG => {
                self.enter()?;
                self.skip()?;
                self.leave();
            }
            _ => {}
        }
        Ok(())
    }

    /// Reads the next item up to its content: scalars and strings whole, arrays and maps
    /// up to their elements. Tags other than a pid's carry no meaning here and are passed
    /// over. Not generic, so that every visitor's [`Decoder::visit`] stays small.
    #[inline(never)]
    fn item(&mut self) -> Result<Item<'de>, CodecError> {
        let mut head = self.head()?;
        let mut tags = 0;
        while head.major == major::TAG {
            tags += 1;
            if self.depth + tags > MAX_DEPTH {
                return Err(error("the message nests too deeply"));
            }
            head = self.head()?;
        }
        let length = |de: &Self| if head.indefinite() { Ok(None) } else { de.length(head).map(Some) };
        Ok(match head.major {
            major::UNSIGNED => Item::Unsigned(head.value),
            // Below -2^63 is out of every Rust integer type serde reads but i128, whose
            // visitor would link 128-bit formatting into every guest.
            major::NEGATIVE => match i64::try_from(head.value) {
                Ok(v) => Item::Negative(-1 - v),
                Err(_) => return Err(error("a negative integer below -2^63")),
            },
            major::BYTES => Item::Bytes(self.string(head)?),
            major::TEXT => Item::Text(match self.string(head)? {
                Cow::Borrowed(bytes) => Cow::Borrowed(core::str::from_utf8(bytes).map_err(|_| not_utf8())?),
                Cow::Owned(bytes) => Cow::Owned(String::from_utf8(bytes).map_err(|_| not_utf8())?),
            }),
            major::ARRAY => Item::Array(length(self)?),
            major::MAP => Item::Map(length(self)?),
            _ => match head.info {
                20 => Item::Bool(false),
                21 => Item::Bool(true),
                22 | 23 => Item::Null,
                25 => Item::F32(f16_to_f32(head.value as u16)),
                26 => Item::F32(f32::from_bits(head.value as u32)),
                27 => Item::F64(f64::from_bits(head.value)),
                _ => return Err(error("an unassigned CBOR simple value")),
            },
        })
    }

    /// Hands the next item to `visitor`, whatever it is: for `deserialize_any`. The typed
    /// `deserialize_*` methods hand over only what their type can be, so that each
    /// visitor's code has one or two arms instead of all of these.
    fn visit<V: Visitor<'de>>(&mut self, visitor: V) -> Result<V::Value, CodecError> {
        match self.item()? {
            Item::Unsigned(v) => visitor.visit_u64(v),
            Item::Negative(v) => visitor.visit_i64(v),
            Item::Bytes(bytes) => visit_bytes(bytes, visitor),
            Item::Text(text) => visit_text(text, visitor),
            Item::Array(left) => self.array(left, visitor),
            Item::Map(left) => self.map(left, visitor),
            Item::Bool(b) => visitor.visit_bool(b),
            Item::Null => visitor.visit_unit(),
            Item::F32(f) => visitor.visit_f32(f),
            Item::F64(f) => visitor.visit_f64(f),
        }
    }

    /// Hands `visitor` the elements of an array whose head has been read.
    fn array<V: Visitor<'de>>(&mut self, left: Option<usize>, visitor: V) -> Result<V::Value, CodecError> {
        self.enter()?;
        let mut seq = Seq { de: self, left };
        let value = visitor.visit_seq(&mut seq)?;
        seq.finish()?;
        self.leave();
        Ok(value)
    }

    /// Hands `visitor` the entries of a map whose head has been read.
    fn map<V: Visitor<'de>>(&mut self, left: Option<usize>, visitor: V) -> Result<V::Value, CodecError> {
        self.enter()?;
        let mut map = Map { de: self, left };
        let value = visitor.visit_map(&mut map)?;
        map.finish()?;
        self.leave();
        Ok(value)
    }

    /// Hands `visitor` a number, for a float.
    fn float<V: Visitor<'de>>(&mut self, visitor: V) -> Result<V::Value, CodecError> {
        match self.item()? {
            Item::F64(f) => visitor.visit_f64(f),
            Item::F32(f) => visitor.visit_f32(f),
            Item::Unsigned(n) => visitor.visit_u64(n),
            Item::Negative(n) => visitor.visit_i64(n),
            other => mismatch(&other, &visitor),
        }
    }

    /// Reads a pid: tag [`PID_TAG`] over `[node-name, incarnation, index]`.
    #[inline(never)]
    fn pid(&mut self) -> Result<Pid, CodecError> {
        let bad = || error("a pid is [node-name, incarnation, index]");
        // The form every Spore encoder writes, tag and definite array in one look.
        let array =
            if self.input.get(self.pos..self.pos + CANONICAL_PID_HEAD.len()) == Some(&CANONICAL_PID_HEAD) {
                self.pos += CANONICAL_PID_HEAD.len();
                Head { major: major::ARRAY, info: 3, value: 3 }
            } else {
                let tag = self.head()?;
                if tag.major != major::TAG || tag.value != PID_TAG {
                    return Err(error("expected a pid (tag SPID)"));
                }
                self.head()?
            };
        if array.major != major::ARRAY || !array.indefinite() && array.value != 3 {
            return Err(bad());
        }
        let name = self.head()?;
        if name.major != major::TEXT {
            return Err(bad());
        }
        let node = crate::pid::node_id_of_bytes(&self.string(name)?).ok_or_else(not_utf8)?;
        let (Some(incarnation), Some(index)) = (self.unsigned()?, self.unsigned()?) else {
            return Err(bad());
        };
        let incarnation = u32::try_from(incarnation).map_err(|_| bad())?;
        if array.indefinite() && !self.at_break()? {
            return Err(bad());
        }
        Ok(Pid { node, incarnation, index })
    }

    /// The content of the next item if it is a definite-length string of major type
    /// `major` (text or bytes), consumed: the common case of the typed reads, taken without
    /// building an [`Item`] (which the general path returns through memory).
    #[inline(never)]
    fn definite_string(&mut self, major: u8) -> Result<Option<&'de [u8]>, CodecError> {
        if !self.next_is_definite(major) {
            return Ok(None);
        }
        let head = self.head()?;
        let len = self.length(head)?;
        self.take(len).map(Some)
    }

    /// Whether the next item is of major type `major` (a string, array or map) with a
    /// definite length.
    #[inline]
    fn next_is_definite(&self, major: u8) -> bool {
        self.input
            .get(self.pos)
            .is_some_and(|&initial| initial & 0xe0 == major && initial & 0x1f != INDEFINITE)
    }

    /// The next item's value if it is an unsigned integer, consumed.
    #[inline(never)]
    fn unsigned(&mut self) -> Result<Option<u64>, CodecError> {
        match self.input.get(self.pos) {
            Some(&initial) if initial & 0xe0 == major::UNSIGNED => self.head().map(|head| Some(head.value)),
            _ => Ok(None),
        }
    }

    /// Consumes a null or undefined if one is next.
    fn at_null(&mut self) -> Result<bool, CodecError> {
        let null = matches!(self.peek()?, simple::NULL | simple::UNDEFINED);
        self.pos += usize::from(null);
        Ok(null)
    }
}

/// An integer parsed from a text argument.
enum ParsedInt {
    Unsigned(u64),
    Negative(i64),
}

/// Parses a text argument as a decimal integer, for a parameter of type `ty` (named in the
/// error); its visitor checks the range. Not generic, and not `str::parse`, whose error
/// formatting every guest would carry: one small copy serves every integer type.
#[inline(never)]
fn parse_int(text: &str, ty: &str) -> Result<ParsedInt, CodecError> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if digits.is_empty() {
        return Err(not_a(text, ty, "no digits"));
    }
    let mut magnitude: u64 = 0;
    for byte in digits.bytes() {
        let digit = match byte {
            b'0'..=b'9' => u64::from(byte - b'0'),
            _ => return Err(not_a(text, ty, "invalid digit")),
        };
        magnitude = magnitude
            .checked_mul(10)
            .and_then(|m| m.checked_add(digit))
            .ok_or_else(|| not_a(text, ty, "out of range"))?;
    }
    if !negative {
        return Ok(ParsedInt::Unsigned(magnitude));
    }
    match 0i64.checked_sub_unsigned(magnitude) {
        Some(n) => Ok(ParsedInt::Negative(n)),
        None => Err(not_a(text, ty, "out of range")),
    }
}

/// Parses a text argument as a floating-point number.
fn parse_float<F: core::str::FromStr>(text: &str) -> Result<F, CodecError> {
    text.parse().map_err(|_| not_a(text, "floating-point number", "invalid float literal"))
}

/// The integer `deserialize_*` methods: a text, when texts are parsed, is parsed into an
/// integer; anything else is read as it is.
macro_rules! integers {
    ($($method:ident : $ty:ty),* $(,)?) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CodecError> {
            if let Some(n) = self.unsigned()? {
                return visitor.visit_u64(n);
            }
            match self.text_to_parse()? {
                Some(text) => match parse_int(&text, stringify!($ty))? {
                    ParsedInt::Unsigned(n) => visitor.visit_u64(n),
                    ParsedInt::Negative(n) => visitor.visit_i64(n),
                },
                None => match self.item()? {
                    Item::Unsigned(n) => visitor.visit_u64(n),
                    Item::Negative(n) => visitor.visit_i64(n),
                    other => mismatch(&other, &visitor),
                },
            }
        }
    )*};
}

/// A text argument that does not parse as a `ty`, and `why`.
#[inline(never)]
fn not_a(text: &str, ty: &str, why: &str) -> CodecError {
    let mut message = String::with_capacity(text.len() + ty.len() + why.len() + 12);
    for part in ["`", text, "` is not a ", ty, ": ", why] {
        message.push_str(part);
    }
    CodecError(message)
}

/// Parses a text argument as a boolean (`true` or `false`).
#[inline(never)]
fn parse_bool(text: &str) -> Result<bool, CodecError> {
    match text {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(not_a(text, "bool", "neither true nor false")),
    }
}

/// Parses a text argument as one character.
#[inline(never)]
fn parse_char(text: &str) -> Result<char, CodecError> {
    let mut chars = text.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) => Ok(c),
        _ => Err(not_a(text, "char", "not one character")),
    }
}

/// Hands `visitor` a byte string.
fn visit_bytes<'de, V: Visitor<'de>>(bytes: Cow<'de, [u8]>, visitor: V) -> Result<V::Value, CodecError> {
    match bytes {
        Cow::Borrowed(bytes) => visitor.visit_borrowed_bytes(bytes),
        Cow::Owned(bytes) => visitor.visit_byte_buf(bytes),
    }
}

/// Hands `visitor` a text string.
fn visit_text<'de, V: Visitor<'de>>(text: Cow<'de, str>, visitor: V) -> Result<V::Value, CodecError> {
    match text {
        Cow::Borrowed(text) => visitor.visit_borrowed_str(text),
        Cow::Owned(text) => visitor.visit_string(text),
    }
}

/// The error for an item that `expected` cannot take.
fn mismatch<'de, T>(item: &Item<'_>, expected: &impl Visitor<'de>) -> Result<T, CodecError> {
    Err(de::Error::invalid_type(unexpected(item), expected))
}

/// An item as serde names it in errors.
fn unexpected<'a>(item: &'a Item<'_>) -> de::Unexpected<'a> {
    use de::Unexpected as U;
    match item {
        Item::Unsigned(v) => U::Unsigned(*v),
        Item::Negative(v) => U::Signed(*v),
        Item::Bytes(bytes) => U::Bytes(bytes),
        Item::Text(text) => U::Str(text),
        Item::Array(_) => U::Seq,
        Item::Map(_) => U::Map,
        Item::Bool(b) => U::Bool(*b),
        Item::Null => U::Unit,
        Item::F32(f) => U::Float(f64::from(*f)),
        Item::F64(f) => U::Float(*f),
    }
}

/// `bytes` as text, if they are UTF-8. Short ASCII texts (tags, names), the common case,
/// are checked inline.
#[inline]
fn utf8(bytes: &[u8]) -> Result<&str, CodecError> {
    if bytes.len() <= 16 && bytes.is_ascii() {
        // SAFETY: ASCII is UTF-8.
        return Ok(unsafe { core::str::from_utf8_unchecked(bytes) });
    }
    core::str::from_utf8(bytes).map_err(|_| not_utf8())
}

/// Text that is not UTF-8.
fn not_utf8() -> CodecError {
    error("a text string that is not UTF-8")
}

/// Widens an IEEE 754 half-precision float.
fn f16_to_f32(half: u16) -> f32 {
    let exponent = i32::from((half >> 10) & 0x1f);
    let fraction = f32::from(half & 0x3ff);
    let magnitude = match exponent {
        0 => fraction * pow2(-24),
        31 if fraction == 0.0 => f32::INFINITY,
        31 => f32::NAN,
        _ => (1.0 + fraction / 1024.0) * pow2(exponent - 15),
    };
    if half & 0x8000 != 0 { -magnitude } else { magnitude }
}

/// 2^`k`, exactly, for `k` in f32's normal range (core has no `powi`).
fn pow2(k: i32) -> f32 {
    f32::from_bits(((k + 127) as u32) << 23)
}

impl<'de> de::Deserializer<'de> for &mut Decoder<'de> {
    type Error = CodecError;

    fn is_human_readable(&self) -> bool {
        false
    }

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CodecError> {
        self.visit(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CodecError> {
        if self.at_null()? { visitor.visit_none() } else { visitor.visit_some(self) }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CodecError> {
        if self.at_null()? { visitor.visit_unit() } else { self.deserialize_any(visitor) }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, CodecError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, CodecError> {
        if name == PID_MARKER {
            // Read here, not through the visitor: one copy of this code in a guest, not one
            // per place a pid is decoded.
            return visitor.visit_bytes(&self.pid()?.to_bytes());
        }
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, CodecError> {
        match self.peek()? & 0xe0 {
            major::TEXT => visitor.visit_enum(UnitVariant { de: self }),
            major::MAP => {
                let head = self.head()?;
                if !head.indefinite() && head.value != 1 {
                    return Err(error("expected an enum variant (a map of one entry)"));
                }
                self.enter()?;
                let value = visitor.visit_enum(Variant { de: &mut *self })?;
                if head.indefinite() && !self.at_break()? {
                    return Err(error("an enum variant map with more than one entry"));
                }
                self.leave();
                Ok(value)
            }
            _ => Err(error("expected an enum variant (a text or a map of one entry)")),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CodecError> {
        self.skip()?;
        visitor.visit_unit()
    }

    integers! {
        deserialize_i8: i8,
        deserialize_i16: i16,
        deserialize_i32: i32,
        deserialize_i64: i64,
        deserialize_u8: u8,
        deserialize_u16: u16,
        deserialize_u32: u32,
        deserialize_u64: u64,
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CodecError> {
        if let Some(text) = self.text_to_parse()? {
            return visitor.visit_bool(parse_bool(&text)?);
        }
        match self.item()? {
            Item::Bool(b) => visitor.visit_bool(b),
            other => mismatch(&other, &visitor),
        }
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CodecError> {
        if let Some(text) = self.text_to_parse()? {
            return visitor.visit_f32(parse_float(&text)?);
        }
        self.float(visitor)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CodecError> {
        if let Some(text) = self.text_to_parse()? {
            return visitor.visit_f64(parse_float(&text)?);
        }
        self.float(visitor)
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CodecError> {
        if let Some(text) = self.text_to_parse()? {
            return visitor.visit_char(parse_char(&text)?);
        }
        self.deserialize_str(visitor)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CodecError> {
        if let Some(text) = self.definite_string(major::TEXT)? {
            return visitor.visit_borrowed_str(utf8(text)?);
        }
        match self.item()? {
            Item::Text(text) => visit_text(text, visitor),
            Item::Bytes(bytes) => visit_bytes(bytes, visitor),
            other => mismatch(&other, &visitor),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CodecError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CodecError> {
        if let Some(bytes) = self.definite_string(major::BYTES)? {
            return visitor.visit_borrowed_bytes(bytes);
        }
        match self.item()? {
            Item::Bytes(bytes) => visit_bytes(bytes, visitor),
            Item::Text(text) => visit_text(text, visitor),
            Item::Array(left) => self.array(left, visitor),
            other => mismatch(&other, &visitor),
        }
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CodecError> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CodecError> {
        if self.next_is_definite(major::ARRAY) {
            let head = self.head()?;
            let len = self.length(head)?;
            return self.array(Some(len), visitor);
        }
        match self.item()? {
            Item::Array(left) => self.array(left, visitor),
            other => mismatch(&other, &visitor),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, CodecError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, CodecError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CodecError> {
        match self.item()? {
            Item::Map(left) => self.map(left, visitor),
            other => mismatch(&other, &visitor),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, CodecError> {
        match self.item()? {
            Item::Map(left) => self.map(left, visitor),
            Item::Array(left) => self.array(left, visitor),
            other => mismatch(&other, &visitor),
        }
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CodecError> {
        match self.item()? {
            Item::Text(text) => visit_text(text, visitor),
            Item::Unsigned(n) => visitor.visit_u64(n),
            Item::Bytes(bytes) => visit_bytes(bytes, visitor),
            other => mismatch(&other, &visitor),
        }
    }

    serde::forward_to_deserialize_any! {
        i128 u128
    }
}

/// The elements of an array; `left` is `None` while an indefinite one has not ended.
struct Seq<'a, 'de> {
    de: &'a mut Decoder<'de>,
    left: Option<usize>,
}

impl Seq<'_, '_> {
    /// Fails unless the visitor read every element.
    fn finish(&mut self) -> Result<(), CodecError> {
        finished(self.de, self.left, "an array with more elements than expected")
    }
}

/// Whether a container with `left` entries to go (`None`: indefinite, not ended) has ended,
/// consuming an indefinite one's break; `what` is the error when it has not.
fn finished(de: &mut Decoder<'_>, left: Option<usize>, what: &str) -> Result<(), CodecError> {
    match left {
        Some(0) => Ok(()),
        None if de.at_break()? => Ok(()),
        _ => Err(error(what)),
    }
}

/// Counts off the next entry of a container with `left` entries to go; false at its end.
fn advance(de: &mut Decoder<'_>, left: &mut Option<usize>) -> Result<bool, CodecError> {
    match *left {
        Some(0) => Ok(false),
        Some(n) => {
            *left = Some(n - 1);
            Ok(true)
        }
        None if de.at_break()? => {
            *left = Some(0);
            Ok(false)
        }
        None => Ok(true),
    }
}

impl<'de> de::SeqAccess<'de> for Seq<'_, 'de> {
    type Error = CodecError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, CodecError> {
        if !advance(self.de, &mut self.left)? {
            return Ok(None);
        }
        seed.deserialize(&mut *self.de).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        self.left
    }
}

/// The entries of a map; `left` is `None` while an indefinite one has not ended.
struct Map<'a, 'de> {
    de: &'a mut Decoder<'de>,
    left: Option<usize>,
}

impl Map<'_, '_> {
    /// Fails unless the visitor read every entry.
    fn finish(&mut self) -> Result<(), CodecError> {
        finished(self.de, self.left, "a map with more entries than expected")
    }
}

impl<'de> de::MapAccess<'de> for Map<'_, 'de> {
    type Error = CodecError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, CodecError> {
        if !advance(self.de, &mut self.left)? {
            return Ok(None);
        }
        seed.deserialize(&mut *self.de).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, CodecError> {
        seed.deserialize(&mut *self.de)
    }

    fn size_hint(&self) -> Option<usize> {
        self.left
    }
}

/// An enum variant written as its name alone: a unit variant.
struct UnitVariant<'a, 'de> {
    de: &'a mut Decoder<'de>,
}

impl<'de> de::EnumAccess<'de> for UnitVariant<'_, 'de> {
    type Error = CodecError;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self), CodecError> {
        let variant = seed.deserialize(&mut *self.de)?;
        Ok((variant, self))
    }
}

impl<'de> de::VariantAccess<'de> for UnitVariant<'_, 'de> {
    type Error = CodecError;

    fn unit_variant(self) -> Result<(), CodecError> {
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, _seed: T) -> Result<T::Value, CodecError> {
        Err(error("expected a variant with a value, found a unit variant"))
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, _visitor: V) -> Result<V::Value, CodecError> {
        Err(error("expected a tuple variant, found a unit variant"))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, CodecError> {
        Err(error("expected a struct variant, found a unit variant"))
    }
}

/// An enum variant written as a map of one entry, name to content.
struct Variant<'a, 'de> {
    de: &'a mut Decoder<'de>,
}

impl<'de> de::EnumAccess<'de> for Variant<'_, 'de> {
    type Error = CodecError;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self), CodecError> {
        let variant = seed.deserialize(&mut *self.de)?;
        Ok((variant, self))
    }
}

impl<'de> de::VariantAccess<'de> for Variant<'_, 'de> {
    type Error = CodecError;

    fn unit_variant(self) -> Result<(), CodecError> {
        de::Deserialize::deserialize(self.de)
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, CodecError> {
        seed.deserialize(self.de)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, CodecError> {
        de::Deserializer::deserialize_any(self.de, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, CodecError> {
        de::Deserializer::deserialize_any(self.de, visitor)
    }
}
