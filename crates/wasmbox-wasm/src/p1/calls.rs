//! Which preview 1 functions the layer wraps, with their core signatures.

use wasmtime::{FuncType, ValType};

/// The module preview 1's functions are imported from.
pub const WASI: &str = "wasi_snapshot_preview1";

/// How a wrapped function is treated.
pub(crate) struct Wrapped {
    pub name: &'static str,
    /// Parameter types (every preview 1 function returns an errno).
    pub params: &'static str,
    /// Indices of the parameters that are descriptors.
    pub fds: &'static [usize],
    /// The (dirfd, path, path_len) parameter indices of each path it modifies, for `rofs`.
    pub rofs: &'static [(usize, usize, usize)],
}

const fn w(
    name: &'static str,
    params: &'static str,
    fds: &'static [usize],
    rofs: &'static [(usize, usize, usize)],
) -> Wrapped {
    Wrapped {
        name,
        params,
        fds,
        rofs,
    }
}

/// Every preview 1 function that takes a descriptor (and `poll_oneoff`, whose descriptors are
/// in memory), with its core signature.
pub(crate) const WRAPPED: &[Wrapped] = &[
    w("fd_advise", "i32 i64 i64 i32", &[0], &[]),
    w("fd_allocate", "i32 i64 i64", &[0], &[]),
    w("fd_close", "i32", &[0], &[]),
    w("fd_datasync", "i32", &[0], &[]),
    w("fd_fdstat_get", "i32 i32", &[0], &[]),
    w("fd_fdstat_set_flags", "i32 i32", &[0], &[]),
    w("fd_fdstat_set_rights", "i32 i64 i64", &[0], &[]),
    w("fd_filestat_get", "i32 i32", &[0], &[]),
    w("fd_filestat_set_size", "i32 i64", &[0], &[]),
    w("fd_filestat_set_times", "i32 i64 i64 i32", &[0], &[]),
    w("fd_pread", "i32 i32 i32 i64 i32", &[0], &[]),
    w("fd_prestat_get", "i32 i32", &[0], &[]),
    w("fd_prestat_dir_name", "i32 i32 i32", &[0], &[]),
    w("fd_pwrite", "i32 i32 i32 i64 i32", &[0], &[]),
    w("fd_read", "i32 i32 i32 i32", &[0], &[]),
    w("fd_readdir", "i32 i32 i32 i64 i32", &[0], &[]),
    w("fd_renumber", "i32 i32", &[0, 1], &[]),
    w("fd_seek", "i32 i64 i32 i32", &[0], &[]),
    w("fd_sync", "i32", &[0], &[]),
    w("fd_tell", "i32 i32", &[0], &[]),
    w("fd_write", "i32 i32 i32 i32", &[0], &[]),
    w("path_create_directory", "i32 i32 i32", &[0], &[(0, 1, 2)]),
    w("path_filestat_get", "i32 i32 i32 i32 i32", &[0], &[]),
    w(
        "path_filestat_set_times",
        "i32 i32 i32 i32 i64 i64 i32",
        &[0],
        &[(0, 2, 3)],
    ),
    w(
        "path_link",
        "i32 i32 i32 i32 i32 i32 i32",
        &[0, 4],
        &[(4, 5, 6)],
    ),
    w(
        "path_open",
        "i32 i32 i32 i32 i32 i64 i64 i32 i32",
        &[0],
        &[(0, 2, 3)],
    ),
    w("path_readlink", "i32 i32 i32 i32 i32 i32", &[0], &[]),
    w("path_remove_directory", "i32 i32 i32", &[0], &[(0, 1, 2)]),
    w(
        "path_rename",
        "i32 i32 i32 i32 i32 i32",
        &[0, 3],
        &[(0, 1, 2), (3, 4, 5)],
    ),
    w("path_symlink", "i32 i32 i32 i32 i32", &[2], &[(2, 3, 4)]),
    w("path_unlink_file", "i32 i32 i32", &[0], &[(0, 1, 2)]),
    w("poll_oneoff", "i32 i32 i32 i32", &[], &[]),
    w("sock_accept", "i32 i32 i32", &[0], &[]),
    w("sock_recv", "i32 i32 i32 i32 i32 i32", &[0], &[]),
    w("sock_send", "i32 i32 i32 i32 i32", &[0], &[]),
    w("sock_shutdown", "i32 i32", &[0], &[]),
];
pub(crate) fn signature(ty: &FuncType) -> Option<String> {
    let name = |t: ValType| match t {
        ValType::I32 => Some("i32"),
        ValType::I64 => Some("i64"),
        _ => None,
    };
    let params: Vec<&str> = ty.params().map(name).collect::<Option<_>>()?;
    let results: Vec<&str> = ty.results().map(name).collect::<Option<_>>()?;
    (results == ["i32"]).then(|| params.join(" "))
}
