//! A minimal HTTP/1.1 client for the serving tests: one request at a time on a keep-alive
//! connection, every answer read to its `Content-Length`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use anyhow::{bail, Context, Result};

/// How long one answer may take before the test says so (instead of hanging).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// A stream a client talks over (TCP or unix).
pub trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

/// A keep-alive connection.
pub struct Client {
    reader: BufReader<Box<dyn Stream>>,
}

/// An answer: status code and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: String,
    /// Whether the server said it closes the connection.
    pub close: bool,
}

impl Client {
    pub fn new(stream: TcpStream) -> Result<Self> {
        stream.set_read_timeout(Some(ANSWER_TIMEOUT))?;
        stream.set_nodelay(true)?;
        Ok(Self {
            reader: BufReader::new(Box::new(stream)),
        })
    }

    pub fn unix(stream: UnixStream) -> Result<Self> {
        stream.set_read_timeout(Some(ANSWER_TIMEOUT))?;
        Ok(Self {
            reader: BufReader::new(Box::new(stream)),
        })
    }

    /// `GET path`; with `close`, asks the server to close the connection after answering.
    pub fn get(&mut self, path: &str, close: bool) -> Result<Answer> {
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: wasmbox-test\r\n{}\r\n",
            if close { "Connection: close\r\n" } else { "" }
        );
        self.reader
            .get_mut()
            .write_all(request.as_bytes())
            .context("sending the request")?;
        self.read_answer()
            .with_context(|| format!("the answer to GET {path}"))
    }

    fn read_answer(&mut self) -> Result<Answer> {
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        let status: u16 = match line.split_whitespace().collect::<Vec<_>>().as_slice() {
            ["HTTP/1.1", code, ..] => code
                .parse()
                .with_context(|| format!("status line {line:?}"))?,
            _ => bail!("not an HTTP/1.1 status line: {line:?}"),
        };
        let (mut length, mut close) = (None, false);
        loop {
            line.clear();
            if self.reader.read_line(&mut line)? == 0 {
                bail!("the connection ended in the headers");
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                match name.trim().to_ascii_lowercase().as_str() {
                    "content-length" => length = Some(value.trim().parse::<usize>()?),
                    "connection" => close = value.trim().eq_ignore_ascii_case("close"),
                    _ => {}
                }
            }
        }
        let length = length.context("no Content-Length")?;
        let mut body = vec![0u8; length];
        self.reader.read_exact(&mut body)?;
        Ok(Answer {
            status,
            body: String::from_utf8(body)?,
            close,
        })
    }

    /// True once the server has closed its side (a read gives end of file).
    pub fn at_end(&mut self) -> Result<bool> {
        let mut b = [0u8; 1];
        Ok(self.reader.read(&mut b)? == 0)
    }
}

/// `clients` concurrent keep-alive clients (each on a connection from `connect`), `requests`
/// each, every answer checked (`hello <path>`, the server guest's answer); the number answered.
pub fn check_many(
    connect: impl Fn() -> Result<TcpStream> + Sync,
    clients: usize,
    requests: usize,
) -> Result<usize> {
    check_many_under("", connect, clients, requests)
}

/// As [`check_many`], every path under `prefix` (`/gather/16`: `/gather/16/client-0/...`).
pub fn check_many_under(
    prefix: &str,
    connect: impl Fn() -> Result<TcpStream> + Sync,
    clients: usize,
    requests: usize,
) -> Result<usize> {
    std::thread::scope(|s| {
        let threads: Vec<_> = (0..clients)
            .map(|c| {
                let connect = &connect;
                s.spawn(move || -> Result<usize> {
                    let mut client = Client::new(connect()?)?;
                    for r in 0..requests {
                        let path = format!("{prefix}/client-{c}/request-{r}");
                        let answer = client.get(&path, false)?;
                        if answer.status != 200 || answer.body != format!("hello {path}\n") {
                            bail!("client {c}: wrong answer to {path}: {answer:?}");
                        }
                    }
                    Ok(requests)
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().unwrap_or_else(|_| Err(anyhow::anyhow!("a client thread panicked"))))
            .sum()
    })
}

/// `requests` GETs at once, multiplexed on one HTTP/2 connection with prior knowledge (h2c)
/// over `stream`, every answer checked as in [`check_many`]; the number answered.
pub fn check_h2c(stream: TcpStream, requests: usize) -> Result<usize> {
    use http_body_util::BodyExt;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async move {
        stream.set_nonblocking(true)?;
        let io = hyper_util::rt::TokioIo::new(tokio::net::TcpStream::from_std(stream)?);
        let (sender, connection) = hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
            .await
            .context("the HTTP/2 handshake (prior knowledge)")?;
        tokio::spawn(connection);
        let mut tasks = Vec::new();
        for r in 0..requests {
            let mut sender = sender.clone();
            tasks.push(tokio::spawn(async move {
                let path = format!("/h2c/request-{r}");
                let request = hyper::Request::get(format!("http://wasmbox-test{path}"))
                    .body(http_body_util::Empty::<hyper::body::Bytes>::new())?;
                let response = sender.send_request(request).await?;
                let (status, version) = (response.status(), response.version());
                let body = response.into_body().collect().await?.to_bytes();
                if status != 200 || version != hyper::Version::HTTP_2 || body != format!("hello {path}\n") {
                    bail!("wrong answer to {path}: {status} {version:?} {body:?}");
                }
                Ok(())
            }));
        }
        for t in tasks {
            t.await??;
        }
        Ok(requests)
    })
}

/// One GET of `path` over HTTP/2 with prior knowledge (h2c) on `stream`: the status, the body
/// and the trailers (name, value) that followed it.
pub fn h2c_get_with_trailers(stream: TcpStream, path: &str) -> Result<(u16, String, Vec<(String, String)>)> {
    use http_body_util::BodyExt;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async move {
        stream.set_nonblocking(true)?;
        let io = hyper_util::rt::TokioIo::new(tokio::net::TcpStream::from_std(stream)?);
        let (mut sender, connection) = hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
            .await
            .context("the HTTP/2 handshake (prior knowledge)")?;
        tokio::spawn(connection);
        let request = hyper::Request::get(format!("http://wasmbox-test{path}"))
            .body(http_body_util::Empty::<hyper::body::Bytes>::new())?;
        let response = sender.send_request(request).await?;
        let status = response.status().as_u16();
        let collected = response.into_body().collect().await?;
        let trailers = collected
            .trailers()
            .map(|t| t.iter().map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned())).collect())
            .unwrap_or_default();
        let body = String::from_utf8_lossy(&collected.to_bytes()).into_owned();
        Ok((status, body, trailers))
    })
}

/// The bytes of [`echo_stream`]'s body: offset `i` holds `i % 251`, so a lost, repeated or
/// reordered chunk shows.
fn pattern_byte(i: u64) -> u8 {
    (i % 251) as u8
}

/// A request body of `size` pattern bytes, made 64 KiB at a time as it is sent.
struct Pattern {
    sent: u64,
    size: u64,
}

impl hyper::body::Body for Pattern {
    type Data = hyper::body::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<std::result::Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        if self.sent == self.size {
            return std::task::Poll::Ready(None);
        }
        let n = (self.size - self.sent).min(64 * 1024);
        let chunk: Vec<u8> = (self.sent..self.sent + n).map(pattern_byte).collect();
        self.sent += n;
        std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(chunk.into()))))
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.size - self.sent)
    }
}

/// POSTs a body of `size` bytes to `path` over HTTP/1.1 on `stream`, streamed as it is made,
/// and reads the answer as it comes, checking it is the same bytes (an echo); the bytes
/// received. Neither side is ever held whole in memory here.
pub fn echo_stream(stream: TcpStream, path: &str, size: u64) -> Result<u64> {
    use http_body_util::BodyExt;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async move {
        stream.set_nonblocking(true)?;
        let io = hyper_util::rt::TokioIo::new(tokio::net::TcpStream::from_std(stream)?);
        let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await.context("the HTTP/1.1 handshake")?;
        tokio::spawn(connection);
        let request = hyper::Request::post(path)
            .header("host", "wasmbox-test")
            .body(Pattern { sent: 0, size })?;
        let response = tokio::time::timeout(ANSWER_TIMEOUT, sender.send_request(request))
            .await
            .context("no answer in time")??;
        if response.status() != 200 {
            bail!("POST {path}: {}", response.status());
        }
        let mut body = response.into_body();
        let mut received = 0u64;
        while let Some(frame) = tokio::time::timeout(ANSWER_TIMEOUT, body.frame()).await.context("the answer stalled")? {
            let Ok(data) = frame?.into_data() else { continue };
            if let Some(bad) = data.iter().enumerate().find(|(i, b)| **b != pattern_byte(received + *i as u64)) {
                bail!("byte {} of the answer is {}, not {}", received + bad.0 as u64, bad.1, pattern_byte(received + bad.0 as u64));
            }
            received += data.len() as u64;
        }
        Ok(received)
    })
}
