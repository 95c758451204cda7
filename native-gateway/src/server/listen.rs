//! The gateway's accept loop: TCP connections counted against `--max-connections` (all) and
//! `--max-connections-per-address` (per client IP address) before anything is read from them,
//! refused past either with an HTTP answer saying which, TLS handshakes under a deadline, and
//! HTTP/1.1 served by hyper with a header-read deadline (slowloris). A connection's slot is
//! held by its socket ([`Counted`]), so a connection upgraded to a WebSocket counts until
//! that socket is dropped. Accept errors (such as running out of file descriptors) are
//! logged at most once per [`LOG_EVERY`], with how many were not.

use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch, Semaphore};

use super::Metrics;
use crate::lock;

/// How often a kind of accept-time warning is logged at most.
pub(crate) const LOG_EVERY: Duration = Duration::from_secs(10);

/// How long a TLS handshake may take.
const TLS_HANDSHAKE: Duration = Duration::from_secs(10);

/// Refusals being written at once; past this, refused sockets are closed without an answer.
const REFUSING_AT_ONCE: usize = 64;

/// The connection limits (0: no limit).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnLimits {
    pub(crate) max: usize,
    pub(crate) per_address: usize,
}

/// Open connections, all and by address.
pub(crate) struct Conns {
    limits: ConnLimits,
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
    metrics: Arc<Metrics>,
    refused_log: RateLimitedLog,
    accept_log: RateLimitedLog,
}

/// Why a connection was refused: its HTTP status and text.
#[derive(Debug, PartialEq)]
pub(crate) struct Refusal {
    pub(crate) status: u16,
    pub(crate) text: String,
}

/// One open connection's place in [`Conns`], given back when dropped.
pub(crate) struct Slot {
    conns: Arc<Conns>,
    ip: IpAddr,
}

impl Conns {
    pub(crate) fn new(limits: ConnLimits, metrics: Arc<Metrics>) -> Arc<Conns> {
        Arc::new(Conns { limits, open: Mutex::new((0, HashMap::new())), metrics, refused_log: RateLimitedLog::default(), accept_log: RateLimitedLog::default() })
    }

    /// A slot for a connection from `ip`, or why not.
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, Refusal> {
        let mut open = lock(&self.open);
        let (total, by_ip) = &mut *open;
        let from_ip = by_ip.get(&ip).copied().unwrap_or(0);
        if self.limits.max > 0 && *total >= self.limits.max {
            return Err(Refusal { status: 503, text: format!("kombu-gateway: too many connections (its limit is {}); try again later", self.limits.max) });
        }
        if self.limits.per_address > 0 && from_ip >= self.limits.per_address {
            return Err(Refusal { status: 429, text: format!("kombu-gateway: too many connections from {ip} (the limit per address is {})", self.limits.per_address) });
        }
        *total += 1;
        by_ip.insert(ip, from_ip + 1);
        self.metrics.tcp_connections.store(*total as u64, Ordering::Relaxed);
        Ok(Slot { conns: self.clone(), ip })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = lock(&self.conns.open);
        let (total, by_ip) = &mut *open;
        *total -= 1;
        if let Some(n) = by_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                by_ip.remove(&self.ip);
            }
        }
        self.conns.metrics.tcp_connections.store(*total as u64, Ordering::Relaxed);
    }
}

/// A warning logged at most once per [`LOG_EVERY`], saying how many were left out.
#[derive(Default)]
pub(crate) struct RateLimitedLog {
    last: Mutex<Option<Instant>>,
    suppressed: AtomicU64,
}

impl RateLimitedLog {
    /// Whether to log now (at `now`); if so, how many were left out since the last.
    pub(crate) fn allow(&self, now: Instant) -> Option<u64> {
        let mut last = lock(&self.last);
        if last.is_some_and(|l| now.duration_since(l) < LOG_EVERY) {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        *last = Some(now);
        Some(self.suppressed.swap(0, Ordering::Relaxed))
    }
}

/// A socket holding its connection's [`Slot`].
pub(crate) struct Counted<I> {
    io: I,
    _slot: Slot,
}

impl<I: AsyncRead + Unpin> AsyncRead for Counted<I> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Counted<I> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
    fn poll_write_vectored(mut self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[std::io::IoSlice<'_>]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// What the accept loop serves.
pub(crate) struct Serve {
    pub(crate) listener: TcpListener,
    pub(crate) tls: Option<Arc<rustls::ServerConfig>>,
    pub(crate) app: Router,
    pub(crate) conns: Arc<Conns>,
    pub(crate) header_read_timeout: Duration,
}

/// Accept and serve connections until `shutdown`, then let the open HTTP requests finish
/// (WebSockets end by the server's own signal) and return.
pub(crate) async fn serve(s: Serve, mut shutdown: oneshot::Receiver<()>) {
    let Serve { listener, tls, app, conns, header_read_timeout } = s;
    let tls = tls.map(tokio_rustls::TlsAcceptor::from);
    let refusing = Arc::new(Semaphore::new(REFUSING_AT_ONCE));
    // Every connection task holds a receiver of `closing` (told to finish) and of `done`
    // (dropped when it ends).
    let (closing_tx, closing) = watch::channel(false);
    let (done_tx, done) = watch::channel(());
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = &mut shutdown => break,
        };
        let (tcp, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                if let Some(more) = conns.accept_log.allow(Instant::now()) {
                    tracing::error!("accept error: {e} ({more} more since the last report); --max-connections below the file limit (ulimit -n) avoids this");
                }
                // Out of file descriptors (or a like condition): give the open ones a moment.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let slot = match conns.admit(peer.ip()) {
            Ok(slot) => slot,
            Err(refusal) => {
                conns.metrics.refused_connections.fetch_add(1, Ordering::Relaxed);
                if let Some(more) = conns.refused_log.allow(Instant::now()) {
                    tracing::warn!(%peer, "refused: {} ({more} more refusals since the last report)", refusal.text);
                }
                // Over TLS, the socket is closed without an answer (no handshake for it).
                if tls.is_none() {
                    if let Ok(permit) = refusing.clone().try_acquire_owned() {
                        tokio::spawn(async move {
                            refuse(tcp, &refusal).await;
                            drop(permit);
                        });
                    }
                }
                continue;
            }
        };
        let (app, tls, closing, done) = (app.clone(), tls.clone(), closing.clone(), done.clone());
        tokio::spawn(async move {
            match tls {
                None => serve_connection(Counted { io: tcp, _slot: slot }, app, header_read_timeout, closing).await,
                Some(acceptor) => match tokio::time::timeout(TLS_HANDSHAKE, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => serve_connection(Counted { io: stream, _slot: slot }, app, header_read_timeout, closing).await,
                    Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake failed: {e}"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                },
            }
            drop(done);
        });
    }
    drop(listener);
    let _ = closing_tx.send(true);
    drop(done);
    done_tx.closed().await;
}

/// Serve HTTP/1.1 (with upgrades to WebSocket) on one connection.
async fn serve_connection<I>(io: Counted<I>, app: Router, header_read_timeout: Duration, mut closing: watch::Receiver<bool>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = hyper::server::conn::http1::Builder::new();
    // The deadline for a request's headers, and for the next request on a kept-alive
    // connection: a client that dribbles its headers, or sits idle between requests, is closed.
    builder.timer(TokioTimer::new()).header_read_timeout(header_read_timeout);
    let conn = builder.serve_connection(TokioIo::new(io), TowerToHyperService::new(app)).with_upgrades();
    tokio::pin!(conn);
    let mut told = false;
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!("connection ended: {e}");
                }
                return;
            }
            _ = closing.wait_for(|c| *c), if !told => {
                told = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Answer a connection over the limits with its HTTP status and text, then close it.
async fn refuse(mut tcp: TcpStream, refusal: &Refusal) {
    let reason = if refusal.status == 429 { "Too Many Requests" } else { "Service Unavailable" };
    let body = format!("{}\n", refusal.text);
    let answer = format!("HTTP/1.1 {} {reason}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", refusal.status, body.len());
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let _ = tcp.write_all(answer.as_bytes()).await;
        let _ = tcp.shutdown().await;
        // Read what the client sent, so that closing does not reset the connection before
        // it has read the answer.
        let mut sink = [0u8; 4096];
        while matches!(tokio::io::AsyncReadExt::read(&mut tcp, &mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_limited_in_all_and_per_address_and_slots_come_back() {
        let conns = Conns::new(ConnLimits { max: 3, per_address: 2 }, Arc::new(Metrics::default()));
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let a1 = conns.admit(a).unwrap();
        let _a2 = conns.admit(a).unwrap();
        let r = conns.admit(a).err().unwrap();
        assert_eq!(r.status, 429);
        assert!(r.text.contains("too many connections from 10.0.0.1 (the limit per address is 2)"), "{}", r.text);
        let _b1 = conns.admit(b).unwrap();
        let r = conns.admit(b).err().unwrap();
        assert_eq!(r.status, 503);
        assert!(r.text.contains("too many connections (its limit is 3)"), "{}", r.text);
        drop(a1);
        let _b2 = conns.admit(b).unwrap();
        assert_eq!(conns.metrics.tcp_connections.load(Ordering::Relaxed), 3);
        // 0: no limit.
        let free = Conns::new(ConnLimits { max: 0, per_address: 0 }, Arc::new(Metrics::default()));
        let slots: Vec<_> = (0..1000).map(|_| free.admit(a).unwrap()).collect();
        drop(slots);
        assert!(lock(&free.open).1.is_empty(), "an address without connections is forgotten");
    }

    #[test]
    fn a_warning_is_logged_once_per_period_with_the_count_left_out() {
        let log = RateLimitedLog::default();
        let t = Instant::now();
        assert_eq!(log.allow(t), Some(0));
        for i in 1..1000 {
            assert_eq!(log.allow(t + Duration::from_millis(i)), None);
        }
        assert_eq!(log.allow(t + LOG_EVERY + Duration::from_millis(1)), Some(999));
    }
}
