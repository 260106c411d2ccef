//! Resolves the container's entrypoint (`args[0]`) inside its rootfs, from the host side.
//!
//! Resolution happens before the container exists, so the shim can compile the module into the
//! cache at Create. Every lookup goes through `openat2(RESOLVE_IN_ROOT)`, so absolute symlinks
//! and `..` in the image stay inside the rootfs, as they would inside the container.

use std::fs::File;
use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;

use crate::kind::{classify, FileKind};
use crate::WasmError;

/// PATH used when the spec sets none, as runc and execvp(3) do.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// `args[0]` split into the file and the optional export to call (`/app.wasm#add`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntrypointRef {
    pub path: String,
    pub func: Option<String>,
}

impl EntrypointRef {
    /// All ways to read `arg0`: the whole string first (a file may contain `#`), then split at
    /// the last `#`.
    pub fn candidates(arg0: &str) -> Vec<EntrypointRef> {
        let mut out = vec![EntrypointRef {
            path: arg0.to_string(),
            func: None,
        }];
        if let Some((path, func)) = arg0.rsplit_once('#') {
            if !path.is_empty() && !func.is_empty() {
                out.push(EntrypointRef {
                    path: path.to_string(),
                    func: Some(func.to_string()),
                });
            }
        }
        out
    }
}

/// A wasm entrypoint found in the rootfs.
#[derive(Debug)]
pub struct WasmEntrypoint {
    /// Absolute path of the file as the container sees it.
    pub guest_path: String,
    pub func: Option<String>,
    pub kind: FileKind,
    /// Binary wasm (WAT is already converted). Empty while `unread` holds the file.
    pub wasm: Vec<u8>,
    /// A binary wasm file not read yet: the compile cache may know its digest by its stamp
    /// and never need the bytes (see [`crate::cache::CompileCache::get_or_compile_entrypoint`]).
    pub unread: Option<UnreadFile>,
}

/// An entrypoint file left unread, with its [`crate::stamp`].
#[derive(Debug)]
pub struct UnreadFile {
    pub file: File,
    pub stamp: String,
}

impl WasmEntrypoint {
    /// The wasm bytes, reading the file now if it was left unread.
    pub fn bytes(&mut self) -> Result<&[u8], WasmError> {
        if let Some(mut u) = self.unread.take() {
            use std::io::Seek;
            let mut bytes = Vec::new();
            u.file
                .rewind()
                .and_then(|_| u.file.read_to_end(&mut bytes))
                .map_err(|source| WasmError::ReadEntrypoint {
                    path: self.guest_path.clone(),
                    source,
                })?;
            self.wasm = bytes;
        }
        Ok(&self.wasm)
    }
}

/// What `args[0]` turned out to be.
#[derive(Debug)]
pub enum Entrypoint {
    Wasm(WasmEntrypoint),
    /// Not wasm: the container runs it natively (exec), like runc.
    Native,
    /// Not in the rootfs. It may still come from a mount; the container init decides then.
    NotInRootfs,
}

/// Finds and classifies `arg0` in `rootfs`, using the spec's `PATH` and `cwd` as execvp would.
pub fn resolve(rootfs: &Path, arg0: &str, env: &[String], cwd: &str) -> Result<Entrypoint, WasmError> {
    let root = open_root(rootfs)?;
    for candidate in EntrypointRef::candidates(arg0) {
        let Some((guest_path, file)) = lookup(&root, &candidate.path, env, cwd)? else {
            continue;
        };
        let mut file = file;
        let mut head = [0u8; 8];
        let n = read_head(&mut file, &mut head).map_err(|source| WasmError::ReadEntrypoint {
            path: guest_path.clone(),
            source,
        })?;
        let kind = classify(&guest_path, &head[..n]);
        if kind == FileKind::Native {
            if candidate.func.is_some() {
                // `x#y` where `x` is not wasm: keep looking as the whole name failed already.
                continue;
            }
            return Ok(Entrypoint::Native);
        }
        // Binary wasm with a stamp: leave it unread, the cache may know it already.
        if let Some(binary) = crate::kind::binary_kind(&head[..n]).filter(|k| *k != FileKind::UnknownWasm) {
            if let Some(stamp) = file.metadata().ok().and_then(|m| crate::stamp::of(&m)) {
                return Ok(Entrypoint::Wasm(WasmEntrypoint {
                    guest_path,
                    func: candidate.func,
                    kind: binary,
                    wasm: Vec::new(),
                    unread: Some(UnreadFile { file, stamp }),
                }));
            }
        }
        let mut bytes = head[..n].to_vec();
        file.read_to_end(&mut bytes).map_err(|source| WasmError::ReadEntrypoint {
            path: guest_path.clone(),
            source,
        })?;
        let wasm = to_binary(&guest_path, kind, bytes)?;
        let kind = crate::kind::binary_kind(&wasm).unwrap_or(FileKind::UnknownWasm);
        if kind == FileKind::UnknownWasm {
            return Err(WasmError::Invalid {
                path: guest_path,
                message: "unknown wasm binary version".into(),
            });
        }
        return Ok(Entrypoint::Wasm(WasmEntrypoint {
            guest_path,
            func: candidate.func,
            kind,
            wasm,
            unread: None,
        }));
    }
    Ok(Entrypoint::NotInRootfs)
}

fn to_binary(path: &str, kind: FileKind, bytes: Vec<u8>) -> Result<Vec<u8>, WasmError> {
    match kind {
        FileKind::Wat => wat::parse_bytes(&bytes)
            .map(|b| b.into_owned())
            .map_err(|e| WasmError::Invalid {
                path: path.to_string(),
                message: e.to_string(),
            }),
        FileKind::UnknownWasm => Err(WasmError::Invalid {
            path: path.to_string(),
            message: "unknown wasm binary version".into(),
        }),
        _ => Ok(bytes),
    }
}

fn read_head(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

fn open_root(rootfs: &Path) -> Result<OwnedFd, WasmError> {
    let fd = nix::fcntl::open(
        rootfs,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| WasmError::ReadEntrypoint {
        path: rootfs.display().to_string(),
        source: e.into(),
    })?;
    // SAFETY: `open` returned a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Candidate absolute paths for `name`, as execvp(3) would try them.
pub fn search_paths(name: &str, env: &[String], cwd: &str) -> Vec<String> {
    if name.contains('/') {
        if name.starts_with('/') {
            return vec![name.to_string()];
        }
        return vec![join(cwd, name)];
    }
    let path_var = env
        .iter()
        .rev()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    path_var
        .split(':')
        .map(|dir| if dir.is_empty() { cwd } else { dir })
        .map(|dir| join(dir, name))
        .collect()
}

fn join(dir: &str, name: &str) -> String {
    let mut p = PathBuf::from(if dir.starts_with('/') { dir } else { "/" });
    if !dir.starts_with('/') {
        p.push(dir);
    }
    p.push(name);
    p.display().to_string()
}

/// Opens the first regular file among the candidates, resolved inside `root`.
fn lookup(root: &OwnedFd, name: &str, env: &[String], cwd: &str) -> Result<Option<(String, File)>, WasmError> {
    use std::os::fd::AsRawFd;
    for path in search_paths(name, env, cwd) {
        let how = OpenHow::new()
            .flags(OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOCTTY)
            .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        match nix::fcntl::openat2(root.as_raw_fd(), path.as_str(), how) {
            Ok(fd) => {
                // SAFETY: `openat2` returned a fresh descriptor that nothing else owns.
                let file = unsafe { File::from_raw_fd(fd) };
                let is_file = file.metadata().map(|m| m.is_file()).unwrap_or(false);
                if is_file {
                    return Ok(Some((path, file)));
                }
            }
            Err(nix::errno::Errno::ENOENT | nix::errno::Errno::ENOTDIR) => {}
            Err(nix::errno::Errno::EACCES) if !name.contains('/') => {}
            Err(e) => {
                return Err(WasmError::ReadEntrypoint {
                    path,
                    source: e.into(),
                })
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn splits_func_suffix() {
        let c = EntrypointRef::candidates("/app.wasm#add");
        assert_eq!(c.len(), 2);
        assert_eq!(c[1].path, "/app.wasm");
        assert_eq!(c[1].func.as_deref(), Some("add"));
        assert_eq!(EntrypointRef::candidates("/app.wasm").len(), 1);
        assert_eq!(EntrypointRef::candidates("#x").len(), 1);
    }

    #[test]
    fn search_paths_follow_execvp_rules() {
        let env = vec!["PATH=/a:/b".to_string()];
        assert_eq!(search_paths("x", &env, "/"), vec!["/a/x", "/b/x"]);
        assert_eq!(search_paths("/x", &env, "/"), vec!["/x"]);
        assert_eq!(search_paths("./x", &env, "/w"), vec!["/w/./x"]);
        assert_eq!(search_paths("x", &[], "/").len(), DEFAULT_PATH.split(':').count());
    }

    #[test]
    fn resolves_wasm_wat_native_and_symlinks_inside_root() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        fs::create_dir_all(r.join("bin")).unwrap();
        fs::write(r.join("app.wasm"), b"\0asm\x01\0\0\0").unwrap();
        fs::write(r.join("hello.wat"), "(module)").unwrap();
        fs::write(r.join("bin/tool"), b"\x7fELF....").unwrap();
        // An absolute symlink must resolve inside the rootfs, not on the host.
        std::os::unix::fs::symlink("/app.wasm", r.join("bin/link.wasm")).unwrap();

        let env = vec!["PATH=/bin".to_string()];
        match resolve(r, "/app.wasm#run", &env, "/").unwrap() {
            Entrypoint::Wasm(w) => {
                assert_eq!(w.guest_path, "/app.wasm");
                assert_eq!(w.func.as_deref(), Some("run"));
                assert_eq!(w.kind, FileKind::Module);
            }
            other => panic!("unexpected {other:?}"),
        }
        match resolve(r, "/hello.wat", &env, "/").unwrap() {
            Entrypoint::Wasm(w) => assert!(w.wasm.starts_with(b"\0asm")),
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(resolve(r, "tool", &env, "/").unwrap(), Entrypoint::Native));
        assert!(matches!(resolve(r, "link.wasm", &env, "/").unwrap(), Entrypoint::Wasm(_)));
        assert!(matches!(resolve(r, "/missing.wasm", &env, "/").unwrap(), Entrypoint::NotInRootfs));
    }

    #[test]
    fn rejects_bad_wat_and_unknown_versions() {
        let root = tempfile::tempdir().unwrap();
        fs::write(root.path().join("bad.wat"), "(module (func").unwrap();
        fs::write(root.path().join("v9.wasm"), b"\0asm\x09\0\0\0garbage").unwrap();
        assert!(matches!(resolve(root.path(), "/bad.wat", &[], "/"), Err(WasmError::Invalid { .. })));
        assert!(matches!(resolve(root.path(), "/v9.wasm", &[], "/"), Err(WasmError::Invalid { .. })));
    }
}
