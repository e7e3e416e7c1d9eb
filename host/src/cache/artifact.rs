//! Compiled artifacts on disk, sealed: the serialized component followed by the SHA-256 of
//! it. wasmtime checks an artifact's header and engine compatibility when it loads one, not
//! its code, and runs that code as it is: a cache file damaged on disk (bit rot, a stray
//! write) would be native code with flipped bytes. A sealed artifact whose digest does not
//! match is not loaded; the node compiles the module again and replaces the file.
//!
//! The check reads and hashes the file once per module per node start: about 0.2 ms for
//! an artifact of 300 KB.

use std::path::Path;

use wasmtime::Engine;
use wasmtime::component::Component;

/// Bytes of the seal after the serialized component.
const SEAL_BYTES: usize = 32;

/// Why a cached artifact was not loaded.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ArtifactError {
    /// The file could not be read.
    #[error("cannot read it: {0}")]
    Read(#[from] std::io::Error),
    /// The file is shorter than its seal or its digest does not match its content.
    #[error("it is damaged (its content does not match its digest)")]
    Damaged,
    /// wasmtime refused the content (another wasmtime, another engine configuration).
    #[error("wasmtime refused it: {0}")]
    Refused(String),
}

/// The SHA-256 of `bytes`.
fn digest(bytes: &[u8]) -> ring::digest::Digest {
    ring::digest::digest(&ring::digest::SHA256, bytes)
}

/// Serializes `component` and seals it, ready to be written.
pub(crate) fn seal(component: &Component) -> wasmtime::Result<Vec<u8>> {
    let mut bytes = component.serialize()?;
    let seal = digest(&bytes);
    bytes.extend_from_slice(seal.as_ref());
    Ok(bytes)
}

/// The serialized component inside `file`, if its seal matches.
fn unseal(file: &[u8]) -> Result<&[u8], ArtifactError> {
    let body_len = file.len().checked_sub(SEAL_BYTES).ok_or(ArtifactError::Damaged)?;
    let (body, seal) = file.split_at(body_len);
    if digest(body).as_ref() == seal { Ok(body) } else { Err(ArtifactError::Damaged) }
}

/// Loads the sealed artifact at `path`.
pub(crate) fn load(engine: &Engine, path: &Path) -> Result<Component, ArtifactError> {
    let file = std::fs::read(path)?;
    let body = unseal(&file)?;
    // SAFETY: `body` is what `Component::serialize` of an engine with the same compatibility
    // hash (it is in the file's name) produced, as its seal shows; wasmtime checks the header
    // and the engine's settings again.
    unsafe { Component::deserialize(engine, body) }.map_err(|e| ArtifactError::Refused(format!("{e:#}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seal_finds_any_changed_byte_and_any_cut() {
        let mut file = b"serialized component".to_vec();
        file.extend_from_slice(digest(&file).as_ref());
        assert_eq!(unseal(&file).unwrap(), b"serialized component");
        for i in 0..file.len() {
            let mut damaged = file.clone();
            damaged[i] ^= 0x10;
            assert!(matches!(unseal(&damaged), Err(ArtifactError::Damaged)), "byte {i}");
        }
        assert!(matches!(unseal(&file[..file.len() - 1]), Err(ArtifactError::Damaged)));
        assert!(matches!(unseal(&file[..10]), Err(ArtifactError::Damaged)));
        assert!(matches!(unseal(b""), Err(ArtifactError::Damaged)));
    }
}
