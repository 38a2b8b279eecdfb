//! genesys-proxy: one fast, safe door to Genesys Cloud conversation data.
//!
//! Data flows one way: route -> cache -> upstream -> Genesys.
//!
//! Tour:
//! - [`app`]: builds the service from settings (used by `main`, tests, benches, demo).
//! - [`config`]: typed settings (defaults < TOML file < environment), validated at start.
//! - [`routes`]: inbound HTTP only (handlers, middleware, OpenAPI docs).
//! - [`auth`]: internal clients, API keys, scopes, fair-share weights.
//! - [`error`]: every error as `application/problem+json`.
//! - [`conversations`]: the cached real-time lookup and its simplified view.
//! - [`notifications`]: Genesys events keep cached conversations fresh (WebSocket).
//! - [`cache`]: byte-bounded store, single-flight fetches, stale serving, freshness rules.
//! - [`reports`]: historical reports over the analytics API.
//! - [`upstream`]: the only code that speaks to Genesys (token, budget, client).
//! - [`shared`]: shared mode, opt-in with `[redis]`: one token and one budget for all
//!   replicas, through Redis.
//! - [`telemetry`]: logs and traces; [`metrics`]: the Prometheus exposition.
//! - [`demo`]: `--demo`, the simulator in-process.

pub mod access_log;
pub mod app;
pub mod auth;
pub mod cache;
pub mod config;
pub mod conversations;
#[cfg(feature = "demo")]
pub mod demo;
pub mod egress;
pub mod error;
pub mod metrics;
pub mod notifications;
pub mod reports;
pub mod routes;
pub mod shared;
pub mod status;
pub mod telemetry;
pub mod upstream;

pub use app::App;
pub use config::Settings;
