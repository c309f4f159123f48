//! The ingest listener: TCP connections with `TCP_NODELAY`, plain or over TLS, whose automatic
//! refusals get a problem document like every other refusal.
//!
//! hyper answers a request head it cannot take (`431` for more than 100 header fields or a head
//! over its read buffer, `414` for a request target too long, `400` for a head that is not
//! HTTP/1) by itself, before any handler runs, with an empty body, and closes the connection.
//! hyper has no hook for that answer, so the connection's writer recognises it (one of those
//! statuses, `content-length: 0` and no `content-type`, which no answer of Herald's has) and
//! sends the same status with an `application/problem+json` body instead. Over TLS the writer
//! sits above the TLS stream, so it sees and rewrites the same plaintext answer.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::http::StatusCode;
use bytes::{Buf, Bytes};
use prometheus::IntCounterVec;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use herald_runtime::tls::TlsListener;

use crate::Error;
use crate::error::{HeadRefusal, PROBLEM_CONTENT_TYPE};

#[cfg(test)]
mod tests;

/// Accepts ingest connections.
pub(crate) struct Listener {
    tcp: TcpListener,
    requests_rejected: IntCounterVec,
}

impl Listener {
    /// Wraps a bound listener; `requests_rejected` counts hyper's refusals by status.
    pub(crate) fn new(tcp: TcpListener, requests_rejected: IntCounterVec) -> Listener {
        Listener {
            tcp,
            requests_rejected,
        }
    }
}

impl axum::serve::Listener for Listener {
    type Io = Connection<TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (stream, address) = axum::serve::Listener::accept(&mut self.tcp).await;
        // Producers wait for each answer, so answers go out at once, never held back by Nagle.
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(error = %err, "failed to set TCP_NODELAY");
        }
        let connection = Connection::new(stream, self.requests_rejected.clone());
        (connection, address)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// The TLS connection `herald_runtime::tls` established (with `TCP_NODELAY`, handshake done).
type TlsStream = <TlsListener as axum::serve::Listener>::Io;

/// Accepts ingest connections over TLS.
pub(crate) struct TlsConnections {
    tls: TlsListener,
    requests_rejected: IntCounterVec,
}

impl TlsConnections {
    /// Wraps a TLS listener; `requests_rejected` counts hyper's refusals by status.
    pub(crate) fn new(tls: TlsListener, requests_rejected: IntCounterVec) -> TlsConnections {
        TlsConnections {
            tls,
            requests_rejected,
        }
    }
}

impl axum::serve::Listener for TlsConnections {
    type Io = Connection<TlsStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (stream, address) = axum::serve::Listener::accept(&mut self.tls).await;
        let connection = Connection::new(stream, self.requests_rejected.clone());
        (connection, address)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.tls.local_addr())
    }
}

/// One connection; reads pass through, hyper's automatic refusals are rewritten on write.
///
/// Writes are not vectored, so hyper hands each response head over in one buffer, the first
/// bytes of a write.
pub(crate) struct Connection<T> {
    inner: T,
    /// The rewritten refusal being written, and how many of hyper's bytes it stands for.
    replacement: Option<(Bytes, usize)>,
    requests_rejected: IntCounterVec,
}

impl<T> Connection<T> {
    fn new(inner: T, requests_rejected: IntCounterVec) -> Connection<T> {
        Connection {
            inner,
            replacement: None,
            requests_rejected,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Connection<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Connection<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        // Until a replacement is written, hyper offers the same bytes again.
        let (mut remaining, replaced) = match this.replacement.take() {
            Some(replacement) => replacement,
            None => {
                let Some((refusal, head_len)) = automatic_refusal(buf) else {
                    return Pin::new(&mut this.inner).poll_write(cx, buf);
                };
                let (status, _) = Error::MalformedHead(refusal).problem();
                this.requests_rejected
                    .with_label_values(&[status.as_str()])
                    .inc();
                (rewrite(refusal, &buf[..head_len]), head_len)
            }
        };
        while remaining.has_remaining() {
            match Pin::new(&mut this.inner).poll_write(cx, &remaining) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(written)) => remaining.advance(written),
                Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
                Poll::Pending => {
                    this.replacement = Some((remaining, replaced));
                    return Poll::Pending;
                }
            }
        }
        Poll::Ready(Ok(replaced))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Recognises hyper's automatic answer to a refused head at the start of `buf`: returns the
/// refusal and the length of the head.
fn automatic_refusal(buf: &[u8]) -> Option<(HeadRefusal, usize)> {
    let status_line = buf
        .strip_prefix(b"HTTP/1.1 ")
        .or_else(|| buf.strip_prefix(b"HTTP/1.0 "))?;
    let status = StatusCode::from_bytes(status_line.get(..3)?).ok()?;
    let refusal = HeadRefusal::of_status(status)?;
    let head_len = buf.windows(4).position(|window| window == b"\r\n\r\n")? + 4;
    let fields = header_lines(&buf[..head_len]);
    let has_field = |name: &str, value: Option<&str>| {
        fields.iter().any(|(field, field_value)| {
            field.eq_ignore_ascii_case(name) && value.is_none_or(|value| *field_value == value)
        })
    };
    let bodiless = has_field("content-length", Some("0")) && !has_field("content-type", None);
    bodiless.then_some((refusal, head_len))
}

/// Returns the header fields of a response head, names and values trimmed.
fn header_lines(head: &[u8]) -> Vec<(&str, &str)> {
    let Ok(head) = std::str::from_utf8(head) else {
        return Vec::new();
    };
    head.split("\r\n")
        .skip(1)
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim(), value.trim()))
        .collect()
}

/// Returns hyper's answer with a problem document: its status, its other fields (`date`,
/// `connection`), and the document's type and length.
fn rewrite(refusal: HeadRefusal, head: &[u8]) -> Bytes {
    let (status, body) = Error::MalformedHead(refusal).problem();
    let mut out = format!(
        "HTTP/1.1 {} {}\r\n",
        status.as_str(),
        status.canonical_reason().unwrap_or("Error")
    );
    let mut closes = false;
    for (name, value) in header_lines(head) {
        if name.eq_ignore_ascii_case("content-length") {
            continue;
        }
        closes |= name.eq_ignore_ascii_case("connection");
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    if !closes {
        // hyper closes the connection after such an answer anyway.
        out.push_str("connection: close\r\n");
    }
    out.push_str(&format!(
        "content-type: {PROBLEM_CONTENT_TYPE}\r\ncontent-length: {}\r\n\r\n",
        body.len()
    ));
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(&body);
    Bytes::from(bytes)
}
