use std::path::PathBuf;

/// Why a wasm entrypoint or layer holding ELF is refused (Wasmtime trusts precompiled code
/// blindly, so only the shim's own compile cache may supply it).
pub const MACHINE_CODE_REFUSED: &str = "holds ELF machine code (a Wasmtime precompiled .cwasm or a native binary); \
wasmbox only runs wasm modules, components and WAT, which it compiles itself";

/// Errors of the wasm layer. Messages are shown to `ctr`/`kubectl` users, so they name the
/// file or export concerned.
#[derive(Debug, thiserror::Error)]
pub enum WasmError {
    #[error("entrypoint {0:?} not found in the container (its rootfs and bind mounts)")]
    EntrypointNotFound(String),
    #[error("exec {path}: is a directory")]
    IsDirectory { path: String },
    #[error("exec {path}: exec format error ({detail}: not an ELF binary, a #! script or WebAssembly)")]
    ExecFormat { path: String, detail: String },
    #[error("{path}: not a WebAssembly module ({detail})")]
    NotWasm { path: String, detail: String },
    #[error("{path}: refused: {}", MACHINE_CODE_REFUSED)]
    MachineCode { path: String },
    #[error("cannot read entrypoint {path:?}: {source}")]
    ReadEntrypoint {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: invalid WebAssembly: {message}")]
    Invalid { path: String, message: String },
    #[error("{path}: export {func:?} not found (the module exports: {available})")]
    ExportNotFound {
        path: String,
        func: String,
        available: String,
    },
    #[error("{path}: export {func:?} is not a function")]
    NotAFunction { path: String, func: String },
    #[error("{path}: `path#func` calls an export of a core module; components run wasi:cli/run")]
    FuncOnComponent { path: String },
    #[error("{path}: not a program wasmbox runs: {message}")]
    Unserved { path: String, message: String },
    #[error("{path}: cannot link: {message}")]
    Link { path: String, message: String },
    #[error("compile cache {path:?}: {source}")]
    Cache {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("compile cache entry {path:?} is unusable: {message}")]
    CacheEntry { path: PathBuf, message: String },
    #[error("wasm engine: {0}")]
    Engine(String),
    #[error("sandbox: {0}")]
    Sandbox(String),
}
