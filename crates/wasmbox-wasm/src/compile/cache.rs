//! The node-wide compile cache.
//!
//! Artifacts are Wasmtime's precompiled form of a wasm binary, keyed by the SHA-256 of the wasm
//! bytes plus the engine's compatibility hash, so an entry is only ever loaded by an engine that
//! can run it. Entries are written atomically (temp file + rename) and only by the shim; the
//! container side loads them with `deserialize_file`, which maps the file so its code pages are
//! shared by every container through the page cache. Nothing an image supplies is ever loaded
//! as machine code: the key is computed from the wasm we compiled ourselves.
//!
//! Each artifact has a sidecar (`.sum`: length and CRC-32 of the artifact) checked before its
//! first use in a boot (`.ok` records the check, see [`crate::compile::stamp`]); an entry that fails it, or that Wasmtime refuses to load, is
//! dropped and compiled again. The sidecar's mtime records the last use, and the cache is kept
//! under a byte budget by removing the least recently used entries.
//!
//! The cache is an optimization: when it cannot be written (a full disk, a read-only mount), a
//! compiled artifact is kept in memory (a memfd of this process, loaded by the create helper
//! through `/proc/<pid>/fd/<n>`) for this process's life, the container starts, and why the
//! cache is unusable is logged once per cause.

use std::collections::{HashMap, HashSet};
use std::os::fd::{AsRawFd, OwnedFd};
use std::fs::{self, DirBuilder, File, FileTimes};
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use wasmtime::Engine;

use super::digest::{engine_tag, sha256_hex};
use super::kind::FileKind;
use super::stamp;
use crate::WasmError;

/// Where the cache lives unless `WASMBOX_CACHE_DIR` says otherwise.
pub const DEFAULT_CACHE_DIR: &str = "/var/lib/wasmbox/cache";

/// Byte budget unless `WASMBOX_CACHE_MAX_BYTES` says otherwise.
pub const DEFAULT_MAX_BYTES: u64 = 4 << 30;

/// The cache directory chosen by the environment (the shim inherits containerd's).
pub fn default_dir() -> PathBuf {
    std::env::var_os("WASMBOX_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CACHE_DIR))
}

/// The byte budget chosen by the environment.
pub fn default_max_bytes() -> u64 {
    std::env::var("WASMBOX_CACHE_MAX_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_MAX_BYTES)
}

/// A compile cache rooted at a root-only directory.
#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: PathBuf,
    max_bytes: u64,
    /// Artifacts this process already checked against their sidecar.
    verified: Arc<Mutex<HashSet<PathBuf>>>,
    /// Artifacts compiled while the cache could not be written, by their cache path: a memfd
    /// each, and the path another process opens it by.
    in_memory: Arc<Mutex<HashMap<PathBuf, (OwnedFd, PathBuf)>>>,
}

/// Logs, once per process and cause, that the cache at `dir` cannot be written.
fn report_unusable(dir: &Path, e: &std::io::Error) {
    static SEEN: Mutex<Option<HashSet<(PathBuf, Option<i32>)>>> = Mutex::new(None);
    let first = SEEN
        .lock()
        .map(|mut seen| seen.get_or_insert_with(HashSet::new).insert((dir.to_path_buf(), e.raw_os_error())))
        .unwrap_or(true);
    if first {
        log::warn!(
            "compile cache {} cannot be written ({e}): compiling in memory, so every shim compiles \
             each module again; free the cache's disk or point WASMBOX_CACHE_DIR elsewhere",
            dir.display()
        );
    }
}

const ARTIFACT_EXT: &str = "cwasm";
const SUM_EXT: &str = "sum";
const OK_EXT: &str = "ok";
/// Remembered digests of entrypoint files, by stamp (see `get_or_compile_entrypoint`).
const DIGESTS_DIR: &str = "digests";

fn sum_path(artifact: &Path) -> PathBuf {
    artifact.with_extension(SUM_EXT)
}

/// Where a shim records that it verified the artifact, as the artifact's stamp then.
fn ok_path(artifact: &Path) -> PathBuf {
    artifact.with_extension(OK_EXT)
}

/// `len crc32` of a file's contents.
fn checksum_of(path: &Path) -> std::io::Result<String> {
    let mut f = File::open(path)?;
    let mut h = crc32fast::Hasher::new();
    let mut len = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        len += n as u64;
    }
    Ok(format!("{len} {:08x}", h.finalize()))
}

impl CompileCache {
    /// Opens (creating it 0700 if needed) the cache at `dir`.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, WasmError> {
        Self::with_budget(dir, default_max_bytes())
    }

    /// Opens the cache with an explicit byte budget.
    pub fn with_budget(dir: impl Into<PathBuf>, max_bytes: u64) -> Result<Self, WasmError> {
        let dir = dir.into();
        let made = DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .and_then(|_| fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)));
        // A cache that cannot be made or written still serves: hits where it has entries,
        // compiles in memory otherwise (see the module's doc).
        if let Err(e) = made {
            report_unusable(&dir, &e);
        }
        Ok(Self {
            dir,
            max_bytes,
            verified: Arc::default(),
            in_memory: Arc::default(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The entry path for `wasm` compiled by `engine`.
    pub fn entry_path(&self, engine: &Engine, wasm: &[u8], kind: FileKind) -> PathBuf {
        self.entry_path_for(engine, &sha256_hex(wasm), kind)
    }

    /// The entry path for an entrypoint compiled by `engine` (its digest computed once).
    pub fn entrypoint_path(
        &self,
        engine: &Engine,
        entry: &mut crate::compile::entrypoint::WasmEntrypoint,
    ) -> Result<PathBuf, WasmError> {
        Ok(self.entry_path_for(engine, &entry.digest()?, entry.kind))
    }

    /// [`Self::entry_path`] for wasm whose digest ([`sha256_hex`]) is already computed.
    pub fn entry_path_for(&self, engine: &Engine, digest: &str, kind: FileKind) -> PathBuf {
        let suffix = if kind == FileKind::Component { "component" } else { "module" };
        self.dir.join(format!("{digest}-{}.{suffix}.{ARTIFACT_EXT}", engine_tag(engine)))
    }

    /// Where the digest of a file with this stamp is remembered.
    fn digest_memo(&self, stamp: &str) -> PathBuf {
        self.dir.join(DIGESTS_DIR).join(&sha256_hex(stamp.as_bytes())[..32])
    }

    /// Returns the artifact for an entrypoint, compiling it first if the cache has none. A
    /// file whose digest is remembered for its stamp is not read at all on a cache hit.
    pub fn get_or_compile_entrypoint(
        &self,
        engine: &Engine,
        entry: &mut crate::compile::entrypoint::WasmEntrypoint,
    ) -> Result<PathBuf, WasmError> {
        if let Some(path) = self.find_by_stamp(engine, entry) {
            return Ok(path);
        }
        let stamp = entry.unread.as_ref().map(|u| u.stamp.clone());
        let digest = entry.digest()?;
        let (kind, guest_path) = (entry.kind, entry.guest_path.clone());
        let path = self.get_or_compile_keyed(engine, entry.bytes()?, &digest, kind, &guest_path)?;
        self.remember_digest(stamp, &digest, &guest_path);
        Ok(path)
    }

    /// Returns the artifact `engine` made of an entrypoint if the cache has one; compiles
    /// nothing (reads the file unless its digest is remembered for its stamp).
    pub fn find_entrypoint(
        &self,
        engine: &Engine,
        entry: &mut crate::compile::entrypoint::WasmEntrypoint,
    ) -> Result<Option<PathBuf>, WasmError> {
        if let Some(path) = self.find_by_stamp(engine, entry) {
            return Ok(Some(path));
        }
        let stamp = entry.unread.as_ref().map(|u| u.stamp.clone());
        let digest = entry.digest()?;
        let path = self.entry_path_for(engine, &digest, entry.kind);
        if !path.is_file() || !self.check(&path) {
            return Ok(None);
        }
        self.touch(&path);
        self.remember_digest(stamp, &digest, &entry.guest_path);
        Ok(Some(path))
    }

    /// A cache hit through the digest remembered for the file's stamp, if any.
    fn find_by_stamp(&self, engine: &Engine, entry: &crate::compile::entrypoint::WasmEntrypoint) -> Option<PathBuf> {
        let stamp = &entry.unread.as_ref()?.stamp;
        let digest = fs::read_to_string(self.digest_memo(stamp)).ok()?;
        let path = self.entry_path_for(engine, digest.trim(), entry.kind);
        if path.is_file() && self.check(&path) {
            log::debug!("compile cache hit {} (by stamp)", path.display());
            self.touch(&path);
            return Some(path);
        }
        None
    }

    /// Remembers the digest of a file read for the stamp it had unread, so later lookups need
    /// not read it.
    fn remember_digest(&self, stamp: Option<String>, digest: &str, guest_path: &str) {
        let Some(stamp) = stamp else { return };
        let memo = self.digest_memo(&stamp);
        let saved = DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(self.dir.join(DIGESTS_DIR))
            .map_err(|source| WasmError::Cache { path: memo.clone(), source })
            .and_then(|_| self.write_atomically(&memo, digest.as_bytes()));
        if let Err(e) = saved {
            log::debug!("cannot remember the digest of {guest_path}: {e}");
        }
    }

    /// Returns the artifact for `wasm`, compiling it first if the cache has none.
    pub fn get_or_compile(
        &self,
        engine: &Engine,
        wasm: &[u8],
        kind: FileKind,
        display_path: &str,
    ) -> Result<PathBuf, WasmError> {
        self.get_or_compile_keyed(engine, wasm, &sha256_hex(wasm), kind, display_path)
    }

    /// [`Self::get_or_compile`] with the digest of `wasm` already computed.
    pub fn get_or_compile_keyed(
        &self,
        engine: &Engine,
        wasm: &[u8],
        digest: &str,
        kind: FileKind,
        display_path: &str,
    ) -> Result<PathBuf, WasmError> {
        let path = self.entry_path_for(engine, digest, kind);
        if path.is_file() {
            if self.check(&path) {
                log::debug!("compile cache hit {}", path.display());
                self.touch(&path);
                return Ok(path);
            }
            log::warn!("compile cache entry {} is corrupt; recompiling", path.display());
            self.invalidate(&path);
        }
        if let Some(held) = self.memory_entry(&path) {
            return Ok(held);
        }
        let started = std::time::Instant::now();
        let compiled = precompile(engine, wasm, kind).map_err(|e| WasmError::Invalid {
            path: display_path.to_string(),
            message: format!("{e:#}"),
        })?;
        let stored = match self.store(&path, &compiled) {
            Ok(()) => path,
            Err(WasmError::Cache { source, .. }) => {
                report_unusable(&self.dir, &source);
                self.keep_in_memory(&path, &compiled)?
            }
            Err(e) => return Err(e),
        };
        log::info!(
            "compiled {display_path} ({} bytes) into {} in {:?}",
            wasm.len(),
            stored.display(),
            started.elapsed()
        );
        Ok(stored)
    }

    /// Writes a compiled artifact into the cache.
    fn store(&self, path: &Path, compiled: &[u8]) -> Result<(), WasmError> {
        // Sidecar first: an artifact without a valid sidecar is never used.
        let sum = format!("{} {:08x}", compiled.len(), crc32fast::hash(compiled));
        self.write_atomically(&sum_path(path), sum.as_bytes())?;
        if let Err(e) = self.write_atomically(path, compiled) {
            let _ = fs::remove_file(sum_path(path));
            return Err(e);
        }
        self.mark_verified(path);
        self.evict(path);
        Ok(())
    }

    /// The artifact this process compiled in memory for cache path `path`, if any.
    fn memory_entry(&self, path: &Path) -> Option<PathBuf> {
        let held = self.in_memory.lock().unwrap_or_else(|p| p.into_inner());
        held.get(path).map(|(_, open_by)| open_by.clone())
    }

    /// Keeps `compiled` (the artifact for cache path `path`) in a memfd for this process's
    /// life; returns the path another process (the create helper) opens it by.
    fn keep_in_memory(&self, path: &Path, compiled: &[u8]) -> Result<PathBuf, WasmError> {
        let err = |source| WasmError::Cache {
            path: path.to_path_buf(),
            source,
        };
        let fd = nix::sys::memfd::memfd_create(c"wasmbox-artifact", nix::sys::memfd::MemFdCreateFlag::MFD_CLOEXEC)
            .map_err(|e| err(e.into()))?;
        let mut file = File::from(fd);
        file.write_all(compiled).map_err(err)?;
        let fd = OwnedFd::from(file);
        let open_by = PathBuf::from(format!("/proc/{}/fd/{}", std::process::id(), fd.as_raw_fd()));
        let mut held = self.in_memory.lock().unwrap_or_else(|p| p.into_inner());
        held.insert(path.to_path_buf(), (fd, open_by.clone()));
        Ok(open_by)
    }

    /// Drops an entry that failed to load, so the next lookup recompiles it.
    pub fn invalidate(&self, path: &Path) {
        if !path.starts_with(&self.dir) {
            return;
        }
        if let Ok(mut v) = self.verified.lock() {
            v.remove(path);
        }
        for p in [path.to_path_buf(), sum_path(path), ok_path(path)] {
            if let Err(e) = fs::remove_file(&p) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    log::warn!("cannot remove cache entry {}: {e}", p.display());
                }
            }
        }
    }

    fn mark_verified(&self, path: &Path) {
        if let Ok(mut v) = self.verified.lock() {
            v.insert(path.to_path_buf());
        }
    }

    /// True when the artifact matches its sidecar. Checked once per boot and whenever the file
    /// changed since (see [`crate::compile::stamp`]): every container start is a new shim process, and
    /// reading a large artifact costs more than the rest of the start.
    fn check(&self, path: &Path) -> bool {
        if self.verified.lock().is_ok_and(|v| v.contains(path)) {
            return true;
        }
        let stamp = fs::metadata(path).ok().and_then(|m| stamp::of(&m));
        if let Some(stamp) = &stamp {
            if fs::read_to_string(ok_path(path)).is_ok_and(|ok| ok == *stamp) {
                self.mark_verified(path);
                return true;
            }
        }
        let expected = fs::read_to_string(sum_path(path)).unwrap_or_default();
        let ok = checksum_of(path).is_ok_and(|actual| actual == expected.trim());
        if ok {
            self.mark_verified(path);
            if let Some(stamp) = stamp {
                // Best effort: without it the next shim checks again.
                let _ = self.write_atomically(&ok_path(path), stamp.as_bytes());
            }
        }
        ok
    }

    /// Records a use (the sidecar's mtime), for least-recently-used eviction.
    fn touch(&self, path: &Path) {
        let now = FileTimes::new().set_modified(SystemTime::now());
        if let Err(e) = File::options().write(true).open(sum_path(path)).and_then(|f| f.set_times(now)) {
            log::debug!("cannot record use of {}: {e}", path.display());
        }
    }

    /// Removes least recently used entries until the cache fits its budget; `keep` stays.
    fn evict(&self, keep: &Path) {
        let Ok(entries) = fs::read_dir(&self.dir) else { return };
        let mut artifacts: Vec<(SystemTime, u64, PathBuf)> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == ARTIFACT_EXT))
            .filter_map(|p| {
                let size = fs::metadata(&p).ok()?.len();
                let used = fs::metadata(sum_path(&p)).and_then(|m| m.modified()).unwrap_or(SystemTime::UNIX_EPOCH);
                Some((used, size, p))
            })
            .collect();
        let mut total: u64 = artifacts.iter().map(|a| a.1).sum();
        artifacts.sort();
        for (_, size, p) in artifacts {
            if total <= self.max_bytes {
                break;
            }
            if p == keep {
                continue;
            }
            log::info!("compile cache over budget; evicting {}", p.display());
            self.invalidate(&p);
            total = total.saturating_sub(size);
        }
    }

    fn write_atomically(&self, path: &Path, bytes: &[u8]) -> Result<(), WasmError> {
        let err = |source| WasmError::Cache {
            path: path.to_path_buf(),
            source,
        };
        let tmp = path.with_extension(format!("tmp.{}.{:?}", std::process::id(), std::thread::current().id()));
        let result = (|| {
            let mut f = File::create(&tmp)?;
            f.set_permissions(fs::Permissions::from_mode(0o600))?;
            f.write_all(bytes)?;
            f.sync_all()?;
            fs::rename(&tmp, path)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result.map_err(err)
    }
}

/// Compiles on a rayon pool of this compile's own, which ends with it: Wasmtime compiles (and
/// validates) on rayon, and rayon's global pool would keep a thread per core for good in the
/// process that compiled (the shim of a container that started on a cache miss, for one).
fn precompile(engine: &Engine, wasm: &[u8], kind: FileKind) -> wasmtime::Result<Vec<u8>> {
    let compile = || match kind {
        FileKind::Component => engine.precompile_component(wasm),
        _ => engine.precompile_module(wasm),
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(cores)
        .thread_name(|i| format!("wasmbox-jit-{i}"))
        .build();
    match pool {
        Ok(pool) => pool.install(compile),
        Err(e) => {
            log::warn!("no compile pool ({e}); compiling on rayon's global pool");
            compile()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiles_once_and_keys_by_content() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CompileCache::open(dir.path().join("c")).unwrap();
        let mode = fs::metadata(cache.dir()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        let engine = crate::compile::engine::new_engine().unwrap();
        let a = wat::parse_str("(module (func (export \"_start\")))").unwrap();
        let b = wat::parse_str("(module (func (export \"_start\") nop))").unwrap();
        let pa = cache.get_or_compile(&engine, &a, FileKind::Module, "/a").unwrap();
        let mtime = fs::metadata(&pa).unwrap().modified().unwrap();
        let pa2 = cache.get_or_compile(&engine, &a, FileKind::Module, "/a").unwrap();
        assert_eq!(pa, pa2);
        assert_eq!(fs::metadata(&pa2).unwrap().modified().unwrap(), mtime, "recompiled a hit");
        let pb = cache.get_or_compile(&engine, &b, FileKind::Module, "/b").unwrap();
        assert_ne!(pa, pb);
        // The artifact loads back into the same engine configuration.
        unsafe { wasmtime::Module::deserialize_file(&engine, &pa) }.unwrap();
        // Two artifacts and their sidecars; no temp files are left behind.
        assert_eq!(fs::read_dir(cache.dir()).unwrap().count(), 4);
    }

    #[test]
    fn a_cache_that_cannot_be_written_compiles_in_memory_once() {
        let dir = tempfile::tempdir().unwrap();
        // A file where the cache directory should be: nothing can be created under it.
        let blocked = dir.path().join("file");
        fs::write(&blocked, b"").unwrap();
        let cache = CompileCache::open(blocked.join("cache")).unwrap();
        let engine = crate::compile::engine::new_engine().unwrap();
        let a = wat::parse_str("(module (func (export \"_start\")))").unwrap();
        let held = cache.get_or_compile(&engine, &a, FileKind::Module, "/a").unwrap();
        assert!(held.starts_with(format!("/proc/{}/fd", std::process::id())), "{}", held.display());
        // Loadable by path, as the create helper loads it.
        unsafe { wasmtime::Module::deserialize_file(&engine, &held) }.unwrap();
        // The next start in this process takes it again rather than compiling.
        assert_eq!(cache.get_or_compile(&engine, &a, FileKind::Module, "/a").unwrap(), held);
    }

    #[test]
    fn corrupt_entries_are_recompiled_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let engine = crate::compile::engine::new_engine().unwrap();
        let a = wat::parse_str("(module (func (export \"_start\")))").unwrap();
        let path = CompileCache::open(dir.path()).unwrap()
            .get_or_compile(&engine, &a, FileKind::Module, "/a")
            .unwrap();
        let good = fs::read(&path).unwrap();
        let mut bad = good.clone();
        let mid = bad.len() / 2;
        bad[mid] ^= 0xff;
        fs::write(&path, &bad).unwrap();
        // A new process (a new cache value) checks the sidecar and recompiles.
        let again = CompileCache::open(dir.path()).unwrap()
            .get_or_compile(&engine, &a, FileKind::Module, "/a")
            .unwrap();
        assert_eq!(again, path);
        assert_eq!(fs::read(&path).unwrap(), good);
        // A record of an earlier check that does not match the file is no excuse not to check.
        fs::write(ok_path(&path), "some other boot 1 2 3 4.0 5.0").unwrap();
        fs::write(&path, &bad).unwrap();
        assert!(!CompileCache::open(dir.path()).unwrap().check(&path));
        // A missing sidecar counts as corrupt too.
        fs::remove_file(sum_path(&path)).unwrap();
        let cache = CompileCache::open(dir.path()).unwrap();
        assert!(!cache.check(&path));
    }

    #[test]
    fn a_remembered_stamp_skips_reading_the_file() {
        use crate::compile::entrypoint::{UnreadFile, WasmEntrypoint};
        let dir = tempfile::tempdir().unwrap();
        let cache = CompileCache::open(dir.path().join("c")).unwrap();
        let engine = crate::compile::engine::new_engine().unwrap();
        let file_with = |wat: &str| {
            let path = dir.path().join(format!("m{}.wasm", wat.len()));
            fs::write(&path, wat::parse_str(wat).unwrap()).unwrap();
            File::open(path).unwrap()
        };
        let entry = |file: File, stamp: &str| WasmEntrypoint {
            guest_path: "/app.wasm".into(),
            func: None,
            kind: FileKind::Module,
            wasm: Vec::new(),
            unread: Some(UnreadFile { file, stamp: stamp.into() }),
            digest: None,
        };
        let first = file_with("(module (func (export \"_start\")))");
        let mut e = entry(first, "stamp-1");
        let p1 = cache.get_or_compile_entrypoint(&engine, &mut e).unwrap();
        assert!(!e.wasm.is_empty(), "a new stamp means reading the file");
        // Same stamp: the remembered digest is used and the (different) file is never read.
        let other = file_with("(module (func (export \"_start\") nop nop))");
        let mut e = entry(other.try_clone().unwrap(), "stamp-1");
        assert_eq!(cache.get_or_compile_entrypoint(&engine, &mut e).unwrap(), p1);
        assert!(e.wasm.is_empty() && e.unread.is_some());
        // Another stamp: read, hashed, compiled on its own.
        let mut e = entry(other.try_clone().unwrap(), "stamp-2");
        assert_ne!(cache.get_or_compile_entrypoint(&engine, &mut e).unwrap(), p1);

        // find_entrypoint compiles nothing: another engine's entry is absent until made...
        let baseline = crate::compile::engine::new_baseline_engine().unwrap();
        let mut e = entry(other.try_clone().unwrap(), "stamp-3");
        assert_eq!(cache.find_entrypoint(&baseline, &mut e).unwrap(), None);
        let made = cache.get_or_compile(&baseline, &e.wasm, FileKind::Module, "/app.wasm").unwrap();
        // ...then found, and by the stamp it remembered (the file left unread).
        let mut e = entry(other.try_clone().unwrap(), "stamp-4");
        assert_eq!(cache.find_entrypoint(&baseline, &mut e).unwrap(), Some(made.clone()));
        let mut e = entry(other, "stamp-4");
        assert_eq!(cache.find_entrypoint(&baseline, &mut e).unwrap(), Some(made));
        assert!(e.unread.is_some());
    }

    #[test]
    fn evicts_least_recently_used_over_budget() {
        let dir = tempfile::tempdir().unwrap();
        let engine = crate::compile::engine::new_engine().unwrap();
        let wasm = |n: i32| wat::parse_str(format!("(module (func (export \"f{n}\")))")).unwrap();
        // A budget of one byte keeps only the newest entry.
        let cache = CompileCache::with_budget(dir.path(), 1).unwrap();
        let p1 = cache.get_or_compile(&engine, &wasm(1), FileKind::Module, "/1").unwrap();
        let p2 = cache.get_or_compile(&engine, &wasm(2), FileKind::Module, "/2").unwrap();
        assert!(!p1.exists() && !sum_path(&p1).exists(), "the older entry was evicted");
        assert!(p2.exists() && sum_path(&p2).exists());
        // A roomy budget keeps both, and a use refreshes the older one.
        let cache = CompileCache::with_budget(dir.path(), u64::MAX).unwrap();
        let p1 = cache.get_or_compile(&engine, &wasm(1), FileKind::Module, "/1").unwrap();
        assert!(p1.exists() && p2.exists());
    }

    #[test]
    fn invalid_wasm_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CompileCache::open(dir.path()).unwrap();
        let engine = crate::compile::engine::new_engine().unwrap();
        let err = cache
            .get_or_compile(&engine, b"\0asm\x01\0\0\0garbage", FileKind::Module, "/bad.wasm")
            .unwrap_err();
        assert!(err.to_string().contains("/bad.wasm"), "{err}");
    }
}
