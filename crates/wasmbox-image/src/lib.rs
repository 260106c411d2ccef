//! Reproducible OCI image layout tarballs for wasmbox: its tests, its demo and `wasmbox image build`.
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

mod app;
mod app_image;
mod blob;
mod component;
mod docker;
mod error;
mod image;
mod json;
mod layer;
mod layout;
pub mod media_types;
mod platform;
pub mod reference;
mod wasm_config;
mod wasm_image;

pub use app::{binary_kind, AppKind, WasmApp};
pub use app_image::{build_app_image, AppImageOptions, Format};
pub use blob::{sha256_hex, Blob};
pub use error::{ImageError, Result};
pub use image::{BuiltImage, ImageBuilder};
pub use json::to_canonical_vec;
pub use layer::LayerBuilder;
pub use layout::LayoutWriter;
pub use platform::Platform;
pub use wasm_config::{ComponentInfo, WasmConfig, EPOCH};
pub use wasm_image::{WasmForm, WasmImageBuilder};

#[cfg(test)]
mod tests;
