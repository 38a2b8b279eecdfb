use std::time::Duration;

use chrono::TimeZone as _;

use super::*;
use crate::upstream::Endpoint;
use crate::upstream::token::TokenError;

fn figures() -> Figures {
    let at = Utc
        .with_ymd_and_hms(2026, 3, 12, 9, 30, 0)
        .single()
        .expect("a time");
    Figures {
        generated_at: at,
        ready: true,
        components: vec![
            ("genesys_token".into(), "failing".into()),
            ("cache".into(), "ok".into()),
        ],
        budget: BudgetStats {
            queued: [0, 2, 0],
            granted: 7,
            effective_rate: 280,
            period_secs: 60.0,
            ..BudgetStats::default()
        },
        permits_by_class: [5, 2, 0],
        refused_by_class: [1, 0, 0],
        caches: vec![(
            "conversations",
            CacheStats {
                hits: 3,
                misses: 1,
                entries: 4,
                bytes: 2048,
                max_bytes: 1 << 20,
                ..CacheStats::default()
            },
        )],
        token: TokenReadiness {
            held: true,
            expires_in_secs: Some(100),
            refreshing: false,
            failure: Some(TokenError::LoginUnavailable {
                reason: "<script>alert('x')</script>".into(),
                retry_after: Duration::from_secs(5),
            }),
            refused: false,
        },
        token_stats: TokenStats {
            requests: 2,
            failures: 1,
            has_token: true,
            refused: false,
        },
        upstream: Upstream {
            exchanges: vec![
                ("get_conversation", "200".into(), 4),
                ("get_conversation", "429".into(), 1),
                ("get_conversation", "error".into(), 2),
            ],
            rate_limited: 1,
            last_rate_limited: Some(at),
            retries: 3,
        },
        recent_refusals: vec![RecentRefusal {
            at,
            class: Class::Realtime,
            endpoint: Endpoint::GetConversation,
            retry_after_secs: 4,
        }],
    }
}

#[test]
fn the_page_shows_every_section_with_its_figures_and_no_markup_from_its_input() {
    let page = render(&figures());
    for expected in [
        "<span class=\"badge ok\" id=\"readiness\">ready</span>",
        "genesys_token: failing",
        "<td>realtime</td><td>5</td><td>1</td><td>0</td>",
        "<td>report</td><td>2</td><td>0</td><td>2</td>",
        "280 requests per 60 s",
        "<td>conversations</td><td>4</td><td>2.0 KiB of 1.0 MiB</td><td>75.0%</td>",
        "failing: the last token request failed",
        "<td>get_conversation</td><td>7</td><td>4</td><td>0</td><td>1</td><td>0</td><td>2</td>",
        "2026-03-12T09:30:00Z (UTC)",
        "<td>2026-03-12T09:30:00Z</td><td>realtime</td><td>get_conversation</td><td>4 s</td>",
    ] {
        assert!(page.contains(expected), "missing `{expected}` in\n{page}");
    }
    assert!(!page.contains("<script"), "markup from the input: {page}");
    assert!(page.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"));
    assert!(!page.contains("src="), "nothing loaded from anywhere");
}

#[test]
fn an_idle_proxy_says_so_rather_than_showing_empty_tables() {
    let mut figures = figures();
    figures.upstream = Upstream::default();
    figures.recent_refusals.clear();
    figures.ready = false;
    let page = render(&figures);
    assert!(page.contains("No call to Genesys yet."));
    assert!(page.contains("No call refused by the budget since the start."));
    assert!(page.contains("id=\"readiness\">not ready</span>"));
    assert!(page.contains("<dd>never</dd>") || page.contains("last 429</dt><dd>never"));
}
