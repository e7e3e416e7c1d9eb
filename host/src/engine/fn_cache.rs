//! Cranelift's per-function compile cache: machine code by the hash of a function's
//! Cranelift IR, shared by every module this node compiles.
//!
//! Cranelift keys a function by its IR with calls to other functions abstracted, so a
//! function whose body is unchanged hits the cache even when the functions around it
//! moved. It pays off for the same code under another id (a custom section or data
//! changed: every function but about 1 in 12 is reused) and for a new version that changes
//! a few functions (a one-line change to the hello guest: 66 ms instead of 215). Different
//! programs share little: after LTO and inlining their bodies differ, even the standard
//! library's.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use wasmtime::CacheStore;

/// Most bytes of compiled functions kept (keys and values); the least recently used go first.
pub const FN_CACHE_BYTES: usize = 64 << 20;

/// An in-memory [`CacheStore`] bounded in bytes, evicting the least recently used entries.
#[derive(Debug)]
pub struct FnCache {
    inner: Mutex<Entries>,
    max_bytes: usize,
    /// Functions found in the cache.
    pub hits: AtomicU64,
    /// Functions compiled and added to it.
    pub inserts: AtomicU64,
}

#[derive(Debug, Default)]
struct Entries {
    map: HashMap<Box<[u8]>, Entry>,
    bytes: usize,
    clock: u64,
}

#[derive(Debug)]
struct Entry {
    value: Arc<[u8]>,
    used: u64,
}

impl FnCache {
    /// A cache holding at most `max_bytes`.
    pub fn new(max_bytes: usize) -> Self {
        Self {
            inner: Mutex::new(Entries::default()),
            max_bytes,
            hits: AtomicU64::new(0),
            inserts: AtomicU64::new(0),
        }
    }
}

impl CacheStore for FnCache {
    fn get(&self, key: &[u8]) -> Option<Cow<'_, [u8]>> {
        let mut inner = self.inner.lock();
        inner.clock += 1;
        let now = inner.clock;
        let entry = inner.map.get_mut(key)?;
        entry.used = now;
        self.hits.fetch_add(1, Ordering::Relaxed);
        let value = Arc::clone(&entry.value);
        drop(inner);
        Some(Cow::Owned(value.to_vec()))
    }

    fn insert(&self, key: &[u8], value: Vec<u8>) -> bool {
        let size = key.len() + value.len();
        if size > self.max_bytes {
            return false;
        }
        self.inserts.fetch_add(1, Ordering::Relaxed);
        let mut inner = self.inner.lock();
        inner.clock += 1;
        let used = inner.clock;
        if let Some(old) = inner.map.insert(key.into(), Entry { value: value.into(), used }) {
            inner.bytes -= key.len() + old.value.len();
        }
        inner.bytes += size;
        if inner.bytes > self.max_bytes {
            inner.evict_to(self.max_bytes - self.max_bytes / 4);
        }
        true
    }
}

impl Entries {
    /// Drops the least recently used entries until at most `target` bytes remain (one sort
    /// per eviction, which frees a quarter of the cache, so its cost is spread thin).
    fn evict_to(&mut self, target: usize) {
        let mut by_age: Vec<(u64, Box<[u8]>)> = self.map.iter().map(|(k, e)| (e.used, k.clone())).collect();
        by_age.sort_unstable_by_key(|(used, _)| *used);
        for (_, key) in by_age {
            if self.bytes <= target {
                break;
            }
            if let Some(e) = self.map.remove(&key) {
                self.bytes -= key.len() + e.value.len();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_come_back_and_the_least_recently_used_go_first() {
        let cache = FnCache::new(400);
        for k in 0u8..3 {
            assert!(cache.insert(&[k], vec![k; 99]));
        }
        assert_eq!(cache.inner.lock().bytes, 300);
        assert_eq!(cache.get(&[0]).as_deref(), Some(&[0u8; 99][..]), "0 is now the most recent");
        assert!(cache.insert(&[3], vec![3; 99]));
        assert!(cache.insert(&[4], vec![4; 99]), "over 400 bytes: evicts down to 300");
        assert!(cache.inner.lock().bytes <= 300);
        assert!(cache.get(&[1]).is_none() && cache.get(&[2]).is_none(), "the oldest went");
        assert!(cache.get(&[0]).is_some() && cache.get(&[4]).is_some());
        assert!(!cache.insert(&[5], vec![0; 400]), "an entry larger than the cache is refused");
    }
}
