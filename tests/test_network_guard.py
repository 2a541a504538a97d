"""The suite's guard refuses any connection off this machine, and lets loopback through."""

import socket

import pytest

from tests.conftest import NetworkBlocked


def test_public_address_is_refused(network_guard):
    with socket.socket() as sock, pytest.raises(NetworkBlocked):
        sock.connect(("93.184.216.34", 443))
    network_guard.clear()


def test_name_lookup_is_refused(network_guard):
    with pytest.raises(NetworkBlocked):
        socket.getaddrinfo("huggingface.co", 443)
    network_guard.clear()


def test_loopback_is_allowed():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.socket() as client:
            client.connect(server.getsockname())
