//! Terminals (`terminal: true`): `ctr run -t` of a wasm and a native init, `ctr task exec -t`
//! of a wasm and a native program; the guest's streams are the pty (isatty), input reaches it
//! through the terminal, ResizePty reaches a native process, exit codes come through.

use std::time::Duration;

use wasmbox_integration::ctr::RunSpec;
use wasmbox_integration::image::{compat_image, native_image};
use wasmbox_integration::suite::{assert_clean, import_compat, kill_and_remove, start, START_TIMEOUT};
use wasmbox_integration::terminal::Terminal;
use wasmbox_integration::{guests, ids, require_integration, Containerd};

const STEP: Duration = Duration::from_secs(30);
/// The size of the test's terminal, which ctr passes on (ResizePty).
const COLS: u16 = 101;
const ROWS: u16 = 29;

/// Talks to `tty.c` on `term`: its streams are a terminal, a line comes back, "exit" ends it
/// with status 7.
fn converse(term: &mut Terminal, check_size: bool) {
    term.expect("isatty: 1 1 1", START_TIMEOUT).unwrap();
    term.send("hello tty\r").unwrap();
    term.expect("got: hello tty", STEP).unwrap();
    if check_size {
        // ctr sends the size right after Start; ask until it has arrived.
        let want = format!("size: {COLS}x{ROWS}");
        let mut from = 0;
        let deadline = std::time::Instant::now() + STEP;
        loop {
            term.send("size\r").unwrap();
            from = term.expect_from(from, "size: ", STEP).unwrap();
            let shown = term.output()[from - "size: ".len()..].lines().next().unwrap_or_default().to_string();
            if shown.trim_end() == want {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "the terminal's size never became {want}: {}", term.output());
        }
    }
    term.send("exit\r").unwrap();
    assert_eq!(term.wait(STEP).unwrap(), 7, "the guest's exit status; the terminal showed:\n{}", term.output());
}

/// `ctr run -t` of `image`, with `args` in place of the image's (none: its own).
fn run_t(containerd: &Containerd, image: &str, id: &str, args: &[&str]) -> Terminal {
    containerd.track(id);
    let mut spec = RunSpec::new(image, id).flag("-t");
    if !args.is_empty() {
        spec = spec.args(args.iter().copied());
    }
    Terminal::spawn(containerd.run_command(&spec), COLS, ROWS).unwrap()
}

#[test]
fn ctr_run_t_gives_a_wasm_guest_a_terminal() {
    require_integration!();
    let containerd = start();
    let image = import_compat(&containerd, "tty-wasm", &guests::tty().unwrap());
    let id = ids::container_id("tty-wasm");
    let mut term = run_t(&containerd, &image, &id, &[]);
    converse(&mut term, false);
    assert_clean(&containerd, &id);
}

#[test]
fn ctr_run_t_gives_a_wasi_0_3_command_a_terminal() {
    require_integration!();
    let containerd = start();
    let image = import_compat(&containerd, "tty-p3", &guests::p3_args().unwrap());
    let id = ids::container_id("tty-p3");
    let mut term = run_t(&containerd, &image, &id, &[]);
    // Its stdout stream reaches the terminal; its status (the argument count) comes through.
    term.expect("hello from wasi 0.3", START_TIMEOUT).unwrap();
    assert_eq!(term.wait(STEP).unwrap(), 1, "the terminal showed:\n{}", term.output());
    assert_clean(&containerd, &id);
}

/// The C 0.3 command: its stdin, stdout and stderr are the terminal (`wasi:cli/terminal-*`), and
/// a line typed into the terminal reaches it through its stdin stream.
#[test]
fn ctr_run_t_gives_a_wasi_0_3_command_terminal_streams_and_input() {
    require_integration!();
    let containerd = start();
    let image = import_compat(&containerd, "tty-p3-in", &guests::p3_command().unwrap());
    let id = ids::container_id("tty-p3-in");
    let mut term = run_t(&containerd, &image, &id, &["/app.wasm", "isatty", "read-line", "exit:7"]);
    term.expect("isatty: 1 1 1", START_TIMEOUT).unwrap();
    term.send("hello tty\r").unwrap();
    term.expect("got: hello tty", STEP).unwrap();
    assert_eq!(term.wait(STEP).unwrap(), 7, "the terminal showed:\n{}", term.output());
    assert_clean(&containerd, &id);
}

#[test]
fn ctr_run_t_gives_a_native_init_a_terminal_with_its_size() {
    require_integration!();
    let containerd = start();
    let image = containerd
        .import_image(native_image(&ids::image_ref("tty-native"), &guests::native_tty().unwrap()))
        .unwrap();
    let id = ids::container_id("tty-native");
    let mut term = run_t(&containerd, &image, &id, &[]);
    converse(&mut term, true);
    assert_clean(&containerd, &id);
}

#[test]
fn ctr_task_exec_t_of_wasm_and_native_programs() {
    require_integration!();
    let containerd = start();
    let image = compat_image(&ids::image_ref("tty-exec"), &guests::spin().unwrap())
        .file("/tty.wasm", guests::tty().unwrap().to_vec(), 0o644)
        .file("/tty", guests::native_tty().unwrap().to_vec(), 0o755);
    let image = containerd.import_image(image).unwrap();
    let id = ids::container_id("tty-exec");
    containerd.run_detached(&RunSpec::new(&image, &id)).unwrap();
    containerd.wait_task_status(&id, "RUNNING", START_TIMEOUT).unwrap();

    for (exec_id, program, size) in [("wasm", "/tty.wasm", false), ("native", "/tty", true)] {
        let mut cmd = containerd.ctr_command();
        cmd.args(["task", "exec", "-t", "--exec-id", exec_id, &id, program]);
        let mut term = Terminal::spawn(cmd, COLS, ROWS).unwrap();
        converse(&mut term, size);
    }
    // The container is unharmed by its execs.
    assert_eq!(containerd.task(&id).unwrap().map(|t| t.status), Some("RUNNING".to_string()));
    kill_and_remove(&containerd, &id);
}
