"""The proxy between a real Redis client (redis-py) and the machine's Redis.

Clients retry nothing (``Retry(NoBackoff(), 0)``) so that every failure the proxy causes is
seen by the test, and the same client object is used before, during and after each fault.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from gameday.faults.proxy import ProxyClient

MakeLink = Callable[..., tuple[str, int]]
REDIS_PORT = 6379


@pytest.fixture
def link(make_link: MakeLink) -> tuple[str, int]:
    return make_link(REDIS_PORT)


@pytest.fixture
def key() -> Iterator[str]:
    name = f"gameday:test:proxy:{uuid.uuid4().hex}"
    yield name
    with redis.Redis(port=REDIS_PORT) as direct:
        direct.delete(name)


def _client(port: int, timeout: float = 5.0) -> redis.Redis:
    return redis.Redis(
        host="127.0.0.1", port=port, socket_timeout=timeout, socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
    )  # fmt: skip


def test_commands_pass_unchanged(link: tuple[str, int], key: str) -> None:
    with _client(link[1]) as client:
        assert client.ping()
        client.set(key, b"v" * 100_000)
        assert client.get(key) == b"v" * 100_000


def test_down_refuses_and_the_same_client_works_after_heal(
    proxy: ProxyClient, link: tuple[str, int], key: str
) -> None:
    name, port = link
    with _client(port) as client:
        client.set(key, "before")
        toxic = proxy.add_toxic(name, "down")
        with pytest.raises(redis.ConnectionError):
            client.get(key)  # the open connection was reset
        with pytest.raises(redis.ConnectionError, match="refused"):
            client.get(key)  # and a new one is refused
        proxy.remove_toxic(name, toxic)
        proxy.remove_toxic(name, toxic)  # healing twice is harmless
        assert client.get(key) == b"before"


def test_blackhole_times_out_and_the_same_client_works_after_heal(
    proxy: ProxyClient, link: tuple[str, int], key: str
) -> None:
    name, port = link
    with _client(port, timeout=0.3) as client:
        client.set(key, "x")
        toxic = proxy.add_toxic(name, "blackhole")
        with pytest.raises(redis.TimeoutError):
            client.get(key)
        proxy.remove_toxic(name, toxic)
        assert client.get(key) == b"x"


def test_bandwidth_paces_a_large_value_both_ways(
    proxy: ProxyClient, link: tuple[str, int], key: str
) -> None:
    name, port = link
    rate, size = 2_000_000, 1_000_000
    with _client(port, timeout=10) as client:
        client.ping()
        proxy.add_toxic(name, "bandwidth", bytes_per_s=rate)
        start = time.perf_counter()
        client.set(key, b"b" * size)
        upload = time.perf_counter() - start
        start = time.perf_counter()
        assert client.get(key) == b"b" * size
        download = time.perf_counter() - start
    expected = size / rate
    assert expected <= upload < expected + 1.5
    assert expected <= download < expected + 1.5


def test_reset_peer_after_bytes_resets_a_large_command(
    proxy: ProxyClient, link: tuple[str, int], key: str
) -> None:
    name, port = link
    with _client(port) as client:
        client.ping()
        proxy.add_toxic(name, "reset_peer", after_bytes=10_000)
        assert client.ping()  # a few bytes: under the limit
        with pytest.raises(redis.ConnectionError):
            client.set(key, b"r" * 20_000)
