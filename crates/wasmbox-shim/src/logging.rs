//! The shim log: containerd's `log` fifo in the bundle, as containerd-shim's own logger
//! writes it, minus the compiler's debug chatter.
//!
//! With containerd in debug mode, Cranelift logs every compiled function at debug level,
//! thousands of lines per module that drown the shim's own messages. Their warnings and
//! errors still get through.

use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use containerd_shim::logger::FifoLogger;
use log::{LevelFilter, Log, Metadata, Record};

/// The descriptor the logger writes to, and the bundle whose `log` fifo it is now.
static SINK: Mutex<Option<(RawFd, PathBuf)>> = Mutex::new(None);

/// Log targets whose debug and trace records are dropped.
const NOISY: &[&str] = &["cranelift", "wasmtime", "regalloc2", "wasmparser", "wasm_encoder"];

struct Quiet {
    inner: FifoLogger,
}

fn is_noisy(metadata: &Metadata) -> bool {
    metadata.level() > log::Level::Info && NOISY.iter().any(|t| metadata.target().starts_with(t))
}

impl Log for Quiet {
    fn enabled(&self, metadata: &Metadata) -> bool {
        !is_noisy(metadata) && self.inner.enabled(metadata)
    }

    fn log(&self, record: &Record) {
        if !is_noisy(record.metadata()) {
            self.inner.log(record);
        }
    }

    fn flush(&self) {
        self.inner.flush();
    }
}

/// Sets up logging for the serving shim process (run from its working dir, the bundle).
pub fn init(debug: bool) {
    let opened = std::fs::OpenOptions::new().write(true).open("log");
    match opened {
        Ok(file) => {
            if let Ok(dir) = std::env::current_dir() {
                *SINK.lock().unwrap_or_else(|p| p.into_inner()) = Some((file.as_raw_fd(), dir));
            }
            let inner = FifoLogger::with_file(file);
            if log::set_boxed_logger(Box::new(Quiet { inner })).is_ok() {
                log::set_max_level(if debug { LevelFilter::Debug } else { LevelFilter::Info });
            }
        }
        // Nothing to log to: containerd will still see errors in replies.
        Err(e) => eprintln!("wasmbox: cannot open the shim log: {e}"),
    }
}

/// The fifo the shim log goes to now (a bundle's `log`), for helpers that log beside it.
pub fn fifo() -> Option<PathBuf> {
    let sink = SINK.lock().unwrap_or_else(|p| p.into_inner());
    sink.as_ref().map(|(_, bundle)| bundle.join("log"))
}

/// The task of `bundle` is gone, and containerd stops reading its `log` fifo: if the shim
/// log goes there, it moves to the fifo of `next` (another task this shim serves), in place,
/// so the logger keeps its descriptor. A shared shim outlives the container it started with.
pub fn task_gone(bundle: &Path, next: Option<&Path>) {
    let mut sink = SINK.lock().unwrap_or_else(|p| p.into_inner());
    let Some((fd, current)) = sink.as_mut() else {
        return;
    };
    let Some(next) = next.filter(|_| current.as_path() == bundle) else {
        return;
    };
    match move_to(*fd, &next.join("log")) {
        Ok(()) => *current = next.to_path_buf(),
        Err(e) => log::warn!("the shim log stays with {}: {e}", bundle.display()),
    }
}

fn move_to(fd: RawFd, fifo: &Path) -> nix::Result<()> {
    use nix::fcntl::{fcntl, open, FcntlArg, OFlag};
    // Non-blocking open fails (ENXIO) rather than waits when nobody reads the fifo.
    let new = open(fifo, OFlag::O_WRONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC, nix::sys::stat::Mode::empty())?;
    let moved = fcntl(new, FcntlArg::F_SETFL(OFlag::empty()))
        .and_then(|_| nix::unistd::dup3(new, fd, OFlag::O_CLOEXEC))
        .map(drop);
    let _ = nix::unistd::close(new);
    moved
}

/// Logs to stderr, for the processes an operator runs (`precompile`): `WASMBOX_LOG` sets the
/// level (`info` unless set: error, warn, info, debug, trace).
pub fn init_stderr() {
    struct Stderr;
    impl Log for Stderr {
        fn enabled(&self, metadata: &Metadata) -> bool {
            !is_noisy(metadata) && metadata.level() <= log::max_level()
        }
        fn log(&self, record: &Record) {
            if self.enabled(record.metadata()) {
                eprintln!("wasmbox {}: {}", record.level().as_str().to_lowercase(), record.args());
            }
        }
        fn flush(&self) {}
    }
    let level = std::env::var("WASMBOX_LOG")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(LevelFilter::Info);
    if log::set_boxed_logger(Box::new(Stderr)).is_ok() {
        log::set_max_level(level);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(level: log::Level, target: &str) -> Metadata<'_> {
        Metadata::builder().level(level).target(target).build()
    }

    #[test]
    fn a_descriptor_moves_to_another_fifo_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        for f in [&a, &b] {
            nix::unistd::mkfifo(f, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        }
        // Readers first, as containerd has them.
        let open_reader = |p: &Path| std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(p).unwrap();
        use std::os::unix::fs::OpenOptionsExt;
        let (_ra, mut rb) = (open_reader(&a), open_reader(&b));
        let mut writer = std::fs::OpenOptions::new().write(true).open(&a).unwrap();
        move_to(writer.as_raw_fd(), &b).unwrap();
        use std::io::{Read, Write};
        writer.write_all(b"moved\n").unwrap();
        let mut got = String::new();
        let _ = rb.read_to_string(&mut got);
        assert_eq!(got, "moved\n");
        // A fifo nobody reads is refused rather than waited on.
        let c = dir.path().join("c");
        nix::unistd::mkfifo(&c, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        assert_eq!(move_to(writer.as_raw_fd(), &c), Err(nix::errno::Errno::ENXIO));
    }

    #[test]
    fn compiler_debug_is_dropped_but_its_warnings_kept() {
        assert!(is_noisy(&meta(log::Level::Debug, "cranelift_codegen::timing")));
        assert!(is_noisy(&meta(log::Level::Trace, "wasmtime_internal_cranelift")));
        assert!(!is_noisy(&meta(log::Level::Warn, "cranelift_codegen")));
        assert!(!is_noisy(&meta(log::Level::Debug, "containerd_shim_wasmbox_v1::service")));
    }
}
