//! Reproducible OCI image layout tarballs for wasmbox's tests and demo.
//!
//! [`ImageBuilder`] assembles an image (config, manifest, one uncompressed layer) and hands the
//! blobs to [`LayoutWriter`], which only knows how to lay blobs and an index out on disk or in a
//! tar. The same input always gives the same bytes, so digests are stable across runs.
//!
//! ```
//! let mut tar = Vec::new();
//! let image = wasmbox_image::ImageBuilder::new("docker.io/library/hello:latest")
//!     .platform("linux", "amd64")
//!     .entrypoint(["/app.wasm"])
//!     .file("/app.wasm", b"\0asm\x01\0\0\0".to_vec(), 0o755)
//!     .write_tar(&mut tar)
//!     .unwrap();
//! assert!(image.manifest_digest().starts_with("sha256:"));
//! ```

mod blob;
mod error;
mod image;
mod json;
mod layer;
mod layout;
mod platform;
pub mod reference;

pub use blob::{sha256_hex, Blob};
pub use error::{ImageError, Result};
pub use image::{BuiltImage, ImageBuilder};
pub use json::to_canonical_vec;
pub use layer::LayerBuilder;
pub use layout::LayoutWriter;
pub use platform::Platform;

#[cfg(test)]
mod tests;
