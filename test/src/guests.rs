//! Guest programs, built from the sources in `test/guests/` the first time a test asks for them
//! and kept in memory for the rest of the test process.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use wasi_preview1_component_adapter_provider::{
    WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME, WASI_SNAPSHOT_PREVIEW1_COMMAND_ADAPTER,
    WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
};

use crate::process::run_captured;

const COMPILE_TIMEOUT: Duration = Duration::from_secs(120);

/// The committed guest sources.
pub fn sources_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("guests")
}

/// How a guest is built from its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `<name>.wat` through the `wat` crate.
    Wat,
    /// `<name>.c` with `clang --target=wasm32-wasi` (a preview1 core module).
    CWasm,
    /// `<name>.c` as a preview1 module, then wrapped into a preview2 component.
    Component,
    /// `<name>.c` with `gcc -static`: a native ELF.
    NativeStatic,
    /// `<name>.c` against wasi-libc's `wasm32-wasip2` sysroot (its sockets are `wasi:sockets`),
    /// then a component; see [`wasip2_sysroot`].
    ComponentP2,
    /// `<name>.c` as a `wasi:http/proxy` handler: C bindings generated with `wit-bindgen-c`
    /// from the `wasi:http` WIT that Wasmtime's own `wasmtime-wasi-http` carries, built like
    /// [`Kind::ComponentP2`] but as a reactor; see [`wasi_http_wit`].
    HttpComponent,
    /// `<name>.c` as a `wasi:cli/command@0.3.0` component: C bindings generated with
    /// `wit-bindgen-c` from the WASI 0.3 WIT that `wasmtime-wasi-http` carries (see
    /// [`wasi_p3_wit`]), every import and `run` bound synchronously (a stream's or future's
    /// wait is the guest's own), built like [`Kind::HttpComponent`].
    CommandP3,
    /// `<name>.c` as a `wasi:http/service@0.3.0` handler: bindings of that world from the same
    /// WIT, `handle` async (the callback form), built like [`Kind::HttpComponent`].
    HttpComponentP3,
}

type Cache = Mutex<HashMap<(String, Kind), Arc<Vec<u8>>>>;

/// Built bytes of guest `name` (source file stem) of the given kind; cached per process.
pub fn build(name: &str, kind: Kind) -> Result<Arc<Vec<u8>>> {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let key = (name.to_string(), kind);
    if let Some(hit) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return Ok(hit.clone());
    }
    // Built outside the lock: parallel tests may build the same guest twice, which is harmless.
    let bytes = Arc::new(match kind {
        Kind::Wat => wat_module(name)?,
        Kind::CWasm => c_module(name)?,
        Kind::Component => component(name)?,
        Kind::NativeStatic => native_static(name)?,
        Kind::ComponentP2 => component_p2(name)?,
        Kind::HttpComponent => http_component(name)?,
        Kind::CommandP3 => command_p3(name)?,
        Kind::HttpComponentP3 => bindings_component(name, &wasi_p3_wit()?, "bindings", wit_bindgen_c::Opts::default())?,
    });
    cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, bytes.clone());
    Ok(bytes)
}

/// Shorthands for the suite's guests.
pub fn hello() -> Result<Arc<Vec<u8>>> {
    build("hello", Kind::Wat)
}
pub fn trap() -> Result<Arc<Vec<u8>>> {
    build("trap", Kind::Wat)
}
/// `write_then_trap.wat`: a line on stdout, then a trap.
pub fn write_then_trap() -> Result<Arc<Vec<u8>>> {
    build("write_then_trap", Kind::Wat)
}
/// `features.wat`: every proposal wasmbox enables; exits 42 when all work.
pub fn features() -> Result<Arc<Vec<u8>>> {
    build("features", Kind::Wat)
}
pub fn spin() -> Result<Arc<Vec<u8>>> {
    build("spin", Kind::Wat)
}
pub fn args_env() -> Result<Arc<Vec<u8>>> {
    build("args_env", Kind::CWasm)
}
pub fn exit_code() -> Result<Arc<Vec<u8>>> {
    build("exit_code", Kind::CWasm)
}
pub fn echo_stdin() -> Result<Arc<Vec<u8>>> {
    build("echo_stdin", Kind::CWasm)
}
pub fn files() -> Result<Arc<Vec<u8>>> {
    build("files", Kind::CWasm)
}
pub fn cat_file() -> Result<Arc<Vec<u8>>> {
    build("cat_file", Kind::CWasm)
}
pub fn fs_probe() -> Result<Arc<Vec<u8>>> {
    build("fs_probe", Kind::CWasm)
}

/// The same probe as a preview 2 component (through the preview 1 adapter).
pub fn fs_probe_component() -> Result<Arc<Vec<u8>>> {
    build("fs_probe", Kind::Component)
}
pub fn mem_grow() -> Result<Arc<Vec<u8>>> {
    build("mem_grow", Kind::CWasm)
}
pub fn native_hello() -> Result<Arc<Vec<u8>>> {
    build("native_hello", Kind::NativeStatic)
}
pub fn native_wait() -> Result<Arc<Vec<u8>>> {
    build("native_wait", Kind::NativeStatic)
}
/// `swap.c`: swaps a directory and symlinks out of it in and out of `/scratch/x`, forever.
pub fn native_swap() -> Result<Arc<Vec<u8>>> {
    build("swap", Kind::NativeStatic)
}
/// `idle.c`: sleeps forever (wasm).
pub fn idle() -> Result<Arc<Vec<u8>>> {
    build("idle", Kind::CWasm)
}
pub fn pause() -> Result<Arc<Vec<u8>>> {
    build("pause", Kind::NativeStatic)
}
/// `tty.c`: isatty of its streams, then echoes lines (exit status 7).
pub fn tty() -> Result<Arc<Vec<u8>>> {
    build("tty", Kind::CWasm)
}
pub fn native_tty() -> Result<Arc<Vec<u8>>> {
    build("tty", Kind::NativeStatic)
}
pub fn component_hello() -> Result<Arc<Vec<u8>>> {
    build("component_hello", Kind::Component)
}

/// `p3_args.wat`: a WASI 0.3 command (component text format) that prints "hello from wasi
/// 0.3" and each argument on a line, then exits with the number of arguments.
pub fn p3_args() -> Result<Arc<Vec<u8>>> {
    build("p3_args", Kind::Wat)
}

/// `http_p3_hello.c`: a WASI 0.3 HTTP handler answering "hello <path>\n".
pub fn http_p3_hello() -> Result<Arc<Vec<u8>>> {
    build("http_p3_hello", Kind::HttpComponentP3)
}

/// `p3_command.c`: a WASI 0.3 command in C that prints its args and environment, writes files
/// (`write:PATH`) and exits with a status (`exit:N`), all through 0.3 interfaces.
pub fn p3_command() -> Result<Arc<Vec<u8>>> {
    build("p3_command", Kind::CommandP3)
}
/// `connect.c`: one TCP connection to argv[1] (`IPv4:PORT`) over `wasi:sockets`; prints
/// "connected" (exit 0) or "connect failed: ..." (exit 1).
pub fn connect() -> Result<Arc<Vec<u8>>> {
    build("connect", Kind::ComponentP2)
}

/// `server.c`: an HTTP/1.1 server on its preopened listeners (see the source).
pub fn server() -> Result<Arc<Vec<u8>>> {
    build("server", Kind::CWasm)
}

/// `http_hello.c`: a `wasi:http/proxy` handler answering `hello <path>` (see the source).
pub fn http_hello() -> Result<Arc<Vec<u8>>> {
    build("http_hello", Kind::HttpComponent)
}

/// The `wasi:http` WIT (and its WASI dependencies) of the Wasmtime the shim embeds: the `wit`
/// directory of the `wasmtime-wasi-http` crate in cargo's registry, which building the shim
/// has unpacked (`WASMBOX_WASI_HTTP_WIT` overrides it). Read from there, never copied.
pub fn wasi_http_wit() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("WASMBOX_WASI_HTTP_WIT").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .context("neither CARGO_HOME nor HOME is set")?;
    let crate_dir = format!("wasmtime-wasi-http-{WASMTIME_WASI_HTTP_VERSION}");
    let registries = home.join("registry/src");
    for entry in std::fs::read_dir(&registries).with_context(|| format!("reading {}", registries.display()))? {
        let wit = entry?.path().join(&crate_dir).join("wit");
        if wit.join("world.wit").is_file() {
            return Ok(wit);
        }
    }
    bail!("no {crate_dir}/wit under {} (build the workspace first)", registries.display())
}

/// The `wasmtime-wasi-http` version in Cargo.lock (a unit test keeps them equal).
pub const WASMTIME_WASI_HTTP_VERSION: &str = "48.0.8";

/// The WASI 0.3 WIT (`wasi:cli@0.3.0` ... `wasi:http@0.3.0`) that `wasmtime-wasi-http` carries
/// beside its 0.2 one.
pub fn wasi_p3_wit() -> Result<PathBuf> {
    let p2 = wasi_http_wit()?;
    let dir = p2.parent().map(|d| d.join("src/p3/wit")).unwrap_or_default();
    if !dir.join("world.wit").is_file() {
        bail!("no WASI 0.3 WIT at {} (beside {})", dir.display(), p2.display());
    }
    Ok(dir)
}

fn command_p3(name: &str) -> Result<Vec<u8>> {
    let opts = wit_bindgen_c::Opts {
        async_: wit_bindgen_core::AsyncFilterSet::all(false),
        rename_world: Some("bindings".into()),
        ..Default::default()
    };
    bindings_component(name, &wasi_p3_wit()?, "wasi:cli/command@0.3.0", opts)
}

fn http_component(name: &str) -> Result<Vec<u8>> {
    bindings_component(name, &wasi_http_wit()?, "bindings", wit_bindgen_c::Opts::default())
}

/// `<name>.c` with C bindings of `world` (in the WIT at `wit`), as a reactor component.
fn bindings_component(name: &str, wit: &Path, world: &str, opts: wit_bindgen_c::Opts) -> Result<Vec<u8>> {
    use wit_bindgen_core::wit_parser::Resolve;
    let mut resolve = Resolve::default();
    let (pkg, _) = resolve.push_dir(wit)?;
    let world = resolve.select_world(&[pkg], Some(world))?;
    let mut files = wit_bindgen_core::Files::default();
    opts.build()
        .generate(&mut resolve, world, &mut files)
        .with_context(|| format!("generating the C bindings of {}", wit.display()))?;
    let bindings = tempfile::Builder::new().prefix("wbx-bindings-").tempdir()?;
    for (file, contents) in files.iter() {
        std::fs::write(bindings.path().join(file), contents)?;
    }
    let module = match wasip2_module(
        name,
        Wasip2Start::Reactor,
        &[bindings.path().join("bindings.c"), bindings.path().join("bindings_component_type.o")],
        Some(bindings.path()),
    ) {
        Ok(m) => m,
        // The generated names are in bindings.h: keep it for whoever fixes the source.
        Err(e) => return Err(e.context(format!("the bindings are kept in {}", bindings.keep().display()))),
    };
    componentize_with(name, &module, WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER)
}

/// How a wasm32-wasip2 guest starts: `main` (a command) or exports called by the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wasip2Start {
    Command,
    Reactor,
}

/// Compiles and links `<name>.c` (plus `extra` sources or objects) against the wasm32-wasip2
/// sysroot with `wasip2_alloc.c` in place of the libc's allocator; `include` adds a header dir.
fn wasip2_module(name: &str, start: Wasip2Start, extra: &[PathBuf], include: Option<&Path>) -> Result<Vec<u8>> {
    let src = source(name, "c")?;
    let alloc = source("wasip2_alloc", "c")?;
    let sysroot = wasip2_sysroot();
    let lib = sysroot.join("lib/wasm32-wasip2");
    if !lib.join("libc.a").is_file() {
        bail!(
            "no wasm32-wasip2 sysroot at {} (`make wasi-libc` unpacks Debian trixie's wasi-libc \
             there; or set WASMBOX_WASIP2_SYSROOT)",
            sysroot.display()
        );
    }
    let builtins = clang_print(&["--target=wasm32-wasi", "-print-libgcc-file-name"])?;
    let headers = PathBuf::from(clang_print(&["-print-resource-dir"])?).join("include");
    compile(&src, |out| {
        // One clang call compiles and links (clang drives wasm-ld); -nostdlib keeps it off
        // Debian 12's preview 1 libc and start files.
        let mut cmd = Command::new("clang");
        cmd.args(["--target=wasm32-wasi", "-O2", "-Wall", "-nostdinc", "-nostdlib", "-isystem"])
            .arg(sysroot.join("include/wasm32-wasip2"))
            // clang's own headers (stddef.h, ...), which -nostdinc drops too.
            .arg("-isystem")
            .arg(&headers);
        if let Some(dir) = include {
            // Generated bindings define helpers a guest need not use.
            cmd.arg("-Wno-unused-function").arg("-I").arg(dir);
        }
        let crt = match start {
            Wasip2Start::Command => "crt1-command.o",
            Wasip2Start::Reactor => {
                cmd.arg("-mexec-model=reactor");
                "crt1-reactor.o"
            }
        };
        cmd.arg("-Wl,--strip-debug")
            .arg("-o")
            .arg(out)
            .arg(lib.join(crt))
            .arg(&src)
            .args(extra)
            .arg(&alloc)
            .arg(format!("-L{}", lib.display()))
            .arg("-lc")
            .arg(&builtins);
        cmd
    })
}

fn source(name: &str, ext: &str) -> Result<PathBuf> {
    let path = sources_dir().join(format!("{name}.{ext}"));
    if !path.is_file() {
        bail!("guest source {} not found", path.display());
    }
    Ok(path)
}

fn wat_module(name: &str) -> Result<Vec<u8>> {
    let path = source(name, "wat")?;
    wat::parse_file(&path).with_context(|| format!("assembling {}", path.display()))
}

fn c_module(name: &str) -> Result<Vec<u8>> {
    let src = source(name, "c")?;
    compile(&src, |out| {
        let mut cmd = Command::new("clang");
        cmd.args(["--target=wasm32-wasi", "-O2", "-Wall", "-o"])
            .arg(out)
            .arg(&src);
        cmd
    })
}

fn native_static(name: &str) -> Result<Vec<u8>> {
    let src = source(name, "c")?;
    compile(&src, |out| {
        let mut cmd = Command::new("gcc");
        cmd.args(["-static", "-O2", "-Wall", "-o"])
            .arg(out)
            .arg(&src);
        cmd
    })
}

fn component(name: &str) -> Result<Vec<u8>> {
    componentize(name, &c_module(name)?)
}

/// Makes `module` a component; its preview 1 imports go through the command adapter.
fn componentize(name: &str, module: &[u8]) -> Result<Vec<u8>> {
    componentize_with(name, module, WASI_SNAPSHOT_PREVIEW1_COMMAND_ADAPTER)
}

/// A component of `module` with `adapter` (command or reactor) for its preview 1 imports.
fn componentize_with(name: &str, module: &[u8], adapter: &[u8]) -> Result<Vec<u8>> {
    wit_component::ComponentEncoder::default()
        .module(module)
        .context("reading the module for componentization")?
        .adapter(WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME, adapter)
        .context("loading the preview1 -> preview2 adapter")?
        .validate(true)
        .encode()
        .with_context(|| format!("encoding {name} as a component"))
}

/// The `wasm32-wasip2` sysroot (`include/wasm32-wasip2`, `lib/wasm32-wasip2`):
/// `WASMBOX_WASIP2_SYSROOT`, else Debian trixie's `wasi-libc` as `make wasi-libc` unpacks it
/// privately (`$WASMBOX_CI_CACHE/wasi-libc-trixie/usr`). Debian 12's own wasi-libc is preview 1
/// only: no sockets.
pub fn wasip2_sysroot() -> PathBuf {
    let env = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    env("WASMBOX_WASIP2_SYSROOT").unwrap_or_else(|| {
        env("WASMBOX_CI_CACHE")
            .unwrap_or_else(|| PathBuf::from("/var/cache/wasmbox-ci"))
            .join("wasi-libc-trixie/usr")
    })
}

/// A C guest for `wasm32-wasip2`, with Debian 12's clang 14 and wasm-ld 14, which do not know
/// that target: compiled as `wasm32-wasi` against the p2 headers (they select the p2 socket
/// layer themselves), linked by hand against the p2 libc, then made a component. The libc
/// embeds its own component type (the `wasi:sockets` imports); its remaining preview 1 imports
/// go through the adapter, as for [`Kind::Component`]. `wasip2_alloc.c` replaces the libc's
/// dlmalloc, which needs the `__heap_end` that only wasm-ld 15+ defines.
fn component_p2(name: &str) -> Result<Vec<u8>> {
    let module = wasip2_module(name, Wasip2Start::Command, &[], None)?;
    componentize(name, &module)
}

/// What `clang ARGS` prints (a path), trimmed.
fn clang_print(args: &[&str]) -> Result<String> {
    let out = run_captured(Command::new("clang").args(args), None, COMPILE_TIMEOUT)?;
    if !out.status.success() {
        bail!("clang {} failed: {}", args.join(" "), out.stderr_text());
    }
    Ok(out.stdout_text().trim().to_string())
}

/// Runs a compiler writing into a scratch dir that is removed again, and returns the output.
fn compile(src: &Path, make_cmd: impl FnOnce(&Path) -> Command) -> Result<Vec<u8>> {
    let scratch = tempfile::Builder::new().prefix("wbx-guest-").tempdir()?;
    let out = scratch.path().join("out");
    let mut cmd = make_cmd(&out);
    let result = run_captured(&mut cmd, None, COMPILE_TIMEOUT)?;
    if !result.status.success() {
        bail!(
            "compiling {} failed ({}):\n{}",
            src.display(),
            result.status,
            result.stderr_text()
        );
    }
    std::fs::read(&out).with_context(|| format!("reading compiler output for {}", src.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_core_module(b: &[u8]) -> bool {
        b.starts_with(b"\0asm\x01\0\0\0")
    }

    #[test]
    fn the_wasi_http_wit_is_the_locked_wasmtime_wasi_http() {
        let lock = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.lock")).unwrap();
        let entry = format!("name = \"wasmtime-wasi-http\"\nversion = \"{WASMTIME_WASI_HTTP_VERSION}\"");
        assert!(lock.contains(&entry), "Cargo.lock has another wasmtime-wasi-http than {WASMTIME_WASI_HTTP_VERSION}");
    }

    #[test]
    fn wat_guests_assemble() {
        for name in ["hello", "trap", "spin"] {
            assert!(is_core_module(&build(name, Kind::Wat).unwrap()), "{name}");
        }
    }

    #[test]
    fn c_guests_compile_to_wasm() {
        for name in ["args_env", "exit_code", "echo_stdin", "files"] {
            assert!(is_core_module(&build(name, Kind::CWasm).unwrap()), "{name}");
        }
    }

    #[test]
    fn native_guest_is_a_static_elf() {
        let elf = native_hello().unwrap();
        assert!(elf.starts_with(b"\x7fELF"));
    }

    #[test]
    fn component_has_the_component_layer() {
        let c = component_hello().unwrap();
        // A component's preamble: magic, then version 0x0d and layer 1 (not a core module's 1, 0).
        assert_eq!(&c[..8], b"\0asm\x0d\0\x01\0");
    }

    #[test]
    fn second_build_comes_from_the_cache() {
        let a = hello().unwrap();
        let b = hello().unwrap();
        assert!(Arc::ptr_eq(&a, &b));
    }
}


