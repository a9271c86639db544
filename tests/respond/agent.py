"""A small helper run inside a test namespace: it answers JSON commands on
stdin with one JSON line each (client probes, port scans, servers).

    ip netns exec NS python3 -m tests.respond.agent

Commands: ``{"op": "connect", "src", "dst", "port", "timeout"}`` ->
``{"result": "ok" | "timeout" | "refused" | "reset" | ...}``;
``{"op": "scan", "src", "dst", "ports": [..]}`` -> per-result counts;
``{"op": "serve", "ports": [..]}`` starts servers that answer ``ok`` and
echo; ``{"op": "hold", "src", "dst", "port", "idle"}`` opens a connection that
sends a byte every 0.1 s and reads the echo until it fails (``idle``: sends
nothing and waits);
``{"op": "held"}`` -> how that connection ended; ``{"op": "served"}`` ->
how the server's connections ended.
"""

from __future__ import annotations

import errno
import json
import socket
import sys
import threading
import time
from typing import Any

HELD: dict[str, Any] = {}
#: How the server's connections ended: "closed" or "ECONNRESET".
SERVED: dict[str, int] = {}


def connect(src: str | None, dst: str, port: int, timeout: float) -> str:
    s = socket.socket()
    s.settimeout(timeout)
    try:
        if src:
            s.bind((src, 0))
        s.connect((dst, port))
        data = s.recv(16)
        return "ok" if data.startswith(b"ok") else f"got {data!r}"
    except TimeoutError:
        return "timeout"
    except ConnectionRefusedError:
        return "refused"
    except ConnectionResetError:
        return "reset"
    except OSError as e:
        return errno.errorcode.get(e.errno or 0, str(e))
    finally:
        s.close()


def scan(src: str | None, dst: str, ports: list[int]) -> dict[str, int]:
    out: dict[str, int] = {}
    for p in ports:
        r = connect(src, dst, p, 0.3)
        out[r] = out.get(r, 0) + 1
    return out


def _serve_one(conn: socket.socket) -> None:
    try:
        conn.sendall(b"ok")
        while data := conn.recv(1024):
            conn.sendall(data)
        SERVED["closed"] = SERVED.get("closed", 0) + 1
    except ConnectionResetError:
        SERVED["ECONNRESET"] = SERVED.get("ECONNRESET", 0) + 1
    except OSError:
        pass
    finally:
        conn.close()


def serve(ports: list[int]) -> None:
    for port in ports:
        ls = socket.socket()
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("0.0.0.0", port))
        ls.listen(64)

        def loop(ls: socket.socket = ls) -> None:
            while True:
                c, _ = ls.accept()
                threading.Thread(target=_serve_one, args=(c,), daemon=True).start()

        threading.Thread(target=loop, daemon=True).start()


def hold(src: str | None, dst: str, port: int, idle: bool = False) -> dict[str, Any]:
    s = socket.socket()
    if src:
        s.bind((src, 0))
    s.connect((dst, port))
    s.recv(2)
    HELD.update(port=s.getsockname()[1], ended=None)

    def loop() -> None:
        s.settimeout(60.0 if idle else 1.0)
        try:
            if idle:  # silent: only the peer's or a reset's packet wakes it
                HELD["ended"] = "closed" if not s.recv(16) else "data"
                return
            while True:
                s.sendall(b"x")
                if not s.recv(16):
                    HELD["ended"] = "closed"
                    return
                time.sleep(0.1)
        except ConnectionResetError:
            HELD["ended"] = "ECONNRESET"
        except OSError as e:
            HELD["ended"] = errno.errorcode.get(e.errno or 0, str(e))
        HELD["at"] = time.time()

    threading.Thread(target=loop, daemon=True).start()
    return {"port": HELD["port"]}


def main() -> None:
    for line in sys.stdin:
        cmd = json.loads(line)
        op = cmd["op"]
        if op == "connect":
            out: Any = {
                "result": connect(
                    cmd.get("src"), cmd["dst"], cmd["port"], cmd.get("timeout", 1.0)
                )
            }
        elif op == "scan":
            out = scan(cmd.get("src"), cmd["dst"], cmd["ports"])
        elif op == "serve":
            serve(cmd["ports"])
            out = {"serving": cmd["ports"]}
        elif op == "hold":
            out = hold(cmd.get("src"), cmd["dst"], cmd["port"], cmd.get("idle", False))
        elif op == "held":
            out = dict(HELD)
        elif op == "served":
            out = dict(SERVED)
        else:
            out = {"error": f"unknown op {op!r}"}
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
