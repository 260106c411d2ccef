//! `wasmbox`: the wasmbox command-line tool.
//!
//! `wasmbox image build` turns a `.wasm` (module or component) or `.wat` file into an OCI image
//! layout tarball that `ctr image import` and `docker load` read and that `ctr image push` or
//! `oras` push to a registry. The image logic lives in `wasmbox-image`; this is argument parsing
//! and file I/O.

mod build;
mod epoch;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "wasmbox",
    version,
    about = "wasmbox: OCI images for WebAssembly"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// OCI images of wasm applications.
    #[command(subcommand)]
    Image(ImageCommand),
}

#[derive(Debug, Subcommand)]
enum ImageCommand {
    /// Build an OCI image layout tarball from a wasm module, component or WAT file.
    Build(build::BuildArgs),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Image(ImageCommand::Build(args)) => build::run(&args),
    };
    if let Err(e) = result {
        eprintln!("wasmbox: {e:#}");
        std::process::exit(1);
    }
}
