//! OCI images made from guests with `wasmbox-image`.

use wasmbox_image::ImageBuilder;

/// Where compat images put the module unless told otherwise.
pub const WASM_PATH: &str = "/app.wasm";
pub const NATIVE_PATH: &str = "/hello";

/// A "compat" image: the module is an ordinary file at `/app.wasm`, which is the entrypoint,
/// and the platform is linux/amd64 so containerd unpacks it like any Linux image.
pub fn compat_image(reference: &str, module: &[u8]) -> ImageBuilder {
    compat_image_at(reference, WASM_PATH, module)
}

/// Same, with the module at `path` (the entrypoint follows it).
pub fn compat_image_at(reference: &str, path: &str, module: &[u8]) -> ImageBuilder {
    base(reference)
        .file(path, module.to_vec(), 0o755)
        .entrypoint([path])
}

/// An image whose entrypoint is the given path but which does not contain it.
pub fn image_without_entrypoint_file(reference: &str, entrypoint: &str) -> ImageBuilder {
    base(reference).entrypoint([entrypoint])
}

/// A native static ELF at `/hello` as the entrypoint.
pub fn native_image(reference: &str, elf: &[u8]) -> ImageBuilder {
    native_image_at(reference, NATIVE_PATH, elf)
}

/// Same, with the ELF at `path` (the entrypoint follows it), e.g. `/pause`.
pub fn native_image_at(reference: &str, path: &str, elf: &[u8]) -> ImageBuilder {
    base(reference)
        .file(path, elf.to_vec(), 0o755)
        .entrypoint([path])
}

// Every image gets a world-writable /tmp, like ordinary base images, for guests that write files.
fn base(reference: &str) -> ImageBuilder {
    ImageBuilder::new(reference)
        .platform("linux", "amd64")
        .dir("/tmp", 0o1777)
}
