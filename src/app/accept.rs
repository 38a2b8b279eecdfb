//! The accept loop of one listener: at most `max_connections` connections at once (past
//! that, new ones wait in the kernel's listen backlog until one closes: they are neither
//! accepted nor refused), each served over HTTP/1.1 with keep-alive and `TCP_NODELAY`, under
//! the time limits of [`super::connection`]. On the stop signal it stops accepting and hands
//! back the open connections as [`Draining`]: each finishes the request it is answering and
//! closes; idle ones close at once; a half-sent request is closed by its header-read limit.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::connection::{ClockedIo, ClockedService, ConnectionClock, ConnectionLimits, Watchdog};
use crate::routes::FrontDoor;

/// How long to wait after an accept error that is not about one connection (out of file
/// descriptors, most often) before accepting again: a busy loop would not help it heal.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_secs(1);

/// A listener and the limits of its connections.
#[derive(Debug)]
pub(super) struct Listener {
    /// `api` or `ops`, for logs.
    pub name: &'static str,
    pub tcp: TcpListener,
    pub max_connections: usize,
    pub limits: ConnectionLimits,
}

/// The connections still open when the listener stopped accepting.
#[derive(Debug)]
pub(super) struct Draining {
    graceful: GracefulShutdown,
    tasks: JoinSet<()>,
}

impl Draining {
    /// Asks every connection to finish and waits until they have, or until `deadline`;
    /// those left then are closed. Whether all finished in time.
    pub(super) async fn finish_by(self, deadline: Instant) -> bool {
        let Self { graceful, tasks } = self;
        let finished = tokio::time::timeout_at(deadline, graceful.shutdown())
            .await
            .is_ok();
        // Dropping the set aborts what is left (closing those sockets).
        drop(tasks);
        finished
    }
}

/// Serves `service` on `listener` until `stop` completes.
pub(super) async fn serve(
    listener: Listener,
    service: FrontDoor,
    stop: impl Future<Output = ()>,
) -> Draining {
    let Listener {
        name,
        tcp,
        max_connections,
        limits,
    } = listener;
    let permits = Arc::new(Semaphore::new(max_connections));
    let graceful = GracefulShutdown::new();
    let mut tasks = JoinSet::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    // The limits are the watchdog's (hyper's own header timer would also cut idle
    // keep-alive connections at the header limit).
    http.header_read_timeout(None);
    let mut at_cap = false;
    tokio::pin!(stop);
    loop {
        while tasks.try_join_next().is_some() {}
        let permit = if let Ok(permit) = permits.clone().try_acquire_owned() {
            at_cap = false;
            permit
        } else {
            if !at_cap {
                tracing::warn!(
                    listener = name,
                    max_connections,
                    "connection cap reached: new connections wait until one closes"
                );
                at_cap = true;
            }
            tokio::select! {
                biased;
                () = &mut stop => break,
                permit = permits.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_closed) => break,
                },
            }
        };
        let (stream, peer) = tokio::select! {
            biased;
            () = &mut stop => break,
            accepted = tcp.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) if is_connection_error(&error) => continue,
                Err(error) => {
                    tracing::error!(listener = name, %error, "cannot accept connections; retrying");
                    tokio::select! {
                        () = &mut stop => break,
                        () = tokio::time::sleep(ACCEPT_ERROR_PAUSE) => continue,
                    }
                }
            },
        };
        // No Nagle delay: a response larger than one segment would otherwise wait for the
        // client's (possibly delayed) ACK before its last, partial segment goes out.
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY on a connection");
        }
        let clock = ConnectionClock::new();
        let connection = graceful.watch(http.serve_connection(
            TokioIo::new(ClockedIo::new(stream, clock.clone())),
            ClockedService::new(service.clone(), clock.clone()),
        ));
        let watchdog = Watchdog::new(clock, limits);
        tasks.spawn(async move {
            let _permit = permit;
            tokio::pin!(connection);
            // The connection first: it moves the clock, the watchdog reads it.
            tokio::select! {
                biased;
                result = &mut connection => {
                    if let Err(error) = result {
                        tracing::debug!(%peer, %error, "connection ended with an error");
                    }
                }
                expiry = watchdog => {
                    tracing::debug!(%peer, reason = expiry.as_str(), "closing a connection");
                }
            }
        });
    }
    Draining { graceful, tasks }
}

/// An accept error about one connection only (it went away before it was accepted).
fn is_connection_error(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}
