//! genesys-proxy: one fast, safe door to Genesys Cloud conversation data.
//!
//! Tour:
//! - [`upstream`]: the only code that speaks to Genesys (token, budget, client).

pub mod upstream;
