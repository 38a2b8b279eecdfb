//! A simulated Genesys Cloud org that speaks the real Platform API v2 wire format.
//!
//! The real Genesys Cloud cannot be reached from development and CI machines, so every
//! test, benchmark and demo of `genesys-proxy` runs against this simulator. Its fidelity
//! to the wire format (checked by contract tests against the official models) decides
//! whether the proxy works on the day it meets a real org.
//!
//! Tour:
//! - [`config`]: what shapes an org (seed, size, arrivals, credentials, limits, faults).
//! - [`data`]: the seeded org directory and conversations, read-only after start (with
//!   continuous arrivals, some start after the simulator does).
//! - [`render`]: a conversation as Genesys shows it at an instant (real-time and analytics,
//!   the latter from one flat record that queries read too).
//! - [`query`]: the analytics query language (details, with the memo that serves page
//!   after page of a walk, and aggregates).
//! - [`tokens`], [`faults`], [`counters`]: OAuth tokens and rate windows, injected
//!   faults, and the counters tests read.
//! - [`changes`]: when each conversation's document changes (its versions).
//! - [`notifications`]: the Notifications API: channels, subscriptions, the WebSocket and
//!   the events of live conversations.
//! - `http`: the routes (token endpoint, `/api/v2/...`, `/sim/...` control API).
//!
//! Start one in-process with [`Simulator::start`] (port 0) or run the `genesys-sim` binary.

pub mod changes;
pub mod config;
pub mod counters;
pub mod data;
mod error_body;
pub mod faults;
mod http;
pub mod journal;
pub mod notifications;
pub mod query;
pub mod render;
pub mod rng;
mod state;
pub mod tokens;

use std::net::SocketAddr;
use std::sync::Arc;

pub use config::{
    AnalyticsLimits, ExpiredTokenCode, IntervalMatching, NotificationSettings, SimConfig,
};
pub use counters::{CountersSnapshot, endpoint};
pub use faults::{Faults, SocketSilence, Storm};
pub use state::{SeenRequest, SimState};

/// The router of a simulated org, for embedding in another server.
pub fn router(state: Arc<SimState>) -> axum::Router {
    http::router(state)
}

/// A running simulator. Dropping it stops the server.
#[derive(Debug)]
pub struct Simulator {
    state: Arc<SimState>,
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Simulator {
    /// Generates the org and serves it on `127.0.0.1` on a free port.
    ///
    /// # Errors
    /// When the listener cannot be bound.
    pub async fn start(config: SimConfig) -> std::io::Result<Self> {
        Self::start_on(config, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Generates the org and serves it on `addr`.
    ///
    /// # Errors
    /// When the listener cannot be bound.
    pub async fn start_on(config: SimConfig, addr: SocketAddr) -> std::io::Result<Self> {
        let state = Arc::new(SimState::new(config));
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        let app = router(state.clone());
        tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
            if let Err(error) = served {
                tracing::error!(%error, "simulator server stopped");
            }
        });
        Ok(Self {
            state,
            addr,
            shutdown: Some(shutdown),
        })
    }

    /// The address it listens on.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`: both the API and the login base URL.
    #[must_use]
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The shared state: data, counters, faults, clock.
    #[must_use]
    pub fn state(&self) -> &Arc<SimState> {
        &self.state
    }

    /// The generated data.
    #[must_use]
    pub fn data(&self) -> &data::Dataset {
        &self.state.data
    }

    /// A copy of the counters.
    #[must_use]
    pub fn counters(&self) -> CountersSnapshot {
        self.state.counters.snapshot()
    }

    /// Replaces the active faults.
    pub fn set_faults(&self, faults: Faults) {
        self.state.set_faults(faults);
    }

    /// Revokes every issued token.
    pub fn revoke_tokens(&self) {
        self.state.tokens.revoke_all();
    }

    /// Stops serving (also done on drop).
    pub fn stop(&mut self) {
        // Upgraded sockets outlive a graceful shutdown of the HTTP server: cut them.
        self.state.notifications.drop_sockets();
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.stop();
    }
}
