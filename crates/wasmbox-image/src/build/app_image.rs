//! One application, three image formats: what `wasmbox image build` does, minus argument
//! parsing and file I/O.

use std::fmt;
use std::str::FromStr;

use crate::build::app::WasmApp;
use crate::error::{ImageError, Result};
use crate::build::image::{BuiltImage, ImageBuilder};
use crate::format::platform::Platform;
use crate::build::wasm_image::{WasmForm, WasmImageBuilder};

/// The image formats `wasmbox image build` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// An ordinary image: one filesystem layer holding the module, which is the entrypoint.
    /// Runs on every containerd (1.6, 1.7, 2.x) and is accepted by every registry and `docker load`.
    Compat,
    /// Standard OCI config plus an `application/wasm` layer (containerd 1.7+).
    Wasm,
    /// The CNCF TAG Runtime Wasm artifact, for registries and other wasm runtimes.
    Artifact,
}

impl FromStr for Format {
    type Err = ImageError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "compat" => Ok(Format::Compat),
            "wasm" => Ok(Format::Wasm),
            "artifact" => Ok(Format::Artifact),
            other => Err(ImageError::InvalidOption(format!(
                "unknown format {other:?} (expected compat, wasm or artifact)"
            ))),
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Compat => "compat",
            Format::Wasm => "wasm",
            Format::Artifact => "artifact",
        })
    }
}

/// Everything about the image except the application itself.
#[derive(Debug, Clone)]
pub struct AppImageOptions {
    pub reference: String,
    pub format: Format,
    /// `argv[0]`, optionally `path#export`. For compat images it is also where the module is
    /// put (without the `#export`). Default `/<app name>`.
    pub entrypoint: Option<String>,
    /// The image's cmd: arguments after the entrypoint.
    pub args: Vec<String>,
    /// `KEY=value`.
    pub env: Vec<String>,
    /// Manifest annotations.
    pub annotations: Vec<(String, String)>,
    /// Default: linux/amd64 for compat, wasip1/wasm or wasip2/wasm for the others.
    pub platform: Option<Platform>,
    /// The CNCF config's `created` (artifact only; RFC 3339). Default: the Unix epoch.
    pub created: Option<String>,
}

impl AppImageOptions {
    pub fn new(reference: impl Into<String>, format: Format) -> Self {
        Self {
            reference: reference.into(),
            format,
            entrypoint: None,
            args: Vec::new(),
            env: Vec::new(),
            annotations: Vec::new(),
            platform: None,
            created: None,
        }
    }

    fn check(&self) -> Result<()> {
        for var in &self.env {
            if var.split_once('=').is_none_or(|(k, _)| k.is_empty()) {
                return Err(ImageError::InvalidOption(format!(
                    "env {var:?} is not KEY=value"
                )));
            }
        }
        if let Some(e) = &self.entrypoint {
            if e.is_empty() {
                return Err(ImageError::InvalidOption("the entrypoint is empty".into()));
            }
        }
        if self.format != Format::Artifact && self.created.is_some() {
            return Err(ImageError::InvalidOption(
                "`created` is a field of the CNCF artifact config only".into(),
            ));
        }
        Ok(())
    }
}

/// Builds `app` as an image of `options.format`; nothing is written yet.
pub fn build_app_image(app: &WasmApp, options: &AppImageOptions) -> Result<BuiltImage> {
    options.check()?;
    match options.format {
        Format::Compat => build_compat(app, options),
        Format::Wasm => build_wasm(app, options, WasmForm::Runnable),
        Format::Artifact => build_wasm(app, options, WasmForm::Artifact),
    }
}

fn build_compat(app: &WasmApp, options: &AppImageOptions) -> Result<BuiltImage> {
    let entrypoint = options
        .entrypoint
        .clone()
        .unwrap_or_else(|| format!("/{}", app.name()));
    // `/app.wasm#run` names the file `/app.wasm` and the export `run`.
    let path = match entrypoint.rsplit_once('#') {
        Some((path, func)) if !path.is_empty() && !func.is_empty() => path.to_string(),
        _ => entrypoint.clone(),
    };
    if !path.starts_with('/') {
        return Err(ImageError::InvalidOption(format!(
            "the entrypoint of a compat image must be an absolute path, where the module goes (got {entrypoint:?})"
        )));
    }
    let platform = options.platform.clone().unwrap_or_default();
    let mut image = ImageBuilder::new(options.reference.clone())
        .platform(platform.os(), platform.arch())
        .file(&path, app.bytes().to_vec(), 0o755)
        // Guests that write files expect a /tmp, as in ordinary base images.
        .dir("/tmp", 0o1777)
        .entrypoint([entrypoint]);
    if !options.args.is_empty() {
        image = image.cmd(options.args.clone());
    }
    if !options.env.is_empty() {
        image = image.env(options.env.clone());
    }
    for (k, v) in &options.annotations {
        image = image.annotation(k.clone(), v.clone());
    }
    image.build()
}

fn build_wasm(app: &WasmApp, options: &AppImageOptions, form: WasmForm) -> Result<BuiltImage> {
    let mut image = WasmImageBuilder::new(options.reference.clone(), form, app.clone());
    if let Some(p) = &options.platform {
        image = image.platform(p.clone());
    }
    if let Some(e) = &options.entrypoint {
        image = image.entrypoint(vec![e.clone()]);
    }
    if !options.args.is_empty() {
        image = image.cmd(options.args.clone());
    }
    if !options.env.is_empty() {
        image = image.env(options.env.clone());
    }
    for (k, v) in &options.annotations {
        image = image.annotation(k.clone(), v.clone());
    }
    if let Some(c) = &options.created {
        image = image.created(c.clone());
    }
    image.build()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app() -> WasmApp {
        WasmApp::from_bytes("hello.wasm", b"\0asm\x01\0\0\0".to_vec()).unwrap()
    }

    #[test]
    fn formats_parse_and_print() {
        for f in ["compat", "wasm", "artifact"] {
            assert_eq!(f.parse::<Format>().unwrap().to_string(), f);
        }
        assert!("oci".parse::<Format>().is_err());
    }

    #[test]
    fn compat_puts_the_module_at_the_entrypoint_path() {
        let mut options = AppImageOptions::new("docker.io/library/h:1", Format::Compat);
        options.entrypoint = Some("/bin/h.wasm#run".into());
        options.args = vec!["x".into()];
        let image = build_app_image(&app(), &options).unwrap();
        let files: std::collections::BTreeMap<_, _> =
            image.layout().files().unwrap().into_iter().collect();
        let layer = &files[&format!(
            "blobs/sha256/{}",
            image.layer_digest().trim_start_matches("sha256:")
        )];
        let mut archive = tar::Archive::new(layer.as_slice());
        let names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        assert!(names.contains(&"bin/h.wasm".to_string()), "{names:?}");
        // docker load reads manifest.json; it names the same config and layer.
        let docker = String::from_utf8(files["manifest.json"].clone()).unwrap();
        assert!(
            docker.contains(image.config_digest().trim_start_matches("sha256:")),
            "{docker}"
        );
        assert!(docker.contains("docker.io/library/h:1"), "{docker}");
    }

    #[test]
    fn bad_options_are_refused() {
        let mut relative = AppImageOptions::new("r:1", Format::Compat);
        relative.entrypoint = Some("app.wasm".into());
        assert!(build_app_image(&app(), &relative).is_err());

        let mut env = AppImageOptions::new("r:1", Format::Wasm);
        env.env = vec!["NOEQUALS".into()];
        assert!(build_app_image(&app(), &env).is_err());

        let mut created = AppImageOptions::new("r:1", Format::Wasm);
        created.created = Some(crate::EPOCH.into());
        assert!(build_app_image(&app(), &created).is_err());
    }
}
