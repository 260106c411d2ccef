//! `wasmbox`: the wasmbox command-line tool.
//!
//! `wasmbox image build` turns a `.wasm` (module or component) or `.wat` file into an OCI image
//! layout tarball that `ctr image import` and `docker load` read and that `ctr image push` or
//! `oras` push to a registry. The image logic lives in `wasmbox-image`; this is argument parsing
//! and file I/O.
//!
//! `wasmbox node install` / `uninstall` put the shim on a node and its runtime handler into
//! containerd's config (the edits are `wasmbox-node`'s).

mod build;
mod epoch;
mod node;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "wasmbox",
    version,
    about = "wasmbox: OCI images for WebAssembly, and the wasmbox runtime on a containerd node"
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
    /// The wasmbox shim and runtime handler on a containerd node.
    #[command(subcommand)]
    Node(NodeCommand),
}

#[derive(Debug, Subcommand)]
enum NodeCommand {
    /// Install the shim and add the wasmbox runtime handler to containerd's config.
    Install(node::InstallArgs),
    /// Remove what install added, and the shim.
    Uninstall(node::UninstallArgs),
    /// The node labels that say which wasmbox handlers the node has (a JSON merge patch).
    Labels(node::LabelsArgs),
}

#[derive(Debug, Subcommand)]
enum ImageCommand {
    /// Build an OCI image layout tarball from a wasm module, component or WAT file.
    Build(build::BuildArgs),
}

fn main() {
    // Through ArgMatches rather than Cli::parse: the node commands pair each --config-path with
    // the --handler before it, which needs the flags' positions.
    // As other Unix tools: a closed pipe (`wasmbox node install --dry-run | head`) ends the
    // process quietly instead of making println! panic. Rust ignores SIGPIPE by default.
    // SAFETY: restoring a default signal disposition before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let node_matches = |name: &str| {
        matches
            .subcommand_matches("node")
            .and_then(|m| m.subcommand_matches(name))
    };
    let result = match cli.command {
        Command::Image(ImageCommand::Build(args)) => build::run(&args),
        Command::Node(NodeCommand::Install(args)) => node::install(&args, node_matches("install")),
        Command::Node(NodeCommand::Uninstall(args)) => {
            node::uninstall(&args, node_matches("uninstall"))
        }
        Command::Node(NodeCommand::Labels(args)) => node::labels(&args, node_matches("labels")),
    };
    if let Err(e) = result {
        eprintln!("wasmbox: {e:#}");
        std::process::exit(1);
    }
}
