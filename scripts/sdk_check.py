"""A client no one here wrote reads the simulator: the official Genesys Cloud Python SDK
(PureCloudPlatformClientV2, pinned in scripts/requirements-sdk.txt) calls the simulator
at the base URL given as the only argument, with its own API classes, and deserializes
every answer with its own models. Run by scripts/sdk-check, with warnings as errors
(`python -W error`).

For each call the raw JSON the SDK received is kept (ApiClient.deserialize is wrapped)
and checked against what the SDK made of it:
  * re-serialized (ApiClient.sanitize_for_serialization), the model must give back the
    raw JSON, timestamps compared as instants: a field the SDK's model does not know
    would be dropped silently, and this catches it;
  * no enum value may have become "outdated_sdk_version" (the SDK's silent mapping of
    values its model does not list).
Calls: token (client credentials), routing queues (paged), conversations (ended and live), the analytics
details (query, one, multi-get), aggregates, notification channels (create, list) and
subscriptions (POST, PUT, GET, DELETE), and the conversation events of the notification
socket (read with the SDK's QueueConversationEventTopicConversation and
ConversationEventTopicConversation models, after the simulator's clock is moved on
through its control API). A self-test first shows the comparison a known-bad
document, which it must flag.
"""

import base64
import json
import os
import re
import socket
import time
import sys
import urllib.request
from urllib.parse import urlparse
from datetime import datetime

import PureCloudPlatformClientV2 as sdk
from PureCloudPlatformClientV2.rest import ApiException

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
FAILURES = []


class RecordingClient(sdk.ApiClient):
    """The SDK's ApiClient, keeping the raw JSON of the last deserialized response."""

    last_raw = None

    def deserialize(self, response, response_type):
        RecordingClient.last_raw = json.loads(response.data) if response.data else None
        return super().deserialize(response, response_type)


def normalize(value):
    """JSON with timestamps as aware datetimes (the SDK writes them back differently)."""
    if isinstance(value, dict):
        return {k: normalize(v) for k, v in value.items()}
    if isinstance(value, list):
        return [normalize(v) for v in value]
    if isinstance(value, str) and TIMESTAMP.match(value):
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def differences(raw, back, path=""):
    if isinstance(raw, dict) and isinstance(back, dict):
        out = []
        for key in sorted(set(raw) | set(back)):
            if key not in back:
                out.append(f"{path}/{key}: dropped by the SDK model")
            elif key not in raw:
                out.append(f"{path}/{key}: added by the SDK model")
            else:
                out.extend(differences(raw[key], back[key], f"{path}/{key}"))
        return out
    if isinstance(raw, list) and isinstance(back, list):
        if len(raw) != len(back):
            return [f"{path}: {len(raw)} items became {len(back)}"]
        out = []
        for i, (a, b) in enumerate(zip(raw, back)):
            out.extend(differences(a, b, f"{path}/{i}"))
        return out
    return [] if raw == back else [f"{path}: {raw!r} became {back!r}"]


def outdated(value, path=""):
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in outdated(v, f"{path}/{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in outdated(v, f"{path}/{i}")]
    return [path] if value == "outdated_sdk_version" else []


def check(name, client, call):
    """Runs one SDK call and compares its model with the raw JSON; returns the model."""
    try:
        model = call()
    except ApiException as error:
        FAILURES.append(f"{name}: HTTP {error.status}: {error.body}")
        return None
    raw = RecordingClient.last_raw
    back = client.sanitize_for_serialization(model)
    problems = outdated(back) + differences(normalize(raw), normalize(back))
    for problem in problems[:20]:
        FAILURES.append(f"{name}: {problem}")
    print(f"  {'ok  ' if not problems else 'FAIL'} {name} ({type(model).__name__})")
    return model


def self_test(client):
    """The comparison must flag a field the model lacks and an enum value it does not list."""
    raw = {"id": "c", "participants": [{"id": "p", "calls": [{"state": "talking", "madeUp": 1}]}]}
    model = client._ApiClient__deserialize(raw, "Conversation")
    back = client.sanitize_for_serialization(model)
    flagged = outdated(back) + differences(normalize(raw), normalize(back))
    if "/participants/0/calls/0/state" not in flagged or not any("madeUp: dropped" in f for f in flagged):
        FAILURES.append(f"self-test: a known-bad Conversation gave {flagged}")
    else:
        print("  ok   self-test: a known-bad Conversation is flagged")


class EventSocket:
    """Just enough of a WebSocket client (RFC 6455) to read the simulator's text frames:
    the standard library has none, and the SDK's notification handler is not in the
    Python SDK."""

    def __init__(self, uri):
        url = urlparse(uri)
        self.sock = socket.create_connection((url.hostname, url.port), timeout=20)
        key = base64.b64encode(os.urandom(16)).decode("ascii")
        self.sock.sendall(
            (f"GET {url.path} HTTP/1.1\r\nHost: {url.netloc}\r\nUpgrade: websocket\r\n"
             f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode("ascii"))
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            if not chunk:
                raise ConnectionError("the socket closed during the handshake")
            head += chunk
        status = head.split(b"\r\n", 1)[0]
        if b" 101 " not in status:
            raise ConnectionError(f"handshake refused: {status!r}")

    def _exactly(self, n):
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("the socket closed")
            data += chunk
        return data

    def next_text(self):
        """The next text frame as JSON (server frames are unmasked and, here, unfragmented)."""
        while True:
            first, second = self._exactly(2)
            opcode, length = first & 0x0F, second & 0x7F
            if length == 126:
                length = int.from_bytes(self._exactly(2), "big")
            elif length == 127:
                length = int.from_bytes(self._exactly(8), "big")
            payload = self._exactly(length)
            if opcode == 1:
                return json.loads(payload.decode("utf-8"))
            if opcode == 8:
                raise ConnectionError("the server closed the socket")

    def close(self):
        self.sock.close()


def check_events(client, base_url, channel, queue_ids):
    """Subscribes to every queue and agent, moves the clock, and has the SDK's event models
    read the conversation events (queue and user topics)."""
    notifications = sdk.NotificationsApi(client)
    with urllib.request.urlopen(base_url + "/sim/org") as reply:
        agents = [a["id"] for a in json.load(reply)["agents"]]
    wanted = [f"v2.routing.queues.{q}.conversations" for q in queue_ids]
    wanted += [f"v2.users.{a}.conversations" for a in agents]
    topics = []
    for name in wanted:
        topic = sdk.ChannelTopic()
        topic.id = name
        topics.append(topic)
    notifications.put_notifications_channel_subscriptions(channel.id, topics)
    events = EventSocket(channel.connect_uri)
    try:
        advance = urllib.request.Request(
            base_url + "/sim/clock/advance", data=b'{"seconds": 600}',
            headers={"Content-Type": "application/json"}, method="POST")
        urllib.request.urlopen(advance).close()
        models = {"v2.routing.queues.": "QueueConversationEventTopicConversation",
                  "v2.users.": "ConversationEventTopicConversation"}
        seen = {name: 0 for name in models.values()}
        deadline = time.monotonic() + 20
        while min(seen.values()) < 5 and time.monotonic() < deadline:
            message = events.next_text()
            topic = message.get("topicName", "")
            model_name = next((m for prefix, m in models.items() if topic.startswith(prefix)), None)
            if model_name is None:
                continue
            raw = message["eventBody"]
            back = client.sanitize_for_serialization(client._ApiClient__deserialize(raw, model_name))
            problems = outdated(back) + differences(normalize(raw), normalize(back))
            for problem in problems[:20]:
                FAILURES.append(f"event on {topic}: {problem}")
            seen[model_name] += 1
        for model_name, count in seen.items():
            if count < 5:
                FAILURES.append(f"events: only {count} {model_name} arrived")
            else:
                print(f"  ok   {count} events read as {model_name}")
    finally:
        events.close()


def main(base_url):
    config = sdk.configuration
    config.host = base_url
    client = RecordingClient(host=base_url)
    self_test(client)
    client.get_client_credentials_token("sim-client", "sim-secret")
    if not client.access_token:
        FAILURES.append("token: no access_token")
    print("  ok   token (client credentials)")

    routing = sdk.RoutingApi(client)
    first = check("routing queues page 1", client, lambda: routing.get_routing_queues(page_size=5, page_number=1))
    second = check("routing queues page 2", client, lambda: routing.get_routing_queues(page_size=5, page_number=2))
    queue_ids = [q.id for page in (first, second) if page for q in page.entities or []]
    queue_id = queue_ids[0] if queue_ids else None

    analytics = sdk.AnalyticsApi(client)
    query = sdk.ConversationQuery()
    query.interval = "2025-03-01T00:00:00.000Z/2025-03-12T00:00:00.000Z"
    query.paging = sdk.PagingSpec()
    query.paging.page_size = 25
    query.paging.page_number = 1
    page = check("details query", client, lambda: analytics.post_analytics_conversations_details_query(query))
    ids = [c.conversation_id for c in (page.conversations or [])] if page else []
    if len(ids) < 3:
        FAILURES.append(f"details query: {len(ids)} conversations, expected a page")
    else:
        check("details of one", client, lambda: analytics.get_analytics_conversation_details(ids[0]))
        check("details multi-get", client, lambda: analytics.get_analytics_conversations_details(id=ids[:3]))
        conversations = sdk.ConversationsApi(client)
        with urllib.request.urlopen(base_url + "/sim/org") as reply:
            live = json.load(reply)["conversations"]["sample_live_ids"][:2]
        if not live:
            FAILURES.append("no live conversation to read")
        for conversation in ids[:3] + live:
            check(f"conversation {conversation}", client, lambda c=conversation: conversations.get_conversation(c))

    aggregation = sdk.ConversationAggregationQuery()
    aggregation.interval = "2025-03-01T00:00:00.000Z/2025-03-12T00:00:00.000Z"
    aggregation.granularity = "P1D"
    aggregation.group_by = ["queueId"]
    aggregation.metrics = ["nOffered", "tWait", "tAbandon", "tHandle", "tAcw", "tTalk"]
    check("aggregates query", client, lambda: analytics.post_analytics_conversations_aggregates_query(aggregation))

    notifications = sdk.NotificationsApi(client)
    channel = check("create channel", client, lambda: notifications.post_notifications_channels())
    check("list channels", client, lambda: notifications.get_notifications_channels())
    if channel and queue_id:
        topic = sdk.ChannelTopic()
        topic.id = f"v2.routing.queues.{queue_id}.conversations"
        check("subscribe (POST)", client, lambda: notifications.post_notifications_channel_subscriptions(channel.id, [topic]))
        check("subscribe (PUT)", client, lambda: notifications.put_notifications_channel_subscriptions(channel.id, [topic]))
        listing = check("subscriptions (GET)", client, lambda: notifications.get_notifications_channel_subscriptions(channel.id))
        if listing and [t.id for t in listing.entities or []] != [topic.id]:
            FAILURES.append(f"subscriptions: {listing.entities} is not [{topic.id}]")
        try:
            notifications.delete_notifications_channel_subscriptions(channel.id)
            print("  ok   unsubscribe (DELETE)")
        except ApiException as error:
            FAILURES.append(f"unsubscribe: HTTP {error.status}: {error.body}")
        check_events(client, base_url, channel, queue_ids)
    elif not channel:
        FAILURES.append("no channel to subscribe on")

    if FAILURES:
        print("\nsdk-check FAILED:")
        for failure in FAILURES:
            print("  " + failure)
        return 1
    print("sdk-check: every answer read by the official SDK, field for field")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
