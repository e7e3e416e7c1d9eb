//! The cookie: the shared secret of a cluster. Read from a file that only its owner may read
//! (as Erlang requires of `~/.erlang.cookie`), created with random content when missing.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Characters of a generated cookie: 32 of 62 symbols carry 190 bits of randomness.
const COOKIE_LEN: usize = 32;
const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
/// A cookie file larger than this is not a cookie file.
const MAX_COOKIE_BYTES: u64 = 4096;

/// Why the cookie could not be had.
#[derive(Debug, thiserror::Error)]
pub enum CookieError {
    /// No path given and no home directory.
    #[error("no cookie file given and $HOME is not set")]
    NoHome,
    /// The path is a directory or another file that is not a regular one.
    #[error("cookie file {0} is not a regular file")]
    NotAFile(String),
    /// The file is readable by group or others.
    #[error(
        "cookie file {path} is readable by group or others (mode {mode:04o}); \
         run `chmod 400 {path}` so that only its owner can read it"
    )]
    Permissions {
        /// The file.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
    /// The file is empty, too large or not text.
    #[error("cookie file {0} does not hold a cookie (one line of text, at most 4096 bytes)")]
    Malformed(String),
    /// Reading or creating the file failed. (The message names the cause, so it is not also
    /// a `source`: printed as a chain, it would be said twice.)
    #[error("cookie file {path}: {error}")]
    Io {
        /// The file.
        path: String,
        /// What failed.
        error: std::io::Error,
    },
    /// The system's random source failed.
    #[error("cannot generate a cookie: no randomness")]
    Random,
}

/// `$HOME/.spore.cookie`.
pub fn default_path() -> Result<PathBuf, CookieError> {
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".spore.cookie")).ok_or(CookieError::NoHome)
}

/// Reads the cookie at `path`, creating the file (mode 0400, random content) if missing.
///
/// Nodes started at the same moment on a fresh machine all find the file missing: the
/// cookie is written whole to a file of this process's own and linked into place, so the
/// file at `path` never exists half-written, and every process that loses the race reads
/// the winner's cookie instead of failing or writing another.
pub fn load_or_create(path: &Path) -> Result<String, CookieError> {
    match read(path) {
        Err(CookieError::Io { error, .. }) if error.kind() == std::io::ErrorKind::NotFound => {
            create(path)?;
            read(path)
        }
        read => read,
    }
}

/// Reads the cookie at `path`, which must be readable by its owner only.
fn read(path: &Path) -> Result<String, CookieError> {
    let io = |error| CookieError::Io { path: path.display().to_string(), error };
    let meta = std::fs::metadata(path).map_err(io)?;
    if !meta.is_file() {
        return Err(CookieError::NotAFile(path.display().to_string()));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(CookieError::Permissions { path: path.display().to_string(), mode });
    }
    if meta.len() == 0 || meta.len() > MAX_COOKIE_BYTES {
        return Err(CookieError::Malformed(path.display().to_string()));
    }
    let text =
        std::fs::read_to_string(path).map_err(|_| CookieError::Malformed(path.display().to_string()))?;
    let cookie = text.trim();
    if cookie.is_empty() || cookie.contains('\n') {
        return Err(CookieError::Malformed(path.display().to_string()));
    }
    Ok(cookie.to_owned())
}

/// Creates the cookie file at `path` with a fresh cookie, unless another process did first.
fn create(path: &Path) -> Result<(), CookieError> {
    let io = |error| CookieError::Io { path: path.display().to_string(), error };
    let cookie = generate()?;
    // Named by randomness of its own, so that no two creators (threads of one process
    // included) and no file left by a crash ever share it.
    let mut staged = path.as_os_str().to_owned();
    staged.push(format!(".{}.new", &generate()?[..12]));
    let staged = PathBuf::from(staged);
    let written = (|| {
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o400).open(&staged)?;
        file.write_all(cookie.as_bytes())?;
        file.sync_all()?;
        match std::fs::hard_link(&staged, path) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(e),
            _ => Ok(()),
        }
    })();
    let _ = std::fs::remove_file(&staged);
    written.map_err(io)
}

/// A fresh random cookie.
pub fn generate() -> Result<String, CookieError> {
    use ring::rand::SecureRandom;
    let mut raw = [0u8; COOKIE_LEN];
    ring::rand::SystemRandom::new().fill(&mut raw).map_err(|_| CookieError::Random)?;
    // 256 is a multiple of neither 62 nor a power of it; the bias of `% 62` (at most 1/256
    // per character) leaves well over 128 bits of entropy in 32 characters.
    Ok(raw.iter().map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("spore-cookie-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("cookie")
    }

    #[test]
    fn a_missing_cookie_is_created_owner_read_only() {
        let path = scratch("create");
        let cookie = load_or_create(&path).unwrap();
        assert_eq!(cookie.len(), COOKIE_LEN);
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o400);
        assert_eq!(load_or_create(&path).unwrap(), cookie);
    }

    #[test]
    fn a_cookie_readable_by_others_is_refused_with_the_fix() {
        let path = scratch("open");
        std::fs::write(&path, "secret").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = load_or_create(&path).unwrap_err().to_string();
        assert!(err.contains("mode 0644") && err.contains("chmod 400"), "{err}");
    }

    #[test]
    fn processes_creating_the_cookie_at_once_all_read_the_same_one() {
        for round in 0..20 {
            let path = scratch(&format!("race-{round}"));
            let cookies: Vec<_> = std::thread::scope(|s| {
                let readers: Vec<_> = (0..8).map(|_| s.spawn(|| load_or_create(&path))).collect();
                readers.into_iter().map(|r| r.join().unwrap().unwrap()).collect()
            });
            assert!(cookies.iter().all(|c| c == &cookies[0]), "round {round}: {cookies:?}");
            assert_eq!(
                std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
                1,
                "a staged file was left"
            );
        }
    }

    #[test]
    fn a_cookie_in_a_missing_directory_says_which_file_and_why_once() {
        let path = scratch("missing-dir").with_file_name("no-such-dir").join("cookie");
        let err = load_or_create(&path).unwrap_err();
        assert!(std::error::Error::source(&err).is_none());
        let text = err.to_string();
        assert!(text.contains("no-such-dir/cookie") && text.matches("os error").count() == 1, "{text}");
    }

    #[test]
    fn a_directory_is_not_a_cookie_file_and_no_chmod_is_suggested() {
        let dir = scratch("a-dir");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = load_or_create(&dir).unwrap_err();
        assert!(matches!(&err, CookieError::NotAFile(_)), "{err}");
        assert!(!err.to_string().contains("chmod"), "{err}");
    }

    #[test]
    fn an_empty_cookie_is_refused() {
        let path = scratch("empty");
        std::fs::write(&path, "").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
        assert!(matches!(load_or_create(&path), Err(CookieError::Malformed(_))));
    }
}
