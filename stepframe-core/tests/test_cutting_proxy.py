"""`stepframe.testing.CuttingProxy.arm_answer_to`: the answers to chosen requests are cut,
the others pass whole (a real HTTP server behind the proxy, raw sockets in front)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from stepframe.testing import CuttingProxy

BODY = b"x" * 1000


class _Handler(BaseHTTPRequestHandler):
    def _answer(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(BODY)

    do_GET = do_PUT = do_POST = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def proxy() -> Iterator[CuttingProxy]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    cutting = CuttingProxy(server.server_port)
    yield cutting
    cutting.close()
    server.shutdown()
    server.server_close()


def _answer_to(proxy: CuttingProxy, request_line: str, *header_lines: str) -> bytes:
    """Every byte of the answer, up to the proxy or the server closing the connection."""
    port = int(proxy.url.rsplit(":", 1)[1])
    head = "\r\n".join([request_line, "Host: x", *header_lines, "Content-Length: 0"])
    with socket.create_connection(("127.0.0.1", port)) as connection:
        connection.sendall(f"{head}\r\n\r\n".encode())
        received = b""
        while chunk := connection.recv(65536):
            received += chunk
    return received


def test_the_answers_to_matching_requests_are_cut_the_others_pass(proxy: CuttingProxy) -> None:
    proxy.arm_answer_to(r"^PUT [^ ]*/jobs/", 10, times=2)

    assert _answer_to(proxy, "GET /a/jobs/1 HTTP/1.1").endswith(BODY)  # another method
    assert _answer_to(proxy, "PUT /a/environments/1 HTTP/1.1").endswith(BODY)
    assert _answer_to(proxy, "PUT /a/jobs/1 HTTP/1.1") == b"HTTP/1.0 2"
    assert _answer_to(proxy, "PUT /a/jobs/2 HTTP/1.1") == b"HTTP/1.0 2"
    assert proxy.cuts == 2
    assert _answer_to(proxy, "PUT /a/jobs/3 HTTP/1.1").endswith(BODY)  # disarmed after two


def test_an_answer_cut_at_zero_bytes_sends_none_of_it(proxy: CuttingProxy) -> None:
    proxy.arm_answer_to(r"^PUT ", 0)
    assert _answer_to(proxy, "PUT /jobs/1 HTTP/1.1") == b""
    assert proxy.cuts == 1


def test_a_header_chooses_among_requests_that_share_a_request_line(proxy: CuttingProxy) -> None:
    # JSON APIs (AWS's X-Amz-Target) send every call as ``POST /``: only the header tells.
    proxy.arm_answer_to(r"^POST / ", 0, header=r"^X-Amz-Target: SageMaker\.CreateTrainingJob$")

    describe = _answer_to(proxy, "POST / HTTP/1.1", "X-Amz-Target: SageMaker.DescribeTrainingJob")
    create = _answer_to(proxy, "POST / HTTP/1.1", "X-Amz-Target: SageMaker.CreateTrainingJob")

    assert describe.endswith(BODY)
    assert create == b""
    assert proxy.cuts == 1
