//! `make demo`: start a private containerd with the freshly built shim, import a hello-world Wasm
//! image and run it with `ctr run --rm --runtime io.containerd.wasmbox.v1`, showing each step.
//! With `--keep` (`make try`), the private containerd stays up until Ctrl-C, with the commands
//! to try the README's examples against it.

use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use wasmbox_integration::process::{display_command, run_captured};
use wasmbox_integration::settings::{self, WASMBOX_SHIM_BINARY};
use wasmbox_integration::{guests, image, leftovers, Containerd, RunSpec};

const IMAGE: &str = "docker.io/library/wasmbox-demo:latest";

fn main() -> ExitCode {
    let keep = match std::env::args().nth(1).as_deref() {
        None => false,
        Some("--keep") => true,
        Some(other) => {
            eprintln!("usage: wasmbox-demo [--keep]  (unknown argument {other:?})");
            return ExitCode::from(2);
        }
    };
    match demo(keep) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wasmbox-demo: FAILED: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn demo(keep: bool) -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("the demo runs containerd and needs root");
    }
    let shim = settings::shim_dir().join(WASMBOX_SHIM_BINARY);
    if !shim.is_file() {
        bail!("{} not found: build it first (cargo build --release -p wasmbox-shim) or set WASMBOX_SHIM_DIR", shim.display());
    }

    step("starting a private containerd");
    let containerd = Containerd::start()?;
    println!(
        "    containerd: {}",
        settings::containerd_dir().join("containerd").display()
    );
    println!("    shim:       {}", shim.display());
    println!("    address:    {}", containerd.address().display());
    println!("    log:        {}", containerd.paths().log.display());

    step("building test/guests/hello.wat into a compat image");
    let module = guests::hello()?;
    let built = image::compat_image(IMAGE, &module).build()?;
    let tar = containerd.paths().work.join("wasmbox-demo.tar");
    built.write_tar_file(&tar)?;
    println!(
        "    {IMAGE} ({}), {} bytes of wasm at {}",
        built.manifest_digest(),
        module.len(),
        image::WASM_PATH
    );

    step("importing it");
    let mut import = containerd.ctr_command();
    import.args(["image", "import"]).arg(&tar);
    show_and_check(&mut import)?;

    step("running it");
    let container = format!("wasmbox-demo-{}", std::process::id());
    let spec = RunSpec::new(IMAGE, &container);
    let mut run = containerd.run_command(&spec);
    println!("$ {}", display_command(&run));
    containerd.track(&container);
    let out = run_captured(&mut run, None, spec.timeout)?;
    print!("{}", out.stdout_text());
    eprint!("{}", out.stderr_text());
    if out.code() != 0 {
        bail!(
            "ctr run exited with {}; containerd log:\n{}",
            out.code(),
            containerd.log_tail(30)
        );
    }
    if !out.stdout_text().contains("hello from wasm") {
        bail!("the guest did not print its greeting");
    }
    leftovers::assert_none(&containerd, &container).context("after ctr run --rm")?;
    println!("    no mounts, cgroups, shim processes or sockets left for {container}");

    if keep {
        keep_until_interrupted(&containerd)?;
    }
    step("cleaning up");
    drop(containerd);
    println!("    stopped containerd and removed its temp dir");
    println!("demo OK");
    Ok(())
}

/// Leaves the private containerd to the user until SIGINT or SIGTERM; the caller cleans up.
fn keep_until_interrupted(containerd: &Containerd) -> Result<()> {
    use nix::sys::signal::{SigSet, Signal};
    // Blocked first, so the signal is waited for here rather than ending the process.
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGINT);
    signals.add(Signal::SIGTERM);
    signals.thread_block().context("block SIGINT and SIGTERM")?;
    let ctr = format!(
        "{} --address {} --namespace {}",
        settings::containerd_dir().join("ctr").display(),
        containerd.address().display(),
        containerd.namespace()
    );
    step("containerd stays up: try it (Ctrl-C here stops it and cleans up)");
    println!("    CTR=\"{ctr}\"");
    println!("    $CTR image ls");
    println!("    $CTR run --rm --runtime io.containerd.wasmbox.v1 {IMAGE} try1");
    println!("    $CTR run -d --runtime io.containerd.wasmbox.v1 {IMAGE} try2 && $CTR task ls");
    println!("    (import your own: $CTR image import --platform linux/amd64 app.tar)");
    let _ = signals.wait().context("wait for Ctrl-C")?;
    // What the user left is cleaned up like the demo's own container.
    for id in containerd.container_ids().unwrap_or_default() {
        containerd.track(&id);
    }
    Ok(())
}

fn step(what: &str) {
    println!("==> {what}");
}

fn show_and_check(cmd: &mut std::process::Command) -> Result<()> {
    println!("$ {}", display_command(cmd));
    let out = run_captured(cmd, None, wasmbox_integration::ctr::CTR_TIMEOUT)?;
    print!("{}", out.stdout_text());
    eprint!("{}", out.stderr_text());
    if !out.status.success() {
        bail!("command failed with {}", out.status);
    }
    Ok(())
}
