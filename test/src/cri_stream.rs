//! The other half of CRI's `Exec`: the URL it returns is containerd's streaming server, which
//! kubectl reaches through the API server and kubelet. Like them, this client speaks the
//! Kubernetes remote-command protocol over a websocket (`v4.channel.k8s.io`): every message
//! starts with its channel (0 stdin, 1 stdout, 2 stderr, 3 the final status as JSON, 4 resize).

use std::net::TcpStream;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use tungstenite::client::IntoClientRequest;
use tungstenite::http::HeaderValue;
use tungstenite::{Message, WebSocket};

const PROTOCOL: &str = "v4.channel.k8s.io";

/// An attached exec session.
pub struct ExecStream {
    ws: WebSocket<TcpStream>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    status: Option<String>,
}

/// What a finished exec showed.
#[derive(Debug)]
pub struct ExecResult {
    pub stdout: String,
    pub stderr: String,
    /// The exit code from the final status (0 on "Success").
    pub exit_code: i32,
}

impl ExecStream {
    /// Connects to the URL `Cri::exec` returned.
    pub fn connect(url: &str, timeout: Duration) -> Result<Self> {
        let ws_url = url
            .strip_prefix("http://")
            .map(|rest| format!("ws://{rest}"))
            .ok_or_else(|| anyhow!("exec URL {url} is not plain http (TLS streaming is off in the test's config)"))?;
        let mut request = ws_url.as_str().into_client_request().context("exec URL")?;
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", HeaderValue::from_static(PROTOCOL));
        let host = request
            .uri()
            .authority()
            .map(|a| a.as_str().to_string())
            .ok_or_else(|| anyhow!("exec URL {url} has no host"))?;
        let addr = host.parse().with_context(|| format!("exec URL host {host}"))?;
        let tcp = TcpStream::connect_timeout(&addr, timeout).with_context(|| format!("connect to {host}"))?;
        tcp.set_read_timeout(Some(timeout))?;
        tcp.set_write_timeout(Some(timeout))?;
        let (ws, _) = tungstenite::client(request, tcp).map_err(|e| anyhow!("websocket handshake with {url}: {e}"))?;
        Ok(Self {
            ws,
            stdout: Vec::new(),
            stderr: Vec::new(),
            status: None,
        })
    }

    /// Sends `bytes` to the process's stdin (or terminal).
    pub fn send(&mut self, bytes: &[u8]) -> Result<()> {
        let mut frame = vec![0u8];
        frame.extend_from_slice(bytes);
        self.ws.send(Message::Binary(frame.into())).context("send stdin")
    }

    /// Reads one message; false once the server has closed the stream.
    fn read_one(&mut self) -> Result<bool> {
        let message = match self.ws.read() {
            Ok(m) => m,
            Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => return Ok(false),
            Err(e) => bail!("exec stream: {e}"),
        };
        let data = match message {
            Message::Binary(b) => b.to_vec(),
            Message::Text(t) => t.as_bytes().to_vec(),
            Message::Close(_) => return Ok(false),
            _ => return Ok(true),
        };
        let Some((&channel, payload)) = data.split_first() else {
            return Ok(true);
        };
        match channel {
            1 => self.stdout.extend_from_slice(payload),
            2 => self.stderr.extend_from_slice(payload),
            3 => self.status = Some(String::from_utf8_lossy(payload).into_owned()),
            _ => {}
        }
        Ok(true)
    }

    /// Reads until stdout contains `text`.
    pub fn expect_stdout(&mut self, text: &str, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        while !String::from_utf8_lossy(&self.stdout).contains(text) {
            if Instant::now() > deadline || !self.read_one()? {
                bail!(
                    "{text:?} never came on the exec's stdout; it showed {:?}",
                    String::from_utf8_lossy(&self.stdout)
                );
            }
        }
        Ok(())
    }

    /// Reads to the end of the stream: the process's output and exit code.
    pub fn finish(mut self, timeout: Duration) -> Result<ExecResult> {
        let deadline = Instant::now() + timeout;
        while self.read_one()? {
            if Instant::now() > deadline {
                bail!("the exec stream did not end within {timeout:?}");
            }
        }
        let status = self.status.clone().ok_or_else(|| anyhow!("the exec stream ended without a status"))?;
        Ok(ExecResult {
            stdout: String::from_utf8_lossy(&self.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&self.stderr).into_owned(),
            exit_code: exit_code(&status)?,
        })
    }
}

/// The exit code in a remote-command status: `{"status":"Success"}` or a failure whose cause
/// `ExitCode` carries the code.
pub fn exit_code(status: &str) -> Result<i32> {
    let v: serde_json::Value = serde_json::from_str(status).with_context(|| format!("exec status {status}"))?;
    if v["status"] == "Success" {
        return Ok(0);
    }
    let causes = v["details"]["causes"].as_array().cloned().unwrap_or_default();
    causes
        .iter()
        .find(|c| c["reason"] == "ExitCode")
        .and_then(|c| c["message"].as_str())
        .and_then(|m| m.parse().ok())
        .ok_or_else(|| anyhow!("exec failed: {status}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_exit_codes_from_statuses() {
        assert_eq!(exit_code(r#"{"metadata":{},"status":"Success"}"#).unwrap(), 0);
        let failed = r#"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: error executing command [/x], exit code 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#;
        assert_eq!(exit_code(failed).unwrap(), 3);
        assert!(exit_code(r#"{"status":"Failure","message":"no such container"}"#).is_err());
    }
}
