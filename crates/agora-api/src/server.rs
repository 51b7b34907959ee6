//! The accept loop: HTTP/1.1 connections served by hyper with the bounds a public server
//! needs, so that slow or idle clients cannot hold the process's file descriptors and memory.
//!
//! - At most [`ServeLimits::max_connections`] connections are open at once; past it the loop
//!   stops accepting, and new connections wait in the kernel's backlog.
//! - A connection must send a request's headers within [`ServeLimits::header_read_timeout`]
//!   of being ready for one (new, or kept alive after its last answer); else it is closed.
//! - A connection that reads and writes nothing for [`ServeLimits::idle_timeout`] while a
//!   request is open (a body trickled, an answer not read) is closed.
//!
//! - A request head may be at most [`MAX_HEAD_BYTES`], which bounds each connection's read
//!   buffer.
//!
//! Each request carries its peer address as `ConnectInfo<SocketAddr>`. hyper answers a
//! request it cannot parse itself (400, 414, 431), with an empty body; the connection's
//! stream (`Watched`) writes those in the contract's error shape instead, since every
//! error the router answers already has a body (`error::in_contract_shape`).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tower_service::Service;

/// The largest request head (request line and headers) read; beyond it, or beyond hyper's
/// 100 headers, 431 `headers_too_large`.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// The bounds on connections.
#[derive(Clone, Copy, Debug)]
pub struct ServeLimits {
    /// Connections open at once.
    pub max_connections: usize,
    /// How long a connection may take to send a request's headers.
    pub header_read_timeout: Duration,
    /// How long an open request's connection may stay silent both ways.
    pub idle_timeout: Duration,
}

/// Serves `router` on `listener` until `shutdown` completes, then lets the requests in flight
/// finish (connections kept alive are closed once their answer is sent) and returns.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServeLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let places = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (closing, closed) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let place = tokio::select! {
            place = places.clone().acquire_owned() => place,
            () = &mut shutdown => break,
        };
        let Ok(place) = place else { break };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        match accepted {
            Ok((stream, peer)) => {
                tokio::spawn(connection(
                    stream,
                    peer,
                    router.clone(),
                    limits,
                    place,
                    closed.clone(),
                ));
            }
            // Out of descriptors or a connection reset before it was accepted: the loop
            // goes on, after a pause so that a lasting error does not spin.
            Err(e) => {
                tracing::warn!(error = %e, "could not accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    drop(listener);
    drop(closed);
    let _ = closing.send(true);
    // Resolves once every connection has dropped its receiver, that is, ended.
    closing.closed().await;
    Ok(())
}

/// Serves one connection until it ends, goes silent, or the server shuts down.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: ServeLimits,
    _place: OwnedSemaphorePermit,
    mut closing: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let stream = Watched::new(stream);
    let silence = stream.activity.clone();
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        let mut router = router.clone();
        async move { router.call(request.map(axum::body::Body::new)).await }
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_header_size(MAX_HEAD_BYTES);
    let conn = http.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let mut shutting_down = false;
    loop {
        tokio::select! {
            served = conn.as_mut() => {
                if let Err(e) = served {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            changed = closing.changed(), if !shutting_down => {
                shutting_down = true;
                if changed.is_ok() {
                    conn.as_mut().graceful_shutdown();
                }
            }
            () = silence.elapsed(limits.idle_timeout) => {
                tracing::debug!(%peer, "closing a silent connection");
                return;
            }
        }
    }
}

/// When a connection last read or wrote, in milliseconds since it opened.
#[derive(Clone)]
struct Activity {
    opened: Instant,
    last_ms: Arc<AtomicU64>,
}

impl Activity {
    fn touch(&self) {
        let now = self.opened.elapsed().as_millis() as u64;
        self.last_ms.store(now, Ordering::Relaxed);
    }

    /// Resolves once nothing was read or written for `quiet`.
    async fn elapsed(&self, quiet: Duration) {
        loop {
            let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let due = self.opened + last + quiet;
            if Instant::now() >= due {
                return;
            }
            tokio::time::sleep_until(due.into()).await;
        }
    }
}

/// A stream that notes every read and write in its [`Activity`], and writes hyper's bodyless
/// error answers in the contract's shape.
struct Watched {
    inner: TcpStream,
    activity: Activity,
    /// A shaped answer being written in place of hyper's: its bytes, how many are written,
    /// and the length of hyper's, reported as written once the shaped one is.
    replacing: Option<(Vec<u8>, usize, usize)>,
}

impl Watched {
    fn new(inner: TcpStream) -> Self {
        Self {
            inner,
            activity: Activity {
                opened: Instant::now(),
                last_ms: Arc::default(),
            },
            replacing: None,
        }
    }

    /// Writes `buf`, or the shaped answer that replaces it when it is hyper's own.
    fn write_head(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Option<Poll<io::Result<usize>>> {
        if self.replacing.is_none() {
            let shaped = shaped_parse_error(buf)?;
            self.replacing = Some((shaped, 0, buf.len()));
        }
        let (bytes, written, claimed) = self.replacing.as_mut()?;
        while *written < bytes.len() {
            match Pin::new(&mut self.inner).poll_write(cx, &bytes[*written..]) {
                Poll::Ready(Ok(0)) => {
                    return Some(Poll::Ready(Err(io::ErrorKind::WriteZero.into())))
                }
                Poll::Ready(Ok(n)) => *written += n,
                other => return Some(other),
            }
        }
        let claimed = *claimed;
        self.replacing = None;
        Some(Poll::Ready(Ok(claimed)))
    }

    /// Notes activity when `poll` made progress.
    fn noted<T>(&self, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if matches!(poll, Poll::Ready(Ok(_))) {
            self.activity.touch();
        }
        poll
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        self.noted(poll)
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = match self.write_head(cx, buf) {
            Some(poll) => poll,
            None => Pin::new(&mut self.inner).poll_write(cx, buf),
        };
        self.noted(poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        // hyper writes a bodyless answer's head as one buffer.
        let first = bufs
            .iter()
            .find(|b| !b.is_empty())
            .map_or(&[][..], |b| &b[..]);
        let poll = match self.write_head(cx, first) {
            Some(poll) => poll,
            None => Pin::new(&mut self.inner).poll_write_vectored(cx, bufs),
        };
        self.noted(poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The contract-shaped answer to write instead of `head`, when `head` is a whole response
/// head of an error status with an empty body: one hyper wrote for a request it could not
/// parse (the router's errors always have a body). The connection is closed after it, as
/// hyper closes it.
fn shaped_parse_error(head: &[u8]) -> Option<Vec<u8>> {
    let rest = head.strip_prefix(b"HTTP/1.1 ")?;
    let status = std::str::from_utf8(rest.get(..3)?)
        .ok()?
        .parse::<u16>()
        .ok()?;
    let status = axum::http::StatusCode::from_u16(status).ok()?;
    // Every answer's head passes here: the status alone rules out nearly all of them.
    if !(status.is_client_error() || status.is_server_error()) {
        return None;
    }
    let bodyless = head.ends_with(b"\r\n\r\n")
        && head
            .windows(b"\r\ncontent-length: 0\r\n".len())
            .any(|w| w == b"\r\ncontent-length: 0\r\n");
    if !bodyless {
        return None;
    }
    let body = crate::error::ApiError::for_status(status, "").json();
    let mut shaped = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error"),
        body.len()
    )
    .into_bytes();
    shaped.extend(body);
    Some(shaped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bodyless_error_heads_are_shaped() {
        let hypers =
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        let shaped = String::from_utf8(shaped_parse_error(hypers).unwrap()).unwrap();
        assert!(shaped.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
        let body: serde_json::Value =
            serde_json::from_str(shaped.split("\r\n\r\n").nth(1).unwrap()).unwrap();
        assert_eq!(body["code"], "headers_too_large");
        assert_eq!(body["status"], 431);
        for kept in [
            &b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"[..],
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 57\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n{\"code\"",
            b"{\"code\":\"not_found\"}",
        ] {
            assert!(shaped_parse_error(kept).is_none());
        }
    }
}
