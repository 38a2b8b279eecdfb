//! [`CallContext`]: who an upstream call is for and how long it may take, as the budget
//! sees it: class, client, weight and deadline, or an [`Urgency`] that callers joining the
//! call may raise while it waits.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::budget::{Class, Demand, Urgency};

/// Who a call is for and how long it may take.
#[derive(Debug, Clone)]
pub struct CallContext {
    pub class: Class,
    /// The internal client (API key name).
    pub client: Arc<str>,
    /// The client's fair-share weight.
    pub weight: u32,
    /// The call must have finished by then.
    pub deadline: Instant,
    /// Set when later callers may come to share the call (a cache fetch they join): the
    /// class, client and deadline above are where it started, and the urgency is where it
    /// stands now (raised while the call waits for the budget or between attempts).
    pub urgency: Option<Arc<Urgency>>,
}

impl CallContext {
    /// A context for `client` that must finish by `deadline`.
    #[must_use]
    pub fn until(
        class: Class,
        client: impl Into<Arc<str>>,
        weight: u32,
        deadline: Instant,
    ) -> Self {
        Self {
            class,
            client: client.into(),
            weight,
            deadline,
            urgency: None,
        }
    }

    /// A context that follows `urgency`: callers that join the call may raise its class
    /// and deadline while it waits.
    #[must_use]
    pub fn raisable(urgency: Arc<Urgency>) -> Self {
        let Demand {
            class,
            client,
            weight,
            deadline,
        } = urgency.current();
        Self {
            class,
            client,
            weight,
            deadline,
            urgency: Some(urgency),
        }
    }

    /// The budget demand as it stands now.
    #[must_use]
    pub fn demand(&self) -> Demand {
        match &self.urgency {
            Some(urgency) => urgency.current(),
            None => Demand {
                class: self.class,
                client: self.client.clone(),
                weight: self.weight,
                deadline: self.deadline,
            },
        }
    }

    /// A context for `client` with `timeout` from now.
    #[must_use]
    pub fn new(class: Class, client: impl Into<Arc<str>>, weight: u32, timeout: Duration) -> Self {
        Self {
            class,
            client: client.into(),
            weight,
            deadline: Instant::now() + timeout,
            urgency: None,
        }
    }
}
