//! The shim's own command line, as a person meets it: `--help` and `--version` answer and exit 0
//! (containerd-shim's flag parser would refuse them).

use std::process::Command;

use wasmbox_integration::settings::{shim_dir, WASMBOX_RUNTIME, WASMBOX_SHIM_BINARY};

fn shim(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(shim_dir().join(WASMBOX_SHIM_BINARY))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running the shim (build it first): {e}"));
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

#[test]
fn help_lists_the_actions_and_version_names_the_runtime() {
    for flag in ["--help", "-h", "-help"] {
        let (code, stdout, stderr) = shim(&[flag]);
        assert_eq!(code, 0, "{flag}: {stderr}");
        for action in ["start, delete", "precompile", "--version", WASMBOX_RUNTIME] {
            assert!(stdout.contains(action), "{flag} does not mention {action}:\n{stdout}");
        }
    }
    let (code, stdout, stderr) = shim(&["--version"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with(&format!("{WASMBOX_RUNTIME} ")), "{stdout}");
}
