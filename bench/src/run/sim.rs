//! The simulator (`genesys-sim`): starting one, its token, its call counters and fault
//! settings, and every conversation it holds, listed through its details query.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use anyhow::{Context as _, Result, ensure};
use chrono::{DateTime, SecondsFormat, Utc};
use http::Method;
use serde::Deserialize;
use tokio::time::Instant;

use super::options::Options;
use super::process::{Proc, free_port, spawn, wait_ready};
use crate::Control;

const SIM_BASIC: &str = "Basic c2ltLWNsaWVudDpzaW0tc2VjcmV0"; // sim-client:sim-secret

/// A running simulator, stopped when dropped.
pub(crate) struct Sim {
    /// Held for its `Drop`: it stops the simulator.
    _proc: Proc,
    pub(crate) base: String,
    pub(crate) addr: SocketAddr,
}

pub(crate) async fn start_sim(
    o: &Options,
    http: &Control,
    name: &str,
    cpu: Option<&str>,
    extra: &[&str],
) -> Result<Sim> {
    let port = free_port()?;
    let mut args = vec!["--listen".to_owned(), format!("127.0.0.1:{port}")];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let started = Instant::now();
    let mut proc = spawn(o, name, cpu, &o.sim_bin(), &args, &[])?;
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(http, &mut proc, &format!("{base}/sim/org"), 120).await?;
    eprintln!(
        "bench: {name} ready in {:.1} s, RSS {} MiB ({})",
        started.elapsed().as_secs_f64(),
        proc.status_kib("VmRSS:").unwrap_or(0) / 1024,
        extra.join(" ")
    );
    Ok(Sim {
        _proc: proc,
        addr: format!("127.0.0.1:{port}").parse()?,
        base,
    })
}

pub(crate) async fn sim_token(http: &Control, sim: &Sim) -> Result<String> {
    let answer = http
        .send(
            Method::POST,
            &format!("{}/oauth/token", sim.base),
            &[
                ("authorization", SIM_BASIC),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            "grant_type=client_credentials",
        )
        .await?;
    ensure!(answer.status.is_success(), "token: {}", answer.text());
    Ok(answer.json()?["access_token"]
        .as_str()
        .context("access_token")?
        .to_owned())
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct Counters {
    pub(crate) calls: BTreeMap<String, BTreeMap<u16, u64>>,
    pub(crate) rate_limited: u64,
}

impl Counters {
    pub(crate) fn api_calls(&self) -> u64 {
        self.calls
            .iter()
            .filter(|(k, _)| k.as_str() != "oauth_token")
            .flat_map(|(_, by)| by.values())
            .sum()
    }

    pub(crate) fn calls_to(&self, endpoint: &str) -> u64 {
        self.calls.get(endpoint).map_or(0, |by| by.values().sum())
    }

    pub(crate) fn by_status(&self) -> BTreeMap<u16, u64> {
        let mut out = BTreeMap::new();
        for (k, by) in &self.calls {
            if k != "oauth_token" {
                for (s, n) in by {
                    *out.entry(*s).or_default() += n;
                }
            }
        }
        out
    }
}

pub(crate) async fn counters(http: &Control, sim: &Sim) -> Result<Counters> {
    Ok(serde_json::from_slice(
        &http
            .get(&format!("{}/sim/counters", sim.base), &[])
            .await?
            .body,
    )?)
}

pub(crate) async fn reset_counters(http: &Control, sim: &Sim) -> Result<()> {
    http.send(
        Method::DELETE,
        &format!("{}/sim/counters", sim.base),
        &[],
        "",
    )
    .await?;
    Ok(())
}

pub(crate) async fn set_latency(http: &Control, sim: &Sim, ms: u64) -> Result<()> {
    let answer = http
        .send(
            Method::PUT,
            &format!("{}/sim/faults", sim.base),
            &[("content-type", "application/json")],
            format!("{{\"latency_ms\": {ms}}}"),
        )
        .await?;
    ensure!(answer.status.is_success(), "faults: {}", answer.text());
    Ok(())
}

/// A conversation as listed by the analytics details query.
#[derive(Debug, Clone)]
pub(crate) struct Listed {
    pub(crate) id: String,
    pub(crate) start: DateTime<Utc>,
    pub(crate) ended: bool,
    pub(crate) voice: bool,
}

#[derive(Deserialize)]
struct DetailsPage {
    #[serde(default)]
    conversations: Vec<DetailsConversation>,
}

#[derive(Deserialize)]
struct DetailsConversation {
    #[serde(rename = "conversationId")]
    id: String,
    #[serde(rename = "conversationStart")]
    start: DateTime<Utc>,
    #[serde(rename = "conversationEnd")]
    end: Option<String>,
    #[serde(default)]
    participants: Vec<DetailsParticipant>,
}

#[derive(Deserialize)]
struct DetailsParticipant {
    #[serde(default)]
    sessions: Vec<DetailsSession>,
}

#[derive(Deserialize)]
struct DetailsSession {
    #[serde(rename = "mediaType")]
    media: Option<String>,
}

/// Every conversation of the simulator, day by day, straight from its details query (the
/// simulator runs with `--max-page-size 10000 --interval-matching exact`).
pub(crate) async fn list_conversations(
    http: &Control,
    sim: &Sim,
    days: i64,
) -> Result<Vec<Listed>> {
    let token = sim_token(http, sim).await?;
    let bearer = format!("Bearer {token}");
    let now = Utc::now();
    let first = (now - chrono::Duration::days(days + 1))
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .context("midnight")?
        .and_utc();
    let mut out = Vec::new();
    let mut day = first;
    while day < now + chrono::Duration::hours(1) {
        let next = day + chrono::Duration::days(1);
        for page in 1.. {
            let body = serde_json::json!({
                "interval": format!("{}/{}", rfc3339(day), rfc3339(next)),
                "paging": {"pageSize": 10000, "pageNumber": page},
            });
            let answer = http
                .send(
                    Method::POST,
                    &format!("{}/api/v2/analytics/conversations/details/query", sim.base),
                    &[
                        ("authorization", bearer.as_str()),
                        ("content-type", "application/json"),
                    ],
                    body.to_string(),
                )
                .await?;
            ensure!(
                answer.status.is_success(),
                "details query: {} {}",
                answer.status,
                answer.text()
            );
            let parsed: DetailsPage = serde_json::from_slice(&answer.body)?;
            let n = parsed.conversations.len();
            out.extend(parsed.conversations.into_iter().map(|c| {
                Listed {
                    voice: c
                        .participants
                        .iter()
                        .flat_map(|p| &p.sessions)
                        .any(|s| s.media.as_deref() == Some("voice")),
                    id: c.id,
                    start: c.start,
                    ended: c.end.is_some(),
                }
            }));
            if n < 10_000 {
                break;
            }
        }
        day = next;
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|c| seen.insert(c.id.clone()));
    Ok(out)
}

pub(crate) fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}
