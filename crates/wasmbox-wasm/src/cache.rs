//! The node-wide compile cache.
//!
//! Artifacts are Wasmtime's precompiled form of a wasm binary, keyed by the SHA-256 of the wasm
//! bytes plus the engine's compatibility hash, so an entry is only ever loaded by an engine that
//! can run it. Entries are written atomically (temp file + rename) and only by the shim; the
//! container side loads them with `deserialize_file`, which maps the file so its code pages are
//! shared by every container through the page cache. Nothing an image supplies is ever loaded
//! as machine code: the key is computed from the wasm we compiled ourselves.

use std::fs::{self, DirBuilder, File};
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;

use crate::kind::FileKind;
use crate::WasmError;

/// Where the cache lives unless `WASMBOX_CACHE_DIR` says otherwise.
pub const DEFAULT_CACHE_DIR: &str = "/var/lib/wasmbox/cache";

/// The cache directory chosen by the environment (the shim inherits containerd's).
pub fn default_dir() -> PathBuf {
    std::env::var_os("WASMBOX_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CACHE_DIR))
}

/// A compile cache rooted at a root-only directory.
#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: PathBuf,
}

/// Feeds `Hash` output into SHA-256, so the engine hash is stable across processes.
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn finish(&self) -> u64 {
        0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// Hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A short, stable digest of everything in the engine that affects compiled code.
pub fn engine_tag(engine: &Engine) -> String {
    let mut h = ShaHasher(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut h);
    hex::encode(&h.0.finalize()[..8])
}

impl CompileCache {
    /// Opens (creating it 0700 if needed) the cache at `dir`.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, WasmError> {
        let dir = dir.into();
        let err = |source| WasmError::Cache {
            path: dir.clone(),
            source,
        };
        DirBuilder::new().recursive(true).mode(0o700).create(&dir).map_err(err)?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).map_err(err)?;
        Ok(Self { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The entry path for `wasm` compiled by `engine`.
    pub fn entry_path(&self, engine: &Engine, wasm: &[u8], kind: FileKind) -> PathBuf {
        let suffix = if kind == FileKind::Component { "component" } else { "module" };
        self.dir
            .join(format!("{}-{}.{suffix}.cwasm", sha256_hex(wasm), engine_tag(engine)))
    }

    /// Returns the artifact for `wasm`, compiling it first if the cache has none.
    pub fn get_or_compile(
        &self,
        engine: &Engine,
        wasm: &[u8],
        kind: FileKind,
        display_path: &str,
    ) -> Result<PathBuf, WasmError> {
        let path = self.entry_path(engine, wasm, kind);
        if path.is_file() {
            log::debug!("compile cache hit {}", path.display());
            return Ok(path);
        }
        let started = std::time::Instant::now();
        let compiled = match kind {
            FileKind::Component => engine.precompile_component(wasm),
            _ => engine.precompile_module(wasm),
        }
        .map_err(|e| WasmError::Invalid {
            path: display_path.to_string(),
            message: format!("{e:#}"),
        })?;
        self.write_atomically(&path, &compiled)?;
        log::info!(
            "compiled {display_path} ({} bytes) into {} in {:?}",
            wasm.len(),
            path.display(),
            started.elapsed()
        );
        Ok(path)
    }

    /// Drops an entry that failed to load, so the next lookup recompiles it.
    pub fn invalidate(&self, path: &Path) {
        if path.starts_with(&self.dir) {
            if let Err(e) = fs::remove_file(path) {
                log::warn!("cannot remove cache entry {}: {e}", path.display());
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiles_once_and_keys_by_content() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CompileCache::open(dir.path().join("c")).unwrap();
        let mode = fs::metadata(cache.dir()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        let engine = crate::engine::new_engine().unwrap();
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
        // No temp files are left behind.
        assert_eq!(fs::read_dir(cache.dir()).unwrap().count(), 2);
    }

    #[test]
    fn invalid_wasm_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CompileCache::open(dir.path()).unwrap();
        let engine = crate::engine::new_engine().unwrap();
        let err = cache
            .get_or_compile(&engine, b"\0asm\x01\0\0\0garbage", FileKind::Module, "/bad.wasm")
            .unwrap_err();
        assert!(err.to_string().contains("/bad.wasm"), "{err}");
    }
}
