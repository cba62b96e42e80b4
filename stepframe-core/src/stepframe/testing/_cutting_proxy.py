"""A TCP proxy on 127.0.0.1 that cuts a connection mid-transfer, for the resumption tests
of artifact stores (moved here from stepframe-gcp's tests so every store's tests share it).

Every connection is forwarded to the target.  After `arm(n)`, the connection that carries
the n-th byte answered from then on is cut there (both of its sockets closed); the proxy
then forwards faithfully again.  After `arm_answer_to(pattern, n)`, the answer to the next
request whose request line matches (and, with ``header=``, one of whose header lines does)
is cut after its n-th byte (0: none of it comes back, though the target processed the
request).  Tests only: it never runs in a product.
"""

from __future__ import annotations

import re
import socket
import threading

__all__ = ["CuttingProxy"]


class CuttingProxy:
    """Forwards ``url`` (``http://127.0.0.1:PORT``) to ``target_port`` on 127.0.0.1;
    `cuts` counts the connections it cut."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.cuts = 0
        self._left: int | None = None
        self._lock = threading.Lock()
        # arm_answer_to: the request line (and header line) wanted, its answer's length
        # kept, how many more.
        self._request_line: re.Pattern[bytes] | None = None
        self._header: re.Pattern[bytes] | None = None
        self._answer_bytes = 0
        self._times = 0
        # upstream socket -> bytes of its current answer still to pass before the cut
        self._answer_left: dict[socket.socket, int] = {}
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def arm(self, answer_bytes: int) -> None:
        with self._lock:
            self._left = answer_bytes

    def arm_answer_to(
        self,
        request_line: str,
        answer_bytes: int = 0,
        *,
        times: int = 1,
        header: str | None = None,
    ) -> None:
        """Cut the answers to the next ``times`` requests whose request line
        (``PUT /path?query HTTP/1.1``) matches the regular expression ``request_line``,
        each after ``answer_bytes`` bytes, as a network failing between the service and
        the client would; `cuts` counts them.

        :param header: a regular expression one of the request's header lines must match
            as well (``X-Amz-Target: SageMaker\\.CreateTrainingJob``), for APIs whose
            calls all share one request line.
        """
        with self._lock:
            self._request_line = re.compile(request_line.encode())
            self._header = None if header is None else re.compile(header.encode())
            self._answer_bytes, self._times = answer_bytes, times

    def close(self) -> None:
        self.listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            threading.Thread(target=self._pipe, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, True), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, answers: bool) -> None:
        try:
            while chunk := source.recv(65536):
                cut_at = None
                if self._request_line is not None or self._answer_left:
                    with self._lock:
                        cut_at = self._targeted_cut(chunk, answers, source if answers else sink)
                if answers and cut_at is None:
                    with self._lock:
                        if self._left is not None:
                            if len(chunk) >= self._left:
                                cut_at, self._left = self._left, None
                                self.cuts += 1
                            else:
                                self._left -= len(chunk)
                if cut_at is not None:
                    sink.sendall(chunk[:cut_at])
                    break
                sink.sendall(chunk)
        except OSError:
            pass
        for end in (source, sink):
            try:
                end.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            end.close()

    def _targeted_cut(self, chunk: bytes, answers: bool, upstream: socket.socket) -> int | None:
        """`arm_answer_to`'s part (under the lock): note a matching request on its
        connection; where an answer to one passes, where to cut it (None: not here)."""
        if not answers:
            pattern, header = self._request_line, self._header
            request_line, _, rest = chunk.partition(b"\r\n")
            if (
                pattern is not None
                and pattern.search(request_line)
                and (header is None or _has_header_line(rest, header))
            ):
                self._answer_left[upstream] = self._answer_bytes
                self._times -= 1
                if self._times <= 0:
                    self._request_line = None
            return None
        left = self._answer_left.get(upstream)
        if left is None:
            return None
        if left < len(chunk):
            del self._answer_left[upstream]
            self.cuts += 1
            return left
        self._answer_left[upstream] = left - len(chunk)
        return None


def _has_header_line(rest: bytes, header: re.Pattern[bytes]) -> bool:
    """Whether a header line of a request (``rest``: what follows its request line in the
    chunk) matches ``header``."""
    return any(header.search(line) for line in rest.split(b"\r\n\r\n", 1)[0].split(b"\r\n"))
