//! Content verification: a blob is used only if its bytes hash to the digest (and have the
//! size) its descriptor names. containerd's content store checks digests on write; checking
//! again on read costs one hash and means a corrupted or swapped blob never reaches the
//! compiler.

use super::error::ArtifactError;

/// Checks `bytes` against `digest` (`sha256:<64 hex>`) and `size` (ignored when negative).
pub fn verify(digest: &str, size: i64, bytes: &[u8]) -> Result<(), ArtifactError> {
    let expected = digest
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| ArtifactError::UnsupportedDigest(digest.to_string()))?;
    let actual = wasmbox_image::sha256_hex(bytes);
    let size_ok = size < 0 || bytes.len() as i64 == size;
    if !size_ok || !actual.eq_ignore_ascii_case(expected) {
        return Err(ArtifactError::DigestMismatch {
            digest: digest.to_string(),
            actual: format!("sha256:{actual}"),
            size,
            len: bytes.len(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn matching_content_passes() {
        verify(EMPTY, 0, b"").unwrap();
        verify(EMPTY, -1, b"").unwrap();
    }

    #[test]
    fn wrong_content_or_size_fails() {
        assert!(matches!(
            verify(EMPTY, 0, b"x"),
            Err(ArtifactError::DigestMismatch { .. })
        ));
        assert!(matches!(
            verify(EMPTY, 3, b""),
            Err(ArtifactError::DigestMismatch { .. })
        ));
    }

    #[test]
    fn other_algorithms_and_malformed_digests_fail() {
        let sha512 = format!("sha512:{}", "0".repeat(128));
        assert!(matches!(
            verify(&sha512, 0, b""),
            Err(ArtifactError::UnsupportedDigest(_))
        ));
        assert!(matches!(
            verify("sha256:abc", 0, b""),
            Err(ArtifactError::UnsupportedDigest(_))
        ));
    }
}
