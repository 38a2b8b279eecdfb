//! Builds the seeded conversations. By default: historical ones spread over the configured
//! days (all over, wrap-up included, two hours before the anchor), and live ones that start
//! just before the anchor and run on past it. With continuous arrivals
//! ([`Arrivals::continuous`]): conversations arrive at the historical rate right up to the
//! anchor and for [`ARRIVALS_AHEAD_DAYS`] after it, each one running its course in time, so
//! that the API sees them arrive, run and end as the clock moves. With a diurnal profile
//! ([`Arrivals::diurnal`]) arrivals follow a contact-centre day ([`DIURNAL_WEIGHTS`]).
//!
//! Durations are right-skewed around realistic medians per media type (see the constants);
//! about one inbound wait in twelve is abandoned and one answered leg in twelve is
//! transferred to a second queue.

use chrono::{DateTime, Duration, Timelike, Utc};

use super::conversation::{
    AcdWait, AgentWork, ConversationRecord, Customer, Direction, IvrLeg, Leg, MediaType,
};
use super::org::Org;
use crate::rng::SimRng;

/// When conversations arrive (see [`crate::SimConfig`]'s `continuous` and `diurnal`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Arrivals {
    /// Conversations arrive at the historical rate (historical conversations / days, per
    /// day) up to the anchor and on for [`ARRIVALS_AHEAD_DAYS`] past it; there are no
    /// separately generated live conversations.
    pub continuous: bool,
    /// The arrival density follows [`DIURNAL_WEIGHTS`] instead of being flat.
    pub diurnal: bool,
}

/// With continuous arrivals, for how many days past the anchor conversations keep arriving.
pub const ARRIVALS_AHEAD_DAYS: u32 = 2;

/// Relative arrival density of each UTC hour of the day with a diurnal profile: a contact
/// centre busy from 08:00 to 18:00, quiet (never empty) at night. The weights' mean is
/// about 5.4, so a busy hour sees about 1.8 times the day's average rate and a night hour
/// about a fifth of it.
pub const DIURNAL_WEIGHTS: [u32; 24] = [
    1, 1, 1, 1, 1, 1, 2, 5, // 00:00-07:59
    10, 10, 10, 10, 10, 10, 10, 10, 10, 10, // 08:00-17:59
    6, 4, 3, 2, 1, 1, // 18:00-23:59
];

/// Probability that an inbound queue wait is abandoned.
const ABANDON_RATE: f64 = 0.08;
/// Probability that an answered leg is transferred to another queue (at most once).
const TRANSFER_RATE: f64 = 0.08;
/// Probability that a talk contains a hold.
const HOLD_RATE: f64 = 0.25;
/// Historical conversations end at least this long before the anchor, so that all of them
/// (wrap-up included) are over when the simulator starts.
const HISTORY_GAP: Duration = Duration::hours(2);
/// Live conversations start at most this long before the anchor.
const LIVE_WINDOW_SECS: u64 = 6 * 60;

const CUSTOMER_PLACES: [&str; 8] = [
    "Indiana", "Ohio", "Texas", "Dublin", "Munich", "Ontario", "Lisbon", "Osaka",
];
const CUSTOMER_NAMES: [&str; 8] = [
    "Alex Doe",
    "Sam Roe",
    "Chris Poe",
    "Robin Moe",
    "Jo Loe",
    "Pat Koe",
    "Lee Hoe",
    "Max Zoe",
];

/// Talk time median / min / max in milliseconds per media type.
fn talk_spread(media: MediaType) -> (u64, u64, u64) {
    match media {
        MediaType::Voice => (300_000, 20_000, 3_600_000),
        MediaType::Chat => (600_000, 60_000, 3_600_000),
        MediaType::Email => (240_000, 30_000, 1_800_000),
        MediaType::Message => (480_000, 30_000, 3_600_000),
    }
}

/// A start drawn in `[from, to)` (at `from` when that is empty), uniformly or, `diurnal`,
/// with the density of [`DIURNAL_WEIGHTS`] (by rejection: a draw in an hour of weight `w`
/// is kept with probability `w / 10`).
fn arrival(
    rng: &mut SimRng,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    diurnal: bool,
) -> DateTime<Utc> {
    let span_ms = (to - from).num_milliseconds();
    if span_ms <= 0 {
        return from;
    }
    let heaviest = DIURNAL_WEIGHTS.iter().copied().max().unwrap_or(1);
    loop {
        let at = from + Duration::milliseconds(rng.range(0, span_ms as u64 - 1) as i64);
        if !diurnal
            || rng.range(1, u64::from(heaviest)) <= u64::from(DIURNAL_WEIGHTS[at.hour() as usize])
        {
            return at;
        }
    }
}

/// Builds the conversations and returns them sorted by start (ties by id).
///
/// By default: `historical` ended conversations over `days` before `anchor`, then `live`
/// ones around `anchor`. With continuous arrivals: `historical` conversations arriving over
/// the `days` before `anchor` and as many per day again for [`ARRIVALS_AHEAD_DAYS`] after
/// it (none when `days` is 0); `live` is not used.
pub fn conversations(
    rng: &mut SimRng,
    org: &Org,
    anchor: DateTime<Utc>,
    days: u32,
    (historical, live): (usize, usize),
    arrivals: Arrivals,
) -> Vec<ConversationRecord> {
    let history_start = anchor - Duration::days(i64::from(days));
    if arrivals.continuous {
        let ahead = if days == 0 {
            0
        } else {
            historical * ARRIVALS_AHEAD_DAYS as usize / days as usize
        };
        let until = anchor + Duration::days(i64::from(ARRIVALS_AHEAD_DAYS));
        let mut out = Vec::with_capacity(historical + ahead);
        for _ in 0..historical {
            let start = arrival(rng, history_start, anchor, arrivals.diurnal);
            out.push(one(rng, org, start, None));
        }
        for _ in 0..ahead {
            let start = arrival(rng, anchor, until, arrivals.diurnal);
            out.push(one(rng, org, start, None));
        }
        out.sort_by(|a, b| a.start.cmp(&b.start).then(a.id.cmp(&b.id)));
        return out;
    }
    let span_ms = (anchor - HISTORY_GAP - history_start)
        .num_milliseconds()
        .max(1);
    let mut out = Vec::with_capacity(historical + live);
    for _ in 0..historical {
        let start = if arrivals.diurnal {
            arrival(rng, history_start, anchor - HISTORY_GAP, true)
        } else {
            let offset = rng.range(0, span_ms as u64) as i64;
            history_start + Duration::milliseconds(offset)
        };
        out.push(one(rng, org, start, None));
    }
    for _ in 0..live {
        let back = rng.range(0, LIVE_WINDOW_SECS * 1000) as i64;
        out.push(one(
            rng,
            org,
            anchor - Duration::milliseconds(back),
            Some(anchor),
        ));
    }
    out.sort_by(|a, b| a.start.cmp(&b.start).then(a.id.cmp(&b.id)));
    out
}

fn ms(value: u64) -> Duration {
    Duration::milliseconds(value as i64)
}

/// One conversation starting at `start`. With `live_past`, it is never abandoned or
/// transferred and its talk runs past that instant, so it is live there.
fn one(
    rng: &mut SimRng,
    org: &Org,
    start: DateTime<Utc>,
    live_past: Option<DateTime<Utc>>,
) -> ConversationRecord {
    let id = rng.uuid();
    let media = MediaType::ALL[rng.weighted(&[55, 20, 10, 15])];
    let outbound_weight = match media {
        MediaType::Voice => 20,
        MediaType::Email => 15,
        MediaType::Message => 10,
        MediaType::Chat => 0,
    };
    let direction = if rng.weighted(&[100 - outbound_weight, outbound_weight]) == 0 {
        Direction::Inbound
    } else {
        Direction::Outbound
    };
    let place = CUSTOMER_PLACES[rng.index(CUSTOMER_PLACES.len())];
    let person = CUSTOMER_NAMES[rng.index(CUSTOMER_NAMES.len())];
    let phone = format!("tel:+1{}555{:04}", rng.range(200, 989), rng.range(0, 9999));
    let (name, address) = match media {
        MediaType::Voice => (format!("Mobile Number, {place}"), phone),
        MediaType::Message => (person.to_owned(), phone),
        MediaType::Chat => (person.to_owned(), person.to_owned()),
        MediaType::Email => {
            let local = person.to_lowercase().replace(' ', ".");
            (person.to_owned(), format!("{local}@example.com"))
        }
    };
    let customer = Customer {
        participant_id: rng.uuid(),
        session_id: rng.uuid(),
        name,
        address,
    };

    let first_queue = rng.index(org.queues.len());
    let ivr = (media == MediaType::Voice && direction == Direction::Inbound).then(|| {
        let ivr_start = start + Duration::milliseconds(42);
        IvrLeg {
            participant_id: rng.uuid(),
            session_id: rng.uuid(),
            flow_id: rng.uuid(),
            start: ivr_start,
            end: ivr_start + ms(rng.duration_ms(25_000, 5_000, 120_000)),
        }
    });

    let mut legs = Vec::new();
    let mut enter = ivr
        .as_ref()
        .map_or(start + Duration::milliseconds(150), |i| {
            i.end + Duration::milliseconds(16)
        });
    let mut queue = first_queue;
    loop {
        let transfer_allowed = legs.is_empty() && live_past.is_none();
        let leg = leg(
            rng,
            org,
            media,
            direction,
            queue,
            enter,
            transfer_allowed,
            live_past,
        );
        let next = leg
            .agent
            .as_ref()
            .filter(|agent| agent.transferred)
            .map(|agent| agent.disconnected);
        legs.push(leg);
        match next {
            Some(at) => {
                enter = at + Duration::milliseconds(20);
                queue = (queue + 1 + rng.index(org.queues.len() - 1)) % org.queues.len();
            }
            None => break,
        }
    }

    let attributes = if rng.chance(0.3) {
        vec![(
            "Customer.Tier".to_owned(),
            ["gold", "silver", "bronze"][rng.index(3)].to_owned(),
        )]
    } else {
        Vec::new()
    };
    let external_tag = rng
        .chance(0.1)
        .then(|| format!("CRM-{}", rng.range(10_000, 99_999)));
    let min_mos = (media == MediaType::Voice).then(|| (rng.range(320, 450) as f64) / 100.0);
    ConversationRecord::new(
        id,
        media,
        direction,
        start,
        customer,
        ivr,
        legs,
        external_tag,
        attributes,
        min_mos,
    )
}

#[allow(clippy::too_many_arguments)]
fn leg(
    rng: &mut SimRng,
    org: &Org,
    media: MediaType,
    direction: Direction,
    queue: usize,
    enter: DateTime<Utc>,
    transfer_allowed: bool,
    live_past: Option<DateTime<Utc>>,
) -> Leg {
    let candidates = org.agents_of(queue);
    let agent = candidates[rng.index(candidates.len())];
    let wrapup = rng.index(org.wrapup_codes.len());
    let acw_ms = rng.duration_ms(20_000, 3_000, 300_000);
    let (median, min, max) = talk_spread(media);
    let mut talk = rng.duration_ms(median, min, max);

    let (acd, alert_start, connected) = if direction == Direction::Outbound {
        let dial = rng.duration_ms(8_000, 2_000, 40_000);
        (None, enter, enter + ms(dial))
    } else {
        let wait = rng.duration_ms(30_000, 1_000, 1_200_000);
        let abandoned = live_past.is_none() && rng.chance(ABANDON_RATE);
        let acd = AcdWait {
            participant_id: rng.uuid(),
            session_id: rng.uuid(),
            wait_ms: wait as i64,
            abandoned,
        };
        if abandoned {
            return Leg {
                queue,
                enter,
                acd: Some(acd),
                agent: None,
            };
        }
        let alert = rng.duration_ms(6_000, 1_000, 30_000).min(wait);
        let answered = enter + ms(wait);
        (Some(acd), answered - ms(alert), answered)
    };

    if let Some(past) = live_past {
        // Keep the talk running for a while after the anchor so the conversation is live.
        let minimum = (past - connected).num_milliseconds().max(0);
        let extra = rng.range(30_000, 900_000) as i64;
        let stretched = (minimum + extra) as u64;
        talk = talk.max(stretched);
    }
    let hold = rng.chance(HOLD_RATE).then(|| {
        let hold_ms = rng.duration_ms(45_000, 5_000, 300_000);
        let at = connected + ms(talk / 3);
        (at, hold_ms as i64)
    });
    let hold_total = hold.map_or(0, |(_, held)| held);
    let disconnected = connected + Duration::milliseconds(talk as i64 + hold_total);
    Leg {
        queue,
        enter,
        acd,
        agent: Some(AgentWork {
            agent,
            participant_id: rng.uuid(),
            session_id: rng.uuid(),
            alert_start,
            connected,
            hold,
            disconnected,
            acw_ms: acw_ms as i64,
            wrapup,
            transferred: transfer_allowed && rng.chance(TRANSFER_RATE),
        }),
    }
}
