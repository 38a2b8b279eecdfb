//! `genesys-sim`: serves a simulated Genesys Cloud org until Ctrl-C.
//!
//! Flags set the org's data, credentials, limits and starting faults; faults can also be
//! changed while it runs through `PUT /sim/faults`.

use std::net::SocketAddr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::{Parser, ValueEnum};
use genesys_sim::{
    AnalyticsLimits, ExpiredTokenCode, Faults, IntervalMatching, NotificationSettings, SimConfig,
    Simulator, Storm,
};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Matching {
    /// Conversations that started on a UTC day the interval touches (Genesys' wording).
    TouchedDay,
    /// Conversations that started inside the interval.
    Exact,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ExpiredCode {
    BadCredentials,
    CredentialsExpired,
}

/// A simulated Genesys Cloud org speaking the Platform API v2 wire format.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:9090")]
    listen: SocketAddr,
    /// Seed of all generated data.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Number of historical conversations (they start over the --days before the anchor).
    #[arg(long, default_value_t = 2_000)]
    conversations: usize,
    /// Days, ending at the anchor, over which historical conversations start.
    #[arg(long, default_value_t = 30)]
    days: u32,
    /// Number of live conversations (started in the last minutes, still running). Ignored
    /// with --continuous.
    #[arg(long, default_value_t = 20)]
    live: usize,
    /// Conversations keep arriving at the historical rate (--conversations / --days a day)
    /// up to the anchor and for two days after it; each one appears in the API when the
    /// clock reaches its start, runs, then ends.
    #[arg(long)]
    continuous: bool,
    /// Arrivals follow a contact-centre day: busy 08:00-18:00 UTC, quiet at night.
    #[arg(long)]
    diurnal: bool,
    /// Instant the data is generated around (RFC 3339); defaults to now.
    #[arg(long)]
    anchor: Option<DateTime<Utc>>,
    /// Accepted OAuth client id.
    #[arg(long, default_value = genesys_sim::config::DEFAULT_CLIENT_ID)]
    client_id: String,
    /// Accepted OAuth client secret.
    #[arg(long, default_value = genesys_sim::config::DEFAULT_CLIENT_SECRET)]
    client_secret: String,
    /// `expires_in` of issued tokens, in seconds.
    #[arg(long, default_value_t = 86_400)]
    token_ttl: u64,
    /// Requests per token per rate window.
    #[arg(long, default_value_t = 300)]
    rate_limit: u32,
    /// Rate window in seconds.
    #[arg(long, default_value_t = 60)]
    rate_window: u64,
    /// Largest details page size.
    #[arg(long, default_value_t = 100)]
    max_page_size: u32,
    /// Longest interval of a details or aggregates query, in days.
    #[arg(long, default_value_t = 31)]
    max_interval_days: u64,
    /// How a details query matches its interval.
    #[arg(long, value_enum, default_value_t = Matching::TouchedDay)]
    interval_matching: Matching,
    /// ErrorBody code of a 401 for an expired token.
    #[arg(long, value_enum, default_value_t = ExpiredCode::BadCredentials)]
    expired_token_code: ExpiredCode,
    /// Latency added to every call, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Error rate as STATUS=PROBABILITY (500, 502, 503 or 504), repeatable.
    #[arg(long = "error-rate", value_parser = parse_rate)]
    error_rates: Vec<(u16, f64)>,
    /// Start in a full outage (every call answers 503).
    #[arg(long)]
    outage: bool,
    /// Start in a 429 storm with this Retry-After (seconds).
    #[arg(long)]
    storm_retry_after: Option<u64>,
    /// Lifetime of a notification channel, in seconds (Genesys: 24 hours).
    #[arg(long, default_value_t = 86_400)]
    channel_lifetime_secs: u64,
    /// Time between two WebSocket heartbeats, in milliseconds.
    #[arg(long, default_value_t = 30_000)]
    heartbeat_interval_ms: u64,
    /// How often changed conversations are looked for and their events sent, in
    /// milliseconds (an event leaves at most this long after its change).
    #[arg(long, default_value_t = 50)]
    event_tick_ms: u64,
}

fn parse_rate(text: &str) -> Result<(u16, f64), String> {
    let (status, rate) = text
        .split_once('=')
        .ok_or_else(|| format!("expected STATUS=PROBABILITY, got {text}"))?;
    Ok((
        status
            .parse()
            .map_err(|e| format!("status {status}: {e}"))?,
        rate.parse()
            .map_err(|e| format!("probability {rate}: {e}"))?,
    ))
}

impl Args {
    fn into_config(self) -> Result<SimConfig, String> {
        let faults = Faults {
            latency_ms: self.latency_ms,
            error_rates: self.error_rates.into_iter().collect(),
            outage: self.outage,
            storm: self.storm_retry_after.map(|retry_after_secs| Storm {
                retry_after_secs,
                remaining: None,
            }),
            ..Faults::default()
        };
        faults.validate()?;
        if self.rate_limit == 0 || self.rate_window == 0 || self.max_page_size == 0 {
            return Err(
                "--rate-limit, --rate-window and --max-page-size must be at least 1".into(),
            );
        }
        if self.channel_lifetime_secs == 0
            || self.heartbeat_interval_ms == 0
            || self.event_tick_ms == 0
        {
            return Err(
                "--channel-lifetime-secs, --heartbeat-interval-ms and --event-tick-ms must be at least 1"
                    .into(),
            );
        }
        Ok(SimConfig {
            seed: self.seed,
            conversations: self.conversations,
            days: self.days,
            live_conversations: self.live,
            continuous: self.continuous,
            diurnal: self.diurnal,
            anchor: self.anchor,
            client_id: self.client_id,
            client_secret: self.client_secret,
            token_ttl: Duration::from_secs(self.token_ttl),
            rate_limit: self.rate_limit,
            rate_window: Duration::from_secs(self.rate_window),
            limits: AnalyticsLimits {
                max_page_size: self.max_page_size,
                max_interval: Duration::from_secs(self.max_interval_days * 86_400),
                ..AnalyticsLimits::default()
            },
            interval_matching: match self.interval_matching {
                Matching::TouchedDay => IntervalMatching::StartedOnTouchedDay,
                Matching::Exact => IntervalMatching::StartedInInterval,
            },
            expired_token_code: match self.expired_token_code {
                ExpiredCode::BadCredentials => ExpiredTokenCode::BadCredentials,
                ExpiredCode::CredentialsExpired => ExpiredTokenCode::CredentialsExpired,
            },
            faults,
            notifications: NotificationSettings {
                channel_lifetime: Duration::from_secs(self.channel_lifetime_secs),
                heartbeat_interval: Duration::from_millis(self.heartbeat_interval_ms),
                event_tick: Duration::from_millis(self.event_tick_ms),
                ..NotificationSettings::default()
            },
            ..SimConfig::default()
        })
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let listen = args.listen;
    let config = match args.into_config() {
        Ok(config) => config,
        Err(message) => {
            eprintln!("genesys-sim: {message}");
            return std::process::ExitCode::from(2);
        }
    };
    let (client_id, conversations) = (config.client_id.clone(), config.conversations);
    let arrivals = match (config.continuous, config.diurnal) {
        (false, false) => "",
        (true, false) => ", arriving continuously",
        (false, true) => ", diurnal",
        (true, true) => ", arriving continuously, diurnal",
    };
    let sim = match Simulator::start_on(config, listen).await {
        Ok(sim) => sim,
        Err(error) => {
            eprintln!("genesys-sim: cannot listen on {listen}: {error}");
            return std::process::ExitCode::from(1);
        }
    };
    println!(
        "genesys-sim: simulated Genesys Cloud org on {} ({conversations} conversations{arrivals}, client id {client_id})",
        sim.base_url()
    );
    println!("  token:    POST {}/oauth/token", sim.base_url());
    println!(
        "  notify:   POST {}/api/v2/notifications/channels  (WebSocket at its connectUri)",
        sim.base_url()
    );
    println!(
        "  control:  {}/sim/org  {}/sim/faults  {}/sim/counters",
        sim.base_url(),
        sim.base_url(),
        sim.base_url()
    );
    stop_signal().await;
    std::process::ExitCode::SUCCESS
}

/// Ctrl-C or SIGTERM (a container's stop signal).
async fn stop_signal() {
    #[cfg(unix)]
    {
        if let Ok(mut terminate) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(args: &[&str]) -> SimConfig {
        let args = std::iter::once("genesys-sim").chain(args.iter().copied());
        Args::try_parse_from(args)
            .expect("valid flags")
            .into_config()
            .expect("a valid config")
    }

    #[test]
    fn arrivals_are_historical_unless_asked_otherwise() {
        let plain = config(&[]);
        assert!(!plain.continuous && !plain.diurnal);
        let both = config(&[
            "--continuous",
            "--diurnal",
            "--conversations",
            "90000",
            "--days",
            "30",
        ]);
        assert!(both.continuous && both.diurnal);
        assert_eq!((both.conversations, both.days), (90_000, 30));
    }
}
