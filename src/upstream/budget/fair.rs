//! The waiting room: one queue per class, and within a class one queue per client served
//! by stride scheduling, so each client gets turns in proportion to its weight and a
//! flooding client cannot starve the others.
//!
//! Between classes, the highest class with waiters goes first, except that each other
//! class with waiters earns its minimum share of every grant as credit: once its credit
//! reaches one whole turn, it goes before the higher classes. A class earns only while it
//! has waiters (an idle class banks nothing) and each turn it gets pays one turn of credit
//! (down to zero), so under oversubscription each class gets at least its share and real
//! time all the rest.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::{Class, Permit, Refusal};

/// Stride numerator: a client of weight `w` advances its pass by `STRIDE / w` per turn.
const STRIDE: u64 = 1 << 20;

/// One queued demand.
#[derive(Debug)]
pub struct Waiter {
    /// The latest instant at which starting the call is still useful (the demand's
    /// deadline less the minimum useful call time).
    pub latest_start: Instant,
    pub enqueued: Instant,
    pub reply: oneshot::Sender<Result<Permit, Refusal>>,
}

#[derive(Debug)]
struct ClientQueue {
    waiters: VecDeque<Waiter>,
    weight: u32,
    pass: u64,
}

#[derive(Debug, Default)]
struct ClassQueue {
    clients: HashMap<Arc<str>, ClientQueue>,
    /// The pass of the last client served: newcomers start here, not at zero, so that a
    /// client that was idle gains no credit over those that kept the queue busy.
    virtual_time: u64,
    len: usize,
}

/// All queued demands.
#[derive(Debug, Default)]
pub struct WaitingRoom {
    classes: [ClassQueue; 3],
    /// Minimum share of the grants per class, while it has waiters.
    min_shares: [f64; 3],
    /// Turns earned towards the minimum share, per class.
    credit: [f64; 3],
}

impl WaitingRoom {
    /// A room where each class with waiters gets at least its share of the turns
    /// (`[realtime, report, hydrate]`; real time's is ignored: it has priority).
    pub fn with_min_shares(min_shares: [f64; 3]) -> Self {
        Self {
            min_shares: [0.0, min_shares[1], min_shares[2]],
            ..Self::default()
        }
    }

    /// The classes with waiters in the order they should be served: classes owed a turn
    /// of their minimum share (the most owed first), then the others by priority.
    pub fn serving_order(&self) -> Vec<Class> {
        let mut owed: Vec<Class> = Class::ALL
            .into_iter()
            .filter(|&c| self.len_of(c) > 0 && self.credit[c as usize] >= 1.0)
            .collect();
        owed.sort_by(|a, b| self.credit[*b as usize].total_cmp(&self.credit[*a as usize]));
        let rest: Vec<Class> = Class::ALL
            .into_iter()
            .filter(|&c| self.len_of(c) > 0 && !owed.contains(&c))
            .collect();
        owed.extend(rest);
        owed
    }

    /// Accounts for a turn given to `class`: every class with waiters earns its share,
    /// the served one pays one turn (down to zero).
    fn account(&mut self, class: Class) {
        for c in Class::ALL {
            let i = c as usize;
            if self.len_of(c) == 0 {
                self.credit[i] = 0.0;
            } else {
                // Capped: credit that cannot be used (the class is held by the window's
                // real-time reserve, say) does not pile up into a burst.
                self.credit[i] = (self.credit[i] + self.min_shares[i]).min(2.0);
            }
        }
        let i = class as usize;
        self.credit[i] = (self.credit[i] - 1.0).max(0.0);
    }

    /// Number of waiters in `class`.
    pub fn len_of(&self, class: Class) -> usize {
        self.classes[class as usize].len
    }

    /// Number of waiters in all classes.
    pub fn len(&self) -> usize {
        self.classes.iter().map(|c| c.len).sum()
    }

    /// Queues a waiter.
    pub fn push(&mut self, class: Class, client: Arc<str>, weight: u32, waiter: Waiter) {
        let queue = &mut self.classes[class as usize];
        let virtual_time = queue.virtual_time;
        let entry = queue.clients.entry(client).or_insert_with(|| ClientQueue {
            waiters: VecDeque::new(),
            weight: weight.max(1),
            pass: virtual_time,
        });
        entry.weight = weight.max(1);
        if entry.waiters.is_empty() {
            entry.pass = entry.pass.max(virtual_time);
        }
        entry.waiters.push_back(waiter);
        queue.len += 1;
    }

    /// Takes the next waiter of `class`: from the client with the lowest pass.
    pub fn pop(&mut self, class: Class) -> Option<Waiter> {
        if self.len_of(class) == 0 {
            return None;
        }
        self.account(class);
        let queue = &mut self.classes[class as usize];
        let (name, client) = queue
            .clients
            .iter_mut()
            .filter(|(_, c)| !c.waiters.is_empty())
            .min_by(|a, b| a.1.pass.cmp(&b.1.pass).then_with(|| a.0.cmp(b.0)))?;
        let waiter = client.waiters.pop_front()?;
        queue.virtual_time = client.pass;
        client.pass += STRIDE / u64::from(client.weight);
        let name = name.clone();
        if client.waiters.is_empty() {
            queue.clients.remove(&name);
        }
        queue.len -= 1;
        Some(waiter)
    }

    /// Removes waiters that can no longer start in time or whose caller went away,
    /// telling the former when to try again (per class).
    pub fn expire(&mut self, now: Instant, retry_after: [Duration; 3]) {
        for (queue, retry_after) in self.classes.iter_mut().zip(retry_after) {
            let mut removed = 0;
            for client in queue.clients.values_mut() {
                let before = client.waiters.len();
                let mut kept = VecDeque::with_capacity(before);
                for waiter in client.waiters.drain(..) {
                    if waiter.reply.is_closed() {
                        continue;
                    }
                    if waiter.latest_start <= now {
                        let _ = waiter
                            .reply
                            .send(Err(Refusal::DeadlinePassed { retry_after }));
                        continue;
                    }
                    kept.push_back(waiter);
                }
                removed += before - kept.len();
                client.waiters = kept;
            }
            queue.clients.retain(|_, c| !c.waiters.is_empty());
            queue.len -= removed;
        }
    }

    /// The earliest latest-start of any waiter (when one must be told it is too late).
    pub fn earliest_deadline(&self) -> Option<Instant> {
        self.classes
            .iter()
            .flat_map(|q| q.clients.values())
            .flat_map(|c| c.waiters.iter().map(|w| w.latest_start))
            .min()
    }

    /// How many turns are taken before a new demand of `client` (weight `weight`) in
    /// `class` is served: all waiters of higher classes, and in its own class each other
    /// client's waiters up to that client's fair share of the turns; no more than its
    /// class's minimum share guarantees.
    pub fn turns_ahead(&self, class: Class, client: &str, weight: u32) -> usize {
        let higher: usize = Class::ALL
            .into_iter()
            .filter(|&c| c < class)
            .map(|c| self.len_of(c))
            .sum();
        let queue = &self.classes[class as usize];
        let own = queue.clients.get(client).map_or(0, |c| c.waiters.len());
        let own_turns = own + 1;
        let others: usize = queue
            .clients
            .iter()
            .filter(|(name, _)| name.as_ref() != client)
            .map(|(_, c)| {
                let share = own_turns * c.weight as usize / weight.max(1) as usize;
                c.waiters.len().min(share.max(1))
            })
            .sum();
        let by_priority = higher + own + others;
        let share = self.min_shares[class as usize];
        if share > 0.0 && higher > 0 {
            // Its class gets at least one turn in 1 / share: the (own + others + 1)th
            // turn of the class comes within that many times as many turns.
            let by_share = ((own + others + 1) as f64 / share).ceil() as usize;
            by_priority.min(by_share.saturating_sub(1))
        } else {
            by_priority
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiter(now: Instant) -> (Waiter, oneshot::Receiver<Result<Permit, Refusal>>) {
        let (reply, rx) = oneshot::channel();
        (
            Waiter {
                latest_start: now + Duration::from_secs(60),
                enqueued: now,
                reply,
            },
            rx,
        )
    }

    /// Pops every waiter of `class`, telling each its turn; returns each receiver's turn.
    fn turns(
        room: &mut WaitingRoom,
        class: Class,
        receivers: Vec<(String, oneshot::Receiver<Result<Permit, Refusal>>)>,
    ) -> Vec<(String, u64)> {
        let mut turn = 0;
        while let Some(w) = room.pop(class) {
            let marker = Refusal::QueueFull {
                retry_after: Duration::from_millis(turn),
            };
            let _ = w.reply.send(Err(marker));
            turn += 1;
        }
        receivers
            .into_iter()
            .map(|(name, mut rx)| {
                let Ok(Err(refusal)) = rx.try_recv() else {
                    panic!("{name} was not served")
                };
                let turn = u64::try_from(refusal.retry_after().as_millis()).expect("small");
                (name, turn)
            })
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn clients_take_turns_by_weight() {
        let now = Instant::now();
        let mut room = WaitingRoom::default();
        let mut receivers = Vec::new();
        for i in 0..6 {
            let (w, rx) = waiter(now);
            room.push(Class::Report, Arc::from("flood"), 1, w);
            receivers.push((format!("flood{i}"), rx));
        }
        for i in 0..2 {
            let (w, rx) = waiter(now);
            room.push(Class::Report, Arc::from("light"), 1, w);
            receivers.push((format!("light{i}"), rx));
        }
        let served = turns(&mut room, Class::Report, receivers);
        // The light client's two demands are served within the first four turns.
        assert_eq!(served.len(), 8);
        for (name, turn) in &served {
            if name.starts_with("light") {
                assert!(*turn < 4, "{served:?}");
            }
        }
        // A weight-3 client gets three turns for each of a weight-1 client's.
        let mut room = WaitingRoom::default();
        let mut receivers = Vec::new();
        for i in 0..8 {
            for (client, weight) in [("heavy", 3), ("plain", 1)] {
                let (w, rx) = waiter(now);
                room.push(Class::Report, Arc::from(client), weight, w);
                receivers.push((format!("{client}{i}"), rx));
            }
        }
        let served = turns(&mut room, Class::Report, receivers);
        let heavy_in_first_eight = served
            .iter()
            .filter(|(name, turn)| name.starts_with("heavy") && *turn < 8)
            .count();
        assert_eq!(heavy_in_first_eight, 6, "{served:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn higher_classes_are_counted_ahead() {
        let now = Instant::now();
        let mut room = WaitingRoom::default();
        let mut keep = Vec::new();
        for _ in 0..3 {
            let (w, rx) = waiter(now);
            room.push(Class::Realtime, Arc::from("a"), 1, w);
            keep.push(rx);
        }
        assert_eq!(room.serving_order(), [Class::Realtime]);
        assert_eq!(room.turns_ahead(Class::Report, "b", 1), 3);
        // In its own class, a newcomer waits only for the others' fair share of turns.
        assert_eq!(room.turns_ahead(Class::Realtime, "b", 1), 1);
        assert_eq!(room.turns_ahead(Class::Realtime, "a", 1), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn expired_and_abandoned_waiters_are_removed() {
        let now = Instant::now();
        let mut room = WaitingRoom::default();
        let (mut w, mut rx) = waiter(now);
        w.latest_start = now + Duration::from_millis(10);
        room.push(Class::Report, Arc::from("a"), 1, w);
        let (w2, rx2) = waiter(now);
        room.push(Class::Report, Arc::from("a"), 1, w2);
        drop(rx2);
        room.expire(now + Duration::from_millis(20), [Duration::from_secs(1); 3]);
        assert_eq!(room.len(), 0);
        assert!(matches!(
            rx.try_recv(),
            Ok(Err(Refusal::DeadlinePassed { .. }))
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn each_class_with_waiters_gets_at_least_its_minimum_share() {
        let now = Instant::now();
        let mut room = WaitingRoom::with_min_shares([0.0, 0.2, 0.05]);
        let mut keep = Vec::new();
        for class in Class::ALL {
            for _ in 0..200 {
                let (w, rx) = waiter(now);
                room.push(class, Arc::from("c"), 1, w);
                keep.push(rx);
            }
        }
        // A newcomer of a lower class is not counted behind every higher waiter: with one
        // turn of another client before its own, its class's second turn comes within
        // 2 / share turns.
        assert_eq!(room.turns_ahead(Class::Report, "d", 1), 9);
        assert_eq!(room.turns_ahead(Class::Hydrate, "d", 1), 39);
        let mut served = [0; 3];
        for _ in 0..100 {
            let class = room.serving_order()[0];
            room.pop(class).expect("a waiter");
            served[class as usize] += 1;
        }
        // At least the share, within the one turn it takes to earn the first.
        assert!((19..=21).contains(&served[1]), "{served:?}");
        assert!((4..=6).contains(&served[2]), "{served:?}");
        assert_eq!(served.iter().sum::<i32>(), 100);
        // Without real-time demand, reports take every turn they can by priority.
        let mut room = WaitingRoom::with_min_shares([0.0, 0.2, 0.05]);
        for class in [Class::Report, Class::Hydrate] {
            for _ in 0..100 {
                let (w, rx) = waiter(now);
                room.push(class, Arc::from("c"), 1, w);
                keep.push(rx);
            }
        }
        let mut served = [0; 3];
        for _ in 0..100 {
            let class = room.serving_order()[0];
            room.pop(class).expect("a waiter");
            served[class as usize] += 1;
        }
        assert_eq!(served[0], 0);
        assert!((4..=6).contains(&served[2]), "{served:?}");
    }
}
