//! A small wallboard end to end (issue 18): three clients asking the proxy for every live
//! conversation of the simulator, round after round, while the simulator's clock moves the
//! conversations on. With notifications, new data reaches the answers through events alone:
//! the simulator answers one `GET /conversations/{id}` per conversation (its first fetch),
//! however many changes follow and however long past the TTL the board runs. With
//! `mode = "off"` new data comes only from polling.
//! Behaviour only: the timing figures are the `wallboard` benchmark's (bench/run).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use genesys_proxy::notifications::settings::Mode;
use support::{PATIENCE, TestApp, eventually, proxy_settings, sim_config};
use tokio::time::Instant;

const CLIENTS: usize = 3;

/// What the clients saw: the distinct bodies per conversation, and how many answers were
/// served as pushed.
#[derive(Default)]
struct Board {
    bodies: BTreeMap<String, BTreeSet<Vec<u8>>>,
    pushed: u64,
}

impl Board {
    /// Conversations served with more than one body (new data reached the answers).
    fn updated(&self) -> usize {
        self.bodies.values().filter(|b| b.len() > 1).count()
    }
}

/// One round: every client asks for every conversation in `ids` at once.
async fn round(app: &TestApp, ids: &[String], board: &mut Board) {
    let asks = (0..CLIENTS)
        .flat_map(|_| ids.iter())
        .map(|id| async move { (id.clone(), app.get(&format!("/conversations/{id}")).await) });
    for (id, reply) in futures_util::future::join_all(asks).await {
        assert_eq!(reply.status, 200, "{id}: {}", reply.text());
        if reply
            .header("cache-status")
            .unwrap_or_default()
            .contains("pushed")
        {
            board.pushed += 1;
        }
        board
            .bodies
            .entry(id)
            .or_default()
            .insert(reply.body.to_vec());
    }
}

/// Rounds over `ids` with the clock moving 20 s between them, until `done` or the
/// deadline (the ids stay cached when their conversations end).
async fn run_board(
    app: &TestApp,
    ids: &[String],
    pause: Duration,
    done: impl Fn(&Board, u64, Duration) -> bool,
) -> Board {
    assert!(ids.len() >= 3, "a wallboard needs live conversations");
    let mut board = Board::default();
    let started = Instant::now();
    loop {
        round(app, ids, &mut board).await;
        if done(&board, app.upstream_conversation_calls(), started.elapsed()) {
            return board;
        }
        assert!(started.elapsed() < PATIENCE, "the board never got there");
        app.advance_sim_clock(20).await;
        tokio::time::sleep(pause).await;
    }
}

#[tokio::test]
async fn with_notifications_changes_reach_the_board_without_polling() {
    let mut settings = proxy_settings();
    settings.notifications.mode = Mode::All;
    // A TTL the board outlasts: only the notifications keep its conversations fresh.
    settings.cache.active_fresh_secs = 1;
    settings.cache.stale_while_revalidate_secs = 0;
    let app = TestApp::start(sim_config(), settings).await;
    eventually("subscribed", || async {
        app.get_with("/readyz", "", &[]).await.json()["components"]["notifications"]["status"]
            == "ok"
    })
    .await;
    // The board shows the live conversations that are in a queue (a subscribed one: every
    // queue is); one still in a flow would be polled until it reaches a queue.
    let running = app.live_ids();
    let mut queued = Vec::new();
    for id in &running {
        let reply = app.get(&format!("/conversations/{id}")).await;
        if !reply.json()["queues"].as_array().is_none_or(Vec::is_empty) {
            queued.push(id.clone());
        }
    }
    let board = run_board(&app, &queued, Duration::from_millis(300), |b, _, t| {
        b.updated() >= 2 && t > Duration::from_secs(3)
    })
    .await;
    assert!(board.pushed > 0, "answers served as pushed");
    assert_eq!(
        app.upstream_conversation_calls(),
        running.len() as u64,
        "one first fetch per conversation, nothing after, though the board outlasted the TTL"
    );
}

#[tokio::test]
async fn without_notifications_the_board_is_fed_by_polling() {
    let mut settings = proxy_settings();
    settings.notifications.mode = Mode::Off;
    settings.cache.active_fresh_secs = 1;
    let app = TestApp::start(sim_config(), settings).await;
    let running = app.live_ids();
    let ids = running.len() as u64;
    let board = run_board(
        &app,
        &running,
        Duration::from_millis(1_100),
        |b, calls, _| b.updated() >= 1 && calls > ids,
    )
    .await;
    assert_eq!(board.pushed, 0);
    assert!(app.upstream_conversation_calls() > ids, "polled again");
}
