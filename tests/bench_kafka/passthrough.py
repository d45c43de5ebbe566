"""Python confluent-kafka passthrough: the contender of deploy/local/bench-kafka.sh that a user
would write by hand in Python.

Consumes the input topic in a consumer group and produces every record unchanged (key, value,
timestamp, headers) to the same partition of the output topic with an idempotent producer. Every
second it commits, per partition, one past the last source offset whose copy the broker
acknowledged (copies of one partition are acknowledged in order). Runs until SIGTERM or SIGINT.

    passthrough.py BROKERS INPUT OUTPUT GROUP
"""

import collections
import signal
import sys
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition


def main():
    brokers, source, sink, group = sys.argv[1:5]
    consumer = Consumer({
        "bootstrap.servers": brokers,
        "group.id": group,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 6000,
        "fetch.wait.max.ms": 50,
        "queued.max.messages.kbytes": 32768,
    })
    producer = Producer({
        "bootstrap.servers": brokers,
        "enable.idempotence": True,
        "linger.ms": 5,
        "queue.buffering.max.kbytes": 65536,
        "queue.buffering.max.messages": 100000,
    })
    # Per partition: the source offsets of the copies in flight, in produce order, and one past
    # the last acknowledged one.
    in_flight = collections.defaultdict(collections.deque)
    acked = {}
    failed = []

    def delivered(err, msg):
        p = msg.partition()
        offset = in_flight[p].popleft()
        if err is not None:
            failed.append(err)
        else:
            acked[p] = offset + 1

    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(1))
    consumer.subscribe([source])
    committed = {}
    last_commit = time.monotonic()
    while not stopping:
        for m in consumer.consume(num_messages=1000, timeout=0.1):
            if m.error():
                raise KafkaException(m.error())
            p = m.partition()
            in_flight[p].append(m.offset())
            _, ts = m.timestamp()
            while True:
                try:
                    producer.produce(sink, m.value(), m.key(), partition=p, timestamp=ts,
                                     headers=m.headers(), on_delivery=delivered)
                    break
                except BufferError:
                    producer.poll(0.001)
        producer.poll(0)
        if failed:
            raise KafkaException(failed[0])
        if time.monotonic() - last_commit >= 1.0:
            last_commit = time.monotonic()
            offsets = [TopicPartition(source, p, o) for p, o in acked.items()
                       if committed.get(p) != o]
            if offsets:
                consumer.commit(offsets=offsets, asynchronous=True)
                committed.update((tp.partition, tp.offset) for tp in offsets)
    producer.flush(10)
    consumer.close()


if __name__ == "__main__":
    main()
