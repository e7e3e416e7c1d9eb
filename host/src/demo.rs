//! The embedded demo: the tutorial's ping-pong, built from `examples/ping-pong` at compile
//! time, so `spore demo` needs no file.

/// The `ping_pong.wasm` component (entries `main`, `start_pong`, `start_ping`, `start`).
pub const PING_PONG_WASM: &[u8] = include_bytes!(env!("SPORE_DEMO_WASM"));

/// Encodes command-line arguments the way entries expect them: a CBOR array of texts, which
/// the guest SDK parses into each parameter's type.
pub fn text_args<S: AsRef<str>>(args: &[S]) -> Vec<u8> {
    let texts: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
    let mut out = Vec::new();
    // Writing to a Vec cannot fail and a list of strings always encodes.
    ciborium::into_writer(&texts, &mut out).expect("encoding a list of strings");
    out
}
