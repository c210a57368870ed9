"""Ports for the stack's parts: chosen where nothing else takes them, and a lost race named."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from gameday.stack.processes import free_port, listening
from gameday.stack.provider import ProviderServer, ProviderStartError


def _ephemeral_low() -> int:
    return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])


def test_ports_come_from_below_the_ephemeral_range_and_are_bindable() -> None:
    """Outgoing connections and bind(0) draw from the ephemeral range, so they cannot take
    a port between our choice and the child's bind."""
    ports = [free_port() for _ in range(50)]
    assert all(1024 < p < _ephemeral_low() for p in ports), ports
    assert len(set(ports)) > 40  # spread, not one fixed port that two stacks would share
    for port in ports[:5]:
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))


def test_a_taken_port_is_reported_as_the_childs_own_words(tmp_path: Path) -> None:
    part = ProviderServer(tmp_path, start_timeout_s=20)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", part.port))
        squatter.listen()
        with pytest.raises(ProviderStartError) as raised:
            part.start()
    message = str(raised.value)
    assert "exited with code 2" in message
    assert f"cannot listen on 127.0.0.1:{part.port}" in message
    assert not listening(part.port)
