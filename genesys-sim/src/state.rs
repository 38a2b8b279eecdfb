//! The simulator's shared state: configuration, generated data, issued tokens, counters,
//! the journal of analytics query bodies, the Notifications API's channels, active faults, the simulated clock and the memo
//! of details walks. One `Arc<SimState>` serves every request.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde::Serialize;

use chrono::{DateTime, Duration, DurationRound, Utc};

use crate::config::SimConfig;
use crate::counters::Counters;
use crate::data::{Arrivals, Dataset};
use crate::faults::Faults;
use crate::journal::QueryJournal;
use crate::notifications::Notifications;
use crate::query::details::{DetailsPage, DetailsQuery};
use crate::query::walks::Walks;
use crate::rng::SimRng;
use crate::tokens::TokenStore;

/// How many recent API requests [`SimState::recent_requests`] keeps.
const RECENT_REQUESTS: usize = 256;

/// What the simulator noted of one API request (for tests of what the proxy sends).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SeenRequest {
    /// The counter label of the endpoint.
    pub endpoint: String,
    /// The W3C `traceparent` header, when sent.
    pub traceparent: Option<String>,
}

/// Everything a request handler may read or change.
#[derive(Debug)]
pub struct SimState {
    pub config: SimConfig,
    pub data: Dataset,
    pub tokens: TokenStore,
    pub counters: Counters,
    /// The analytics query bodies received, for tests of what clients send.
    pub journal: QueryJournal,
    /// The Notifications API's channels, settings and counters.
    pub notifications: Notifications,
    faults: Mutex<Faults>,
    fault_rng: Mutex<SimRng>,
    correlation_rng: Mutex<SimRng>,
    clock_offset: Mutex<Duration>,
    recent: Mutex<VecDeque<SeenRequest>>,
    walks: Walks,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SimState {
    /// Generates the data and sets up the state for `config`.
    #[must_use]
    pub fn new(config: SimConfig) -> Self {
        let anchor = config.anchor.unwrap_or_else(|| {
            Utc::now()
                .duration_trunc(Duration::minutes(1))
                .unwrap_or_else(|_| Utc::now())
        });
        let data = Dataset::generate_with(
            config.seed,
            anchor,
            config.days,
            (config.conversations, config.live_conversations),
            Arrivals {
                continuous: config.continuous,
                diurnal: config.diurnal,
            },
        );
        // With an explicit anchor, the simulated clock starts there, so a test's view of
        // live conversations does not depend on when it runs.
        let offset = config
            .anchor
            .map_or_else(Duration::zero, |a| a - Utc::now());
        Self {
            tokens: TokenStore::new(config.seed),
            counters: Counters::default(),
            journal: QueryJournal::default(),
            notifications: Notifications::new(config.notifications.clone()),
            faults: Mutex::new(config.faults.clone()),
            fault_rng: Mutex::new(SimRng::new(config.seed ^ 0x6661_756c_7473)),
            correlation_rng: Mutex::new(SimRng::new(config.seed ^ 0x636f_7272)),
            clock_offset: Mutex::new(offset),
            recent: Mutex::new(VecDeque::with_capacity(RECENT_REQUESTS)),
            walks: Walks::default(),
            data,
            config,
        }
    }

    /// The simulated "now": wall-clock time plus any offset set through the clock control.
    #[must_use]
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + *lock(&self.clock_offset)
    }

    /// Moves the simulated clock forward (live conversations advance).
    pub fn advance_clock(&self, by: Duration) {
        *lock(&self.clock_offset) += by;
    }

    /// The page of a details query now, served from the memo of walks (the same page as
    /// [`DetailsQuery::run`] computes from scratch at that instant).
    #[must_use]
    pub fn details_page(&self, query: &DetailsQuery) -> DetailsPage {
        self.walks.page_now(
            query,
            &self.data,
            || self.now(),
            self.config.interval_matching,
        )
    }

    /// The active faults.
    #[must_use]
    pub fn faults(&self) -> Faults {
        lock(&self.faults).clone()
    }

    /// Replaces the active faults.
    pub fn set_faults(&self, faults: Faults) {
        *lock(&self.faults) = faults;
    }

    /// Runs `f` on the active faults (for counting down storms and malformed bodies).
    pub fn update_faults<T>(&self, f: impl FnOnce(&mut Faults) -> T) -> T {
        f(&mut lock(&self.faults))
    }

    /// A draw in `[0, 1)` for fault injection.
    pub fn fault_draw(&self) -> f64 {
        lock(&self.fault_rng).unit()
    }

    /// Notes an API request (the most recent ones are kept).
    pub fn note_request(&self, seen: SeenRequest) {
        let mut recent = lock(&self.recent);
        if recent.len() == RECENT_REQUESTS {
            recent.pop_front();
        }
        recent.push_back(seen);
    }

    /// The most recent API requests, oldest first.
    #[must_use]
    pub fn recent_requests(&self) -> Vec<SeenRequest> {
        lock(&self.recent).iter().cloned().collect()
    }

    /// A fresh `inin-correlation-id`.
    pub fn correlation_id(&self) -> String {
        lock(&self.correlation_rng).uuid().to_string()
    }
}
