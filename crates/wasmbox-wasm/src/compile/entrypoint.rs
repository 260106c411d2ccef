//! Resolves the container's entrypoint (`args[0]`) as the container will see it, from the
//! host side: in its rootfs, or in a bind mount the spec puts over it (a hostPath, configMap
//! or emptyDir volume, `ctr run --mount`).
//!
//! Resolution happens before the container exists, so the shim can compile the module into the
//! cache at Create, and can refuse what cannot run with a clear message. Every lookup goes
//! through `openat2(RESOLVE_IN_ROOT)` beneath the rootfs or the mount's source, so absolute
//! symlinks and `..` stay inside it, as they would inside the container.

use std::fs::File;
use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;
use oci_spec::runtime::Spec;

use crate::compile::kind::{classify, describe_head, native_format, FileKind, NativeFormat};
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
    /// and never need the bytes (see [`crate::compile::cache::CompileCache::get_or_compile_entrypoint`]).
    pub unread: Option<UnreadFile>,
    /// SHA-256 of `wasm`, once computed (a first start needs it several times: two compilers'
    /// cache keys and the remembered digest).
    pub digest: Option<String>,
}

/// An entrypoint file left unread, with its [`crate::compile::stamp`].
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

    /// The hex SHA-256 of the wasm bytes (reading the file if it was left unread).
    pub fn digest(&mut self) -> Result<String, WasmError> {
        if let Some(d) = &self.digest {
            return Ok(d.clone());
        }
        let digest = crate::compile::digest::sha256_hex(self.bytes()?);
        self.digest = Some(digest.clone());
        Ok(digest)
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

/// A mount of the spec, as far as entrypoint lookup cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountAt {
    /// Where it is in the container (normalized, absolute).
    pub destination: String,
    /// The host path a bind mount shows there; None for other mounts (tmpfs and the like),
    /// which hold nothing at Create.
    pub bind_source: Option<PathBuf>,
}

/// The container's filesystem as the container will see it, looked at from the host at Create.
#[derive(Debug, Clone)]
pub struct ContainerFs {
    pub rootfs: PathBuf,
    pub mounts: Vec<MountAt>,
}

fn normalize(path: &str) -> String {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    format!("/{}", parts.join("/"))
}

impl ContainerFs {
    /// The rootfs (host path) and the spec's mounts.
    pub fn from_spec(rootfs: &Path, spec: &Spec) -> Self {
        let mounts = spec
            .mounts()
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(|m| {
                let options = m.options().as_deref().unwrap_or_default();
                let bind = m.typ().as_deref() == Some("bind") || options.iter().any(|o| o == "bind" || o == "rbind");
                MountAt {
                    destination: normalize(&m.destination().display().to_string()),
                    bind_source: m.source().clone().filter(|_| bind),
                }
            })
            .collect();
        Self {
            rootfs: rootfs.to_path_buf(),
            mounts,
        }
    }

    /// Only the rootfs, no mounts.
    pub fn rootfs_only(rootfs: &Path) -> Self {
        Self {
            rootfs: rootfs.to_path_buf(),
            mounts: Vec::new(),
        }
    }

    /// The mount that shows `path` (the last one listed wins among equals: it is mounted over
    /// the others), and the rest of the path below it.
    fn mount_for<'a>(&self, path: &'a str) -> Option<(&MountAt, &'a str)> {
        self.mounts
            .iter()
            .enumerate()
            .filter_map(|(i, m)| {
                let rest = if m.destination == "/" {
                    Some(path.trim_start_matches('/'))
                } else {
                    path.strip_prefix(m.destination.as_str())
                        .filter(|r| r.is_empty() || r.starts_with('/'))
                        .map(|r| r.trim_start_matches('/'))
                };
                rest.map(|r| (m.destination.len(), i, m, r))
            })
            .max_by_key(|(len, i, _, _)| (*len, *i))
            .map(|(_, _, m, r)| (m, r))
    }

    /// True when `path` will be a directory in the container: a mount point (or above one), or
    /// a directory of the rootfs or of a bind mount's source.
    pub fn has_dir(&self, path: &str) -> bool {
        let p = normalize(path);
        if p == "/" || self.mounts.iter().any(|m| m.destination == p || m.destination.starts_with(&format!("{p}/"))) {
            return true;
        }
        matches!(self.open(&p), Ok(Some(Found::Directory)))
    }

    /// Opens `path` (absolute, in the container) read-only.
    fn open(&self, path: &str) -> Result<Option<Found>, WasmError> {
        let err = |e: nix::Error| WasmError::ReadEntrypoint {
            path: path.to_string(),
            source: e.into(),
        };
        let lexical = normalize(path);
        // `..` is resolved by the kernel below, not here: such paths are looked up in the rootfs.
        let mount = if path.split('/').any(|p| p == "..") { None } else { self.mount_for(&lexical) };
        let (base, rest) = match mount {
            None => (self.rootfs.as_path(), lexical.trim_start_matches('/').to_string()),
            Some((m, rest)) => match &m.bind_source {
                Some(source) => (source.as_path(), rest.to_string()),
                // A tmpfs or the like: empty when the container starts.
                None => return Ok(None),
            },
        };
        let dir = match open_dir(base) {
            Ok(fd) => fd,
            // A bind of a single file: the file itself.
            Err(nix::errno::Errno::ENOTDIR) if rest.is_empty() => return open_found(path, base).map_err(err),
            Err(nix::errno::Errno::ENOENT) => return Ok(None),
            Err(e) => return Err(err(e)),
        };
        let target = if rest.is_empty() { "." } else { rest.as_str() };
        open_found_at(&dir, path, target).map_err(err)
    }
}

/// What a path turned out to be.
#[derive(Debug)]
enum Found {
    File(String, File),
    Directory,
}

fn classify_opened(guest_path: &str, file: File) -> Option<Found> {
    match file.metadata() {
        Ok(m) if m.is_file() => Some(Found::File(guest_path.to_string(), file)),
        Ok(m) if m.is_dir() => Some(Found::Directory),
        _ => None,
    }
}

fn open_found(guest_path: &str, host: &Path) -> Result<Option<Found>, nix::Error> {
    match File::open(host) {
        Ok(f) => Ok(classify_opened(guest_path, f)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(nix::Error::from_raw(e.raw_os_error().unwrap_or(libc::EIO))),
    }
}

fn open_found_at(dir: &OwnedFd, guest_path: &str, target: &str) -> Result<Option<Found>, nix::Error> {
    use std::os::fd::AsRawFd;
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOCTTY)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    match nix::fcntl::openat2(dir.as_raw_fd(), target, how) {
        // SAFETY: `openat2` returned a fresh descriptor that nothing else owns.
        Ok(fd) => Ok(classify_opened(guest_path, unsafe { File::from_raw_fd(fd) })),
        Err(nix::errno::Errno::ENOENT | nix::errno::Errno::ENOTDIR) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Finds and classifies `arg0` in `fs`, using the spec's `PATH` and `cwd` as execvp would.
///
/// What cannot run is refused here, at Create, with the reason: a directory, a file the
/// kernel cannot exec (runc's "exec format error"), a `.wasm` that is not WebAssembly, and
/// machine code posing as wasm (a `.cwasm` or an ELF named `.wasm`).
pub fn resolve(fs: &ContainerFs, arg0: &str, env: &[String], cwd: &str) -> Result<Entrypoint, WasmError> {
    for candidate in EntrypointRef::candidates(arg0) {
        let (guest_path, file) = match lookup(fs, &candidate.path, env, cwd)? {
            None => continue,
            Some(Found::Directory) if candidate.func.is_none() => {
                return Err(WasmError::IsDirectory { path: candidate.path });
            }
            Some(Found::Directory) => continue,
            Some(Found::File(p, f)) => (p, f),
        };
        let mut file = file;
        let mut head = [0u8; 16];
        let n = read_head(&mut file, &mut head).map_err(|source| WasmError::ReadEntrypoint {
            path: guest_path.clone(),
            source,
        })?;
        let head = &head[..n];
        let kind = classify(&guest_path, head);
        if kind == FileKind::Native {
            if candidate.func.is_some() {
                // `x#y` where `x` is not wasm: keep looking as the whole name failed already.
                continue;
            }
            return native(&guest_path, head);
        }
        // Binary wasm with a stamp: leave it unread, the cache may know it already.
        if let Some(binary) = crate::compile::kind::binary_kind(head).filter(|k| *k != FileKind::UnknownWasm) {
            if let Some(stamp) = file.metadata().ok().and_then(|m| crate::compile::stamp::of(&m)) {
                return Ok(Entrypoint::Wasm(WasmEntrypoint {
                    guest_path,
                    func: candidate.func,
                    kind: binary,
                    wasm: Vec::new(),
                    unread: Some(UnreadFile { file, stamp }),
                    digest: None,
                }));
            }
        }
        let mut bytes = head.to_vec();
        file.read_to_end(&mut bytes).map_err(|source| WasmError::ReadEntrypoint {
            path: guest_path.clone(),
            source,
        })?;
        let (kind, wasm) = wasm_binary(&guest_path, kind, bytes)?;
        return Ok(Entrypoint::Wasm(WasmEntrypoint {
            guest_path,
            func: candidate.func,
            kind,
            wasm,
            unread: None,
            digest: None,
        }));
    }
    Ok(Entrypoint::NotInRootfs)
}

/// A file that is not wasm: runs natively if the kernel can exec it and it does not pose as
/// wasm; else the reason it cannot run.
fn native(path: &str, head: &[u8]) -> Result<Entrypoint, WasmError> {
    let wasm_name = path.ends_with(".wasm") || path.ends_with(".cwasm");
    match native_format(head) {
        NativeFormat::Elf if wasm_name => Err(WasmError::MachineCode { path: path.to_string() }),
        _ if wasm_name => Err(WasmError::NotWasm {
            path: path.to_string(),
            detail: describe_head(head),
        }),
        NativeFormat::Elf | NativeFormat::Script => Ok(Entrypoint::Native),
        NativeFormat::Unknown => Err(WasmError::ExecFormat {
            path: path.to_string(),
            detail: describe_head(head),
        }),
    }
}

/// The binary wasm and its kind (Module or Component) of a wasm file's `bytes`, which
/// [`classify`] found to be of `kind`: WAT is converted, an unknown version refused.
pub fn wasm_binary(path: &str, kind: FileKind, bytes: Vec<u8>) -> Result<(FileKind, Vec<u8>), WasmError> {
    let wasm = to_binary(path, kind, bytes)?;
    match crate::compile::kind::binary_kind(&wasm) {
        Some(kind) => Ok((kind, wasm)),
        None => Err(WasmError::Invalid {
            path: path.to_string(),
            message: "unknown wasm binary version".into(),
        }),
    }
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

fn open_dir(dir: &Path) -> Result<OwnedFd, nix::Error> {
    let fd = nix::fcntl::open(dir, OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())?;
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

/// The first regular file among the candidates, as execvp tries them; a directory only when
/// `name` is a path (execvp skips directories found through `PATH`).
fn lookup(fs: &ContainerFs, name: &str, env: &[String], cwd: &str) -> Result<Option<Found>, WasmError> {
    for path in search_paths(name, env, cwd) {
        match fs.open(&path) {
            Ok(Some(Found::Directory)) if !name.contains('/') => {}
            Ok(Some(found)) => return Ok(Some(found)),
            Ok(None) => {}
            Err(WasmError::ReadEntrypoint { source, .. })
                if !name.contains('/') && source.raw_os_error() == Some(libc::EACCES) => {}
            Err(e) => return Err(e),
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
        match resolve(&ContainerFs::rootfs_only(r), "/app.wasm#run", &env, "/").unwrap() {
            Entrypoint::Wasm(w) => {
                assert_eq!(w.guest_path, "/app.wasm");
                assert_eq!(w.func.as_deref(), Some("run"));
                assert_eq!(w.kind, FileKind::Module);
            }
            other => panic!("unexpected {other:?}"),
        }
        match resolve(&ContainerFs::rootfs_only(r), "/hello.wat", &env, "/").unwrap() {
            Entrypoint::Wasm(w) => assert!(w.wasm.starts_with(b"\0asm")),
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(resolve(&ContainerFs::rootfs_only(r), "tool", &env, "/").unwrap(), Entrypoint::Native));
        assert!(matches!(resolve(&ContainerFs::rootfs_only(r), "link.wasm", &env, "/").unwrap(), Entrypoint::Wasm(_)));
        assert!(matches!(resolve(&ContainerFs::rootfs_only(r), "/missing.wasm", &env, "/").unwrap(), Entrypoint::NotInRootfs));
    }

    #[test]
    fn rejects_bad_wat_and_unknown_versions() {
        let root = tempfile::tempdir().unwrap();
        fs::write(root.path().join("bad.wat"), "(module (func").unwrap();
        fs::write(root.path().join("v9.wasm"), b"\0asm\x09\0\0\0garbage").unwrap();
        assert!(matches!(resolve(&ContainerFs::rootfs_only(root.path()), "/bad.wat", &[], "/"), Err(WasmError::Invalid { .. })));
        assert!(matches!(resolve(&ContainerFs::rootfs_only(root.path()), "/v9.wasm", &[], "/"), Err(WasmError::Invalid { .. })));
    }

    #[test]
    fn refuses_what_cannot_run_with_the_reason() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        fs::create_dir_all(r.join("dir")).unwrap();
        fs::write(r.join("text"), "echo hi\n").unwrap();
        fs::write(r.join("empty"), "").unwrap();
        fs::write(r.join("script"), "#!/bin/sh\necho hi\n").unwrap();
        fs::write(r.join("notwasm.wasm"), "hello world").unwrap();
        fs::write(r.join("elf.wasm"), b"\x7fELF\x02\x01").unwrap();
        fs::write(r.join("app.cwasm"), b"\x7fELF\x02\x01").unwrap();
        let fs_ = ContainerFs::rootfs_only(r);
        let err = |arg0: &str| resolve(&fs_, arg0, &[], "/").unwrap_err().to_string();

        assert_eq!(err("/dir"), "exec /dir: is a directory");
        assert!(err("/text").starts_with("exec /text: exec format error (it starts with \"echo hi\\n\""), "{}", err("/text"));
        assert!(err("/empty").contains("exec format error (it is empty"), "{}", err("/empty"));
        assert!(matches!(resolve(&fs_, "/script", &[], "/").unwrap(), Entrypoint::Native));
        assert_eq!(
            err("/notwasm.wasm"),
            "/notwasm.wasm: not a WebAssembly module (it starts with \"hello world\")"
        );
        for p in ["/elf.wasm", "/app.cwasm"] {
            let e = err(p);
            assert!(e.starts_with(&format!("{p}: refused: holds ELF machine code")), "{e}");
            assert!(!e.contains("error error") && !e.contains(": :"), "{e}");
        }
        // Through PATH a directory is skipped, as execvp does.
        let env = vec!["PATH=/".to_string()];
        assert!(matches!(resolve(&fs_, "dir", &env, "/").unwrap(), Entrypoint::NotInRootfs));
    }

    #[test]
    fn resolves_through_bind_mounts_as_the_container_will_see_them() {
        let root = tempfile::tempdir().unwrap();
        let vol = tempfile::tempdir().unwrap();
        let file_src = tempfile::tempdir().unwrap();
        fs::create_dir_all(root.path().join("modules")).unwrap();
        // The rootfs has its own file under the mount point: the mount hides it.
        fs::write(root.path().join("modules/app.wasm"), "hidden").unwrap();
        fs::write(vol.path().join("app.wasm"), b"\0asm\x01\0\0\0").unwrap();
        fs::write(vol.path().join("app.wat"), "(module)").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", vol.path().join("escape.wasm")).unwrap();
        fs::write(file_src.path().join("single"), b"\0asm\x01\0\0\0").unwrap();
        let fs_ = ContainerFs {
            rootfs: root.path().to_path_buf(),
            mounts: vec![
                MountAt {
                    destination: "/modules".into(),
                    bind_source: Some(vol.path().to_path_buf()),
                },
                MountAt {
                    destination: "/one.wasm".into(),
                    bind_source: Some(file_src.path().join("single")),
                },
                MountAt {
                    destination: "/scratch".into(),
                    bind_source: None,
                },
            ],
        };
        for arg0 in ["/modules/app.wasm", "/modules/app.wat", "/one.wasm"] {
            match resolve(&fs_, arg0, &[], "/").unwrap() {
                Entrypoint::Wasm(w) => assert_eq!(w.guest_path, arg0),
                other => panic!("{arg0}: {other:?}"),
            }
        }
        // A relative path and PATH lookups go through the mount too.
        assert!(matches!(resolve(&fs_, "./app.wasm", &[], "/modules").unwrap(), Entrypoint::Wasm(_)));
        let env = vec!["PATH=/modules".to_string()];
        assert!(matches!(resolve(&fs_, "app.wasm", &env, "/").unwrap(), Entrypoint::Wasm(_)));
        // A symlink in the volume stays inside the volume.
        assert!(matches!(resolve(&fs_, "/modules/escape.wasm", &[], "/").unwrap(), Entrypoint::NotInRootfs));
        assert!(matches!(resolve(&fs_, "/scratch/x.wasm", &[], "/").unwrap(), Entrypoint::NotInRootfs));
    }

    #[test]
    fn reads_mounts_from_the_spec() {
        use oci_spec::runtime::{MountBuilder, SpecBuilder};
        let spec = SpecBuilder::default()
            .mounts(vec![
                MountBuilder::default().destination("/tmp").typ("tmpfs").build().unwrap(),
                MountBuilder::default()
                    .destination("/data/")
                    .source("/srv/data")
                    .options(vec!["rbind".to_string(), "ro".to_string()])
                    .build()
                    .unwrap(),
                MountBuilder::default()
                    .destination("/m")
                    .typ("bind")
                    .source("/srv/m")
                    .build()
                    .unwrap(),
            ])
            .build()
            .unwrap();
        let fs_ = ContainerFs::from_spec(Path::new("/r"), &spec);
        let m: Vec<(&str, Option<&Path>)> = fs_
            .mounts
            .iter()
            .map(|m| (m.destination.as_str(), m.bind_source.as_deref()))
            .collect();
        assert_eq!(
            m,
            vec![
                ("/tmp", None),
                ("/data", Some(Path::new("/srv/data"))),
                ("/m", Some(Path::new("/srv/m")))
            ]
        );
    }
}
