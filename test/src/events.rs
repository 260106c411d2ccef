//! `ctr events` as a stream the test can wait on.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::containerd::Containerd;

/// One event line: `<timestamp> <namespace> <topic> <json>`.
#[derive(Debug, Clone)]
pub struct Event {
    pub topic: String,
    pub payload: serde_json::Value,
    pub line: String,
}

impl Event {
    fn parse(line: &str) -> Option<Self> {
        // The timestamp has spaces in it; the topic is the first token that starts with '/'.
        let start = line.find(" /")? + 1;
        let rest = &line[start..];
        let (topic, json) = rest.split_once(' ').unwrap_or((rest, ""));
        let payload = serde_json::from_str(json.trim()).unwrap_or(serde_json::Value::Null);
        Some(Self {
            topic: topic.to_string(),
            payload,
            line: line.to_string(),
        })
    }

    /// The `container_id` (task events) or `id` field of the payload.
    pub fn container_id(&self) -> Option<&str> {
        self.payload
            .get("container_id")
            .or_else(|| self.payload.get("id"))?
            .as_str()
    }

    /// `exit_status` of a `/tasks/exit` event; containerd omits it when it is 0.
    pub fn exit_status(&self) -> Option<u32> {
        if self.topic != "/tasks/exit" {
            return None;
        }
        Some(
            self.payload
                .get("exit_status")
                .and_then(|v| v.as_u64())
                .unwrap_or(0) as u32,
        )
    }
}

/// A running `ctr events`, subscribed before [`EventStream::start`] returns.
pub struct EventStream {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<Event>,
}

impl EventStream {
    /// Starts `ctr events` and makes sure it is subscribed: it creates and removes a scratch
    /// namespace and waits until that event shows up, so no later event can be missed.
    pub fn start(containerd: &Containerd, timeout: Duration) -> Result<Self> {
        let mut cmd = containerd.ctr_command();
        cmd.arg("events")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = cmd.spawn().context("starting ctr events")?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut stream = Self {
            child,
            lines,
            seen: Vec::new(),
        };

        let marker = format!("wbx-sync-{}-{}", std::process::id(), crate::ids::next());
        let deadline = Instant::now() + timeout;
        let mut synced = false;
        while !synced {
            // Repeat the marker: events published before the subscription are not replayed.
            containerd.ctr_ok(["namespaces", "create", marker.as_str()])?;
            containerd.ctr_ok(["namespaces", "remove", marker.as_str()])?;
            let slice =
                Duration::from_millis(500).min(deadline.saturating_duration_since(Instant::now()));
            synced = stream
                .next_matching(slice, |e| e.line.contains(&marker))
                .is_ok();
            if !synced && Instant::now() >= deadline {
                bail!("ctr events did not report the sync namespace within {timeout:?}");
            }
        }
        Ok(stream)
    }

    /// Waits for the next event (after those already consumed) for which `matches` holds.
    pub fn next_matching(
        &mut self,
        timeout: Duration,
        mut matches: impl FnMut(&Event) -> bool,
    ) -> Result<Event> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let Some(event) = Event::parse(&line) else {
                        continue;
                    };
                    self.seen.push(event.clone());
                    if matches(&event) {
                        return Ok(event);
                    }
                }
                Err(RecvTimeoutError::Timeout) => bail!(
                    "no matching event within {timeout:?}; seen: {:#?}",
                    self.seen.iter().map(|e| &e.line).collect::<Vec<_>>()
                ),
                Err(RecvTimeoutError::Disconnected) => bail!("ctr events ended"),
            }
        }
    }

    /// Waits for `/tasks/exit` of container `id`.
    pub fn wait_exit(&mut self, id: &str, timeout: Duration) -> Result<Event> {
        self.next_matching(timeout, |e| {
            e.topic == "/tasks/exit" && e.container_id() == Some(id)
        })
    }

    /// Every event seen so far.
    pub fn seen(&self) -> &[Event] {
        &self.seen
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_task_exit_line() {
        let line = r#"2024-05-01 10:00:00.123 +0000 UTC default /tasks/exit {"container_id":"c1","id":"c1","pid":42,"exit_status":143,"exited_at":"2024-05-01T10:00:00Z"}"#;
        let e = Event::parse(line).unwrap();
        assert_eq!(e.topic, "/tasks/exit");
        assert_eq!(e.container_id(), Some("c1"));
        assert_eq!(e.exit_status(), Some(143));
    }

    #[test]
    fn zero_exit_status_is_omitted_by_containerd() {
        let e = Event::parse(r#"t default /tasks/exit {"container_id":"c"}"#).unwrap();
        assert_eq!(e.exit_status(), Some(0));
    }
}
