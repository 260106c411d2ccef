//! The shim log: containerd's `log` fifo in the bundle, as containerd-shim's own logger
//! writes it, minus the compiler's debug chatter.
//!
//! With containerd in debug mode, Cranelift logs every compiled function at debug level,
//! thousands of lines per module that drown the shim's own messages. Their warnings and
//! errors still get through.

use containerd_shim::logger::FifoLogger;
use log::{LevelFilter, Log, Metadata, Record};

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
    match FifoLogger::new("", "") {
        Ok(inner) => {
            if log::set_boxed_logger(Box::new(Quiet { inner })).is_ok() {
                log::set_max_level(if debug { LevelFilter::Debug } else { LevelFilter::Info });
            }
        }
        // Nothing to log to: containerd will still see errors in replies.
        Err(e) => eprintln!("wasmbox: cannot open the shim log: {e}"),
    }
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
    fn compiler_debug_is_dropped_but_its_warnings_kept() {
        assert!(is_noisy(&meta(log::Level::Debug, "cranelift_codegen::timing")));
        assert!(is_noisy(&meta(log::Level::Trace, "wasmtime_internal_cranelift")));
        assert!(!is_noisy(&meta(log::Level::Warn, "cranelift_codegen")));
        assert!(!is_noisy(&meta(log::Level::Debug, "containerd_shim_wasmbox_v1::service")));
    }
}
