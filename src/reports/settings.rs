//! Report settings (`[reports]`): Genesys' analytics limits (not published, so all
//! settable) and the proxy's own report bounds.

use serde::Deserialize;

fn default_upstream_page_size() -> u32 {
    100
}
fn default_max_interval_days() -> u32 {
    31
}
fn default_page_size() -> u32 {
    50
}
fn default_max_page_size() -> u32 {
    500
}
fn default_relative_bucket_secs() -> u64 {
    60
}
fn default_max_span_days() -> u32 {
    366
}
fn default_hydrate_max() -> u32 {
    25
}

/// How the proxy expects Genesys to match a details query's interval; either way the
/// results are right (hits outside the window are dropped), only the cost differs.
#[derive(Debug, Clone, Copy, Default, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum IntervalMatching {
    /// Genesys' documented behaviour ("conversations that started on a day touched by the
    /// interval"): walks reason from the days' edges from the first query. Against an org
    /// that matches exactly, a window at the tail of a day costs one query more.
    #[default]
    TouchedDay,
    /// Start as if Genesys matched exactly (the first page of a window is then its own)
    /// and switch for good once a page holds a conversation outside its interval. The
    /// walk that finds out costs up to one query more, once per process.
    Learn,
}

/// Report settings.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ReportSettings {
    /// Page size of upstream details queries: Genesys' maximum (not published; 100 is
    /// what the simulator enforces).
    #[serde(default = "default_upstream_page_size")]
    pub upstream_page_size: u32,
    /// Longest interval of one upstream query, in days; longer report intervals are split
    /// at UTC midnights into chunks no longer than this and walked in order.
    #[serde(default = "default_max_interval_days")]
    pub max_interval_days: u32,
    /// Results per report page when the client gives no `page_size`.
    #[serde(default = "default_page_size")]
    pub default_page_size: u32,
    /// Largest `page_size` a client may ask for.
    #[serde(default = "default_max_page_size")]
    pub max_page_size: u32,
    /// Relative intervals (`last=PT15M`) end at "now" floored to this many seconds, so
    /// every dashboard polling the same report shares one cache entry and one upstream
    /// query per bucket.
    #[serde(default = "default_relative_bucket_secs")]
    pub relative_bucket_secs: u64,
    /// Longest report interval a client may ask for, in days.
    #[serde(default = "default_max_span_days")]
    pub max_span_days: u32,
    /// Most hits hydrated per page with `include=conversation`.
    #[serde(default = "default_hydrate_max")]
    pub hydrate_max: u32,
    /// How Genesys matches a details query's interval: `touched-day` (documented: every
    /// conversation that started on a UTC day the interval touches) or `learn` (assume
    /// exact matching until a page shows a conversation outside its interval). See
    /// [`IntervalMatching`].
    #[serde(default)]
    pub upstream_interval_matching: IntervalMatching,
    /// Not a setting (no file or variable sets it): how far the proxy's "now" for report
    /// intervals lies from the system clock, in milliseconds. Tests and benchmarks set it
    /// to run `last=` intervals against a simulated org whose clock is elsewhere.
    #[serde(skip)]
    pub clock_offset_ms: i64,
}

impl Default for ReportSettings {
    fn default() -> Self {
        Self {
            upstream_page_size: default_upstream_page_size(),
            max_interval_days: default_max_interval_days(),
            default_page_size: default_page_size(),
            max_page_size: default_max_page_size(),
            relative_bucket_secs: default_relative_bucket_secs(),
            max_span_days: default_max_span_days(),
            hydrate_max: default_hydrate_max(),
            upstream_interval_matching: IntervalMatching::default(),
            clock_offset_ms: 0,
        }
    }
}

impl ReportSettings {
    /// Checks the settings; the message names the bad one.
    ///
    /// # Errors
    /// The first invalid setting.
    pub fn validate(&self) -> Result<(), String> {
        if self.upstream_page_size == 0 {
            return Err("reports.upstream_page_size must be at least 1".into());
        }
        if self.max_interval_days == 0 {
            return Err("reports.max_interval_days must be at least 1".into());
        }
        if self.default_page_size == 0 || self.default_page_size > self.max_page_size {
            return Err(
                "reports.default_page_size must be between 1 and reports.max_page_size".into(),
            );
        }
        if self.relative_bucket_secs == 0 {
            return Err("reports.relative_bucket_secs must be at least 1".into());
        }
        Ok(())
    }
}
