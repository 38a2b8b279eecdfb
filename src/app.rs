//! [`App`]: builds the proxy from settings and a Genesys connection, binds its own
//! listeners (port 0 in tests): the API on `server.listen` and, when `server.ops_listen` is
//! set, the operations endpoints on a second address ([`ops_router`]); and serves until a
//! shutdown signal, draining in-flight requests for at most the grace period. Connections
//! are accepted by [`accept`] under the limits of [`connection`]. The Genesys notification
//! subscriber ([`crate::notifications`]) runs while it serves and stops with it. `main`,
//! the tests, the benchmarks and the demo all build this same `App`.

mod accept;
mod connection;
mod ops_router;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::auth::ApiKeys;
use crate::config::{GenesysConnection, Settings};
use crate::conversations::ConversationService;
use crate::notifications::{self, Notifications};
use crate::reports::ReportService;
use crate::routes::{self, AppState};
use crate::shared::{SharedBudget, SharedTier};
use crate::upstream::{Budget, GenesysClient, LocalBudget};
use secrecy::ExposeSecret;

/// A built, bound, not yet serving proxy.
#[derive(Debug)]
pub struct App {
    listener: TcpListener,
    ops_listener: Option<TcpListener>,
    state: AppState,
    service: routes::FrontDoor,
}

impl App {
    /// Builds the proxy and binds `settings.server.listen`.
    ///
    /// # Errors
    /// A message naming the setting or the address that failed.
    pub async fn build(settings: Settings, connection: GenesysConnection) -> Result<Self, String> {
        settings.validate()?;
        let keys = Arc::new(ApiKeys::new(&settings.clients)?);
        // Report cursors are signed with a key derived from the Genesys secret: stable
        // across restarts, never shown.
        let cursor_secret = connection.credentials.client_secret.clone();
        // Shared mode: one token and one budget for all replicas, through Redis.
        let shared = match settings.redis.url {
            Some(_) => Some(SharedTier::start(&settings.redis, &connection.credentials)?),
            None => None,
        };
        let budget: Arc<dyn Budget> = match &shared {
            Some(shared) => Arc::new(SharedBudget::new(settings.budget.clone(), shared.clone())),
            None => Arc::new(LocalBudget::new(settings.budget.clone())),
        };
        let client = Arc::new(GenesysClient::new(
            &connection.endpoints,
            connection.credentials,
            settings.upstream.clone(),
            budget,
        )?);
        let fetch_timeout = settings
            .server
            .request_timeout()
            .max(Duration::from_secs(1));
        // In shared mode conversations are cached in Redis too, fetches coalesced across
        // replicas.
        let conversations = Arc::new(ConversationService::shared(
            client.clone(),
            settings.cache.clone(),
            fetch_timeout,
            shared.as_ref(),
        ));
        // Report pages and aggregates too (the cursors they lead to are signed with the
        // same key on every replica given the same secret, so any replica follows them).
        let reports = Arc::new(ReportService::shared(
            client.clone(),
            conversations.clone(),
            settings.reports.clone(),
            settings.cache.clone(),
            cursor_secret.expose_secret().as_bytes(),
            fetch_timeout,
            shared.as_ref(),
        ));
        if let Some(shared) = shared {
            client.tokens().attach_shared(shared);
        }
        let listen = settings.server.listen;
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        let ops_listener = match settings.server.ops_listen {
            Some(address) => Some(
                TcpListener::bind(address)
                    .await
                    .map_err(|e| format!("cannot listen on {address} (server.ops_listen): {e}"))?,
            ),
            None => None,
        };
        let notifications = Arc::new(Notifications::new(
            settings.notifications.clone(),
            notifications::Parts {
                api: Arc::new(notifications::api::GenesysChannels::new(
                    client.clone(),
                    settings.notifications.queue_page_size,
                )),
                connector: Arc::new(notifications::transport::WebSocketConnector::new(
                    client.egress(),
                )?),
                sink: Arc::new(notifications::apply::CacheSink::new(
                    conversations.clone(),
                    settings.notifications.pushed_fresh(),
                )),
            },
        ));
        let access_log = settings.telemetry.access_log;
        let state = AppState {
            settings: Arc::new(settings),
            conversations,
            reports,
            client,
            keys,
            http_metrics: Arc::new(crate::metrics::HttpMetrics::new(access_log)),
            notifications,
        };
        Ok(Self {
            listener,
            ops_listener,
            service: routes::service(&state),
            state,
        })
    }

    /// The bound address (the real port when configured with port 0).
    ///
    /// # Panics
    /// If the socket has no local address (it always has once bound).
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The bound address of the operations listener, when `server.ops_listen` is set.
    #[must_use]
    pub fn ops_addr(&self) -> Option<SocketAddr> {
        self.ops_listener.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The shared state (tests and the demo read the cache and budget through it).
    #[must_use]
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then stops accepting and lets open connections
    /// finish their requests for at most the configured grace period.
    ///
    /// # Errors
    /// None today (accept errors are logged and retried); kept for callers that match on it.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let server = &self.state.settings.server;
        let grace = Duration::from_secs(server.shutdown_grace_secs);
        let limits = connection::ConnectionLimits {
            header_read: server.header_read_timeout(),
            idle: server.idle_timeout(),
        };
        let api = accept::Listener {
            name: "api",
            tcp: self.listener,
            max_connections: server.max_connections,
            limits,
        };
        let ops = self.ops_listener.map(|tcp| {
            let listener = accept::Listener {
                name: "ops",
                tcp,
                max_connections: OPS_MAX_CONNECTIONS,
                limits,
            };
            (listener, ops_router::router(&self.state))
        });
        // Genesys notifications run while the proxy serves (nothing when `mode = "off"`).
        let notifications = self.state.notifications.clone();
        notifications.start();
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stopped = |mut stop: tokio::sync::watch::Receiver<bool>| async move {
            let _ = stop.wait_for(|stopped| *stopped).await;
        };
        let signal = async move {
            shutdown.await;
            tracing::info!("shutting down: draining in-flight requests");
            let _ = stop_tx.send(true);
        };
        let ((), api, ops) = tokio::join!(
            signal,
            accept::serve(api, self.service, stopped(stop_rx.clone())),
            async {
                match ops {
                    Some((ops, router)) => Some(accept::serve(ops, router, stopped(stop_rx)).await),
                    None => None,
                }
            },
        );
        let deadline = tokio::time::Instant::now() + grace;
        let (api_done, ops_done) = tokio::join!(api.finish_by(deadline), async {
            match ops {
                Some(ops) => ops.finish_by(deadline).await,
                None => true,
            }
        });
        notifications.stop().await;
        if !(api_done && ops_done) {
            tracing::warn!(
                grace_secs = grace.as_secs(),
                "in-flight requests did not finish in time; stopping"
            );
        }
        // Shared mode: the others stop counting this replica at once.
        if let Some(shared) = self.state.client.tokens().shared() {
            shared.leave().await;
        }
        Ok(())
    }
}

/// Most connections open at once on the operations listener: probes and scrapers need a
/// handful; a cap of its own keeps them answered while the API port is at its cap.
const OPS_MAX_CONNECTIONS: usize = 32;

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
