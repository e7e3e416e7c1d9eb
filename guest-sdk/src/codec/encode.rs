//! The CBOR writer: a serde `Serializer` appending to a `Vec<u8>`.

use crate::prelude::*;

use serde::ser::{self, Serialize};

use super::{CALL_MARKER, CodecError, PID_MARKER};
use crate::pid::PID_TAG;
use crate::rpc::CALL_TAG;

/// Major types (RFC 8949 §3.1), already shifted into the high three bits.
pub(super) mod major {
    pub const UNSIGNED: u8 = 0 << 5;
    pub const NEGATIVE: u8 = 1 << 5;
    pub const BYTES: u8 = 2 << 5;
    pub const TEXT: u8 = 3 << 5;
    pub const ARRAY: u8 = 4 << 5;
    pub const MAP: u8 = 5 << 5;
    pub const TAG: u8 = 6 << 5;
}

/// Simple values and markers of major type 7.
pub(super) mod simple {
    pub const FALSE: u8 = 0xf4;
    pub const TRUE: u8 = 0xf5;
    pub const NULL: u8 = 0xf6;
    pub const UNDEFINED: u8 = 0xf7;
    pub const F32: u8 = 0xfa;
    pub const F64: u8 = 0xfb;
    pub const BREAK: u8 = 0xff;
}

/// Additional information 31: an indefinite-length array, map or string follows.
pub(super) const INDEFINITE: u8 = 31;

/// Writes CBOR items into its buffer.
pub(super) struct Encoder {
    out: Vec<u8>,
}

impl Encoder {
    /// An encoder with room for `capacity` bytes.
    pub(super) fn with_capacity(capacity: usize) -> Self {
        Self { out: Vec::with_capacity(capacity) }
    }

    /// An encoder appending to `out`.
    pub(super) fn from_vec(out: Vec<u8>) -> Self {
        Self { out }
    }

    /// The bytes written.
    pub(super) fn into_bytes(self) -> Vec<u8> {
        self.out
    }

    /// Writes the head of an item: its major type and its argument in the shortest form.
    /// The one-byte head, the most common, is written inline.
    #[inline]
    fn head(&mut self, major: u8, value: u64) {
        if value < 24 {
            self.out.push(major | value as u8);
        } else {
            self.long_head(major, value);
        }
    }

    /// [`Encoder::head`] of an argument of 24 or more.
    #[inline(never)]
    fn long_head(&mut self, major: u8, value: u64) {
        if value <= u64::from(u8::MAX) {
            self.out.extend_from_slice(&[major | 24, value as u8]);
        } else if value <= u64::from(u16::MAX) {
            self.out.push(major | 25);
            self.out.extend_from_slice(&(value as u16).to_be_bytes());
        } else if value <= u64::from(u32::MAX) {
            self.out.push(major | 26);
            self.out.extend_from_slice(&(value as u32).to_be_bytes());
        } else {
            self.out.push(major | 27);
            self.out.extend_from_slice(&value.to_be_bytes());
        }
    }

    /// Writes a text string.
    #[inline]
    fn text(&mut self, text: &str) {
        self.head(major::TEXT, text.len() as u64);
        self.out.extend_from_slice(text.as_bytes());
    }

    /// Starts an array or map of `len` entries, or of an indefinite length.
    fn container(&mut self, major: u8, len: Option<usize>) -> Compound<'_> {
        match len {
            Some(len) => self.head(major, len as u64),
            None => self.out.push(major | INDEFINITE),
        }
        Compound { encoder: self, indefinite: len.is_none() }
    }

    /// Starts an externally tagged enum variant: a map of one entry keyed by its name.
    fn variant(&mut self, name: &str) {
        self.head(major::MAP, 1);
        self.text(name);
    }
}

/// An array or map being written; closes an indefinite one at the end.
pub(super) struct Compound<'e> {
    encoder: &'e mut Encoder,
    indefinite: bool,
}

impl Compound<'_> {
    /// Ends the container.
    fn finish(self) {
        if self.indefinite {
            self.encoder.out.push(simple::BREAK);
        }
    }
}

/// Serializer methods for narrow integers, written as their 64-bit kind.
macro_rules! widen {
    ($($method:ident($narrow:ty) => $wide_method:ident($wide:ty)),+ $(,)?) => {$(
        fn $method(self, v: $narrow) -> Result<(), CodecError> {
            self.$wide_method(<$wide>::from(v))
        }
    )+};
}

impl<'e> ser::Serializer for &'e mut Encoder {
    type Ok = ();
    type Error = CodecError;
    type SerializeSeq = Compound<'e>;
    type SerializeTuple = Compound<'e>;
    type SerializeTupleStruct = Compound<'e>;
    type SerializeTupleVariant = Compound<'e>;
    type SerializeMap = Compound<'e>;
    type SerializeStruct = Compound<'e>;
    type SerializeStructVariant = Compound<'e>;

    fn is_human_readable(&self) -> bool {
        false
    }

    widen! {
        serialize_i8(i8) => serialize_i64(i64),
        serialize_i16(i16) => serialize_i64(i64),
        serialize_i32(i32) => serialize_i64(i64),
        serialize_u8(u8) => serialize_u64(u64),
        serialize_u16(u16) => serialize_u64(u64),
        serialize_u32(u32) => serialize_u64(u64),
    }

    fn serialize_bool(self, v: bool) -> Result<(), CodecError> {
        self.out.push(if v { simple::TRUE } else { simple::FALSE });
        Ok(())
    }

    fn serialize_i64(self, v: i64) -> Result<(), CodecError> {
        if v >= 0 {
            self.head(major::UNSIGNED, v as u64);
        } else {
            // CBOR stores -1 - v, which is !v in two's complement.
            self.head(major::NEGATIVE, !v as u64);
        }
        Ok(())
    }

    fn serialize_i128(self, v: i128) -> Result<(), CodecError> {
        if let Ok(v) = u64::try_from(v) {
            self.head(major::UNSIGNED, v);
        } else if let Ok(negative) = u64::try_from(-1 - v) {
            self.head(major::NEGATIVE, negative);
        } else {
            return Err(CodecError(format!("integer {v} does not fit in 64 bits")));
        }
        Ok(())
    }

    fn serialize_u64(self, v: u64) -> Result<(), CodecError> {
        self.head(major::UNSIGNED, v);
        Ok(())
    }

    fn serialize_u128(self, v: u128) -> Result<(), CodecError> {
        let v = u64::try_from(v).map_err(|_| CodecError(format!("integer {v} does not fit in 64 bits")))?;
        self.serialize_u64(v)
    }

    fn serialize_f32(self, v: f32) -> Result<(), CodecError> {
        self.out.push(simple::F32);
        self.out.extend_from_slice(&v.to_bits().to_be_bytes());
        Ok(())
    }

    fn serialize_f64(self, v: f64) -> Result<(), CodecError> {
        // The shorter form when it holds the same value (NaN keeps its full payload).
        let short = v as f32;
        if f64::from(short).to_bits() == v.to_bits() {
            return self.serialize_f32(short);
        }
        self.out.push(simple::F64);
        self.out.extend_from_slice(&v.to_bits().to_be_bytes());
        Ok(())
    }

    fn serialize_char(self, v: char) -> Result<(), CodecError> {
        self.text(v.encode_utf8(&mut [0; 4]));
        Ok(())
    }

    fn serialize_str(self, v: &str) -> Result<(), CodecError> {
        self.text(v);
        Ok(())
    }

    fn serialize_bytes(self, v: &[u8]) -> Result<(), CodecError> {
        self.head(major::BYTES, v.len() as u64);
        self.out.extend_from_slice(v);
        Ok(())
    }

    fn serialize_none(self) -> Result<(), CodecError> {
        self.out.push(simple::NULL);
        Ok(())
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), CodecError> {
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<(), CodecError> {
        self.serialize_none()
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), CodecError> {
        self.serialize_none()
    }

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), CodecError> {
        self.text(variant);
        Ok(())
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<(), CodecError> {
        if name == PID_MARKER {
            self.head(major::TAG, PID_TAG);
        } else if name == CALL_MARKER {
            self.head(major::TAG, CALL_TAG);
        }
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), CodecError> {
        self.variant(variant);
        value.serialize(self)
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<Compound<'e>, CodecError> {
        Ok(self.container(major::ARRAY, len))
    }

    fn serialize_tuple(self, len: usize) -> Result<Compound<'e>, CodecError> {
        self.serialize_seq(Some(len))
    }

    fn serialize_tuple_struct(self, _name: &'static str, len: usize) -> Result<Compound<'e>, CodecError> {
        self.serialize_seq(Some(len))
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Compound<'e>, CodecError> {
        self.variant(variant);
        self.serialize_seq(Some(len))
    }

    fn serialize_map(self, len: Option<usize>) -> Result<Compound<'e>, CodecError> {
        Ok(self.container(major::MAP, len))
    }

    fn serialize_struct(self, _name: &'static str, len: usize) -> Result<Compound<'e>, CodecError> {
        self.serialize_map(Some(len))
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Compound<'e>, CodecError> {
        self.variant(variant);
        self.serialize_map(Some(len))
    }
}

/// The writers of arrays (sequences, tuples, tuple structs and variants): each element in
/// turn, then the end.
macro_rules! array_writer {
    ($($trait:ident :: $method:ident),+) => {$(
        impl ser::$trait for Compound<'_> {
            type Ok = ();
            type Error = CodecError;

            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), CodecError> {
                value.serialize(&mut *self.encoder)
            }

            fn end(self) -> Result<(), CodecError> {
                self.finish();
                Ok(())
            }
        }
    )+};
}

array_writer!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

/// The writers of structs and struct variants: maps keyed by field name.
macro_rules! struct_writer {
    ($($trait:ident),+) => {$(
        impl ser::$trait for Compound<'_> {
            type Ok = ();
            type Error = CodecError;

            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                key: &'static str,
                value: &T,
            ) -> Result<(), CodecError> {
                self.encoder.text(key);
                value.serialize(&mut *self.encoder)
            }

            fn end(self) -> Result<(), CodecError> {
                self.finish();
                Ok(())
            }
        }
    )+};
}

struct_writer!(SerializeStruct, SerializeStructVariant);

impl ser::SerializeMap for Compound<'_> {
    type Ok = ();
    type Error = CodecError;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), CodecError> {
        key.serialize(&mut *self.encoder)
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), CodecError> {
        value.serialize(&mut *self.encoder)
    }

    fn end(self) -> Result<(), CodecError> {
        self.finish();
        Ok(())
    }
}
