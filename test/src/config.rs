//! The private containerd's on-disk layout and its config file.

use std::path::{Path, PathBuf};

/// Every path one private containerd instance uses; all of them live in its temp dir.
#[derive(Debug, Clone)]
pub struct Paths {
    pub dir: PathBuf,
    pub root: PathBuf,
    pub state: PathBuf,
    pub opt: PathBuf,
    pub socket: PathBuf,
    pub config: PathBuf,
    pub log: PathBuf,
    /// Handed to containerd (and so to the shim) as `WASMBOX_CACHE_DIR`.
    pub cache: PathBuf,
    /// Where ctr puts its IO fifos (instead of the shared /run/containerd/fifo).
    pub fifo: PathBuf,
    /// Scratch space for image tarballs and other test files.
    pub work: PathBuf,
}

impl Paths {
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            root: dir.join("root"),
            state: dir.join("state"),
            opt: dir.join("opt"),
            socket: dir.join("containerd.sock"),
            config: dir.join("config.toml"),
            log: dir.join("containerd.log"),
            cache: dir.join("cache"),
            fifo: dir.join("fifo"),
            work: dir.join("work"),
        }
    }

    pub fn create_dirs(&self) -> std::io::Result<()> {
        for d in [
            &self.root,
            &self.state,
            &self.opt,
            &self.cache,
            &self.fifo,
            &self.work,
        ] {
            std::fs::create_dir_all(d)?;
        }
        Ok(())
    }

    /// The task bundle directory containerd's v2 runtime makes for a container.
    pub fn bundle(&self, namespace: &str, id: &str) -> PathBuf {
        self.state
            .join("io.containerd.runtime.v2.task")
            .join(namespace)
            .join(id)
    }

    /// A config of its own: nothing shared with a system containerd except /run/containerd/s
    /// (shim sockets, fixed by containerd) and the kernel. ctr's default snapshotter is
    /// overlayfs, which is what import and run use.
    pub fn config_toml(&self) -> String {
        let q = |p: &Path| toml_string(&p.to_string_lossy());
        format!(
            r#"version = 2
root = {root}
state = {state}
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = {grpc}

[ttrpc]
  address = {ttrpc}

[debug]
  level = "debug"

[plugins."io.containerd.internal.v1.opt"]
  path = {opt}
"#,
            root = q(&self.root),
            state = q(&self.state),
            grpc = q(&self.socket),
            ttrpc = q(&self.dir.join("containerd.sock.ttrpc")),
            opt = q(&self.opt),
        )
    }
}

fn toml_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_points_everything_into_the_dir() {
        let paths = Paths::new(Path::new("/tmp/wbx-x"));
        let text = paths.config_toml();
        assert!(text.contains(r#"root = "/tmp/wbx-x/root""#));
        assert!(text.contains(r#"address = "/tmp/wbx-x/containerd.sock""#));
        assert!(text.contains("io.containerd.grpc.v1.cri"));
    }
}
