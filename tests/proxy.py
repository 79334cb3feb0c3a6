"""A real TCP proxy on loopback that can go down, or drop connections at random."""

from __future__ import annotations

import random
import socket
import threading


class FlakyProxy:
    def __init__(self, target_port: int, drop_rate: float = 0.0, seed: int = 0):
        self.target_port = target_port
        self.drop_rate = drop_rate
        self.down = threading.Event()
        self.dropped = 0
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
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b, pipes, cut_after), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, pipes, cut_after) -> None:
        moved = 0
        try:
            while data := src.recv(65536):
                if self.down.is_set() or (cut_after is not None and moved + len(data) > cut_after):
                    break
                dst.sendall(data)
                moved += len(data)
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
