//! [`App`]: builds the proxy from settings and a Genesys connection, binds its own
//! listener (port 0 in tests), and serves until a shutdown signal, draining in-flight
//! requests. `main`, the tests, the benchmarks and the demo all build this same `App`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::auth::ApiKeys;
use crate::config::{GenesysConnection, Settings};
use crate::conversations::ConversationService;
use crate::reports::ReportService;
use crate::routes::{self, AppState};
use crate::upstream::{GenesysClient, LocalBudget};
use secrecy::ExposeSecret;

/// A built, bound, not yet serving proxy.
#[derive(Debug)]
pub struct App {
    listener: TcpListener,
    state: AppState,
    service: routes::ProxyService,
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
        let budget = Arc::new(LocalBudget::new(settings.budget.clone()));
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
        let conversations = Arc::new(ConversationService::new(
            client.clone(),
            settings.cache.clone(),
            fetch_timeout,
        ));
        let reports = Arc::new(ReportService::new(
            client.clone(),
            conversations.clone(),
            settings.reports.clone(),
            settings.cache.clone(),
            cursor_secret.expose_secret().as_bytes(),
            fetch_timeout,
        ));
        let listen = settings.server.listen;
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        let state = AppState {
            settings: Arc::new(settings),
            conversations,
            reports,
            client,
            keys,
            http_metrics: Arc::default(),
        };
        Ok(Self {
            listener,
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

    /// The shared state (tests and the demo read the cache and budget through it).
    #[must_use]
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then lets in-flight requests finish for at most
    /// the configured grace period.
    ///
    /// # Errors
    /// When the server fails.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let grace = Duration::from_secs(self.state.settings.server.shutdown_grace_secs);
        let service = axum::ServiceExt::<axum::extract::Request>::into_make_service(self.service);
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        // No Nagle delay: a response larger than one segment would otherwise wait for the
        // client's (possibly delayed) ACK before its last, partial segment goes out.
        let listener = axum::serve::ListenerExt::tap_io(self.listener, |tcp| {
            if let Err(error) = tcp.set_nodelay(true) {
                tracing::debug!(%error, "cannot set TCP_NODELAY on a connection");
            }
        });
        let server = axum::serve(listener, service).with_graceful_shutdown(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
            tracing::info!("shutting down: draining in-flight requests");
        });
        let mut stopped = stop_rx.clone();
        tokio::select! {
            result = server => result,
            () = async move {
                let _ = stopped.wait_for(|s| *s).await;
                tokio::time::sleep(grace).await;
            } => {
                tracing::warn!(grace_secs = grace.as_secs(), "in-flight requests did not finish in time; stopping");
                Ok(())
            }
        }
    }
}

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
