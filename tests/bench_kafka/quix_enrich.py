"""Quix Streams enrich: the contender of deploy/local/bench-kafka.sh that does what the Weir stage
examples-wasm/json-enrich does, written as a user would with Quix Streams.

Every click (a JSON object with a `url` and a `ts`) gets the fields the Rust example derives:
`domain` (the URL's host, lower-cased, without port), `path` (`/` when empty), `section` (the
path's first segment), the `ref` and `utm_*` query parameters (percent-decoded), and `hour` (the
UTC hour of `ts`, in milliseconds). Records that are not a JSON object with a string `url` are
dropped here (Weir sends them to its dead-letter topic); the benchmark counts them exactly.
Commits every second. Runs until SIGTERM or SIGINT.

    quix_enrich.py BROKERS INPUT OUTPUT GROUP
"""

import json
import sys
from urllib.parse import parse_qsl, urlsplit

from quixstreams import Application

HOUR_MS = 3_600_000


def enrich(value: bytes):
    """The enriched click as a dict, or None when the value is not a click."""
    try:
        click = json.loads(value)
    except ValueError:
        return None
    if not isinstance(click, dict) or not isinstance(click.get("url"), str):
        return None
    url = urlsplit(click["url"])
    if not url.scheme or not url.hostname:
        return None
    path = url.path or "/"
    click["domain"] = url.hostname.lower()
    click["path"] = path
    click["section"] = path.removeprefix("/").split("/")[0]
    for name, v in parse_qsl(url.query, keep_blank_values=True):
        if name == "ref" or name.startswith("utm_"):
            click[name] = v
    ts = click.get("ts")
    if isinstance(ts, (int, float)) and not isinstance(ts, bool):
        click["hour"] = (int(ts) // HOUR_MS) % 24
    return click


def main():
    brokers, source, sink, group = sys.argv[1:5]
    app = Application(
        broker_address=brokers,
        consumer_group=group,
        auto_offset_reset="earliest",
        commit_interval=1.0,
        consumer_extra_config={"session.timeout.ms": 6000, "fetch.wait.max.ms": 50},
        producer_extra_config={"enable.idempotence": True, "linger.ms": 5},
        loglevel="WARNING",
        use_changelog_topics=False,
    )
    input_topic = app.topic(source, value_deserializer="bytes", key_deserializer="bytes")
    output_topic = app.topic(sink, value_serializer="json", key_serializer="bytes")
    sdf = app.dataframe(input_topic)
    sdf = sdf.apply(enrich).filter(lambda click: click is not None)
    sdf.to_topic(output_topic)
    app.run()


if __name__ == "__main__":
    main()
