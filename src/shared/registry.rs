//! The heartbeat registry: every `redis.heartbeat_secs` a replica writes its id and Redis'
//! own clock into a sorted set, drops the ids not heard of for three heartbeats, and reads
//! how many are left: the live replicas. The heartbeat is also the probe that finds Redis
//! answering again after an outage ([`super::store::Store::rejoin`]). While Redis is
//! down, the last count seen is kept: a replica's local budget is the rate divided by it.

use std::sync::Weak;
use std::sync::atomic::Ordering;

use redis::Script;

use super::SharedTier;

/// Records the replica and counts the live ones, on Redis' clock (no skew between hosts).
const HEARTBEAT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local gone_after = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - gone_after)
redis.call('PEXPIRE', KEYS[1], gone_after * 2)
return redis.call('ZCARD', KEYS[1])
";

/// Drops the replica from the registry (on shutdown).
const LEAVE: &str = "return redis.call('ZREM', KEYS[1], ARGV[1])";

impl SharedTier {
    /// One heartbeat: announces the replica and updates the live count; on success, the
    /// replica (re)joins shared mode.
    pub async fn heartbeat(&self) -> bool {
        let gone_after = self.settings.heartbeat().as_millis() * 3;
        let key = self.keys.replicas.clone();
        let replica = self.replica.clone();
        let live: Result<u32, _> = self
            .store
            .try_run(|mut connection| async move {
                Script::new(HEARTBEAT)
                    .key(key)
                    .arg(replica)
                    .arg(u64::try_from(gone_after).unwrap_or(u64::MAX))
                    .invoke_async(&mut connection)
                    .await
            })
            .await;
        match live {
            Ok(live) => {
                self.live_replicas.store(live.max(1), Ordering::Relaxed);
                self.store.rejoin();
                true
            }
            Err(_) => false,
        }
    }

    /// Leaves the registry (best effort: shutting down).
    pub async fn leave(&self) {
        let key = self.keys.replicas.clone();
        let replica = self.replica.clone();
        let _: Result<u32, _> = self
            .store
            .run(|mut connection| async move {
                Script::new(LEAVE)
                    .key(key)
                    .arg(replica)
                    .invoke_async(&mut connection)
                    .await
            })
            .await;
    }
}

/// Beats until the tier is dropped.
pub(super) async fn beat(tier: Weak<SharedTier>) {
    loop {
        let period = {
            let Some(tier) = tier.upgrade() else {
                return;
            };
            tier.heartbeat().await;
            tier.settings.heartbeat()
        };
        tokio::time::sleep(period).await;
    }
}
