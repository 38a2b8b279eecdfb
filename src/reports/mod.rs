//! Reports over the Genesys analytics API: the translation of report requests into
//! Genesys queries, interval chunks, cursors and aggregation.

mod settings;

pub use settings::ReportSettings;
