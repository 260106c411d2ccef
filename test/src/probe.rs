//! Reading the output of the `fs_probe` guest: one line per operation,
//! `<op> ok <detail>` or `<op> err <ERRNO>`.

use std::collections::HashMap;

/// The probe's answers, by operation.
#[derive(Debug)]
pub struct Probe {
    answers: HashMap<String, String>,
    text: String,
}

impl Probe {
    pub fn parse(stdout: &str) -> Self {
        let mut answers = HashMap::new();
        for line in stdout.lines() {
            for sep in [" ok", " err "] {
                if let Some(i) = line.find(sep) {
                    answers.insert(line[..i].to_string(), line[i + 1..].to_string());
                    break;
                }
            }
        }
        Self {
            answers,
            text: stdout.to_string(),
        }
    }

    fn answer(&self, op: &str) -> &str {
        self.answers
            .get(op)
            .unwrap_or_else(|| panic!("the probe did not answer {op:?}:\n{}", self.text))
    }

    /// The detail of a successful `op`; fails the test if it failed.
    pub fn ok(&self, op: &str) -> String {
        let a = self.answer(op);
        match a.strip_prefix("ok") {
            Some(detail) => detail.trim_start().to_string(),
            None => panic!("{op} should succeed, got {a:?}:\n{}", self.text),
        }
    }

    /// The errno name of a failed `op`; fails the test if it succeeded.
    pub fn err(&self, op: &str) -> String {
        let a = self.answer(op);
        match a.strip_prefix("err ") {
            Some(errno) => errno.to_string(),
            None => panic!("{op} must fail, got {a:?}:\n{}", self.text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_answers() {
        let p = Probe::parse("read:/a ok hello world\nlist:/p ok\nread:/x err ENOENT\n");
        assert_eq!(p.ok("read:/a"), "hello world");
        assert_eq!(p.ok("list:/p"), "");
        assert_eq!(p.err("read:/x"), "ENOENT");
    }

    #[test]
    fn reads_the_mem_grow_line() {
        assert_eq!(mem_grow_reached("memory.grow refused at 61 MiB\n"), Some(61));
        assert_eq!(mem_grow_reached("killed"), None);
        assert_memory_budget(64, 61);
    }
}

/// MiB the `mem_grow` guest reached before memory.grow refused, from its output line.
pub fn mem_grow_reached(line: &str) -> Option<u64> {
    line.trim()
        .strip_prefix("memory.grow refused at ")?
        .strip_suffix(" MiB")?
        .parse()
        .ok()
}

/// The guest was refused below `limit_mib` (so the container lived), and got all of it but the
/// shim's reserve (2 MiB or 1/32 of the limit) and the runtime's own footprint (under 1 MiB
/// when measured; 3 MiB allowed).
pub fn assert_memory_budget(limit_mib: u64, reached_mib: u64) {
    let reserve = 2.max(limit_mib / 32);
    assert!(reached_mib < limit_mib, "limit {limit_mib} MiB: reached {reached_mib} MiB");
    assert!(
        reached_mib + reserve + 3 >= limit_mib,
        "limit {limit_mib} MiB: the guest only got {reached_mib} MiB"
    );
}
