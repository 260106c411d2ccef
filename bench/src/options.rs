//! Command-line options of `wasmbox-bench` (run.sh passes them; defaults suit `make bench`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};

pub const USAGE: &str = "\
usage: wasmbox-bench [options]
  --runs N              interleaved ctr run --rm per subject (default 20)
  --first-runs N        starts of the large program with an empty compile cache (default 3)
  --phase-runs N        probe processes timing the steps of a warm wasm start (default 5)
  --concurrent N        containers started at once (default 20)
  --concurrent-rounds N rounds of N concurrent starts per runtime (default 5)
  --density N,M,...     idle containers kept running at once (default 20,100)
  --density-rounds N    rounds per density and runtime (default 3)
  --pods N,M,...        idle pods through CRI, one container each (default 20,100; an empty list skips)
  --pod-rounds N        rounds per pod count and runtime (default 2)
  --serving-rounds N    interleaved load runs per server (default 3; 0 skips serving)
  --serving-seconds N   length of one load run (default 5)
  --large FILE          the large WASI program (skipped when absent)
  --python DIR          CPython for WASI: DIR/bin/python3.X.wasm and DIR/lib/python3.X
                        (a second large program; skipped when absent)
  --wasmtime FILE       a static `wasmtime` of the embedded Wasmtime's version: the HTTP
                        figures' `wasmtime serve` baseline under runc (skipped when absent)
  --http-idle N         idle HTTP servers of each kind for the memory figure (default 20; 0 skips)
  --large-arg ARG       an argument for it (repeatable; default -V)
  --out DIR             where the JSON and PNG go (default target/bench)
  --font FILE           TTF for the chart's text (default DejaVuSans)
  --max-load X          wait until the 1-minute load average is below X (default 0.5)
  --load-wait SECS      ...for at most SECS, then run anyway (default 1200; 0: don't wait)
  --settle SECS         pause before reading memory of idle containers (default 3)";

#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub runs: usize,
    pub first_runs: usize,
    pub phase_runs: usize,
    pub concurrent: usize,
    pub concurrent_rounds: usize,
    pub densities: Vec<usize>,
    pub density_rounds: usize,
    pub pods: Vec<usize>,
    pub pod_rounds: usize,
    pub serving_rounds: usize,
    pub serving_seconds: u64,
    pub large: Option<PathBuf>,
    pub python: Option<PathBuf>,
    pub wasmtime: Option<PathBuf>,
    pub http_idle: usize,
    pub large_args: Vec<String>,
    pub out_dir: PathBuf,
    pub font: PathBuf,
    pub max_load: f64,
    pub load_wait: Duration,
    pub settle: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            runs: 20,
            first_runs: 3,
            phase_runs: 5,
            concurrent: 20,
            concurrent_rounds: 5,
            densities: vec![20, 100],
            density_rounds: 3,
            pods: vec![20, 100],
            pod_rounds: 2,
            serving_rounds: 3,
            serving_seconds: 5,
            large: None,
            python: None,
            wasmtime: None,
            http_idle: 20,
            large_args: Vec::new(),
            out_dir: PathBuf::from("target/bench"),
            font: PathBuf::from("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"),
            max_load: 0.5,
            load_wait: Duration::from_secs(1200),
            settle: Duration::from_secs(3),
        }
    }
}

impl Options {
    /// Parses the arguments after the program name; `Ok(None)` means `--help` was asked for.
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Option<Self>> {
        let mut o = Options::default();
        let mut args = args.into_iter();
        while let Some(flag) = args.next() {
            if flag == "-h" || flag == "--help" {
                return Ok(None);
            }
            let mut value = || args.next().with_context(|| format!("{flag} needs a value"));
            match flag.as_str() {
                "--runs" => o.runs = count(&flag, &value()?)?,
                "--first-runs" => o.first_runs = count(&flag, &value()?)?,
                "--phase-runs" => o.phase_runs = count(&flag, &value()?)?,
                "--concurrent" => o.concurrent = count(&flag, &value()?)?,
                "--concurrent-rounds" => o.concurrent_rounds = count(&flag, &value()?)?,
                "--density" => o.densities = counts(&flag, &value()?)?,
                "--density-rounds" => o.density_rounds = count(&flag, &value()?)?,
                "--pods" => o.pods = counts(&flag, &value()?)?,
                "--pod-rounds" => o.pod_rounds = count(&flag, &value()?)?,
                "--serving-rounds" => o.serving_rounds = count(&flag, &value()?)?,
                "--serving-seconds" => o.serving_seconds = count(&flag, &value()?)? as u64,
                "--large" => o.large = Some(PathBuf::from(value()?)),
                "--python" => o.python = Some(PathBuf::from(value()?)),
                "--wasmtime" => o.wasmtime = Some(PathBuf::from(value()?)),
                "--http-idle" => o.http_idle = count(&flag, &value()?)?,
                "--large-arg" => o.large_args.push(value()?),
                "--out" => o.out_dir = PathBuf::from(value()?),
                "--font" => o.font = PathBuf::from(value()?),
                "--max-load" => {
                    let v = value()?;
                    o.max_load = v.parse().with_context(|| format!("{flag} {v}"))?
                }
                "--load-wait" => o.load_wait = Duration::from_secs(count(&flag, &value()?)? as u64),
                "--settle" => o.settle = Duration::from_secs(count(&flag, &value()?)? as u64),
                other => bail!("unknown option {other}\n{USAGE}"),
            }
        }
        if o.large_args.is_empty() {
            o.large_args.push("-V".to_string());
        }
        Ok(Some(o))
    }
}

/// A comma-separated list of counts; empty gives none.
fn counts(flag: &str, v: &str) -> Result<Vec<usize>> {
    v.split(',').filter(|s| !s.is_empty()).map(|s| count(flag, s)).collect()
}

fn count(flag: &str, v: &str) -> Result<usize> {
    v.parse()
        .with_context(|| format!("{flag} wants a whole number, not {v:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Option<Options>> {
        Options::parse(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn defaults() {
        let o = parse(&[]).unwrap().unwrap();
        assert_eq!(o.runs, 20);
        assert_eq!(o.densities, vec![20, 100]);
        assert_eq!(o.pods, vec![20, 100]);
        assert_eq!(o.large_args, vec!["-V"]);
        assert!(o.large.is_none());
    }

    #[test]
    fn values() {
        let o = parse(&[
            "--runs",
            "5",
            "--density",
            "2,3",
            "--large",
            "/x.wasm",
            "--large-arg",
            "-h",
            "--load-wait",
            "0",
            "--pods",
            "",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(o.runs, 5);
        assert_eq!(o.densities, vec![2, 3]);
        assert_eq!(o.large, Some(PathBuf::from("/x.wasm")));
        assert_eq!(o.large_args, vec!["-h"]);
        assert_eq!(o.load_wait, Duration::ZERO);
        assert!(o.pods.is_empty());
    }

    #[test]
    fn errors_and_help() {
        assert!(parse(&["--runs"]).is_err());
        assert!(parse(&["--runs", "x"]).is_err());
        assert!(parse(&["--bogus"]).is_err());
        assert!(parse(&["--help"]).unwrap().is_none());
    }
}
