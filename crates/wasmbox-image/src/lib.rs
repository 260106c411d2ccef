//! Reproducible OCI image layout tarballs for wasmbox: its tests, its demo and `wasmbox image build`;
//! and the image format the shim reads.
//!
//! Two parts: [`format`] (what an image is on the wire: media types, the Wasm config,
//! references, platforms, digests), used by readers and builders alike, and [`build`], which
//! uses it.
//!
//! [`ImageBuilder`] assembles a compat image (config, manifest, one uncompressed filesystem
//! layer); [`WasmImageBuilder`] assembles images whose layer is the wasm binary (runnable with a
//! standard config, or the CNCF Wasm artifact); [`build_app_image`] picks one from a
//! [`Format`]. All hand their blobs to [`LayoutWriter`], which only knows how to lay blobs and
//! an index out on disk or in a tar. The same input always gives the same bytes, so digests are
//! stable across runs.
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

pub mod build;
mod error;
pub mod format;

pub use build::app::{binary_kind, AppKind, WasmApp};
pub use build::app_image::{build_app_image, AppImageOptions, Format};
pub use build::blob::Blob;
pub use build::image::{BuiltImage, ImageBuilder};
pub use build::json::to_canonical_vec;
pub use build::layer::LayerBuilder;
pub use build::layout::LayoutWriter;
pub use build::wasm_image::{WasmForm, WasmImageBuilder};
pub use error::{ImageError, Result};
pub use format::digest::sha256_hex;
pub use format::platform::Platform;
pub use format::wasm_config::{ComponentInfo, WasmConfig, EPOCH};
pub use format::{media_types, reference};

#[cfg(test)]
mod tests;
