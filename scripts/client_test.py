"""A client generated from openapi/openapi.json, used as a team would use it (issue 17).

Run by scripts/client-test, which generates the package `genesys_proxy_client` with
openapi-python-client into target/client-test, type-checks it and this file with
`mypy --strict`, starts the demo and runs this against it:

    python client_test.py URL API_KEY CONVERSATION_ID

Every answer is read through the generated, typed models; any surprise is an
AssertionError naming what was expected, and the exit status is non-zero.
"""

from __future__ import annotations

import sys
from http import HTTPStatus
from typing import TypeVar
from uuid import UUID, uuid4

from genesys_proxy_client import AuthenticatedClient
from genesys_proxy_client.api.conversations import get_conversation
from genesys_proxy_client.api.reports import aggregates_post, search_post
from genesys_proxy_client.models import (
    AggregatesLast,
    AggregatesResponseBody,
    ConversationView,
    GenesysConversation,
    GetConversationView,
    GroupBy,
    MediaType,
    Metric,
    Problem,
    SearchFromTo,
    SearchLast,
    SearchResponse,
    Unit,
)
from genesys_proxy_client.types import Response


T = TypeVar("T")


def expect(response: Response[T], status: HTTPStatus, what: str) -> None:
    assert response.status_code == status, (
        f"{what}: expected {status}, got {response.status_code}: {response.content!r}"
    )


def conversations(client: AuthenticatedClient, conversation_id: UUID) -> None:
    """Both views, and a 304 for each one's ETag."""
    summary = get_conversation.sync_detailed(conversation_id, client=client)
    expect(summary, HTTPStatus.OK, "the summary view")
    view = summary.parsed
    assert isinstance(view, ConversationView), f"a ConversationView, not {view!r}"
    assert view.id == str(conversation_id), view.id
    assert view.participants, "the view lists its participants"

    full = get_conversation.sync_detailed(
        conversation_id, client=client, view=GetConversationView.FULL
    )
    expect(full, HTTPStatus.OK, "the full view")
    document = full.parsed
    assert isinstance(document, GenesysConversation), f"Genesys' document, not {document!r}"
    assert document.additional_properties["id"] == str(conversation_id)
    assert "participants" in document.additional_properties

    for response, view_name in [(summary, GetConversationView.SUMMARY), (full, GetConversationView.FULL)]:
        etag = response.headers["etag"]
        unchanged = get_conversation.sync_detailed(
            conversation_id, client=client, view=view_name, if_none_match=etag
        )
        expect(unchanged, HTTPStatus.NOT_MODIFIED, f"{view_name} with If-None-Match")
        assert unchanged.parsed is None and unchanged.content == b""
        assert unchanged.headers["etag"] == etag
    assert summary.headers["etag"] != full.headers["etag"], "each view has its own ETag"


def search_walk(client: AuthenticatedClient) -> None:
    """A search walked page by page with its cursors, to its end."""
    request = SearchLast(last="P7D", page_size=2, media_types=[MediaType.VOICE, MediaType.CHAT])
    seen: list[str] = []
    pages = 0
    while True:
        response = search_post.sync_detailed(client=client, body=request)
        expect(response, HTTPStatus.OK, f"search page {pages + 1}")
        page = response.parsed
        assert isinstance(page, SearchResponse), f"a SearchResponse, not {page!r}"
        pages += 1
        assert len(page.results) <= 2
        seen.extend(hit.id for hit in page.results)
        assert all(hit.media_type in ("voice", "chat") for hit in page.results)
        if not isinstance(page.next_cursor, str):
            break
        request.cursor = page.next_cursor
        assert pages < 1000, "the walk ends"
    assert pages >= 2, f"the demo's week fills more than one page of 2 ({len(seen)} hits)"
    assert len(seen) == len(set(seen)), "no conversation is on two pages"


def aggregates(client: AuthenticatedClient) -> None:
    """Offers and waits per queue in six-hour buckets."""
    request = AggregatesLast(
        last="P1D",
        granularity="PT6H",
        group_by=[GroupBy.QUEUE_ID],
        metrics=[Metric.OFFERED, Metric.WAIT],
    )
    response = aggregates_post.sync_detailed(client=client, body=request)
    expect(response, HTTPStatus.OK, "aggregates")
    body = response.parsed
    assert isinstance(body, AggregatesResponseBody), f"an AggregatesResponseBody, not {body!r}"
    assert body.granularity == "PT6H", body.granularity
    assert body.series, "the demo's day has figures"
    for point in body.series:
        assert "queue_id" in point.group.additional_properties, point.group
        for name, stats in point.metrics.additional_properties.items():
            assert name in ("offered", "wait"), name
            assert stats.unit == (Unit.COUNT if name == "offered" else Unit.SECONDS)
            assert stats.count >= 0


def problems(client: AuthenticatedClient, url: str) -> None:
    """Errors arrive as typed Problem values (application/problem+json)."""
    too_long = search_post.sync_detailed(client=client, body=SearchLast(last="P9999D"))
    expect(too_long, HTTPStatus.BAD_REQUEST, "a year and more")
    problem = too_long.parsed
    assert isinstance(problem, Problem), f"a Problem, not {problem!r}"
    assert problem.status == 400 and problem.type_.endswith(":invalid-request"), problem
    assert [error.name for error in problem.errors or []] == ["last"], problem.errors

    backwards = search_post.sync_detailed(
        client=client,
        body=SearchFromTo.from_dict({"from": "2025-03-11T00:00:00Z", "to": "2025-03-04T00:00:00Z"}),
    )
    expect(backwards, HTTPStatus.BAD_REQUEST, "an interval ending before it starts")
    assert isinstance(backwards.parsed, Problem)
    assert [error.name for error in backwards.parsed.errors or []] == ["to"]

    unknown = get_conversation.sync_detailed(uuid4(), client=client)
    expect(unknown, HTTPStatus.NOT_FOUND, "an unknown conversation")
    assert isinstance(unknown.parsed, Problem) and unknown.parsed.status == 404

    stranger = AuthenticatedClient(base_url=url, token="gp_not_a_key_of_this_proxy")
    with stranger:
        refused = search_post.sync_detailed(client=stranger, body=SearchLast(last="PT1H"))
    expect(refused, HTTPStatus.UNAUTHORIZED, "an unknown key")
    assert isinstance(refused.parsed, Problem) and refused.parsed.status == 401


def main() -> None:
    url, key, conversation_id = sys.argv[1:4]
    with AuthenticatedClient(base_url=url, token=key, raise_on_unexpected_status=True) as client:
        conversations(client, UUID(conversation_id))
        search_walk(client)
        aggregates(client)
        problems(client, url)
    print("client-test: the generated client got both views and 304s, walked a search, read aggregates and typed problems")


if __name__ == "__main__":
    main()
