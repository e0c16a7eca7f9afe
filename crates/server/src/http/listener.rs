//! Accepting connections: HTTP/1.1 and HTTP/2 on one port, at most `max_connections` open at
//! once (more are answered 503 and closed), a time limit on request headers (which is also the
//! longest idle keep-alive), at most `max_in_flight` requests in the router (more are answered
//! 503 at once), and a shutdown that lets open requests finish for `drain_timeout` before their
//! connections are closed.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt;

use crate::http::limits::{self, Gate};
use crate::telemetry::metrics::Metrics;

/// Serves `router` on `listener` until `stop` turns true, then drains.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    gate: Gate,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let limits = gate.limits();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    // Dropping the sender closes every connection still open after the drain timeout.
    let (kill, killed) = watch::channel(());
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(256)
        .keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(20));
    loop {
        let (tcp, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, most likely: wait instead of spinning.
                    tracing::warn!(error = %e, "could not accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => break,
        };
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            metrics.shed("connections");
            tokio::spawn(refuse(tcp, limits.max_connections));
            continue;
        };
        let (router, gate) = (router.clone(), gate.clone());
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let (router, admitted) = (router.clone(), gate.admit(req.uri().path()));
            async move {
                let permit = match admitted {
                    Ok(p) => p,
                    Err(full) => return Ok(full.answer(req).await),
                };
                let mut req = req.map(Body::new);
                req.extensions_mut().insert(ConnectInfo(remote));
                router.oneshot(req).await.map(|resp| limits::hold(resp, permit))
            }
        });
        let conn = graceful.watch(builder.serve_connection_with_upgrades(TokioIo::new(tcp), service).into_owned());
        let mut killed = killed.clone();
        tokio::spawn(async move {
            tokio::select! {
                served = conn => if let Err(e) = served {
                    tracing::debug!(error = %e, "connection ended with an error");
                },
                _ = killed.changed() => {}
            }
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.drain_timeout, graceful.shutdown()).await.is_err() {
        tracing::warn!(
            timeout = ?limits.drain_timeout,
            "requests were still open when the drain timeout passed; their connections are closed"
        );
    }
    drop(kill);
    Ok(())
}

/// Answers a connection over the limit with a 503 and closes it, without reading its request.
async fn refuse(mut tcp: TcpStream, max: usize) {
    let body = format!(
        r#"{{"error_code":"TEMPORARILY_UNAVAILABLE","message":"The server is at its limit of {max} open connections; retry shortly."}}"#
    );
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         retry-after: 1\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let write = async {
        tcp.write_all(head.as_bytes()).await?;
        tcp.write_all(body.as_bytes()).await?;
        tcp.shutdown().await
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), write).await;
}
