//! Benchmark tooling for genesys-proxy: a keep-alive HTTP/1.1 load generator (closed loop,
//! each-once, all-at-once and open-loop modes, per-request latency in an HDR histogram), a
//! paced loop timed from each request's scheduled send, the arithmetic of per-round ratios,
//! a small control-plane client, and [`run`], the orchestrator of `bench/run`. The load
//! generator is used in-process by `bench-run` and standalone by `loadgen`.

pub mod client;
pub mod load;
pub mod paced;
mod raw;
pub mod rounds;
pub mod run;

pub use client::Control;
pub use load::{Report, Req};
