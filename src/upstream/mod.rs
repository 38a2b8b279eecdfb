//! The only code that speaks to Genesys: the shared OAuth token, the rate budget every
//! call passes through, the typed client, and the classification of what Genesys did.
//! Nothing outside this module knows Genesys URLs, tokens or rate headers.

pub mod budget;
pub mod client;
pub mod error;
pub mod models;
pub mod settings;
pub mod stats;
pub mod token;
mod trace;

pub use budget::{Budget, Class, LocalBudget, Urgency};
pub use client::{CallContext, Fetched, GenesysClient};
pub use error::UpstreamError;
pub use settings::{ClientCredentials, Endpoints, UpstreamSettings};
