//! Building images, reproducibly: the same input always gives the same bytes.
//!
//! Its parts, each using only those before it (and [`crate::format`]):
//! - [`component`]: the interfaces a component imports and exports;
//! - [`app`]: the application an image is built from (module, component or WAT);
//! - [`config`]: the Wasm artifact config written for an application;
//! - [`json`]: canonical JSON, so digests are stable;
//! - [`blob`]: content-addressed blobs and their descriptors;
//! - [`layer`]: a reproducible filesystem layer tar;
//! - [`docker`]: Docker's `manifest.json`, for `docker load`;
//! - [`layout`]: the OCI image layout, on disk or as a tar;
//! - [`image`]: a compat image (config, manifest, one filesystem layer);
//! - [`wasm_image`]: images whose layer is the wasm binary;
//! - [`app_image`]: one application in the format asked for.

pub mod app;
pub mod app_image;
pub mod blob;
pub mod component;
pub mod config;
pub mod docker;
pub mod image;
pub mod json;
pub mod layer;
pub mod layout;
pub mod wasm_image;
