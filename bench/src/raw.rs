//! A minimal HTTP/1.1 client connection for the closed and paced loops: writes a ready
//! request, reads the answer into its own buffer (status, `Content-Length` body, one
//! captured header), with no task hand-off and no allocation per exchange. It speaks only
//! what the servers under test answer to a GET: no chunked bodies, no pipelining.

use std::net::SocketAddr;

use anyhow::{Context as _, Result, bail};
use http::HeaderName;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// One keep-alive connection and its read buffer.
pub(crate) struct Conn {
    addr: SocketAddr,
    stream: TcpStream,
    buf: Vec<u8>,
    captured: String,
}

/// One answer; `captured` borrows the connection's copy of the captured header.
pub(crate) struct Answer<'a> {
    pub status: u16,
    pub body_bytes: u64,
    pub captured: Option<&'a str>,
    /// The server will close the connection.
    pub close: bool,
}

impl Conn {
    /// Connects to `addr` with `TCP_NODELAY`.
    pub async fn open(addr: SocketAddr) -> Result<Self> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connect {addr}"))?;
        stream.set_nodelay(true)?;
        Ok(Self {
            addr,
            stream,
            buf: Vec::with_capacity(64 * 1024),
            captured: String::new(),
        })
    }

    /// Replaces the connection with a new one; false when that fails.
    pub async fn reopen(&mut self) -> bool {
        match Self::open(self.addr).await {
            Ok(fresh) => {
                *self = fresh;
                true
            }
            Err(_) => false,
        }
    }

    /// Writes `request` and reads its answer whole; `capture` names the header to keep.
    pub async fn exchange(
        &mut self,
        request: &[u8],
        capture: Option<&HeaderName>,
    ) -> Result<Answer<'_>> {
        self.stream.write_all(request).await.context("write")?;
        self.buf.clear();
        loop {
            if self.buf.len() == self.buf.capacity() {
                self.buf.reserve(self.buf.capacity());
            }
            let n = self.stream.read_buf(&mut self.buf).await.context("read")?;
            if n == 0 {
                bail!("connection closed by the server");
            }
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut response = httparse::Response::new(&mut headers);
            let head_len = match response.parse(&self.buf).context("a malformed answer")? {
                httparse::Status::Partial => continue,
                httparse::Status::Complete(len) => len,
            };
            let status = response.code.context("a status")?;
            let (mut length, mut close, mut captured) = (None, false, false);
            self.captured.clear();
            for header in response.headers.iter() {
                if header.name.eq_ignore_ascii_case("content-length") {
                    let text = std::str::from_utf8(header.value)?;
                    length = Some(text.trim().parse::<usize>()?);
                } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
                    bail!("chunked answers are not supported by the closed loop");
                } else if header.name.eq_ignore_ascii_case("connection") {
                    close = header.value.eq_ignore_ascii_case(b"close");
                } else if capture.is_some_and(|c| header.name.eq_ignore_ascii_case(c.as_str())) {
                    self.captured.push_str(std::str::from_utf8(header.value)?);
                    captured = true;
                }
            }
            let body = match (status, length) {
                (_, Some(n)) => n,
                (204 | 304, None) => 0,
                (_, None) => bail!("an answer without Content-Length"),
            };
            while self.buf.len() < head_len + body {
                self.buf.reserve(head_len + body - self.buf.len());
                if self.stream.read_buf(&mut self.buf).await.context("read")? == 0 {
                    bail!("connection closed in the body");
                }
            }
            return Ok(Answer {
                status,
                body_bytes: body as u64,
                captured: captured.then_some(self.captured.as_str()),
                close,
            });
        }
    }
}
