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
}
