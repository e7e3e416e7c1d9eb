//! The protocol without sockets: codec round trips, hostile input, and two handshakes
//! driven against each other in memory.

use bytes::{Bytes, BytesMut};

use super::*;
use crate::process::{NodeId, Pid};

fn pid(node: &str, index: u64) -> Pid {
    Pid { node: NodeId::of(node), incarnation: 7, index }
}

fn hello(name: &str) -> Hello {
    Hello { version: PROTOCOL_VERSION, name: name.into(), incarnation: 1, hidden: false }
}

const MAX: usize = 1 << 20;

#[test]
fn frames_round_trip_with_and_without_payload() {
    let frames = [
        (Frame::Send { from: pid("a@h", 1), to: pid("b@h", 2), tag: 9 }, vec![1u8; 64]),
        (Frame::SendNamed { from: pid("a@h", 1), name: "pong".into(), tag: 0 }, b"hi".to_vec()),
        (Frame::Link { from: pid("a@h", 1), to: pid("b@h", 2) }, vec![]),
        (
            Frame::Exit {
                from: pid("a@h", 1),
                to: pid("b@h", 2),
                reason: crate::process::ExitReason::Panic("boom".into()),
                kill: false,
                link: true,
            },
            vec![],
        ),
        (Frame::Hello(hello("a@h")), vec![]),
    ];
    let mut buf = BytesMut::new();
    for (f, p) in &frames {
        encode(f, p, &mut buf);
    }
    for (f, p) in &frames {
        let (frame, payload) = decode(&mut buf, MAX).unwrap().expect("a whole frame");
        assert_eq!(&frame, f);
        assert_eq!(&payload[..], &p[..]);
    }
    assert!(buf.is_empty());
}

#[test]
fn partial_input_is_incomplete_not_an_error() {
    let mut whole = BytesMut::new();
    encode(&Frame::Send { from: pid("a@h", 1), to: pid("b@h", 2), tag: 0 }, &[5; 100], &mut whole);
    let whole = whole.freeze();
    for cut in 0..whole.len() {
        let mut part = BytesMut::from(&whole[..cut]);
        assert_eq!(decode(&mut part, MAX), Ok(None), "cut at {cut}");
    }
}

#[test]
fn oversized_frames_are_refused_before_buffering() {
    let mut buf = BytesMut::from(&u32::MAX.to_le_bytes()[..]);
    assert!(matches!(decode(&mut buf, MAX), Err(DecodeError::TooLarge { .. })));
}

#[test]
fn unknown_frame_types_and_trailing_bytes_are_malformed() {
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&3u32.to_le_bytes());
    buf.extend_from_slice(&[200, 1, 2]);
    assert!(matches!(decode(&mut buf, MAX), Err(DecodeError::Malformed(_))));

    let mut buf = BytesMut::new();
    encode(&Frame::Link { from: pid("a@h", 1), to: pid("b@h", 2) }, &[], &mut buf);
    buf.extend_from_slice(&[0, 0]);
    let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) + 2;
    buf[..4].copy_from_slice(&len.to_le_bytes());
    assert_eq!(decode(&mut buf, MAX), Err(DecodeError::Trailing(2)));
}

#[test]
fn handshake_completes_between_two_peers() {
    let mut dialer = Handshake::new(Role::Dialer, hello("a@h"));
    let mut acceptor = Handshake::new(Role::Acceptor, hello("b@h"));
    assert_eq!(dialer.poll_transmit(), None, "the dialer waits for the acceptor");
    let first = acceptor.poll_transmit().expect("the acceptor speaks first");
    assert!(acceptor.peer().is_none(), "not up before the peer's hello");
    dialer.handle_frame(first, |h| if h.name == "b@h" { Ok(()) } else { Err("wrong".into()) }).unwrap();
    let answer = dialer.poll_transmit().expect("the dialer answers");
    assert_eq!(dialer.peer().map(|h| h.name.as_str()), Some("b@h"));
    acceptor.handle_frame(answer, |_| Ok(())).unwrap();
    assert_eq!(acceptor.peer().map(|h| h.name.as_str()), Some("a@h"));
    assert_eq!(acceptor.poll_transmit(), None);
}

#[test]
fn handshake_refuses_bad_peers() {
    let frame_first = Frame::Link { from: pid("a@h", 1), to: pid("b@h", 2) };
    let mut acceptor = Handshake::new(Role::Acceptor, hello("b@h"));
    assert_eq!(acceptor.handle_frame(frame_first.clone(), |_| Ok(())), Err(HandshakeError::Over));
    let mut acceptor = Handshake::new(Role::Acceptor, hello("b@h"));
    acceptor.poll_transmit().expect("the acceptor speaks first");
    assert_eq!(acceptor.handle_frame(frame_first, |_| Ok(())), Err(HandshakeError::NotHello));
    assert_eq!(acceptor.handle_frame(Frame::Hello(hello("a@h")), |_| Ok(())), Err(HandshakeError::Over));

    let mut dialer = Handshake::new(Role::Dialer, hello("b@h"));
    let old = Hello { version: 0, ..hello("a@h") };
    assert!(matches!(
        dialer.handle_frame(Frame::Hello(old), |_| Ok(())),
        Err(HandshakeError::Version { .. })
    ));

    let mut dialer = Handshake::new(Role::Dialer, hello("b@h"));
    let bad = Frame::Hello(hello("no-at-sign"));
    assert!(matches!(dialer.handle_frame(bad, |_| Ok(())), Err(HandshakeError::BadName(_))));

    let mut dialer = Handshake::new(Role::Dialer, hello("b@h"));
    let refused = dialer.handle_frame(Frame::Hello(hello("a@h")), |_| Err("certificate names c@h".into()));
    assert_eq!(refused, Err(HandshakeError::Refused("certificate names c@h".into())));
    assert!(dialer.peer().is_none());
}

proptest::proptest! {
    /// Arbitrary bytes, cut at an arbitrary point: the decoder returns frames, asks for more,
    /// or fails with an error; it never panics and never takes more than it was given.
    #[test]
    fn the_decoder_survives_arbitrary_bytes(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256), max in 0usize..512) {
        let mut buf = BytesMut::from(&bytes[..]);
        while let Ok(Some(_)) = decode(&mut buf, max) {}
        proptest::prop_assert!(buf.len() <= bytes.len());
    }

    /// Valid frames with arbitrary payloads round-trip, whatever the chunking.
    #[test]
    fn sends_round_trip(tag in proptest::num::u64::ANY, payload in proptest::collection::vec(proptest::num::u8::ANY, 0..300), cut in 0usize..400) {
        let frame = Frame::Send { from: pid("a@h", 1), to: pid("b@h", 2), tag };
        let mut whole = BytesMut::new();
        encode(&frame, &payload, &mut whole);
        let cut = cut.min(whole.len());
        let mut buf = BytesMut::from(&whole[..cut]);
        let first = decode(&mut buf, MAX).unwrap();
        if cut < whole.len() {
            proptest::prop_assert!(first.is_none());
            buf.extend_from_slice(&whole[cut..]);
        } else {
            proptest::prop_assert!(first.is_some());
            let (f, p) = first.unwrap();
            proptest::prop_assert_eq!((f, &p[..]), (frame, &payload[..]));
            return Ok(());
        }
        let (f, p) = decode(&mut buf, MAX).unwrap().expect("whole frame");
        proptest::prop_assert_eq!((f, &p[..]), (frame, &payload[..]));
    }
}

proptest::proptest! {
    /// A stream of frames cut into arbitrary chunks comes out of the splitter as the same
    /// frames, in order, and leaves nothing behind.
    #[test]
    fn the_splitter_reassembles_any_chunking(
        payloads in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..200), 1..8),
        cuts in proptest::collection::vec(1usize..300, 1..40),
    ) {
        let mut stream = BytesMut::new();
        let frames: Vec<Frame> = (0..payloads.len() as u64)
            .map(|tag| Frame::Send { from: pid("a@h", 1), to: pid("b@h", 2), tag })
            .collect();
        for (frame, payload) in frames.iter().zip(&payloads) {
            encode(frame, payload, &mut stream);
        }
        let mut stream = stream.freeze();
        let mut splitter = FrameSplitter::new(MAX);
        let mut got = Vec::new();
        let mut cuts = cuts.into_iter().cycle();
        while !stream.is_empty() {
            let n = cuts.next().unwrap().min(stream.len());
            splitter.push(stream.split_to(n));
            while let Some((frame, payload)) = splitter.next_frame().unwrap() {
                got.push((frame, payload.to_vec()));
            }
        }
        proptest::prop_assert!(splitter.is_empty());
        let want: Vec<(Frame, Vec<u8>)> = frames.into_iter().zip(payloads).collect();
        proptest::prop_assert_eq!(got, want);
    }

    /// Arbitrary bytes in arbitrary chunks: the splitter returns frames, asks for more or
    /// fails; it never panics.
    #[test]
    fn the_splitter_survives_arbitrary_bytes(
        bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..400),
        cut in 1usize..64,
        max in 0usize..512,
    ) {
        let mut splitter = FrameSplitter::new(max);
        for chunk in bytes.chunks(cut) {
            splitter.push(Bytes::copy_from_slice(chunk));
            loop {
                match splitter.next_frame() {
                    Ok(Some(_)) => continue,
                    Ok(None) => break,
                    Err(_) => return Ok(()),
                }
            }
        }
    }
}

#[test]
fn the_decoder_never_panics_on_random_input() {
    // A small deterministic fuzz loop (xorshift): arbitrary bytes, any split.
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..20_000 {
        let len = (next() % 64) as usize;
        let mut buf = BytesMut::new();
        let body_len = (next() % 48) as u32;
        buf.extend_from_slice(&body_len.to_le_bytes());
        for _ in 0..len {
            buf.extend_from_slice(&[next() as u8]);
        }
        while let Ok(Some(_)) = decode(&mut buf, 4096) {}
    }
}
