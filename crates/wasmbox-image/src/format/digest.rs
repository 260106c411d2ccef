//! Content digests: what names a blob in a manifest and in a content store.

use sha2::{Digest as _, Sha256};

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}
