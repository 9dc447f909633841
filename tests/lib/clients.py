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

  clients.py slowloris PORT N INTERVAL SECONDS
      (bench/slowloris.sh) N connections trickle a header line every
      INTERVAL seconds for SECONDS; one the server closes is opened again
      INTERVAL seconds later, as a patient attacker would. Prints one JSON
      line: the most open at once, how many the server closed, the statuses
      it answered them with.
  clients.py fat PORT F SECONDS
      (bench/slowloris.sh) F connections send header lines of 1000 bytes
      as fast as the server reads them, each opened again when answered
      or closed. Prints one JSON line: the megabytes sent, the statuses.
  clients.py probe PORT SECONDS PID
      (bench/slowloris.sh) GET /healthz on a new connection every 0.25 s
      for SECONDS, each given 5 s; samples PID's VmRSS and open descriptors
      meanwhile. Prints one JSON line: latency percentiles, failures, peak
      and last RSS (MB), peak descriptors.

It never sleeps to wait for the server: it waits on its sockets (select,
or epoll where more than 1024 descriptors may be open).
"""
import json, os, select, selectors, socket, sys, time


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


def gather(s, got):
    """Append what `s` has to got[s]; False once the server has closed it."""
    try:
        data = s.recv(65536)
    except OSError:
        data = b""
    got[s] += data
    return bool(data)


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
            if not gather(s, got):
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
                if gather(s, got):
                    continue
                live.remove(s)
                f.write("closed %d %.2f %d\n" % (index[s], time.monotonic() - t0, status_of(got[s])))
        f.write("done\n")
    while True:
        time.sleep(3600)   # stay until killed: the caller decides when


def slowloris(port, n, interval, seconds):
    sel = selectors.DefaultSelector()
    t0 = time.monotonic()
    due = {}          # socket -> when its next header line is due
    reopen = []       # when a closed connection is opened again
    got = {}
    statuses = {}
    closed = peak = failed_connects = 0

    def open_one():
        nonlocal failed_connects
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.setblocking(False)
            s.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        except OSError:
            failed_connects += 1
            reopen.append(time.monotonic() + interval)
            return
        sel.register(s, selectors.EVENT_READ)
        due[s] = time.monotonic() + interval
        got[s] = b""

    for _ in range(n):
        open_one()
    while time.monotonic() - t0 < seconds:
        now = time.monotonic()
        peak = max(peak, len(due))
        wake = min([t0 + seconds] + list(due.values()) + reopen)
        for key, _ in sel.select(max(0.0, wake - now)):
            s = key.fileobj
            if gather(s, got):
                continue
            sel.unregister(s)
            st = status_of(got.pop(s))
            statuses[st] = statuses.get(st, 0) + 1
            del due[s]
            s.close()
            closed += 1
            reopen.append(time.monotonic() + interval)
        now = time.monotonic()
        for s, t in list(due.items()):
            if t <= now:
                try:
                    s.send(b"X-Trickle: a\r\n")
                except OSError:
                    pass
                due[s] = now + interval
        ready = [t for t in reopen if t <= now]
        reopen[:] = [t for t in reopen if t > now]
        for _ in ready:
            open_one()
    print(json.dumps({"clients": n, "interval_s": interval, "seconds": seconds,
                      "peak_open": peak, "open_at_end": len(due),
                      "closed_by_server": closed, "failed_connects": failed_connects,
                      "statuses": {str(k): v for k, v in sorted(statuses.items())}}))


def fat(port, f, seconds):
    sel = selectors.DefaultSelector()
    line = b"X-Fat: " + b"f" * 1000 + b"\r\n"
    got, answers, sent = {}, {}, 0

    def open_one():
        s = socket.create_connection(("127.0.0.1", port))
        s.setblocking(False)
        s.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        got[s] = b""
        sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE)

    for _ in range(f):
        open_one()
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        for key, ev in sel.select(1):
            s = key.fileobj
            if ev & selectors.EVENT_READ:
                open_still = gather(s, got)
                if open_still and b"\r\n" not in got[s]:
                    continue
                st = str(status_of(got.pop(s)))
                answers[st] = answers.get(st, 0) + 1
                sel.unregister(s)
                s.close()
                open_one()
                continue
            try:
                sent += s.send(line)
            except OSError:
                pass
    print(json.dumps({"fat_clients": f, "header_mb_sent": round(sent / 1048576.0, 1),
                      "answers": answers}))


def probe(port, seconds, pid):
    def status(key):
        try:
            with open("/proc/%d/status" % pid) as f:
                for line in f:
                    if line.startswith(key + ":"):
                        return int(line.split()[1]) / 1024.0
        except OSError:
            pass
        return 0.0

    def fds():
        try:
            return len(os.listdir("/proc/%d/fd" % pid))
        except OSError:
            return 0

    t0 = time.monotonic()
    lat, failures, rss, nfd = [], 0, [], []
    while time.monotonic() - t0 < seconds:
        start = time.monotonic()
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.settimeout(5)
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while True:
                d = s.recv(65536)
                if not d:
                    break
                data += d
            s.close()
            if status_of(data) == 200:
                lat.append((time.monotonic() - start) * 1000)
            else:
                failures += 1
        except OSError:
            failures += 1
        rss.append(status("VmRSS"))
        nfd.append(fds())
        rest = start + 0.25 - time.monotonic()
        if rest > 0:
            time.sleep(rest)   # the probe's own pace, not a wait for the server
    lat.sort()
    pct = lambda p: round(lat[min(len(lat) - 1, int(len(lat) * p))], 1) if lat else None
    print(json.dumps({"probes": len(lat) + failures, "failures": failures,
                      "p50_ms": pct(0.50), "p99_ms": pct(0.99),
                      "max_ms": round(lat[-1], 1) if lat else None,
                      "rss_peak_mb": round(max(rss), 1) if rss else None,
                      "rss_last_mb": round(rss[-1], 1) if rss else None,
                      "rss_hwm_mb": round(status("VmHWM"), 1),
                      "fds_peak": max(nfd) if nfd else None}))


def main():
    cmd = sys.argv[1]
    if cmd == "trickle":
        trickle(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]))
    elif cmd == "hold":
        hold(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5])
    elif cmd == "slowloris":
        slowloris(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]))
    elif cmd == "fat":
        fat(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]))
    elif cmd == "probe":
        probe(int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]))
    else:
        sys.exit("usage: clients.py trickle|hold|slowloris|fat|probe ...")


if __name__ == "__main__":
    main()
