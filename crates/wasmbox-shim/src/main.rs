//! `containerd-shim-wasmbox-v1`: containerd runtime v2 shim (`io.containerd.wasmbox.v1`).
//!
//! Started by containerd with its usual flags; started by itself as `create-helper` (see
//! [`helper`]) to create a container from a fresh single-threaded process, and as
//! `optimize-in-background` (see [`tiering`]) to compile a large module with Cranelift after
//! its first start ran on the baseline tier; and by node operators as `precompile` (see
//! [`precompile`]) to compile images' wasm when they are pulled.

mod artifact;
mod events;
mod group;
mod helper;
mod logging;
mod manager;
mod policy;
mod precompile;
mod process;
mod metrics;
mod service;
mod tiering;

use containerd_shim::Config;

/// How long a thread of the blocking pool waits for the next call before it ends.
const IDLE_CALL_THREAD: std::time::Duration = std::time::Duration::from_secs(1);
/// How long a `start` or `delete` action waits for its answer to reach containerd.
const ACTION_OUTPUT_DRAIN: std::time::Duration = std::time::Duration::from_secs(5);

/// The runtime name containerd knows this shim by.
pub const RUNTIME_ID: &str = "io.containerd.wasmbox.v1";

/// What `--help` prints: containerd starts the shim; people run `precompile`.
const USAGE: &str = "\
usage: containerd-shim-wasmbox-v1 [-v | --version | -h | --help]
       containerd-shim-wasmbox-v1 precompile [--watch] [--address SOCKET] [--namespace NS] [IMAGE...]

The containerd runtime v2 shim for WebAssembly (runtime type io.containerd.wasmbox.v1).
containerd starts it, as for any runtime: `ctr run --runtime io.containerd.wasmbox.v1 IMAGE ID`,
or a Kubernetes RuntimeClass whose handler's runtime_type is io.containerd.wasmbox.v1.

Actions:
  start, delete        containerd's shim actions (with -namespace, -id, -address, -bundle ...)
  precompile           compiles images' wasm into the node's compile cache ahead of their
                       first start (`containerd-shim-wasmbox-v1 precompile --help`)
  -v, --version        prints the runtime type and version
  -h, --help           prints this
";

/// True for the long-lived serving process (containerd-shim's `spawn` passes `-socket`; the
/// `start` and `delete` actions don't).
fn is_serving() -> bool {
    std::env::args().any(|a| a == "-socket" || a == "--socket")
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // Before the arena limit below: the compile's threads want arenas of their own.
    if args.get(1).map(String::as_str) == Some(tiering::OPTIMIZE_ARG) {
        std::process::exit(tiering::main(&args[2..]));
    }
    // One malloc arena for all threads: a shim's threads mostly sleep, and each extra arena
    // costs an idle container a few hundred KiB.
    // SAFETY: mallopt only changes allocator tuning; nothing has allocated from arenas yet.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) };
    if args.get(1).map(String::as_str) == Some(precompile::PRECOMPILE_ARG) {
        std::process::exit(precompile::main(&args[2..]));
    }
    let mut args = std::env::args();
    if args.nth(1).as_deref() == Some(helper::HELPER_ARG) {
        let request = args.next().unwrap_or_default();
        std::process::exit(helper::child::main(&request));
    }
    if std::env::args().skip(1).any(|a| a == "-h" || a == "--help" || a == "-help") {
        print!("{USAGE}");
        return;
    }
    if std::env::args().any(|a| a == "-v" || a == "--version") {
        println!("{RUNTIME_ID} {}", env!("CARGO_PKG_VERSION"));
        return;
    }
    if is_serving() {
        // Before containerd-shim starts any thread.
        helper::zygote::start();
    }
    // The serving process sets up its own log (see `logging`).
    let config = Config {
        no_setup_logger: true,
        ..Config::default()
    };
    // One runtime thread serves ttrpc, delivers events and takes exits; calls run on the
    // blocking pool, whose threads go once idle, so an idle shim keeps almost no threads.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name("wasmbox-call")
        .thread_keep_alive(IDLE_CALL_THREAD)
        .build();
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{RUNTIME_ID}: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    let serving = is_serving();
    runtime.block_on(containerd_shim::run::<manager::Manager>(RUNTIME_ID, Some(config)));
    if serving {
        // Calls still blocked (none should be once the shim is done) must not hold the exit.
        runtime.shutdown_background();
    } else {
        // The `start` and `delete` actions answer on tokio's stdout, whose writes finish on
        // the blocking pool after the call returns: let them land before the process ends,
        // or containerd reads an empty answer (a lost exit status after a dead shim).
        runtime.shutdown_timeout(ACTION_OUTPUT_DRAIN);
    }
}
