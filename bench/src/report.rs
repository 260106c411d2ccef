//! The text table printed at the end (and pasted into docs/performance.md).

use std::fmt::Write;

use crate::results::{Comparison, Results};
use crate::stats::Summary;

/// A value as it reads best: fewer decimals for larger numbers.
pub fn num(v: f64) -> String {
    if !v.is_finite() {
        "n/a".into()
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// `median [min-max] unit`.
pub fn summary(s: &Summary, unit: &str) -> String {
    let text = format!("{} [{}-{}]", num(s.median), num(s.min), num(s.max));
    if unit.is_empty() {
        text
    } else {
        format!("{text} {unit}")
    }
}

fn verdict(c: &Comparison) -> String {
    let op = if c.at_least { ">=" } else { "<=" };
    match (c.target, c.passes()) {
        (Some(t), Some(true)) => format!("{op} {t:.2}x  pass"),
        (Some(t), _) => format!("{op} {t:.2}x  FAIL"),
        (None, _) => "-".into(),
    }
}

/// The comparison table, Markdown-formatted so it can go into the docs as is.
pub fn table(results: &Results) -> String {
    let rows = results.comparisons();
    let mut out = String::new();
    let _ = writeln!(out, "| figure | wasmbox | baseline | ratio | target |");
    let _ = writeln!(out, "| --- | --- | --- | --- | --- |");
    for c in &rows {
        let baseline = match &c.baseline {
            Some(b) => format!("{}: {}", c.baseline_name, summary(b, c.unit)),
            None => "-".into(),
        };
        let ratio = c
            .ratio()
            .map(|r| format!("{}x", num(r)))
            .unwrap_or_else(|| "-".into());
        let _ = writeln!(
            out,
            "| {} (n={}) | {} | {} | {} | {} |",
            c.figure,
            c.value.n,
            summary(&c.value, c.unit),
            baseline,
            ratio,
            verdict(c)
        );
    }
    out
}

/// The step timings of a warm start, one column per probed wasm.
pub fn phases(results: &Results) -> String {
    let mut out = String::new();
    if results.phases.is_empty() {
        return out;
    }
    let header: Vec<String> = results
        .phases
        .iter()
        .map(|p| {
            format!(
                "{} ({:.1} MB wasm, {:.1} MB artifact)",
                p.subject,
                p.wasm_bytes as f64 / 1e6,
                p.artifact_bytes as f64 / 1e6
            )
        })
        .collect();
    let _ = writeln!(
        out,
        "| step (ms, median [min-max]) | {} |",
        header.join(" | ")
    );
    let _ = writeln!(out, "| --- |{}", " --- |".repeat(header.len()));
    let columns: Vec<_> = results.phases.iter().map(|p| p.steps()).collect();
    for (row, (name, _)) in columns[0].iter().enumerate() {
        let cells: Vec<String> = columns
            .iter()
            .map(|c| summary(&c[row].1.summary, ""))
            .collect();
        let _ = writeln!(out, "| {name} | {} |", cells.join(" | "));
    }
    out
}

/// Processes and threads per idle container, and the names of the threads of each process.
pub fn anatomy(results: &Results) -> String {
    let mut out = String::new();
    for subject in results.density_subjects() {
        for n in results.densities() {
            let procs = results
                .density_series(&subject, n, "", |r| r.processes_per_container)
                .summary;
            let threads = results
                .density_series(&subject, n, "", |r| r.threads_per_container)
                .summary;
            let start = results
                .density_series(&subject, n, "s", |r| r.start_all_s)
                .summary;
            let anon = results
                .density_series(&subject, n, "KiB", |r| r.anon_pss_kib_per_container)
                .summary;
            let _ = writeln!(
                out,
                "{subject}, N={n}: {} processes, {} threads, anonymous PSS {} per container; starting all {n} took {}",
                num(procs.median),
                num(threads.median),
                summary(&anon, "KiB"),
                summary(&start, "s")
            );
        }
    }
    for a in &results.anatomy {
        let _ = writeln!(out, "{}: one idle container", a.subject);
        for p in &a.processes {
            let _ = writeln!(
                out,
                "  {:<9} {:<16} PSS {:>6} KiB ({} anon, {} file)  {} threads: {}",
                p.role,
                p.comm,
                p.pss.pss_kib,
                p.pss.anon_kib,
                p.pss.file_kib,
                p.threads.len(),
                p.threads.join(", ")
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_numbers() {
        assert_eq!(num(1234.4), "1234");
        assert_eq!(num(12.34), "12.3");
        assert_eq!(num(1.234), "1.23");
        assert_eq!(num(f64::NAN), "n/a");
        let s = Summary::of(&[1.0, 2.0, 3.0]);
        assert_eq!(summary(&s, "ms"), "2.00 [1.00-3.00] ms");
    }
}
