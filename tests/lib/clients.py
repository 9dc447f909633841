#!/usr/bin/env python3
"""tests/lib/clients.py - many slow or idle HTTP clients against one port,
for the e2e limit tests and bench/slowloris.sh.

  clients.py trickle PORT N INTERVAL MAXWAIT
      N connections send a request line, then one header line every
      INTERVAL seconds, forever; waits until the server has closed them all
      or MAXWAIT seconds passed. Prints one JSON line: how many were closed,
      after how long (min/max seconds from connect), the statuses answered.
  clients.py hold PORT N MODE OUT
      N connections that stay open: MODE headers (a partial header block),
      body (headers of a 1000-byte body, 10 bytes of it) or idle (nothing).
      Writes "ready N" to OUT once connected, then a line "closed I SECONDS
      STATUS" for each connection the server closes, in the order that
      happens, and "done" when all are; runs until killed.

It never sleeps to wait for the server: it waits on its sockets (select).
"""
import json, os, select, socket, sys, time


def connect(port, n):
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.setblocking(False)
        socks.append(s)
    return socks


def status_of(data):
    # "HTTP/1.1 408 Request Timeout\r\n..." -> 408; nothing -> 0
    try:
        return int(data.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return 0


def trickle(port, n, interval, maxwait):
    socks = connect(port, n)
    t0 = time.monotonic()
    for s in socks:
        s.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    got = {s: b"" for s in socks}
    closed = {}
    next_line = t0 + interval
    while len(closed) < n and time.monotonic() - t0 < maxwait:
        open_socks = [s for s in socks if s not in closed]
        r, _, _ = select.select(open_socks, [], [], max(0.0, next_line - time.monotonic()))
        for s in r:
            try:
                data = s.recv(65536)
            except OSError:
                data = b""
            if data:
                got[s] += data
            else:
                closed[s] = time.monotonic() - t0
        if time.monotonic() >= next_line:
            for s in open_socks:
                if s in closed:
                    continue
                try:
                    s.send(b"X-Trickle: a\r\n")
                except OSError:
                    pass
            next_line += interval
    times = sorted(closed.values())
    print(json.dumps({
        "opened": n, "closed": len(closed),
        "min_s": round(times[0], 2) if times else None,
        "max_s": round(times[-1], 2) if times else None,
        "statuses": sorted(set(status_of(got[s]) for s in closed)),
        "bodies": sorted(set(got[s].split(b"\r\n\r\n", 1)[-1].decode(errors="replace")
                             for s in closed if got[s]))[:3],
    }))


def hold(port, n, mode, out):
    socks = connect(port, n)
    t0 = time.monotonic()
    for s in socks:
        if mode == "headers":
            s.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        elif mode == "body":
            s.send(b"POST /hooks/github HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n0123456789")
    index = {s: i for i, s in enumerate(socks)}
    got = {s: b"" for s in socks}
    with open(out, "a", buffering=1) as f:
        f.write("ready %d\n" % n)
        live = list(socks)
        while live:
            r, _, _ = select.select(live, [], [])
            for s in r:
                try:
                    data = s.recv(65536)
                except OSError:
                    data = b""
                if data:
                    got[s] += data
                    continue
                live.remove(s)
                f.write("closed %d %.2f %d\n" % (index[s], time.monotonic() - t0, status_of(got[s])))
        f.write("done\n")
    while True:
        time.sleep(3600)   # stay until killed: the caller decides when


def main():
    cmd = sys.argv[1]
    if cmd == "trickle":
        trickle(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]))
    elif cmd == "hold":
        hold(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5])
    else:
        sys.exit("usage: clients.py trickle|hold ...")


if __name__ == "__main__":
    main()
