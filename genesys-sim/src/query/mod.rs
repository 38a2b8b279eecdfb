//! The analytics query language: intervals and periods, filters and their vocabularies,
//! the details query (and the memo that serves its pages) and the aggregates query.

pub mod aggregates;
pub mod details;
pub mod filter;
pub mod subjects;
pub mod time;
pub mod vocabulary;
pub mod walks;
