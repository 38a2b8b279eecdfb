//! Shared mode through Redis Sentinel (`[redis.sentinel]`): replicas that know only the
//! sentinels and the master's name find the master, share one token through it and
//! subscribe to its pub/sub channel; when the master dies and Sentinel promotes its
//! replica, or a `SENTINEL FAILOVER` moves the master while the old one still takes
//! writes, they follow the sentinels to the new master (their commands, and their pub/sub
//! connections) and keep sharing one token there. The master's and the sentinel's
//! passwords are used, and never shown nor logged.

mod support;

use genesys_proxy::Settings;
use genesys_sim::Simulator;
use support::capture::logs_at_trace;
use support::redis::{RedisServer, Replica, shared_settings};
use support::{eventually, sim_config};

const MASTER: &str = "mymaster";

/// Shared settings that name the master and the sentinel only.
fn sentinel_settings(sentinel: &RedisServer) -> Settings {
    let mut settings = shared_settings(sentinel);
    settings.redis.url = Some(format!("redis://{MASTER}"));
    settings.redis.sentinel.master = Some(MASTER.to_owned());
    settings.redis.sentinel.nodes = vec![sentinel.url()];
    settings
}

fn paths(sim: &Simulator, from: usize, n: usize) -> Vec<String> {
    sim.data()
        .conversations
        .iter()
        .skip(from)
        .take(n)
        .map(|c| format!("/conversations/{}", c.id))
        .collect()
}

/// Sends `paths` at once, spread over `replicas`: all must answer 200.
async fn all_answer(replicas: &[Replica], paths: &[String]) {
    let requests = paths.iter().enumerate().map(|(i, path)| {
        let replica = &replicas[i % replicas.len()];
        async move { replica.get(path).await }
    });
    for reply in futures_util::future::join_all(requests).await {
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
}

/// How many connections are subscribed to the cache-filled channel on `redis`.
fn filled_subscribers(redis: &RedisServer) -> u64 {
    let channels = redis
        .command(&["--raw", "PUBSUB", "CHANNELS", "*:cache-filled"])
        .unwrap_or_default();
    let Some(channel) = channels.lines().find(|c| !c.is_empty()) else {
        return 0;
    };
    redis
        .command(&["--raw", "PUBSUB", "NUMSUB", channel])
        .and_then(|reply| reply.lines().nth(1).and_then(|n| n.trim().parse().ok()))
        .unwrap_or(0)
}

async fn start_replicas(sim: &Simulator, sentinel: &RedisServer) -> Vec<Replica> {
    let mut replicas = Vec::new();
    for _ in 0..2 {
        replicas.push(Replica::start(sim, sentinel_settings(sentinel)).await);
    }
    for replica in &replicas {
        eventually(
            "the replica found the master through the sentinel",
            || async { replica.admin().await["shared"]["mode"] == "shared" },
        )
        .await;
    }
    replicas
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_find_the_master_through_the_sentinel_and_share_one_token() {
    let test = "replicas_find_the_master_through_the_sentinel";
    let Some(master) = RedisServer::start(test) else {
        return;
    };
    let Some(sentinel) = RedisServer::start_sentinel(test, &master, MASTER) else {
        return;
    };
    let sim = Simulator::start(sim_config()).await.expect("sim");
    let replicas = start_replicas(&sim, &sentinel).await;
    all_answer(&replicas, &paths(&sim, 0, 12)).await;
    assert_eq!(
        sim.counters().tokens_issued,
        1,
        "one token for both replicas"
    );
    for replica in &replicas {
        let admin = replica.admin().await;
        assert_eq!(
            admin["shared"]["redis"],
            format!("redis://{MASTER} via sentinels {}", sentinel.url()),
            "{admin}"
        );
        assert_eq!(
            admin["shared"]["token"]["this_replica_uses_it"], true,
            "{admin}"
        );
        assert_eq!(admin["shared"]["rejoins"], 0, "a first join is no rejoin");
    }
    // The master holds the token, and both replicas' pub/sub connections.
    assert!(
        master.key_ending(":token").is_some(),
        "the token is in Redis"
    );
    eventually("both replicas subscribe on the master", || async {
        filled_subscribers(&master) == 2
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_master_and_sentinel_passwords_are_used_and_never_shown() {
    let test = "the_master_and_sentinel_passwords_are_used_and_never_shown";
    let (master_secret, sentinel_secret) = ("m4ster-pw-8e1f", "s3ntinel-pw-41c7");
    let capture = logs_at_trace();
    let Some(master) = RedisServer::start_with_password(test, master_secret) else {
        return;
    };
    let Some(sentinel) =
        RedisServer::start_sentinel_with_password(test, &master, MASTER, Some(sentinel_secret))
    else {
        return;
    };
    let sim = Simulator::start(sim_config()).await.expect("sim");
    let with_passwords = |sentinel_password: &str| {
        let mut settings = sentinel_settings(&sentinel);
        settings.redis.url = Some(format!("redis://:{master_secret}@{MASTER}/0"));
        settings.redis.sentinel.nodes = vec![format!(
            "redis://:{sentinel_password}@127.0.0.1:{}",
            sentinel.port()
        )];
        settings
    };
    let mut replicas = Vec::new();
    for _ in 0..2 {
        replicas.push(Replica::start(&sim, with_passwords(sentinel_secret)).await);
    }
    // A replica with a wrong sentinel password runs locally, and says why.
    let refused = Replica::start(&sim, with_passwords("wrong-pw-3b9d")).await;
    let mut shown = String::new();
    for replica in &replicas {
        eventually("the replica found the master", || async {
            replica.admin().await["shared"]["mode"] == "shared"
        })
        .await;
    }
    all_answer(&replicas, &paths(&sim, 0, 6)).await;
    assert_eq!(
        sim.counters().tokens_issued,
        1,
        "one token for both replicas"
    );
    eventually("the refused replica says why", || async {
        refused.admin().await["shared"]["detail"]
            == "no master from the sentinels: authentication failed"
    })
    .await;
    for replica in replicas.iter().chain([&refused]) {
        for path in ["/admin/cache", "/readyz", "/metrics"] {
            shown.push_str(&replica.get(path).await.text());
        }
    }
    assert!(
        shown.contains(&format!(
            "redis://:***@{MASTER}/0 via sentinels redis://:***@127.0.0.1"
        )),
        "{shown}"
    );
    let logs = capture.text();
    assert!(
        logs.contains("the sentinels name the master"),
        "logs were captured"
    );
    for secret in [master_secret, sentinel_secret, "wrong-pw-3b9d"] {
        assert!(!shown.contains(secret), "a password is shown");
        assert!(!logs.contains(secret), "a password is logged");
    }
}

/// A master, its standby (a replica the sentinel knows), the sentinel, and two proxy
/// replicas sharing one token through them.
struct Failover {
    master: RedisServer,
    standby: RedisServer,
    sentinel: RedisServer,
    sim: Simulator,
    replicas: Vec<Replica>,
}

impl Failover {
    async fn start(test: &str) -> Option<Self> {
        let master = RedisServer::start(test)?;
        let standby = RedisServer::start_replica_of(test, &master)?;
        let sentinel = RedisServer::start_sentinel(test, &master, MASTER)?;
        let standby_port = standby.port().to_string();
        eventually("the sentinel knows the standby", || async {
            sentinel
                .command(&["SENTINEL", "REPLICAS", MASTER])
                .is_some_and(|replicas| replicas.contains(&standby_port))
        })
        .await;
        let sim = Simulator::start(sim_config()).await.expect("sim");
        let replicas = start_replicas(&sim, &sentinel).await;
        all_answer(&replicas, &paths(&sim, 0, 6)).await;
        assert_eq!(sim.counters().tokens_issued, 1);
        Some(Self {
            master,
            standby,
            sentinel,
            sim,
            replicas,
        })
    }

    /// Waits until the sentinel names the standby, then until both replicas heartbeat to
    /// it: their registry, emptied on the promoted standby, fills again with both (the
    /// standby no longer replicates anything, so only their own writes can refill it).
    /// Then each is in shared mode.
    async fn replicas_follow_to_the_standby(&self) {
        let standby_port = self.standby.port().to_string();
        eventually("the sentinel names the standby as master", || async {
            self.sentinel
                .command(&["--raw", "SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER])
                .is_some_and(|address| address.lines().nth(1) == Some(standby_port.as_str()))
        })
        .await;
        let registry = self
            .standby
            .key_ending(":replicas")
            .expect("the registry was replicated to the standby");
        assert_eq!(
            self.standby
                .command(&["--raw", "DEL", &registry])
                .as_deref(),
            Some("1"),
            "the promoted standby takes writes"
        );
        eventually("both replicas heartbeat to the promoted master", || async {
            self.standby
                .command(&["--raw", "ZCARD", &registry])
                .is_some_and(|n| n == "2")
        })
        .await;
        for replica in &self.replicas {
            eventually("the replica is in shared mode", || async {
                replica.admin().await["shared"]["mode"] == "shared"
            })
            .await;
        }
    }

    /// Genesys forgets the token: one new token for both replicas, stored on the standby.
    async fn replicas_share_one_new_token_on_the_standby(&self) {
        let token_key = self
            .standby
            .key_ending(":token")
            .expect("the token was replicated to the standby");
        let sealed_before = self.standby.raw(&token_key);
        self.sim.revoke_tokens();
        all_answer(&self.replicas, &paths(&self.sim, 6, 6)).await;
        assert_eq!(
            self.sim.counters().tokens_issued,
            2,
            "one new token for both"
        );
        assert_ne!(
            self.standby.raw(&token_key),
            sealed_before,
            "the new token is stored on the promoted master"
        );
        for replica in &self.replicas {
            let admin = replica.admin().await;
            assert_eq!(
                admin["shared"]["token"]["this_replica_uses_it"], true,
                "{admin}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn when_the_master_dies_replicas_follow_the_sentinel_to_the_promoted_one() {
    let Some(mut failover) = Failover::start("when_the_master_dies_replicas_follow").await else {
        return;
    };
    failover.master.stop();
    failover.replicas_follow_to_the_standby().await;
    // Their pub/sub connections followed.
    eventually("both replicas subscribe on the promoted master", || async {
        filled_subscribers(&failover.standby) == 2
    })
    .await;
    failover.replicas_share_one_new_token_on_the_standby().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn after_a_sentinel_failover_replicas_leave_the_demoted_master_for_the_promoted_one() {
    let Some(failover) = Failover::start("after_a_sentinel_failover_replicas_leave").await else {
        return;
    };
    eventually("the sentinel starts a failover", || async {
        failover
            .sentinel
            .command(&["SENTINEL", "FAILOVER", MASTER])
            .as_deref()
            == Some("OK")
    })
    .await;
    failover.replicas_follow_to_the_standby().await;
    // The old master lives on, as a replica of the new one.
    eventually("the old master is demoted", || async {
        failover
            .master
            .command(&["--raw", "ROLE"])
            .is_some_and(|role| role.lines().next() == Some("slave"))
    })
    .await;
    // The sentinel closed their pub/sub connections to it: they subscribe on the new one.
    eventually("both replicas subscribe on the promoted master", || async {
        filled_subscribers(&failover.standby) == 2
    })
    .await;
    failover.replicas_share_one_new_token_on_the_standby().await;
}
