//! What an image is on the wire, for those who read images (the shim) and those who build them:
//! media types, the Wasm artifact config, references, platforms and digests. Uses nothing of
//! this crate but [`crate::error`].

pub mod digest;
pub mod media_types;
pub mod platform;
pub mod reference;
pub mod wasm_config;
