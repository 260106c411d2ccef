//! Shim socket files: containerd's shim library puts each shim's socket at
//! `/run/containerd/s/<hex sha256 of "<containerd address>/<namespace>/<id>">`, outside any
//! state directory we control, so tests check and clean them up by computing the name.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub const SOCKET_DIR: &str = "/run/containerd/s";

/// The socket path for one container of one containerd.
pub fn socket_path(address: &Path, namespace: &str, id: &str) -> PathBuf {
    let key = format!("{}/{namespace}/{id}", address.display());
    Path::new(SOCKET_DIR).join(hex::encode(Sha256::digest(key.as_bytes())))
}

/// Existing files for that socket: the socket itself and any sibling with the same stem
/// (some shim versions add suffixed debug or log sockets).
pub fn existing(address: &Path, namespace: &str, id: &str) -> Vec<PathBuf> {
    let socket = socket_path(address, namespace, id);
    let stem = socket
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string();
    let Ok(entries) = std::fs::read_dir(SOCKET_DIR) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_str().is_some_and(|n| n.starts_with(&stem)))
        .map(|e| e.path())
        .collect()
}

/// The shim's default `shim.containers_per_shim` (see the shim's `group` module).
pub const DEFAULT_CONTAINERS_PER_SHIM: usize = 16;
/// The shim's default `shim.pods_per_shim`.
pub const DEFAULT_PODS_PER_SHIM: usize = 16;

/// Socket paths of the first `slots` shared shims (containers outside pods) that `shim_binary`
/// would start for this containerd with no handler config and the default limit: the shim
/// names them `wasmbox-shared:<binary's dev:ino:size:mtime>:<config>:<limit>:<slot>`.
pub fn shared_socket_paths(address: &Path, namespace: &str, shim_binary: &Path, slots: usize) -> Vec<PathBuf> {
    slot_socket_paths("wasmbox-shared", DEFAULT_CONTAINERS_PER_SHIM, address, namespace, shim_binary, slots)
}

/// The same for shims shared by pods (`wasmbox-pods:...`).
pub fn shared_pod_socket_paths(address: &Path, namespace: &str, shim_binary: &Path, slots: usize) -> Vec<PathBuf> {
    slot_socket_paths("wasmbox-pods", DEFAULT_PODS_PER_SHIM, address, namespace, shim_binary, slots)
}

fn slot_socket_paths(kind: &str, limit: usize, address: &Path, namespace: &str, shim_binary: &Path, slots: usize) -> Vec<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let Ok(m) = std::fs::metadata(shim_binary) else {
        return Vec::new();
    };
    let identity = format!("{}:{}:{}:{}.{}:", m.dev(), m.ino(), m.size(), m.mtime(), m.mtime_nsec());
    (0..slots)
        .map(|slot| socket_path(address, namespace, &format!("{kind}:{identity}:{limit}:{slot}")))
        .collect()
}

/// The socket of the shim serving a container, from its bundle's `address` file (None once
/// the bundle is gone).
pub fn of_bundle(bundle: &Path) -> Option<PathBuf> {
    let address = std::fs::read_to_string(bundle.join("address")).ok()?;
    Some(PathBuf::from(address.trim().trim_start_matches("unix://")))
}

/// True when something listens on the socket at `path`.
pub fn is_live(path: &Path) -> bool {
    std::os::unix::net::UnixStream::connect(path).is_ok()
}

pub fn remove(address: &Path, namespace: &str, id: &str) {
    for path in existing(address, namespace, id) {
        let _ = std::fs::remove_file(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_is_the_hash_of_address_namespace_id() {
        let p = socket_path(Path::new("/run/containerd/containerd.sock"), "default", "x");
        let expected = hex::encode(Sha256::digest(b"/run/containerd/containerd.sock/default/x"));
        assert_eq!(p, Path::new(SOCKET_DIR).join(expected));
    }
}
