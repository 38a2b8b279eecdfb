//! The servers the hit runs measure ([`HitTarget`]): the proxy, the ceiling (a bare
//! service answering the proxy's own bytes) and nginx proxy_cache, each with the header
//! that tells a cache hit and its requests per workload.

use std::net::SocketAddr;
use std::sync::Arc;

use http::HeaderName;

use crate::Req;
use crate::load::Part;

pub(crate) const PROXY: &str = "genesys-proxy";
pub(crate) const CEILING: &str = "ceiling (bare service)";
pub(crate) const NGINX: &str = "nginx proxy_cache";

/// A server the hit runs measure.
pub(crate) struct HitTarget {
    pub(crate) name: &'static str,
    pub(crate) addr: SocketAddr,
    pub(crate) pid: u32,
    /// The header that says whether an answer was a cache hit.
    pub(crate) capture: HeaderName,
    /// The requests of each workload of [`super::WORKLOADS`] (the last is empty without a
    /// many-id run).
    pub(crate) requests: [Arc<Vec<Req>>; 3],
}

impl HitTarget {
    /// Answers of `part` that were cache hits, by this target's own header.
    pub(crate) fn hits(&self, part: &Part) -> u64 {
        part.captured
            .iter()
            .filter(|(value, _)| {
                if self.name == NGINX {
                    value.as_str() == "HIT"
                } else {
                    value.split(';').any(|item| item.trim() == "hit")
                }
            })
            .map(|(_, n)| n)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_proxy_hit_is_recognised_by_its_cache_status_item_not_a_substring() {
        let proxy = HitTarget {
            name: PROXY,
            addr: "127.0.0.1:1".parse().unwrap(),
            pid: 0,
            capture: HeaderName::from_static("cache-status"),
            requests: [
                Arc::new(Vec::new()),
                Arc::new(Vec::new()),
                Arc::new(Vec::new()),
            ],
        };
        let mut part = Part::default();
        for status in [
            "genesys-proxy; hit; ttl=21599",
            "genesys-proxy; fwd=miss; stored; ttl=21599",
            "genesys-proxy; hit; ttl=21598",
        ] {
            part.record_answer(Duration::from_micros(100), 200, 1, Some(status));
        }
        assert_eq!(proxy.hits(&part), 2);
    }
}
