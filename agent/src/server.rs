//! The agent's HTTP server: one accept loop serving the API router over
//! plain HTTP or TLS (HTTP/1.1, and HTTP/2 by ALPN or prior knowledge,
//! through hyper-util's auto connection builder), with the limits that keep
//! clients from starving the agent:
//!
//! - a **connection cap** (a semaphore taken *before* `accept`: past the
//!   cap, new connections wait in the kernel's backlog instead of costing
//!   a descriptor and a task each);
//! - a **header timeout**: a connection must complete its TLS handshake
//!   and its first request head within it (a half-open or slowloris
//!   client is dropped), and every later request head too (hyper's
//!   `header_read_timeout`);
//! - a **body timeout**: a request body must arrive in full within it;
//! - an **idle timeout**: a kept-alive connection with no request in
//!   flight is closed after it;
//! - a **descriptor budget**: at start the soft `RLIMIT_NOFILE` is raised
//!   to the hard limit, and the connection cap is lowered so that a
//!   reserve of descriptors always stays for checks, the store and the
//!   log ([`descriptor_budget`]).
//!
//! With mutual TLS, the client's certificate is handed to the handlers as
//! a [`PeerCertificate`] request extension (the push endpoint checks the
//! pushed agent's name against it).
//!
//! This module owns sockets and connections only; routes and their
//! security live in [`crate::api`], certificates in [`crate::tls`].

use crate::tls::ServerTls;
use axum::Router;
use bytes::Bytes;
use http::Request;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Descriptors kept for the agent itself whatever the connection cap: the
/// database and its read connections, the plugin cache, the log, and the
/// sockets of checks in flight (16 concurrent checks by default, a few
/// sockets each, and peers and notifiers).
pub const FD_RESERVE: usize = 256;

/// The server's limits (`[agent.http]`).
pub use crate::config::HttpLimits as Limits;

/// The client certificate of a mutual-TLS connection (DER, end entity).
#[derive(Debug, Clone)]
pub struct PeerCertificate(pub Arc<Vec<u8>>);

/// Raises the soft `RLIMIT_NOFILE` to the hard limit and returns the
/// connection cap that leaves [`FD_RESERVE`] descriptors (or half of the
/// limit, whichever is more) to the rest of the agent.
pub fn descriptor_budget(max_connections: usize) -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    let soft = unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return max_connections;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
        lim.rlim_cur
    };
    let soft = usize::try_from(soft).unwrap_or(usize::MAX);
    let reserve = FD_RESERVE.max(soft / 2);
    let cap = max_connections.min(soft.saturating_sub(reserve)).max(1);
    if cap < max_connections {
        tracing::warn!(
            nofile = soft,
            "agent.http.max_connections lowered from {max_connections} to {cap}: the descriptor limit is {soft} and {reserve} stay for checks, the store and the log"
        );
    }
    cap
}

/// What the idle watchdog of a connection reads.
#[derive(Default)]
struct Activity {
    /// Requests started on the connection.
    started: AtomicUsize,
    /// Requests whose response is not complete yet.
    in_flight: AtomicUsize,
    /// Milliseconds since the connection opened at the last request end.
    last_ms: AtomicU64,
}

/// Decrements `in_flight` when the response (or the handler) is dropped.
struct InFlight(Arc<Activity>, Instant);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0
            .last_ms
            .store(self.1.elapsed().as_millis() as u64, Ordering::Relaxed);
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A request body that must arrive in full before a deadline.
struct TimeoutBody {
    inner: Incoming,
    limit: Duration,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl hyper::body::Body for TimeoutBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let limit = self.limit;
        let sleep = self
            .deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        if sleep.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(format!(
                "the request body did not arrive within {} s",
                limit.as_secs_f64()
            )
            .into())));
        }
        Pin::new(&mut self.inner)
            .poll_frame(cx)
            .map_err(|e| Box::new(e) as Self::Error)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Serves `router` on `listener` until the task is aborted.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<Arc<ServerTls>>,
    limits: Limits,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let acceptor = tls
        .as_ref()
        .map(|t| tokio_rustls::TlsAcceptor::from(t.config()));
    let mut warned: Option<Instant> = None;
    loop {
        if slots.available_permits() == 0
            && warned.is_none_or(|w| w.elapsed() > Duration::from_secs(60))
        {
            warned = Some(Instant::now());
            tracing::warn!(
                "all {} connections are in use; new ones wait (agent.http.max_connections)",
                limits.max_connections
            );
        }
        // Taken before accept: past the cap, connections wait in the
        // backlog and cost the agent nothing.
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let (stream, _addr) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                // Out of descriptors (EMFILE/ENFILE) or a connection reset
                // before accept: back off briefly instead of spinning.
                tracing::warn!(error = %e, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let opened = Instant::now();
            match acceptor {
                None => serve_conn(stream, router, None, limits, opened).await,
                Some(acc) => {
                    let tls = match tokio::time::timeout(limits.header_timeout, acc.accept(stream))
                        .await
                    {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!(error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => return,
                    };
                    let cert = tls
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .map(|c| PeerCertificate(Arc::new(c.as_ref().to_vec())));
                    serve_conn(tls, router, cert, limits, opened).await
                }
            }
        });
    }
}

async fn serve_conn<IO>(
    io: IO,
    router: Router,
    cert: Option<PeerCertificate>,
    limits: Limits,
    opened: Instant,
) where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity::default());
    let act = activity.clone();
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        act.started.fetch_add(1, Ordering::Relaxed);
        act.in_flight.fetch_add(1, Ordering::Relaxed);
        let guard = InFlight(act.clone(), opened);
        let mut req = req.map(|b| {
            axum::body::Body::new(TimeoutBody {
                inner: b,
                limit: limits.body_timeout,
                deadline: None,
            })
        });
        if let Some(c) = &cert {
            req.extensions_mut().insert(c.clone());
        }
        let mut router = router.clone();
        async move {
            let resp = tower_service::Service::call(&mut router, req).await;
            // The request counts as in flight until its body is sent.
            resp.map(|r| {
                r.map(|body| {
                    axum::body::Body::new(http_body_util::BodyExt::map_frame(body, move |f| {
                        let _ = &guard;
                        f
                    }))
                })
            })
        }
    });
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(64);
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(conn);
    // The watchdog: before the first request the header timeout applies
    // (the auto builder waits for the first bytes without a timer of its
    // own), afterwards the idle timeout.
    let tick = (limits.header_timeout.min(limits.idle_timeout) / 4).max(Duration::from_millis(50));
    let mut closing = false;
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            _ = tokio::time::sleep(tick) => {
                if activity.in_flight.load(Ordering::Relaxed) > 0 {
                    continue;
                }
                let first = activity.started.load(Ordering::Relaxed) == 0;
                let since = opened.elapsed().saturating_sub(Duration::from_millis(
                    activity.last_ms.load(Ordering::Relaxed),
                ));
                let limit = if first { limits.header_timeout } else { limits.idle_timeout };
                if closing && since > limit + limits.header_timeout {
                    return;
                }
                if !closing && since > limit {
                    if first {
                        return;
                    }
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
        }
    }
}
