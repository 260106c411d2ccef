//! `ctr task exec` into running containers: native programs (into wasm and native
//! containers) and wasm modules, with args, env, stdin, exit codes and kill; and many execs
//! leave nothing behind in the shim.

use std::process::Stdio;
use std::time::Duration;

use wasmbox_integration::ctr::RunSpec;
use wasmbox_integration::image::{compat_image, native_image_at};
use wasmbox_integration::poll::wait_until;
use wasmbox_integration::process::{run_captured, thread_names};
use wasmbox_integration::suite::{kill_and_remove, start, START_TIMEOUT};
use wasmbox_integration::{guests, ids, require_integration, Containerd};

const EXEC_TIMEOUT: Duration = Duration::from_secs(60);

/// A running wasm container (the spinning guest at /app.wasm) whose image also holds a native
/// program and wasm tools to exec.
fn start_wasm_container(containerd: &Containerd, name: &str) -> String {
    let image = compat_image(&ids::image_ref(name), &guests::spin().unwrap())
        .file("/hello", guests::native_hello().unwrap().to_vec(), 0o755)
        .file("/exit.wasm", guests::exit_code().unwrap().to_vec(), 0o644)
        .file("/echo.wasm", guests::echo_stdin().unwrap().to_vec(), 0o644)
        .file("/args.wasm", guests::args_env().unwrap().to_vec(), 0o644)
        .file("/p3.wasm", guests::p3_args().unwrap().to_vec(), 0o644)
        .file("/spin.wasm", guests::spin().unwrap().to_vec(), 0o644);
    let image = containerd.import_image(image).unwrap();
    let id = ids::container_id(name);
    containerd.run_detached(&RunSpec::new(&image, &id)).unwrap();
    containerd.wait_task_status(&id, "RUNNING", START_TIMEOUT).unwrap();
    id
}

/// `ctr task exec --exec-id EXEC ID ARGS...` with `stdin`; (stdout, stderr, exit code).
fn exec(containerd: &Containerd, id: &str, exec_id: &str, extra: &[&str], args: &[&str], stdin: &[u8]) -> (String, String, i32) {
    let mut cmd = containerd.ctr_command();
    cmd.args(["task", "exec", "--exec-id", exec_id]).args(extra).arg(id).args(args);
    let out = run_captured(&mut cmd, Some(stdin), EXEC_TIMEOUT).unwrap();
    (out.stdout_text(), out.stderr_text(), out.code())
}


#[test]
fn exec_runs_native_and_wasm_programs_in_a_wasm_container() {
    require_integration!();
    let containerd = start();
    let id = start_wasm_container(&containerd, "exec-wasm");

    let (out, err, code) = exec(&containerd, &id, "native", &[], &["/hello"], b"");
    assert_eq!((out.as_str(), code), ("hello from native\n", 0), "{err}");

    let (_, err, code) = exec(&containerd, &id, "exit", &[], &["/exit.wasm", "3"], b"");
    assert_eq!(code, 3, "the exec's exit code: {err}");

    let (out, err, code) = exec(&containerd, &id, "stdin", &[], &["/echo.wasm"], b"through stdin\n");
    assert_eq!((out.as_str(), code), ("through stdin\n", 0), "{err}");

    let (out, err, code) = exec(&containerd, &id, "args", &[], &["/args.wasm", "one", "two words"], b"");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("arg[1]=one") && out.contains("arg[2]=two words"), "{out}");

    // A WASI 0.3 command runs as an exec too (its status is its argument count).
    let (out, err, code) = exec(&containerd, &id, "p3", &[], &["/p3.wasm", "x"], b"");
    assert_eq!((out.as_str(), code), ("hello from wasi 0.3\n/p3.wasm\nx\n", 2), "{err}");

    // Nothing runnable: said clearly, and the container is unharmed.
    let (_, err, code) = exec(&containerd, &id, "sh", &[], &["sh", "-c", "true"], b"");
    assert_ne!(code, 0);
    assert!(err.contains("no sh in this image; exec a binary or a wasm module that is in it"), "{err}");

    // An exec is killed on its own; the container keeps running.
    let mut cmd = containerd.ctr_command();
    cmd.args(["task", "exec", "--exec-id", "spin", id.as_str(), "/spin.wasm"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut spinning = cmd.spawn().unwrap();
    wait_until("the exec to run", EXEC_TIMEOUT, || {
        let ps = containerd.ctr_ok(["task", "ps", id.as_str()]).ok()?;
        (ps.lines().skip(1).count() >= 2).then_some(())
    })
    .unwrap();
    containerd
        .ctr_ok(["task", "kill", "--exec-id", "spin", "--signal", "SIGKILL", id.as_str()])
        .unwrap();
    let status = wait_until("ctr task exec to end", EXEC_TIMEOUT, || spinning.try_wait().ok().flatten()).unwrap();
    assert_eq!(status.code(), Some(137), "{status:?}");
    assert_eq!(containerd.task(&id).unwrap().unwrap().status, "RUNNING");
    kill_and_remove(&containerd, &id);
}

#[test]
fn exec_runs_a_native_program_in_a_native_container() {
    require_integration!();
    let containerd = start();
    let image = native_image_at(&ids::image_ref("exec-native"), "/wait", &guests::native_wait().unwrap())
        .file("/hello", guests::native_hello().unwrap().to_vec(), 0o755);
    let image = containerd.import_image(image).unwrap();
    let id = ids::container_id("exec-native");
    containerd.run_detached(&RunSpec::new(&image, &id)).unwrap();
    containerd.wait_task_status(&id, "RUNNING", START_TIMEOUT).unwrap();
    let (out, err, code) = exec(&containerd, &id, "hello", &[], &["/hello"], b"");
    assert_eq!((out.as_str(), code), ("hello from native\n", 0), "{err}");
    kill_and_remove(&containerd, &id);
}

/// What a process's descriptors point at.
fn fds(pid: i32) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.flatten()
                .map(|e| std::fs::read_link(e.path()).map(|l| l.display().to_string()).unwrap_or_default())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn threads(pid: i32) -> usize {
    thread_names(pid).len()
}

fn rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// `n` execs of a wasm module at once, each exiting 5.
fn parallel_execs(containerd: &Containerd, id: &str, prefix: &str, n: usize) {
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let mut cmd = containerd.ctr_command();
            cmd.args(["task", "exec", "--exec-id", &format!("{prefix}{i}"), id, "/exit.wasm", "5"]);
            std::thread::spawn(move || {
                let mut cmd = cmd;
                run_captured(&mut cmd, Some(&b""[..]), EXEC_TIMEOUT).map(|o| o.code())
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap().unwrap(), 5);
    }
}

#[test]
fn five_hundred_execs_and_twenty_at_once_leak_nothing() {
    require_integration!();
    let containerd = start();
    let id = start_wasm_container(&containerd, "exec-many");
    let shim = containerd.shim_of(&id).expect("the container's shim");
    // Warm up: the first execs compile the module and fill the shim's lazily made caches
    // (threads, descriptors); what counts is that nothing grows after that. The parallel
    // execs grow the shim's call pool to twenty threads, which then stay busy; the sequential
    // ones after them run every call on each of those threads (their stacks and the
    // allocator's free lists reach their size, measured converging within ~100 execs).
    for i in 0..10 {
        let program: &[&str] = if i % 2 == 0 { &["/hello"] } else { &["/exit.wasm", "7"] };
        let (_, err, code) = exec(&containerd, &id, &format!("warm{i}"), &[], program, b"");
        assert_eq!(code, if i % 2 == 0 { 0 } else { 7 }, "{err}");
    }
    parallel_execs(&containerd, &id, "warmpar", 20);
    for i in 10..110 {
        let program: &[&str] = if i % 2 == 0 { &["/hello"] } else { &["/exit.wasm", "7"] };
        let (_, err, code) = exec(&containerd, &id, &format!("warm{i}"), &[], program, b"");
        assert_eq!(code, if i % 2 == 0 { 0 } else { 7 }, "{err}");
    }
    // `ctr task ps` below makes libcontainer cache a private procfs handle in the shim.
    containerd.ctr_ok(["task", "ps", id.as_str()]).unwrap();
    let (fds_before, threads_before) = (fds(shim), threads(shim));
    let rss = rss_kib(shim);

    for i in 0..500 {
        let program: &[&str] = if i % 2 == 0 { &["/hello"] } else { &["/exit.wasm", "7"] };
        let (_, err, code) = exec(&containerd, &id, &format!("seq{i}"), &[], program, b"");
        assert_eq!(code, if i % 2 == 0 { 0 } else { 7 }, "exec {i}: {err}");
    }
    parallel_execs(&containerd, &id, "par", 20);

    // The container is alone again: one process, no exec left in the shim.
    let ps = containerd.ctr_ok(["task", "ps", id.as_str()]).unwrap();
    assert_eq!(ps.lines().skip(1).count(), 1, "{ps}");
    let mut fds_after = Vec::new();
    let settled = wait_until("the shim's descriptors to settle", Duration::from_secs(10), || {
        fds_after = fds(shim);
        (fds_after.len() <= fds_before.len()).then_some(())
    });
    assert!(settled.is_ok(), "shim fds {fds_before:?} -> {fds_after:?}");
    // Calls run on a pool whose idle threads end after a second: wait for the burst's to go.
    let mut threads_after = 0;
    let settled = wait_until("the shim's threads to settle", Duration::from_secs(10), || {
        threads_after = threads(shim);
        (threads_after <= threads_before).then_some(())
    });
    assert!(settled.is_ok(), "shim threads {threads_before} -> {threads_after}");
    // Memory may move by allocator noise, not by what 520 execs would leak.
    let rss_after = rss_kib(shim);
    assert!(rss_after <= rss + 2048, "shim RSS {rss} KiB -> {rss_after} KiB");
    // No exec process (or zombie) is left among the shim's children: only the init (and the
    // zygote, which a shim that may serve more containers keeps).
    let children = wasmbox_integration::process::children_of(shim);
    let others: Vec<_> = children.iter().filter(|(_, comm)| comm != "wasmbox-zygote").collect();
    assert_eq!(others.len(), 1, "only the init (and the zygote) are the shim's children: {children:?}");
    kill_and_remove(&containerd, &id);
}

/// Output written just before an exit reaches the client before the exit does: round after
/// round of twenty execs at once, wasm and native, each printing a line of its own and exiting
/// at once, every line checked. The clients run at the lowest priority next to two busy
/// threads, so they open their ends of the FIFOs late (the window: a process that exits before
/// its reader opened the FIFO closed the pipe's last descriptor, and its bytes were freed).
#[test]
fn every_line_of_many_concurrent_execs_arrives() {
    require_integration!();
    let containerd = start();
    let id = start_wasm_container(&containerd, "exec-lines");
    /// Stops the busy threads on every way out, a failed assertion included (the scope
    /// joins them before it unwinds).
    struct Stop<'a>(&'a std::sync::atomic::AtomicBool);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            self.0.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let _stop = Stop(&stop);
        for _ in 0..2 {
            s.spawn(|| {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
            });
        }
        for round in 0..15 {
            let runs: Vec<_> = (0..20)
                .map(|i| {
                    let exec_id = format!("line{round}x{i}");
                    let (program, expected): (Vec<String>, String) = if i % 4 == 3 {
                        (vec!["/hello".into()], "hello from native".into())
                    } else {
                        (vec!["/args.wasm".into(), exec_id.clone()], format!("arg[1]={exec_id}"))
                    };
                    let mut cmd = std::process::Command::new("nice");
                    let ctr = containerd.ctr_command();
                    cmd.arg("-n19").arg(ctr.get_program()).args(ctr.get_args());
                    cmd.args(["task", "exec", "--exec-id", &exec_id, &id]).args(&program);
                    s.spawn(move || {
                        let out = run_captured(&mut cmd, Some(&b""[..]), EXEC_TIMEOUT).unwrap();
                        (exec_id, expected, out.stdout_text(), out.code())
                    })
                })
                .collect();
            for run in runs {
                let (exec_id, expected, stdout, code) = run.join().unwrap();
                assert_eq!(code, 0, "round {round}: {exec_id}");
                assert!(
                    stdout.lines().any(|l| l == expected),
                    "round {round}: exec {exec_id} exited 0 but its output is {stdout:?} (expected {expected:?})"
                );
            }
        }
    });
    kill_and_remove(&containerd, &id);
}
