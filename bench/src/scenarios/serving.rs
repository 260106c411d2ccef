//! Serving: the preview 1 HTTP server (`test/guests/server.c`) on its preopened listener under
//! wasmbox against the same C source built natively under runc; the wasi:http hello component
//! under wasmbox against the same component under `wasmtime serve` (run natively under runc)
//! and the native C server. The servers of a figure run at once in one network namespace of
//! the bench's own and are loaded in turn by `wrk` (Debian's, unpacked privately by run.sh)
//! over loopback with keep-alive connections.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::Serialize;
use wasmbox_integration::netns::NetNs;
use wasmbox_integration::poll::wait_until;
use wasmbox_integration::process::run_captured;
use wasmbox_integration::{ids, Containerd};

use crate::interrupt;
use crate::subjects::Subject;

/// Until a started server accepts connections.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// One load run against one server.
#[derive(Debug, Clone, Serialize)]
pub struct ServingRun {
    pub subject: String,
    pub round: usize,
    pub requests_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Serving {
    pub clients: usize,
    pub seconds_per_run: u64,
    pub runs: Vec<ServingRun>,
}

/// Where `wrk` is: `WASMBOX_WRK`, else where run.sh unpacks Debian's package.
pub fn wrk_path() -> PathBuf {
    std::env::var_os("WASMBOX_WRK")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("WASMBOX_CI_CACHE")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/var/cache/wasmbox-ci"))
                .join("wrk-bookworm/usr/bin/wrk")
        })
}

/// How a server gets its port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    /// A preview 1 module: the runtime binds it (`wasmbox.dev/listen`).
    Preopened,
    /// A `wasi:http/proxy` component: the runtime serves it there (`wasmbox.dev/http`).
    Http,
    /// A native program: binds the port given as its last argument.
    Argument,
    /// A native program whose arguments say where to listen: `{port}` in them is the port.
    InArgs,
}

/// Runs the servers, then `rounds` interleaved load runs of `seconds` each against each; runs are
/// labelled `<prefix>/<subject label>`.
pub fn measure(
    containerd: &Containerd,
    prefix: &str,
    subjects: &[(&Subject, Port)],
    clients: usize,
    rounds: usize,
    seconds: u64,
) -> Result<Serving> {
    let wrk = wrk_path();
    if !wrk.is_file() {
        bail!("{} not found (bench/run.sh fetches it)", wrk.display());
    }
    let ns = NetNs::create("bench-serve")?;
    let mut started = Vec::new();
    let result = (|| {
        let mut servers = Vec::new();
        for (i, (subject, how)) in subjects.iter().enumerate() {
            let port = 8080 + i;
            let id = ids::container_id(&format!("serve-{}", subject.label));
            let mut spec = match how {
                // The subject's arguments with the port in them.
                Port::InArgs => {
                    let mut s = (*subject).clone();
                    s.args = s.args.iter().map(|a| a.replace("{port}", &port.to_string())).collect();
                    s.spec(&id)
                }
                _ => subject.spec(&id),
            }
            .flag(&ns.ctr_flag());
            spec = match how {
                Port::Preopened => spec.flag(&format!("--annotation=wasmbox.dev/listen=tcp:127.0.0.1:{port}")),
                Port::Http => spec.flag(&format!("--annotation=wasmbox.dev/http=127.0.0.1:{port}")),
                // After the subject's own args (the program): the port.
                Port::Argument => spec.args([port.to_string()]),
                Port::InArgs => spec,
            };
            containerd
                .run_detached(&spec)
                .with_context(|| format!("starting {}", subject.label))?;
            started.push(id);
            let addr = format!("127.0.0.1:{port}");
            wait_until(&format!("{} to accept on {addr}", subject.label), READY_TIMEOUT, || {
                ns.connect_tcp(&addr).ok()
            })?;
            servers.push((format!("{prefix}/{}", subject.label), port));
        }
        // A short warm-up of each (page faults, connection setup), not counted.
        for (_, port) in &servers {
            load(&wrk, &ns, *port, clients, 1)?;
        }
        let mut runs = Vec::new();
        for round in 0..rounds {
            for (label, port) in &servers {
                interrupt::check()?;
                let (rps, p50, p99) = load(&wrk, &ns, *port, clients, seconds)?;
                eprintln!("    {label} round {}: {rps:.0} requests/s, p50 {p50:.3} ms, p99 {p99:.3} ms", round + 1);
                runs.push(ServingRun {
                    subject: label.clone(),
                    round,
                    requests_per_s: rps,
                    p50_ms: p50,
                    p99_ms: p99,
                });
            }
        }
        Ok(Serving {
            clients,
            seconds_per_run: seconds,
            runs,
        })
    })();
    for id in &started {
        let _ = containerd.kill_task(id, "SIGKILL");
        let _ = containerd.wait_task_status(id, "STOPPED", Duration::from_secs(30));
        let _ = containerd.delete_container(id);
    }
    result
}

/// One `wrk` run in the namespace: (requests/s, p50 ms, p99 ms).
fn load(wrk: &Path, ns: &NetNs, port: usize, clients: usize, seconds: u64) -> Result<(f64, f64, f64)> {
    // Two load threads, one per core, as the server side has the machine's other processes.
    let libs = wrk
        .parent()
        .and_then(Path::parent)
        .map(|usr| usr.join("lib/x86_64-linux-gnu"))
        .unwrap_or_default();
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns.name()])
        .arg(wrk)
        .args(["-t2", &format!("-c{clients}"), &format!("-d{seconds}s"), "--latency"])
        .arg(format!("http://127.0.0.1:{port}/bench"))
        .env("LD_LIBRARY_PATH", libs);
    let out = run_captured(&mut cmd, None, Duration::from_secs(seconds + 60))?;
    let text = out.stdout_text();
    if !out.status.success() {
        bail!("wrk failed ({}): {text}{}", out.status, out.stderr_text());
    }
    parse_wrk(&text).with_context(|| format!("wrk's output:\n{text}"))
}

/// Reads requests/s and the 50% and 99% latencies from `wrk --latency`'s report; errors when
/// wrk counted socket errors or non-2xx answers (a broken server is not fast).
pub fn parse_wrk(text: &str) -> Result<(f64, f64, f64)> {
    if let Some(line) = text.lines().find(|l| l.contains("Socket errors") || l.contains("Non-2xx")) {
        bail!("wrk saw errors: {}", line.trim());
    }
    let rps = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .context("no Requests/sec line")?
        .trim()
        .parse::<f64>()?;
    let pct = |p: &str| -> Result<f64> {
        let value = text
            .lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(p).map(str::trim))
            .with_context(|| format!("no {p} latency line"))?;
        duration_ms(value)
    };
    Ok((rps, pct("50%")?, pct("99%")?))
}

/// wrk's durations: `812.00us`, `1.23ms`, `2.00s`, `1.00m`.
fn duration_ms(v: &str) -> Result<f64> {
    let split = v.find(|c: char| c.is_ascii_alphabetic()).context("no unit")?;
    let (n, unit) = v.split_at(split);
    let n: f64 = n.parse().with_context(|| format!("{v:?}"))?;
    Ok(match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        "m" => n * 60_000.0,
        _ => bail!("unit {unit:?} in {v:?}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = "Running 5s test @ http://127.0.0.1:8080/bench
  2 threads and 20 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   412.51us  120.11us   6.12ms   90.12%
    Req/Sec    24.01k     1.20k   26.10k    70.00%
  Latency Distribution
     50%  398.00us
     75%  450.00us
     90%  512.00us
     99%    1.02ms
  238900 requests in 5.00s, 25.06MB read
Requests/sec:  47780.12
Transfer/sec:      5.01MB
";

    #[test]
    fn reads_wrks_report() {
        let (rps, p50, p99) = parse_wrk(REPORT).unwrap();
        assert_eq!(rps, 47780.12);
        assert!((p50 - 0.398).abs() < 1e-9 && (p99 - 1.02).abs() < 1e-9, "{p50} {p99}");
        let broken = REPORT.replace("Requests/sec", "  Non-2xx or 3xx responses: 3\nRequests/sec");
        assert!(parse_wrk(&broken).is_err());
        assert_eq!(duration_ms("2.00s").unwrap(), 2000.0);
    }
}
