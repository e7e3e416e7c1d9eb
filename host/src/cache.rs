//! The code cache: modules by content ([`ModuleId`] = SHA-256 of the component bytes),
//! compiled once per node and kept on disk across restarts.
//!
//! Only artifacts this node compiled itself are ever deserialized: bytes from elsewhere are
//! validated and compiled locally (deserializing an artifact is `unsafe` for bytes this
//! wasmtime did not produce), and an artifact is loaded only if its seal, a digest written
//! with it, still matches ([`artifact`]).

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use wasmtime::component::Component;
use wasmtime::{Engine, Store};

use crate::api::GuestPre;
use crate::config::{CacheDir, NodeConfig};
use crate::error::LoadError;
use crate::node::NodeInner;
use crate::process::ExitReason;
use crate::process::entry::{ProcessEntry, ProcessKind};
use crate::process::state::{Grants, ProcState};

mod artifact;
mod writer;

use writer::DiskWriter;

/// How long a module's `entries` export may run when the module is loaded.
const ENTRIES_DEADLINE: Duration = Duration::from_secs(2);
/// Memory the `entries` probe may use beyond what the module's memory starts with.
const ENTRIES_MEMORY_BYTES: u64 = 16 << 20;
/// Bytes in a wasm page.
const WASM_PAGE_BYTES: u64 = 64 << 10;

/// A module's identity: the SHA-256 of its component bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct ModuleId(pub [u8; 32]);

impl ModuleId {
    /// The id of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
        let mut id = [0u8; 32];
        id.copy_from_slice(digest.as_ref());
        Self(id)
    }
}

impl fmt::Display for ModuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for ModuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The text is not 64 hex digits.
#[derive(Debug, thiserror::Error)]
#[error("a module id is 64 hex digits")]
pub struct BadModuleId;

impl FromStr for ModuleId {
    type Err = BadModuleId;
    fn from_str(s: &str) -> Result<Self, BadModuleId> {
        if s.len() != 64 || !s.is_ascii() {
            return Err(BadModuleId);
        }
        let mut id = [0u8; 32];
        for (i, b) in id.iter_mut().enumerate() {
            *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| BadModuleId)?;
        }
        Ok(Self(id))
    }
}

/// A module ready to instantiate.
pub struct LoadedModule {
    /// Its id.
    pub id: ModuleId,
    /// The component bytes (kept to ship the module to other nodes).
    pub bytes: Bytes,
    /// The entries its `start` accepts.
    pub entries: Vec<String>,
    pub(crate) pre: GuestPre<ProcState>,
}

/// Most bytes the on-disk cache keeps; the least recently used files go first beyond it.
pub const DISK_CACHE_BYTES: u64 = 1 << 30;

/// Modules by id, in memory and (optionally) on disk: `<id>.wasm` (the bytes, to ship them
/// on and to reload them after a restart) and `<id>-<engine>.cwasm` (this engine's
/// compiled artifact).
pub(crate) struct CodeCache {
    modules: Mutex<HashMap<ModuleId, Arc<LoadedModule>>>,
    dir: Option<PathBuf>,
    /// Modules compiled by this node.
    pub compiled: AtomicU64,
    /// Modules whose compiled artifact came from the disk cache.
    pub from_disk: AtomicU64,
    /// Compiles and prepares one module at a time: compiling is CPU-bound and uses every
    /// core.
    compiling: tokio::sync::Semaphore,
    /// Distinguishes artifacts of differently configured engines in the disk cache.
    engine_key: String,
    max_bytes: u64,
    /// What the disk cache holds, for eviction.
    disk: Arc<DiskUsage>,
    /// Writes new files to the disk cache in the background.
    writer: DiskWriter,
}

impl CodeCache {
    pub fn new(config: &NodeConfig, engine: &Engine) -> Self {
        let dir = match &config.cache_dir {
            CacheDir::Disabled => None,
            CacheDir::Path(p) => Some(p.clone()),
            CacheDir::User => {
                directories::ProjectDirs::from("", "", "spore").map(|d| d.cache_dir().join("modules"))
            }
        };
        let engine_key = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            engine.precompile_compatibility_hash().hash(&mut h);
            // The compiler is in wasmtime's tunables too; naming it here keeps a Winch
            // artifact from ever being taken for a Cranelift one.
            format!("{:?}", config.compiler).hash(&mut h);
            // The artifact's format: unsealed artifacts of older nodes are not looked at.
            "sealed".hash(&mut h);
            format!("{:016x}", h.finish())
        };
        Self {
            modules: Mutex::new(HashMap::new()),
            dir,
            compiling: tokio::sync::Semaphore::new(1),
            compiled: AtomicU64::new(0),
            from_disk: AtomicU64::new(0),
            engine_key,
            max_bytes: config.max_module_bytes,
            disk: Arc::new(DiskUsage::new(DISK_CACHE_BYTES)),
            writer: DiskWriter::new(),
        }
    }

    /// Waits at most `timeout` for the disk cache's pending writes; false if some remain.
    pub fn flush(&self, timeout: Duration) -> bool {
        self.writer.flush(timeout)
    }

    /// The loaded module `id`.
    pub fn get(&self, id: &ModuleId) -> Option<Arc<LoadedModule>> {
        self.modules.lock().get(id).cloned()
    }

    /// Validates, compiles (or reuses the disk cache) and prepares `bytes`.
    ///
    /// One module at a time, from the compile to the module's entry in memory: a second
    /// load of the same bytes that came meanwhile (a burst of spawns of a module new to
    /// this node) finds it there instead of compiling it again.
    pub async fn load(&self, node: &Arc<NodeInner>, bytes: Bytes) -> Result<Arc<LoadedModule>, LoadError> {
        check_header(&bytes, self.max_bytes)?;
        let id = ModuleId::of(&bytes);
        if let Some(m) = self.get(&id) {
            return Ok(m);
        }
        let _permit = self.compiling.acquire().await.map_err(|e| LoadError::Invalid(e.to_string()))?;
        if let Some(m) = self.get(&id) {
            return Ok(m);
        }
        let engine = node.engine.clone();
        let artifact = self.dir.as_ref().map(|d| d.join(format!("{id}-{}.cwasm", self.engine_key)));
        let source = bytes.clone();
        let (component, cached) = tokio::task::spawn_blocking(move || compile(&engine, &source, artifact))
            .await
            .map_err(|e| LoadError::Invalid(format!("compiler task failed: {e}")))??;
        if let Some(dir) = &self.dir {
            self.keep(dir, id, &bytes, (!cached).then(|| component.clone()));
        }
        let counter = if cached { &self.from_disk } else { &self.compiled };
        counter.fetch_add(1, Ordering::Relaxed);
        let instance_pre =
            node.linker.instantiate_pre(&component).map_err(|e| LoadError::WrongWorld(format!("{e:#}")))?;
        let pre = GuestPre::new(instance_pre).map_err(|e| LoadError::WrongWorld(format!("{e:#}")))?;
        let memory = probe_memory_bytes(&component, crate::engine::max_memory_bytes(&node.config));
        let entries = list_entries(node, &pre, id, memory).await?;
        let module = Arc::new(LoadedModule { id, bytes, entries, pre });
        self.modules.lock().insert(id, Arc::clone(&module));
        Ok(module)
    }
}

impl CodeCache {
    /// The module `id` from memory, or from the bytes kept on disk by an earlier run.
    pub async fn load_id(&self, node: &Arc<NodeInner>, id: ModuleId) -> Option<Arc<LoadedModule>> {
        if let Some(m) = self.get(&id) {
            return Some(m);
        }
        let path = self.dir.as_ref()?.join(format!("{id}.wasm"));
        let bytes = tokio::fs::read(&path).await.ok()?;
        if ModuleId::of(&bytes) != id {
            tracing::warn!(path = %path.display(), "cached module does not match its id; ignored");
            return None;
        }
        self.load(node, Bytes::from(bytes)).await.ok()
    }
}

impl CodeCache {
    /// Keeps a module's bytes in the disk cache (once), and `compiled`, its new artifact,
    /// in the background.
    fn keep(&self, dir: &Path, id: ModuleId, bytes: &Bytes, compiled: Option<Component>) {
        let (dir, bytes, disk) = (dir.to_owned(), bytes.clone(), Arc::clone(&self.disk));
        let artifact = dir.join(format!("{id}-{}.cwasm", self.engine_key));
        self.writer.submit(move || {
            if let Some(component) = compiled {
                keep_artifact(&artifact, &component, &disk);
            }
            keep_bytes(&dir, id, &bytes, &disk);
        });
    }
}

/// Writes a compiled artifact, sealed, to the disk cache.
fn keep_artifact(path: &Path, component: &Component, disk: &DiskUsage) {
    let written = artifact::seal(component).map_err(std::io::Error::other).and_then(|sealed| {
        write_atomically(path, &sealed)?;
        Ok(sealed.len() as u64)
    });
    match written {
        Ok(n) => disk.add(path.parent().unwrap_or(Path::new(".")), n),
        Err(e) => tracing::warn!(path = %path.display(), "cannot cache compiled module: {e}"),
    }
}

/// Keeps a module's bytes on disk (once), counting them toward the cache's size limit.
fn keep_bytes(dir: &Path, id: ModuleId, bytes: &[u8], disk: &DiskUsage) {
    let path = dir.join(format!("{id}.wasm"));
    if !path.exists() {
        match write_atomically(&path, bytes) {
            Ok(()) => disk.add(dir, bytes.len() as u64),
            Err(e) => tracing::warn!(path = %path.display(), "cannot cache module bytes: {e}"),
        }
    }
}

/// The bytes of the disk cache, as this node counts them: listed once, then grown by what
/// it writes. Only when the count passes the limit is the directory listed again and the
/// least recently used files deleted, so that a new module does not cost a `stat` of every
/// file in the cache. (Nodes sharing a directory each count their own writes; the listing
/// corrects the count.)
struct DiskUsage {
    /// The most the cache may hold.
    limit: u64,
    /// The count, `None` until the first write lists the directory.
    total: Mutex<Option<u64>>,
}

impl DiskUsage {
    /// A count not yet taken, for a cache of at most `limit` bytes.
    fn new(limit: u64) -> Self {
        Self { limit, total: Mutex::new(None) }
    }

    /// Counts `written` more bytes in `dir` (already written there), evicting down to the
    /// limit when the count passes it.
    fn add(&self, dir: &Path, written: u64) {
        let mut total = self.total.lock();
        let counted = match *total {
            Some(t) => t + written,
            None => evict(dir, self.limit),
        };
        *total = Some(if counted > self.limit { evict(dir, self.limit) } else { counted });
    }
}

/// Deletes the least recently used files of `dir` until it holds at most `max` bytes, and
/// returns how many it holds.
fn evict(dir: &Path, max: u64) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    let mut files: Vec<(std::time::SystemTime, u64, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            if !meta.is_file() {
                return None;
            }
            Some((meta.modified().ok()?, meta.len(), e.path()))
        })
        .collect();
    let mut total: u64 = files.iter().map(|f| f.1).sum();
    if total <= max {
        return total;
    }
    files.sort();
    for (_, len, path) in files {
        if total <= max {
            break;
        }
        if std::fs::remove_file(&path).is_ok() {
            total -= len;
        }
    }
    total
}

/// Marks a cache file as just used, for eviction.
fn touch(path: &Path) {
    if let Ok(f) = std::fs::File::options().write(true).open(path) {
        let _ = f.set_modified(std::time::SystemTime::now());
    }
}

/// The bytes of the module file at `path`, refused unread when it is larger than `max`, so
/// that a file of gigabytes costs neither the memory nor the time of reading it. A stream
/// (a pipe, `/dev/stdin`) is read up to the limit.
pub fn read_module(path: &Path, max: u64) -> Result<Vec<u8>, LoadError> {
    use std::io::Read;
    let read_error = |error| LoadError::Read { path: path.display().to_string(), error };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let meta = file.metadata().map_err(read_error)?;
    if meta.is_file() && meta.len() > max {
        return Err(LoadError::TooLarge { size: meta.len(), limit: max });
    }
    let expected = if meta.is_file() { meta.len() } else { 0 };
    let mut bytes = Vec::with_capacity(usize::try_from(expected).unwrap_or(0));
    file.take(max.saturating_add(1)).read_to_end(&mut bytes).map_err(read_error)?;
    if bytes.len() as u64 > max {
        return Err(LoadError::TooLargeStream { limit: max });
    }
    Ok(bytes)
}

/// Refuses what is not a component before any work is done on it.
fn check_header(bytes: &[u8], max: u64) -> Result<(), LoadError> {
    if bytes.len() as u64 > max {
        return Err(LoadError::TooLarge { size: bytes.len() as u64, limit: max });
    }
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(LoadError::NotWasm);
    }
    // Bytes 4..8: version and layer; layer 0 is a core module, layer 1 a component.
    if bytes[6..8] == [0, 0] {
        return Err(LoadError::CoreModule);
    }
    Ok(())
}

/// Compiles `bytes`, or loads the on-disk artifact at `artifact_path` when there is one; true
/// when the artifact was used. A new artifact is written later, from the compiled component
/// (not compiled to bytes and loaded back, which copies and parses it once more on the way
/// to the first spawn), and off the load path ([`CodeCache::keep`]).
fn compile(
    engine: &Engine,
    bytes: &[u8],
    artifact_path: Option<PathBuf>,
) -> Result<(Component, bool), LoadError> {
    if let Some(path) = artifact_path
        && path.exists()
    {
        match artifact::load(engine, &path) {
            Ok(c) => {
                touch(&path);
                return Ok((c, true));
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), "ignoring cached artifact, compiling again: {e}")
            }
        }
    }
    let component = Component::new(engine, bytes).map_err(|e| LoadError::Invalid(format!("{e:#}")))?;
    Ok((component, false))
}

/// Writes through a temporary file and a rename, so that concurrent nodes sharing the cache
/// never see half a file.
fn write_atomically(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{}.{}.tmp", std::process::id(), fastrand_suffix()));
    std::fs::write(&tmp, data)?;
    std::fs::rename(&tmp, path)
}

fn fastrand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// The memory limit of the `entries` probe: the module's initial memory, which any spawn of
/// it must be given too (a module whose memory starts larger than a default process's, a big
/// table in its data, must load, to be spawned with a larger limit), plus
/// [`ENTRIES_MEMORY_BYTES`] for the call; at most `max`, the node's largest.
fn probe_memory_bytes(component: &Component, max: u64) -> u64 {
    let pages = component.resources_required().and_then(|r| r.max_initial_memory_size).unwrap_or(0);
    pages.saturating_mul(WASM_PAGE_BYTES).saturating_add(ENTRIES_MEMORY_BYTES).min(max)
}

/// Instantiates the module once, without WASI grants, to call its `entries` export.
async fn list_entries(
    node: &Arc<NodeInner>,
    pre: &GuestPre<ProcState>,
    id: ModuleId,
    memory: u64,
) -> Result<Vec<String>, LoadError> {
    let pid = node.table.new_pid();
    let probe = Arc::new(ProcessEntry::new(pid, pid, ProcessKind::Host, 0, 0));
    // A throwaway module record: the probe never spawns, so it only needs the pre.
    let module = Arc::new(LoadedModule { id, bytes: Bytes::new(), entries: Vec::new(), pre: pre.clone() });
    let state = ProcState::new(Arc::clone(node), Arc::clone(&probe), module, Grants::default(), memory);
    let mut store = Store::new(&node.engine, state);
    store.limiter(|s| &mut s.limiter);
    crate::epoch::yield_at_deadlines(&mut store);
    if node.config.fuel {
        store.set_fuel(u64::MAX).map_err(|e| LoadError::Entries(format!("{e:#}")))?;
    }
    let call = node.activity.track(async {
        let guest = pre.instantiate_async(&mut store).await?;
        guest.call_entries(&mut store).await
    });
    let listed = match tokio::time::timeout(ENTRIES_DEADLINE, call).await {
        Ok(Ok(entries)) => Ok(entries),
        // Named as a process's end would be ("trap: wasm `unreachable` instruction executed").
        Ok(Err(e)) => Err(LoadError::Entries(crate::process::spawn::reason_of(&e).to_string())),
        Err(_) => Err(LoadError::Entries("`entries` did not return within 2 s".into())),
    };
    // An `entries` that linked, monitored or registered (any module may) ends like a
    // process, so that nothing waits on a pid that never ends.
    node.process_ended(&probe, ExitReason::Normal);
    listed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_module_file_is_refused_unread_past_the_limit_and_a_stream_is_cut_there() {
        let path = std::env::temp_dir().join(format!("spore-read-module-{}", std::process::id()));
        std::fs::File::create(&path).unwrap().set_len(1 << 30).unwrap();
        let refused = read_module(&path, 1000);
        std::fs::remove_file(&path).unwrap();
        assert!(
            matches!(refused, Err(LoadError::TooLarge { size: 1_073_741_824, limit: 1000 })),
            "{refused:?}"
        );
        #[cfg(target_os = "linux")]
        {
            let endless = read_module(Path::new("/dev/zero"), 1000);
            assert!(matches!(endless, Err(LoadError::TooLargeStream { limit: 1000 })), "{endless:?}");
        }
        let missing = read_module(Path::new("/nonexistent/module.wasm"), 1000).unwrap_err();
        assert!(missing.to_string().starts_with("cannot read /nonexistent/module.wasm"), "{missing}");
    }

    #[test]
    fn eviction_removes_the_least_recently_used_files_first() {
        let dir = std::env::temp_dir().join(format!("spore-evict-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let old = std::time::SystemTime::now() - Duration::from_secs(3600);
        for (name, age) in [("a", 3), ("b", 2), ("c", 1)] {
            let path = dir.join(name);
            std::fs::write(&path, [0u8; 100]).unwrap();
            let f = std::fs::File::options().write(true).open(&path).unwrap();
            f.set_modified(old + Duration::from_secs(60 * (10 - age))).unwrap();
        }
        touch(&dir.join("a"));
        // The first write lists the directory: 300 bytes, within 300.
        let usage = DiskUsage::new(300);
        usage.add(&dir, 100);
        let left = |names: &[&str]| names.iter().map(|n| dir.join(n).exists()).collect::<Vec<bool>>();
        assert_eq!(left(&["a", "b", "c"]), [true, true, true]);
        // Counted past the limit: listed again, and the least recently used go.
        std::fs::write(dir.join("d"), [0u8; 100]).unwrap();
        usage.add(&dir, 100);
        assert_eq!(left(&["a", "b", "c", "d"]), [true, false, true, true], "b was the least recently used");
        assert_eq!(*usage.total.lock(), Some(300));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn headers_are_checked_before_any_work() {
        assert!(matches!(check_header(b"hello", 100), Err(LoadError::NotWasm)));
        assert!(matches!(check_header(b"\0asm\x01\0\0\0", 100), Err(LoadError::CoreModule)));
        assert!(matches!(
            check_header(b"\0asm\x0d\0\x01\0", 4),
            Err(LoadError::TooLarge { size: 8, limit: 4 })
        ));
        assert!(check_header(b"\0asm\x0d\0\x01\0", 100).is_ok());
    }
}
