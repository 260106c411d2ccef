//! `wasmbox image build`.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use wasmbox_image::{build_app_image, AppImageOptions, Format, Platform, WasmApp};

#[derive(Debug, Args)]
#[command(after_help = "\
Formats:
  compat    an ordinary image: one filesystem layer with the module at the entrypoint path.
            Runs on containerd 1.6, 1.7 and 2.x; default platform linux/amd64.
  wasm      a standard OCI config (architecture wasm, os wasip1/wasip2) and the module as an
            application/wasm layer. Runs on containerd 1.7 and 2.x; import with
            `ctr image import --platform wasip1/wasm` and run with `ctr run --platform wasip1/wasm`.
  artifact  the CNCF TAG Runtime Wasm artifact (config application/vnd.wasm.config.v0+json),
            for registries and other wasm runtimes. containerd does not run it.

The same input always gives the same bytes (and digests). For `artifact`, the config's
`created` is --created, else SOURCE_DATE_EPOCH, else 1970-01-01T00:00:00Z.")]
pub struct BuildArgs {
    /// Image format: compat, wasm or artifact.
    #[arg(long, default_value = "compat", value_parser = parse_format)]
    format: Format,
    /// Image reference, e.g. docker.io/library/hello:v1 or localhost:5000/hello:v1.
    #[arg(short = 't', long = "tag", value_name = "REF")]
    reference: String,
    /// Output tarball (OCI image layout); `-` writes to stdout.
    #[arg(short, long, value_name = "OUT.tar")]
    output: PathBuf,
    /// The guest's argv[0], optionally `PATH#export`. Compat images put the module at PATH.
    /// Default: /<file name>.wasm.
    #[arg(long)]
    entrypoint: Option<String>,
    /// An argument after the entrypoint (the image's cmd); repeat for more.
    #[arg(long = "arg", value_name = "ARG", allow_hyphen_values = true)]
    args: Vec<String>,
    /// An environment variable KEY=value; repeat for more.
    #[arg(long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// A manifest annotation key=value; repeat for more.
    #[arg(long = "annotation", value_name = "KEY=VALUE", value_parser = parse_annotation)]
    annotations: Vec<(String, String)>,
    /// os/arch: linux/amd64, wasi/wasm, wasip1/wasm or wasip2/wasm.
    #[arg(long, value_parser = parse_platform)]
    platform: Option<Platform>,
    /// The CNCF config's `created` (RFC 3339), artifact format only.
    #[arg(long)]
    created: Option<String>,
    /// The wasm module, component or WAT file.
    #[arg(value_name = "APP.wasm")]
    app: PathBuf,
}

fn parse_format(s: &str) -> Result<Format, String> {
    s.parse()
        .map_err(|e: wasmbox_image::ImageError| e.to_string())
}

fn parse_platform(s: &str) -> Result<Platform, String> {
    Platform::parse(s).map_err(|e| e.to_string())
}

fn parse_annotation(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("{s:?} is not key=value")),
    }
}

pub fn run(args: &BuildArgs) -> Result<()> {
    let app =
        WasmApp::from_file(&args.app).with_context(|| format!("reading {}", args.app.display()))?;
    let mut options = AppImageOptions::new(args.reference.clone(), args.format);
    options.entrypoint = args.entrypoint.clone();
    options.args = args.args.clone();
    options.env = args.env.clone();
    options.annotations = args.annotations.clone();
    options.platform = args.platform.clone();
    options.created = match (&args.created, args.format) {
        (Some(c), _) => Some(c.clone()),
        (None, Format::Artifact) => crate::epoch::from_env()?,
        (None, _) => None,
    };
    let image = build_app_image(&app, &options)?;

    if args.output == Path::new("-") {
        let stdout = std::io::stdout().lock();
        image.write_tar(std::io::BufWriter::new(stdout))?;
    } else {
        write_atomically(&args.output, |file| Ok(image.write_tar(file)?))?;
    }
    // On stderr, so `-o -` keeps stdout for the tarball.
    let platform = image
        .manifest_descriptor()
        .platform()
        .as_ref()
        .map(|p| format!("{}/{}", p.os(), p.architecture()))
        .unwrap_or_default();
    eprintln!(
        "{} ({} image, {platform}, {}): manifest {}, wasm {}",
        image.reference(),
        args.format,
        match app.kind() {
            wasmbox_image::AppKind::Module => "module",
            wasmbox_image::AppKind::Component => "component",
        },
        image.manifest_digest(),
        wasmbox_image::sha256_hex(app.bytes()),
    );
    Ok(())
}

/// Writes through a temp file in the same directory and renames it, so a failed build never
/// leaves a truncated tarball under the output name.
fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut std::fs::File) -> Result<()>,
) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let Some(name) = path.file_name() else {
        bail!("{} is not a file name", path.display());
    };
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut file =
            std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        write(&mut file)?;
        file.flush()?;
        file.sync_all()?;
        std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
