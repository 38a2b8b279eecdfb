//! The only code that speaks to Genesys: the shared OAuth token, the rate budget every
//! call passes through, the typed client with its retry policy, and the classification of
//! what Genesys did. Nothing outside this module knows Genesys URLs, tokens or rate
//! headers. Each part renders its own figures for `/metrics`: the client's
//! [`stats::UpstreamStats`], the budget's [`budget::BudgetStats`], the token's
//! [`token::TokenStats`].

pub mod budget;
pub mod client;
pub mod context;
pub mod endpoint;
pub mod error;
pub mod models;
mod retry;
pub mod settings;
pub mod stats;
pub mod token;
mod trace;

pub use budget::{Budget, Class, LocalBudget, Urgency};
pub use client::{Fetched, GenesysClient};
pub use context::CallContext;
pub use endpoint::Endpoint;
pub use error::UpstreamError;
pub use settings::{ClientCredentials, Endpoints, UpstreamSettings};
