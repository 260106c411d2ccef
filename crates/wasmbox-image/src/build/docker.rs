//! Docker's `manifest.json`, written next to `index.json` so `docker load` reads the same tar
//! with or without the containerd image store. containerd's importer prefers the OCI layout
//! when `oci-layout` is present, so `ctr image import` is unaffected.

use serde::Serialize;

use crate::error::Result;
use crate::build::json::to_canonical_vec;
use crate::format::reference;

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Entry {
    config: String,
    repo_tags: Vec<String>,
    layers: Vec<String>,
}

/// `manifest.json` for one image whose blobs are at `blobs/sha256/<hex>`. Digests are
/// `sha256:<hex>`. References with a digest carry no tag, so they get no `RepoTags`.
pub fn manifest_json(
    reference: &str,
    config_digest: &str,
    layer_digests: &[&str],
) -> Result<Vec<u8>> {
    let path = |digest: &str| format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"));
    let repo_tags = if reference.contains('@') {
        Vec::new()
    } else {
        vec![tagged(reference)]
    };
    let entry = Entry {
        config: path(config_digest),
        repo_tags,
        layers: layer_digests.iter().map(|d| path(d)).collect(),
    };
    to_canonical_vec(&vec![entry])
}

/// `reference` with its tag made explicit (`:latest` when it has none).
fn tagged(reference: &str) -> String {
    let tag = reference::tag(reference);
    if reference.ends_with(&format!(":{tag}")) {
        reference.to_string()
    } else {
        format!("{reference}:{tag}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_at_blobs_by_path() {
        let json = manifest_json("localhost:5000/demo", "sha256:aa", &["sha256:bb"]).unwrap();
        assert_eq!(
            String::from_utf8(json).unwrap(),
            r#"[{"Config":"blobs/sha256/aa","Layers":["blobs/sha256/bb"],"RepoTags":["localhost:5000/demo:latest"]}]"#
        );
        let json = manifest_json("demo@sha256:cc", "sha256:aa", &[]).unwrap();
        assert!(String::from_utf8(json)
            .unwrap()
            .contains(r#""RepoTags":[]"#));
    }
}
