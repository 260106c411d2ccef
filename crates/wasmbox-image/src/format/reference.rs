//! Image references as containerd stores them (`docker.io/library/name:tag`).

use crate::error::{ImageError, Result};

/// Annotation containerd's importer reads the full image name from.
pub const CONTAINERD_IMAGE_NAME: &str = "io.containerd.image.name";

/// Checks that `reference` is usable as an image name: non-empty, no whitespace or control bytes.
pub fn validate(reference: &str) -> Result<()> {
    if reference.is_empty()
        || reference
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(ImageError::InvalidReference(reference.to_string()));
    }
    Ok(())
}

/// The tag of `reference` (`latest` when it has none), which is what containerd's own exporter puts
/// in `org.opencontainers.image.ref.name`; the full name goes in [`CONTAINERD_IMAGE_NAME`].
pub fn tag(reference: &str) -> &str {
    let name = reference.split('@').next().unwrap_or(reference);
    let last_segment_start = name.rfind('/').map_or(0, |i| i + 1);
    match name[last_segment_start..].rfind(':') {
        Some(i) => &name[last_segment_start + i + 1..],
        None => "latest",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags() {
        assert_eq!(tag("docker.io/library/demo:v1"), "v1");
        assert_eq!(tag("localhost:5000/demo"), "latest");
        assert_eq!(tag("localhost:5000/demo:2"), "2");
        assert_eq!(tag("demo"), "latest");
    }

    #[test]
    fn bad_references() {
        assert!(validate("").is_err());
        assert!(validate("a b").is_err());
        assert!(validate("docker.io/library/a:b").is_ok());
    }
}
