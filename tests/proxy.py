"""A real TCP proxy on loopback that can go down, or drop connections at random."""

from __future__ import annotations

import random
import re
import socket
import threading
import time

STATUS_5XX = re.compile(rb"HTTP/1\.[01] 5\d\d ")


class FlakyProxy:
    def __init__(self, target_port: int, drop_rate: float = 0.0, seed: int = 0, bytes_per_second: float = 0):
        self.target_port = target_port
        self.drop_rate = drop_rate
        self.bytes_per_second = bytes_per_second  # 0: as fast as loopback
        self.down = threading.Event()
        self.dropped = 0
        self.server_errors = 0  # 5xx status lines relayed from the server
        self.rng = random.Random(seed)
        self._lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._closing = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _decide_drop(self) -> bool:
        with self._lock:
            drop = self.rng.random() < self.drop_rate
            if drop:
                self.dropped += 1
            return drop

    def _accept(self) -> None:
        while not self._closing:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.down.is_set():
                client.close()  # like a network that is out: the connection dies at once
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            # Drop either at once or after some bytes went through (mid-request / mid-response).
            cut_after = self.rng.randint(0, 200_000) if self._decide_drop() else None
            pipes = (client, upstream)
            for a, b, from_server in ((client, upstream, False), (upstream, client, True)):
                threading.Thread(target=self._pipe, args=(a, b, pipes, cut_after, from_server), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, pipes, cut_after, from_server: bool) -> None:
        moved = 0
        try:
            while data := src.recv(16384):
                if from_server and STATUS_5XX.search(data):
                    with self._lock:
                        self.server_errors += 1
                if self.down.is_set() or (cut_after is not None and moved + len(data) > cut_after):
                    break
                dst.sendall(data)
                moved += len(data)
                if self.bytes_per_second:
                    time.sleep(len(data) / self.bytes_per_second)
        except OSError:
            pass
        for s in pipes:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self) -> None:
        self._closing = True
        self.listener.close()
