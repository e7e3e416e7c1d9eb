//! The codec against ciborium (the host's CBOR library), hostile input, and text arguments.

use super::*;
use serde::de::Visitor;

#[test]
fn typed_args_round_trip() {
    let bytes = encode(&(3u32, "pong@localhost")).unwrap();
    let (n, node): (u32, String) = decode_args(&bytes).unwrap();
    assert_eq!((n, node.as_str()), (3, "pong@localhost"));
}

#[test]
fn text_args_are_parsed() {
    let bytes = encode(&["3", "pong@localhost"]).unwrap();
    let (n, node): (u32, String) = decode_args(&bytes).unwrap();
    assert_eq!((n, node.as_str()), (3, "pong@localhost"));
}

#[test]
fn text_args_parse_into_every_scalar_type() {
    let bytes = encode(&["-7", "+8", "true", "é", "2.5", "x", "18446744073709551615"]).unwrap();
    let args: (i8, u16, bool, char, f64, String, u64) = decode_args(&bytes).unwrap();
    assert_eq!(args, (-7, 8, true, 'é', 2.5, "x".to_owned(), u64::MAX));
    for (text, want) in [("", "no digits"), ("1x", "invalid digit"), ("18446744073709551616", "out of range")]
    {
        let err = decode_args::<(u64,)>(&encode(&[text]).unwrap()).unwrap_err();
        assert!(err.0.contains(want), "{text}: {err}");
    }
    let err = decode_args::<(u8,)>(&encode(&["300"]).unwrap()).unwrap_err();
    assert!(err.0.contains("300"), "{err}");
    let err = decode_args::<(i64,)>(&encode(&["-9223372036854775809"]).unwrap()).unwrap_err();
    assert!(err.0.contains("out of range"), "{err}");
}

#[test]
fn texts_are_parsed_only_for_arguments_that_are_all_texts() {
    let err = decode_args::<(u32, u32)>(&encode(&(1u32, "2")).unwrap()).unwrap_err();
    assert!(err.0.starts_with("bad arguments: invalid type"), "{err}");
    assert!(decode::<(u32,)>(&encode(&["3"]).unwrap()).is_err(), "messages are never parsed from text");
}

#[test]
fn bad_text_arg_names_the_problem() {
    let bytes = encode(&["three"]).unwrap();
    let err = decode_args::<(u32,)>(&bytes).unwrap_err();
    assert!(err.0.contains("`three` is not a u32"), "{err}");
}

#[test]
fn the_reused_send_buffer_encodes_like_encode_and_allows_nesting() {
    let first = with_encoded(&(1u8, "a long enough text"), |b| b.to_vec()).unwrap();
    assert_eq!(first, encode(&(1u8, "a long enough text")).unwrap());
    let second = with_encoded(&2u8, |b| b.to_vec()).unwrap();
    assert_eq!(second, encode(&2u8).unwrap(), "nothing of the longer message before it is left");
    let nested =
        with_encoded(&"outer", |outer| (outer.to_vec(), with_encoded(&"inner", |i| i.to_vec()).unwrap()));
    assert_eq!(nested.unwrap(), (encode("outer").unwrap(), encode("inner").unwrap()));
}

#[test]
fn texts_decode_borrowed_from_the_payload() {
    let bytes = encode(&("data", 7u8)).unwrap();
    let (tag, n): (&str, u8) = decode(&bytes).unwrap();
    assert_eq!((tag, n), ("data", 7));
    let inside = bytes.as_ptr_range();
    assert!(inside.contains(&tag.as_ptr()), "the text points into the payload");
}

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::vec;

use proptest::prelude::*;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Bytes that serialize as a CBOR byte string.
#[derive(Debug, Clone, PartialEq)]
struct Blob(Vec<u8>);

impl Serialize for Blob {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct BlobVisitor;
        impl Visitor<'_> for BlobVisitor {
            type Value = Blob;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Blob, E> {
                Ok(Blob(v.to_vec()))
            }
            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Blob, E> {
                Ok(Blob(v))
            }
        }
        d.deserialize_byte_buf(BlobVisitor)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Shape {
    Unit,
    Newtype(i64),
    Tuple(u8, String),
    Struct { name: String, size: Option<u32> },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Everything {
    flag: bool,
    small: i8,
    big: u64,
    negative: i64,
    wide: i128,
    half: f32,
    full: f64,
    letter: char,
    text: String,
    blob: Blob,
    none: Option<String>,
    some: Option<Vec<u16>>,
    unit: (),
    shapes: Vec<Shape>,
    map: BTreeMap<String, (i32, bool)>,
}

fn everything() -> Everything {
    Everything {
        flag: true,
        small: -100,
        big: u64::MAX,
        negative: i64::MIN,
        wide: -(1 << 63),
        half: 1.5,
        full: 0.1,
        letter: 'ß',
        text: "pong@localhost".into(),
        blob: Blob((0..64).collect()),
        none: None,
        some: Some(vec![0, 23, 24, 255, 256, 65535]),
        unit: (),
        shapes: vec![
            Shape::Unit,
            Shape::Newtype(-24),
            Shape::Tuple(7, "x".into()),
            Shape::Struct { name: "s".into(), size: None },
        ],
        map: [("a".to_string(), (-1, false)), ("bb".to_string(), (1 << 20, true))].into(),
    }
}

fn ciborium_bytes<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(value, &mut out).unwrap();
    out
}

/// Ours reads what ciborium writes, ciborium reads what ours writes, and both agree.
fn agrees_with_ciborium<T: Serialize + DeserializeOwned + PartialEq + Debug>(value: &T) {
    let ours = encode(value).unwrap();
    let theirs = ciborium_bytes(value);
    assert_eq!(&decode::<T>(&ours).unwrap(), value, "ours to ours");
    assert_eq!(&decode::<T>(&theirs).unwrap(), value, "ciborium to ours");
    assert_eq!(&ciborium::from_reader::<T, _>(&ours[..]).unwrap(), value, "ours to ciborium");
}

#[test]
fn every_serde_shape_agrees_with_ciborium() {
    agrees_with_ciborium(&everything());
    agrees_with_ciborium(&("ping".to_string(), 3u8, Blob(vec![1, 2, 3])));
    agrees_with_ciborium(&Shape::Unit);
}

#[test]
fn common_messages_are_byte_identical_to_ciborium() {
    let message = ("pong", Blob((0..64).collect()));
    assert_eq!(encode(&message).unwrap(), ciborium_bytes(&message));
    let shapes = vec![Shape::Newtype(5), Shape::Struct { name: "n".into(), size: Some(70000) }];
    assert_eq!(encode(&shapes).unwrap(), ciborium_bytes(&shapes));
}

#[test]
fn pids_are_tagged_as_the_host_expects() {
    let id = crate::pid::remember_node_for_test("b@localhost");
    let pid = crate::Pid { node: id, incarnation: 7, index: 300 };
    let bytes = encode(&("hello", pid)).unwrap();
    let expected =
        ciborium_bytes(&("hello", ciborium::tag::Required::<_, PID_TAG_U64>(("b@localhost", 7u32, 300u64))));
    assert_eq!(bytes, expected);
    let (text, back): (String, crate::Pid) = decode(&bytes).unwrap();
    assert_eq!((text.as_str(), back), ("hello", pid));
    let untagged = encode(&("hello", ("b@localhost", 7u32, 300u64))).unwrap();
    assert!(decode::<(String, crate::Pid)>(&untagged).is_err(), "a pid needs its tag");
}

const PID_TAG_U64: u64 = crate::PID_TAG;

#[test]
fn pids_are_read_in_every_form_an_encoder_may_write_and_refused_malformed() {
    let id = crate::pid::remember_node_for_test("b@localhost");
    let pid = crate::Pid { node: id, incarnation: 7, index: 300 };
    let tag = [0xda, 0x53, 0x50, 0x49, 0x44];
    let pid_with = |array: &[u8]| [&tag[..], array].concat();
    // Indefinite array and name (chunks "b@", "localhost"), the index in two bytes.
    let mut indefinite = vec![0x9f, 0x7f, 0x62, b'b', b'@', 0x69];
    indefinite.extend_from_slice(b"localhost");
    indefinite.extend_from_slice(&[0xff, 0x07, 0x19, 0x01, 0x2c, 0xff]);
    assert_eq!(decode::<crate::Pid>(&pid_with(&indefinite)).unwrap(), pid);
    // The tag in eight bytes, past the look for the usual head.
    let long_tag = [
        &[0xdb, 0, 0, 0, 0, 0x53, 0x50, 0x49, 0x44, 0x83, 0x6b][..],
        b"b@localhost",
        &[0x07, 0x19, 0x01, 0x2c],
    ];
    assert_eq!(decode::<crate::Pid>(&long_tag.concat()).unwrap(), pid);
    let definite = |name: &[u8], incarnation: &[u8]| {
        let mut array = vec![0x83, 0x60 | name.len() as u8];
        array.extend_from_slice(name);
        array.extend_from_slice(incarnation);
        array.extend_from_slice(&[0x19, 0x01, 0x2c]);
        pid_with(&array)
    };
    assert_eq!(decode::<crate::Pid>(&definite(b"b@localhost", &[0x07])).unwrap(), pid);
    // The incarnation in a needlessly long form is still 7.
    assert_eq!(decode::<crate::Pid>(&definite(b"b@localhost", &[0x1a, 0, 0, 0, 7])).unwrap(), pid);
    for (bad, why) in [
        (definite(b"b@\xfflocalhost", &[0x07]), "UTF-8"),
        (definite(b"b@localhost", &[0x1b, 1, 0, 0, 0, 0, 0, 0, 0]), "pid"),
        (definite(b"b@localhost", &[0x20]), "pid"),
        (pid_with(&[0x82, 0x60, 0x07]), "pid"),
        (pid_with(&[0x83, 0x07, 0x07, 0x07]), "pid"),
        (pid_with(&[0x83, 0x61]), "ends"),
    ] {
        let err = decode::<crate::Pid>(&bad).unwrap_err();
        assert!(err.0.contains(why), "{bad:02x?}: {err}");
    }
}

#[test]
fn indefinite_lengths_and_half_floats_are_read() {
    // [_ "ab" "c"(chunked), {_ "k": 1}] and a half-precision 1.5 / -infinity.
    let bytes = [0x9f, 0x7f, 0x62, b'a', b'b', 0x61, b'c', 0xff, 0xbf, 0x61, b'k', 0x01, 0xff, 0xff];
    let (text, map): (String, BTreeMap<String, u8>) = decode(&bytes).unwrap();
    assert_eq!(text, "abc");
    assert_eq!(map, [("k".to_string(), 1)].into());
    assert_eq!(decode::<f32>(&[0xf9, 0x3e, 0x00]).unwrap(), 1.5);
    assert_eq!(decode::<f64>(&[0xf9, 0xfc, 0x00]).unwrap(), f64::NEG_INFINITY);
    assert_eq!(decode::<f32>(&[0xf9, 0x00, 0x01]).unwrap(), 2f32.powi(-24));
}

#[test]
fn shapes_must_match_exactly() {
    let three = encode(&("ping", 1u8, 2u8)).unwrap();
    assert!(decode::<(String, u8)>(&three).is_err(), "an array longer than the tuple");
    let two = encode(&("pong", 1u8)).unwrap();
    assert!(decode::<(String, u8, u8)>(&two).is_err(), "an array shorter than the tuple");
    assert!(decode::<String>(&[0x61, b'a', 0x00]).is_err(), "trailing bytes");
    assert!(decode::<u8>(&encode(&300u32).unwrap()).is_err(), "out of range");
}

#[test]
fn hostile_input_fails_cleanly() {
    let deep = vec![0x81; 100_000];
    assert!(decode::<ciborium::Value>(&deep).is_err());
    assert!(decode::<serde::de::IgnoredAny>(&deep).is_err());
    let tags = [0xc1; 10_000];
    assert!(decode::<u8>(&tags).is_err());
    // An array claiming 2^64 - 1 elements, and a string claiming 4 GiB.
    assert!(decode::<Vec<u8>>(&[0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).is_err());
    assert!(decode::<String>(&[0x7a, 0xff, 0xff, 0xff, 0xff, b'a']).is_err());
    assert!(decode::<String>(&[0x62, 0xff, 0xfe]).is_err(), "not UTF-8");
    assert!(decode::<u8>(&[0xff]).is_err(), "a stray break");
    assert!(decode::<u8>(&[0x1c]).is_err(), "reserved additional information");
    assert!(decode::<u8>(&[]).is_err());
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = decode::<ciborium::Value>(&bytes);
        let _ = decode::<serde::de::IgnoredAny>(&bytes);
        let _ = decode::<(String, Vec<Shape>, Option<f64>)>(&bytes);
    }

    #[test]
    fn integers_and_texts_agree_with_ciborium(a in any::<i64>(), b in any::<u64>(), t in ".*", f in any::<f64>()) {
        let value = (a, b, t, Blob(a.to_le_bytes().to_vec()));
        agrees_with_ciborium(&value);
        let ours: f64 = decode(&encode(&f).unwrap()).unwrap();
        prop_assert_eq!(ours.to_bits(), f.to_bits());
    }
}

#[test]
fn call_arguments_carry_the_caller_and_split_back() {
    let id = crate::pid::remember_node_for_test("a@localhost");
    let caller = crate::Pid { node: id, incarnation: 1, index: 9 };
    let args = crate::rpc::CallArgs { caller, reference: 77, args: &(21u32, "x") };
    let bytes = encode(&args).unwrap();
    assert_eq!(&bytes[..5], &[0xda, 0x53, 0x43, 0x41, 0x4c], "tag SCAL");
    let (who, reference, rest) = split_call(&bytes).expect("a call");
    assert_eq!((who, reference), (caller, 77));
    assert_eq!(decode_args::<(u32, String)>(rest).unwrap(), (21, "x".to_string()));
    assert!(split_call(&encode(&(21u32, "x")).unwrap()).is_none(), "plain arguments are no call");
}
