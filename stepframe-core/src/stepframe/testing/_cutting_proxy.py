"""A TCP proxy on 127.0.0.1 that cuts a connection mid-transfer, for the resumption tests
of artifact stores (moved here from stepframe-gcp's tests so every store's tests share it).

Every connection is forwarded to the target.  After `arm(n)`, the connection that carries
the n-th byte answered from then on is cut there (both of its sockets closed); the proxy
then forwards faithfully again.  Tests only: it never runs in a product.
"""

from __future__ import annotations

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
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def arm(self, answer_bytes: int) -> None:
        with self._lock:
            self._left = answer_bytes

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
                if answers:
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
