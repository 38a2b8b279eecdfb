//! The command line of `bench-run` (bench/USAGE.txt): [`Options`], their defaults and what
//! `--quick` shortens.

use std::path::PathBuf;

use anyhow::{Context as _, Result, bail, ensure};

/// The scenarios `--only` may name, in the order they run.
pub(crate) const SCENARIOS: [&str; 7] = [
    "hits",
    "coalescing",
    "budget",
    "memory",
    "dashboards",
    "wallboard",
    "replicas",
];

#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) bin_dir: PathBuf,
    /// Where genesys-sim is, when not beside the proxy.
    pub(crate) sim_bin_dir: Option<PathBuf>,
    pub(crate) bench_bin_dir: PathBuf,
    pub(crate) nginx: PathBuf,
    /// The `redis-server` of the replicas scenario.
    pub(crate) redis_server: PathBuf,
    pub(crate) work: PathBuf,
    pub(crate) pin: bool,
    pub(crate) connections: usize,
    pub(crate) hit_warmup: f64,
    pub(crate) hit_secs: f64,
    /// Measured seconds of each paced run (0: none).
    pub(crate) paced_secs: f64,
    pub(crate) rounds: usize,
    /// Cached conversations of the many-id hit run (0: none).
    pub(crate) many_ids: usize,
    /// API keys of the many-id hit run.
    pub(crate) many_keys: usize,
    pub(crate) coalesce_requests: usize,
    pub(crate) coalesce_latency_ms: u64,
    pub(crate) budget_rate: u32,
    pub(crate) budget_secs: u64,
    pub(crate) oversubscription: u32,
    pub(crate) mem_points: Vec<usize>,
    pub(crate) mem_budgets_mib: Vec<u64>,
    pub(crate) conversations: usize,
    pub(crate) dash_count: usize,
    pub(crate) dash_every_secs: u64,
    pub(crate) dash_secs: u64,
    /// `--conversations` of the wallboard run's simulator (32000 a day: about 200 live).
    pub(crate) wall_conversations: usize,
    pub(crate) wall_clients: usize,
    pub(crate) wall_every_secs: u64,
    pub(crate) wall_secs: u64,
    /// Replicas sharing one Redis in the replicas scenario's budget run.
    pub(crate) replicas: usize,
    /// Conversations one replica fetches and another then asks for (replicas scenario).
    pub(crate) second_tier_ids: usize,
    pub(crate) out: Option<PathBuf>,
    pub(crate) only: Vec<String>,
}

impl Options {
    pub(crate) fn parse() -> Result<Self> {
        let here = std::env::current_exe()?;
        let bench_bin_dir = here.parent().context("a directory")?.to_path_buf();
        let mut o = Self {
            bin_dir: PathBuf::from("target/release"),
            sim_bin_dir: None,
            bench_bin_dir,
            nginx: PathBuf::from("/usr/sbin/nginx"),
            redis_server: PathBuf::from("/usr/bin/redis-server"),
            work: std::env::temp_dir().join(format!("genesys-bench-{}", std::process::id())),
            pin: true,
            connections: 64,
            hit_warmup: 1.0,
            hit_secs: 6.0,
            paced_secs: 3.0,
            rounds: 5,
            many_ids: 10_000,
            many_keys: 50,
            coalesce_requests: 1000,
            coalesce_latency_ms: 200,
            budget_rate: 300,
            budget_secs: 60,
            oversubscription: 10,
            mem_points: vec![10_000, 100_000],
            mem_budgets_mib: vec![1024, 64],
            conversations: 110_000,
            dash_count: 50,
            dash_every_secs: 10,
            dash_secs: 180,
            wall_conversations: 32_000,
            wall_clients: 20,
            wall_every_secs: 2,
            wall_secs: 120,
            replicas: 3,
            second_tier_ids: 200,
            out: None,
            only: Vec::new(),
        };
        let mut quick = false;
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let mut value = || args.next().with_context(|| format!("a value after {arg}"));
            match arg.as_str() {
                "--bin-dir" => o.bin_dir = value()?.into(),
                "--sim-bin-dir" => o.sim_bin_dir = Some(value()?.into()),
                "--nginx" => o.nginx = value()?.into(),
                "--redis-server" => o.redis_server = value()?.into(),
                "--work" => o.work = value()?.into(),
                "--out" => o.out = Some(value()?.into()),
                "--no-pin" => o.pin = false,
                "--quick" => quick = true,
                "--connections" => o.connections = value()?.parse()?,
                "--hit-secs" => o.hit_secs = value()?.parse()?,
                "--rounds" => o.rounds = value()?.parse()?,
                "--paced-secs" => o.paced_secs = value()?.parse()?,
                "--many-ids" => o.many_ids = value()?.parse()?,
                "--many-keys" => o.many_keys = value()?.parse()?,
                "--budget-rate" => o.budget_rate = value()?.parse()?,
                "--budget-secs" => o.budget_secs = value()?.parse()?,
                "--dash-secs" => o.dash_secs = value()?.parse()?,
                "--dashboards" => o.dash_count = value()?.parse()?,
                "--wall-conversations" => o.wall_conversations = value()?.parse()?,
                "--wall-clients" => o.wall_clients = value()?.parse()?,
                "--wall-every-secs" => o.wall_every_secs = value()?.parse()?,
                "--wall-secs" => o.wall_secs = value()?.parse()?,
                "--replicas" => o.replicas = value()?.parse()?,
                "--second-tier-ids" => o.second_tier_ids = value()?.parse()?,
                "--only" => o.only = value()?.split(',').map(str::to_owned).collect(),
                "-h" | "--help" => {
                    println!("{}", include_str!("../../USAGE.txt"));
                    std::process::exit(0);
                }
                other => bail!("unknown argument {other:?} (see --help)"),
            }
        }
        if quick {
            o.hit_warmup = 1.0;
            o.hit_secs = o.hit_secs.min(3.0);
            o.paced_secs = o.paced_secs.min(2.0);
            o.rounds = 1;
            o.many_ids = o.many_ids.min(2_000);
            o.budget_secs = o.budget_secs.min(15);
            o.mem_points = vec![2_000, 20_000];
            o.mem_budgets_mib = vec![1024, 16];
            o.conversations = 22_000;
            o.dash_secs = o.dash_secs.min(60);
            o.wall_conversations = o.wall_conversations.min(8_000);
            o.wall_secs = o.wall_secs.min(30);
            o.second_tier_ids = o.second_tier_ids.min(50);
        }
        ensure!(o.dash_count >= 1, "--dashboards must be at least 1");
        ensure!(o.rounds >= 1, "--rounds must be at least 1");
        ensure!(o.many_keys >= 1, "--many-keys must be at least 1");
        ensure!(o.dash_secs >= 1, "--dash-secs must be at least 1");
        ensure!(
            o.wall_clients >= 1 && o.wall_every_secs >= 1 && o.wall_secs >= 1,
            "--wall-clients, --wall-every-secs and --wall-secs must be at least 1"
        );
        ensure!(
            o.replicas >= 2 && o.second_tier_ids >= 1,
            "--replicas must be at least 2 and --second-tier-ids at least 1"
        );
        for name in &o.only {
            ensure!(
                SCENARIOS.contains(&name.as_str()),
                "--only: unknown scenario {name:?} (one of {})",
                SCENARIOS.join(",")
            );
        }
        Ok(o)
    }

    /// The simulator's binary.
    pub(crate) fn sim_bin(&self) -> PathBuf {
        self.sim_bin_dir
            .as_ref()
            .unwrap_or(&self.bin_dir)
            .join("genesys-sim")
    }

    pub(crate) fn wants(&self, scenario: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|s| s == scenario)
    }
}
