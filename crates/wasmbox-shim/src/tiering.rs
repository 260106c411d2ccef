//! Tiered compilation: a large module's first start on a node runs the code of Wasmtime's
//! baseline compiler (Winch, several times faster to compile), while Cranelift's optimized
//! artifact is made in the background for the starts after it.
//!
//! The optimizing compile runs in a process of its own, the shim binary started as
//! [`OPTIMIZE_ARG`]: a short-lived container's shim exits with it, sooner than a large module
//! compiles. The process gets the wasm bytes on a memfd (the container's rootfs may be gone
//! when it reads them), keys the artifact by the digest of those bytes, and writes only through
//! the compile cache (temp file and rename, so concurrent writers are safe). Its work is
//! bounded:
//! - CPU: `SCHED_IDLE`, so it only takes cycles nothing else wants (container starts included);
//! - one compile per node at a time (a lock in the cache dir), and one per module (another
//!   lock, taken first): the process of a second start before the artifact is ready exits;
//! - memory: one compile's worth (the others wait holding only their wasm bytes, or exit);
//! - disk: the cache's byte budget, as for every entry.
//!
//! Modules smaller than [`MIN_BYTES_ENV`] (default [`DEFAULT_MIN_BYTES`]) and components are
//! compiled by Cranelift at once: their compile is short, and Winch does not take components'
//! adapters. Modules that use what Winch lacks (exceptions, GC, tail calls...) too.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix::fcntl::{Flock, FlockArg};
use wasmbox_wasm::compile::cache::CompileCache;
use wasmbox_wasm::compile::digest::sha256_hex;
use wasmbox_wasm::compile::kind::FileKind;

/// argv[1] of the background compile process.
pub const OPTIMIZE_ARG: &str = "optimize-in-background";
/// Modules of at least this many bytes start on the baseline tier; `off` never does.
pub const MIN_BYTES_ENV: &str = "WASMBOX_BASELINE_MIN_BYTES";
/// Cranelift compiles about 4 MB of wasm per second per core: below 1 MiB the wait is short.
pub const DEFAULT_MIN_BYTES: u64 = 1 << 20;

const LOCK_DIR: &str = "compiling";
const NODE_LOCK: &str = "node.lock";

/// The size from which a module starts on the baseline tier (None: never), from the
/// environment the shim inherits from containerd.
pub fn min_bytes() -> Option<u64> {
    parse_min_bytes(std::env::var(MIN_BYTES_ENV).ok().as_deref())
}

fn parse_min_bytes(value: Option<&str>) -> Option<u64> {
    match value.map(str::trim) {
        None | Some("") => Some(DEFAULT_MIN_BYTES),
        Some("off") => None,
        Some(v) => match v.parse() {
            Ok(n) => Some(n),
            Err(_) => {
                log::warn!("{MIN_BYTES_ENV}={v:?} is not a byte count or `off`; using {DEFAULT_MIN_BYTES}");
                Some(DEFAULT_MIN_BYTES)
            }
        },
    }
}

/// The lock of one module's optimizing compile, named after the artifact it makes.
fn artifact_lock(cache_dir: &Path, artifact: &Path) -> PathBuf {
    let name = artifact.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    cache_dir.join(LOCK_DIR).join(format!("{name}.lock"))
}

/// Takes `path`'s lock, waiting for it or not.
fn lock(path: &Path, wait: bool) -> std::io::Result<Option<Flock<File>>> {
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    }
    let file = OpenOptions::new().create(true).truncate(false).write(true).mode(0o600).open(path)?;
    let arg = if wait { FlockArg::LockExclusive } else { FlockArg::LockExclusiveNonblock };
    match Flock::lock(file, arg) {
        Ok(l) => Ok(Some(l)),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
        Err((_, e)) => Err(e.into()),
    }
}

/// Starts the optimizing compile of `wasm` in the background (a no-op there when one for the
/// same module is already under way).
pub fn schedule(cache: &CompileCache, wasm: &[u8], guest_path: &str) {
    match spawn(cache.dir(), wasm, guest_path) {
        Ok(pid) => log::info!(
            "{guest_path}: started on the baseline tier (Winch); Cranelift compiles it in the background (pid {pid}) for the next starts"
        ),
        Err(e) => log::warn!("{guest_path}: cannot start the background compile: {e}"),
    }
}

/// Runs `compile` with as many malloc arenas as glibc's default allows: the shim keeps one
/// (see main.rs) to stay small while idle, but a compile's threads would then queue on its
/// lock (about 15% of a large module's compile time). Arenas made meanwhile stay with the
/// compile's threads.
pub fn with_compile_arenas<T>(compile: impl FnOnce() -> T) -> T {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // SAFETY: mallopt only changes allocator tuning, and is thread-safe.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, (8 * cores) as libc::c_int) };
    let out = compile();
    // SAFETY: as above.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) };
    out
}

fn spawn(cache_dir: &Path, wasm: &[u8], guest_path: &str) -> std::io::Result<u32> {
    let fd = nix::sys::memfd::memfd_create(c"wasmbox-wasm", nix::sys::memfd::MemFdCreateFlag::MFD_CLOEXEC)?;
    let mut bytes = File::from(fd);
    bytes.write_all(wasm)?;
    bytes.rewind()?;
    // Its log goes where the shim's does (a bundle's `log` fifo) for as long as containerd
    // reads it; never blocking on it. After that its result shows in the cache: the next
    // start's shim logs the hit.
    let log = crate::logging::fifo()
        .and_then(|fifo| OpenOptions::new().write(true).custom_flags(libc::O_NONBLOCK).open(fifo).ok())
        .map(Stdio::from)
        .unwrap_or_else(Stdio::null);
    let mut cmd = Command::new("/proc/self/exe");
    cmd.arg(OPTIMIZE_ARG)
        .arg(cache_dir)
        .arg(guest_path)
        .current_dir("/")
        .stdin(Stdio::from(bytes))
        .stdout(Stdio::null())
        .stderr(log)
        // A process group of its own: no signal meant for the shim's reaches it. (No pre_exec
        // hook, so the spawn stays a cheap posix_spawn during the container's start.)
        .process_group(0);
    // Not waited for here: the shim reaps every child (it is a subreaper), and when the shim
    // exits first the compile carries on, reparented.
    Ok(cmd.spawn()?.id())
}

/// The background process: compiles the module on stdin into the cache at `args[0]`.
pub fn main(args: &[String]) -> i32 {
    let [cache_dir, guest_path] = args else {
        eprintln!("usage: {OPTIMIZE_ARG} CACHE_DIR GUEST_PATH < module.wasm");
        return 2;
    };
    match optimize(Path::new(cache_dir), guest_path) {
        Ok(Compiled::Made(message)) => {
            eprintln!("wasmbox: {guest_path}: {message} in the background");
            0
        }
        Ok(Compiled::Cached | Compiled::UnderWay(_)) => 0,
        Err(e) => {
            eprintln!("wasmbox: {guest_path}: background compile failed: {e:#}");
            1
        }
    }
}

fn optimize(cache_dir: &Path, guest_path: &str) -> anyhow::Result<Compiled> {
    use anyhow::Context;
    lower_priority(guest_path);
    let mut wasm = Vec::new();
    std::io::stdin().lock().read_to_end(&mut wasm).context("reading the module")?;
    let cache = CompileCache::open(cache_dir)?;
    let engine = wasmbox_wasm::compile::engine::new_engine()?;
    compile_unless_under_way(&cache, &engine, &wasm, FileKind::Module, guest_path)
}

/// Puts this process on `SCHED_IDLE`: its compiles only take cycles nothing else wants.
pub fn lower_priority(what: &str) {
    // SAFETY: plain syscall on this process; SCHED_IDLE needs no priority parameter.
    let param = libc::sched_param { sched_priority: 0 };
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) } != 0 {
        // Still bounded to one compile per node; say so rather than fail.
        eprintln!("wasmbox: {what}: cannot lower the compile's priority: {}", std::io::Error::last_os_error());
    }
}

/// What [`compile_unless_under_way`] found or did.
#[derive(Debug)]
pub enum Compiled {
    /// The artifact was in the cache already.
    Cached,
    /// Another process holds the module's lock: it is making this artifact.
    UnderWay(PathBuf),
    /// Compiled here; what was made, for the log.
    Made(String),
}

/// Compiles `wasm` with the optimizing `engine` into `cache` under the module's lock and the
/// node's, unless the artifact exists or another process is compiling it already. Used by the
/// background compile and the pull-time compile.
pub fn compile_unless_under_way(
    cache: &CompileCache,
    engine: &wasmbox_wasm::compile::engine::Engine,
    wasm: &[u8],
    kind: FileKind,
    label: &str,
) -> anyhow::Result<Compiled> {
    use anyhow::Context;
    // The artifact is keyed by the digest of the bytes compiled here.
    let digest = sha256_hex(wasm);
    let artifact = cache.entry_path_for(engine, &digest, kind);
    if artifact.is_file() {
        return Ok(Compiled::Cached);
    }
    let mine = artifact_lock(cache.dir(), &artifact);
    let Some(mut held) = lock(&mine, false).context("the module's compile lock")? else {
        return Ok(Compiled::UnderWay(artifact));
    };
    // Our pid, for a start that waits for this compile (see `wait_for_compile_elsewhere`).
    let _ = held.set_len(0).and_then(|_| write!(*held, "{}", std::process::id()));
    let node = lock(&cache.dir().join(LOCK_DIR).join(NODE_LOCK), true)
        .context("the node's compile lock")?
        .context("the node's compile lock was not taken");
    let result = node.and_then(|_node| {
        if artifact.is_file() {
            return Ok(Compiled::Cached);
        }
        let started = std::time::Instant::now();
        let made = with_compile_arenas(|| cache.get_or_compile_keyed(engine, wasm, &digest, kind, label))?;
        Ok(Compiled::Made(format!(
            "optimized artifact {} ready after {:.1}s",
            made.display(),
            started.elapsed().as_secs_f64()
        )))
    });
    // Removed while still held, so the lock dir does not keep a file per module ever tiered: a
    // process that opened it meanwhile gets the lock next, then finds the artifact under the
    // node's lock and exits (or, after a failure here, tries again).
    let _ = std::fs::remove_file(&mine);
    result
}

/// Before a start compiles `artifact` itself: when another process (a background or pull-time
/// compile) is making it, raises that compile to normal priority and waits for it, rather than
/// compile the same module twice at once. Returns whether it waited.
pub fn wait_for_compile_elsewhere(cache_dir: &Path, artifact: &Path, guest_path: &str) -> bool {
    let path = artifact_lock(cache_dir, artifact);
    // Never created here: no lock file, no compile under way.
    let Ok(file) = OpenOptions::new().write(true).open(&path) else {
        return false;
    };
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(_free) => false,
        Err((file, nix::errno::Errno::EWOULDBLOCK)) => {
            wait_for_holder(&path, file, guest_path);
            true
        }
        Err((_, e)) => {
            log::debug!("{}: {e}", path.display());
            false
        }
    }
}

/// A start's compile of `artifact`: run under the module's lock, so starts of one module at
/// once (a Deployment scaled up, in one shim or in several) compile it once. A start that
/// finds the lock held waits for its holder (raising a background or pull-time compile to
/// normal priority), then runs `compile`, which finds the holder's artifact in the cache.
/// Without a lock (a cache that cannot be written) it just compiles.
pub fn compile_once<T>(cache_dir: &Path, artifact: &Path, guest_path: &str, compile: impl FnOnce() -> T) -> T {
    let path = artifact_lock(cache_dir, artifact);
    let held = match lock(&path, false) {
        Ok(Some(held)) => Some(held),
        Ok(None) => OpenOptions::new()
            .write(true)
            .open(&path)
            .ok()
            .and_then(|file| wait_for_holder(&path, file, guest_path)),
        Err(e) => {
            log::debug!("{guest_path}: no compile lock ({}: {e})", path.display());
            None
        }
    };
    let Some(mut held) = held else {
        return compile();
    };
    let _ = held.set_len(0).and_then(|_| write!(*held, "{}", std::process::id()));
    let out = compile();
    // As in `compile_unless_under_way`: removed while held; a waiter finds the artifact.
    let _ = std::fs::remove_file(&path);
    out
}

/// Waits for the process holding the module lock `path` (open as `file`) to end its compile,
/// raising it from `SCHED_IDLE` first: a container now waits for it. Returns the lock.
fn wait_for_holder(path: &Path, file: File, guest_path: &str) -> Option<Flock<File>> {
    let holder = std::fs::read_to_string(path).ok().and_then(|s| s.trim().parse::<i32>().ok());
    // Only a process on SCHED_IDLE, as compiles run: the pid of a holder in another pid
    // namespace (a watcher in a pod without hostPID) may name an unrelated process here.
    // SAFETY: plain syscall on another process.
    let idle = |pid: i32| unsafe { libc::sched_getscheduler(pid) } == libc::SCHED_IDLE;
    if let Some(pid) = holder.filter(|p| *p > 0 && idle(*p)) {
        // SAFETY: plain syscall on another process; SCHED_OTHER takes priority 0.
        let param = libc::sched_param { sched_priority: 0 };
        if unsafe { libc::sched_setscheduler(pid, libc::SCHED_OTHER, &param) } != 0 {
            log::debug!("cannot raise compile {pid}'s priority: {}", std::io::Error::last_os_error());
        }
    }
    let started = std::time::Instant::now();
    log::info!("{guest_path}: waiting for the compile under way (pid {holder:?}) rather than compiling it twice");
    // The holder either finishes (the artifact is then in the cache) or dies (the lock goes
    // with it, and this start compiles the module itself).
    match Flock::lock(file, FlockArg::LockExclusive) {
        Ok(held) => {
            log::info!("{guest_path}: the compile under way ended after {:?}", started.elapsed());
            Some(held)
        }
        Err((_, e)) => {
            log::warn!("{guest_path}: waiting for the compile under way: {e}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_bytes_from_the_environment() {
        assert_eq!(parse_min_bytes(None), Some(DEFAULT_MIN_BYTES));
        assert_eq!(parse_min_bytes(Some("")), Some(DEFAULT_MIN_BYTES));
        assert_eq!(parse_min_bytes(Some("0")), Some(0));
        assert_eq!(parse_min_bytes(Some(" 4096 ")), Some(4096));
        assert_eq!(parse_min_bytes(Some("off")), None);
        assert_eq!(parse_min_bytes(Some("lots")), Some(DEFAULT_MIN_BYTES));
    }

    #[test]
    fn starts_of_one_module_at_once_compile_it_once() {
        let dir = tempfile::tempdir().unwrap();
        let artifact = dir.path().join("abc-123.module.cwasm");
        let compiles = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    compile_once(dir.path(), &artifact, "/m.wasm", || {
                        // A cache lookup, then the compile on a miss.
                        if !artifact.exists() {
                            compiles.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            std::thread::sleep(std::time::Duration::from_millis(50));
                            std::fs::write(&artifact, b"code").unwrap();
                        }
                    })
                });
            }
        });
        assert_eq!(compiles.into_inner(), 1);
        assert!(!artifact_lock(dir.path(), &artifact).exists(), "no lock file is left");
    }

    #[test]
    fn one_holder_per_lock() {
        let dir = tempfile::tempdir().unwrap();
        let path = artifact_lock(dir.path(), Path::new("/c/abc-123.module.cwasm"));
        let held = lock(&path, false).unwrap();
        assert!(held.is_some());
        assert!(lock(&path, false).unwrap().is_none(), "a second taker must see it held");
        drop(held);
        assert!(lock(&path, false).unwrap().is_some());
    }
}
