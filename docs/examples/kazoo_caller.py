#!/usr/bin/env python3
"""A Python caller of a zkroll service with kazoo (docs/callers.md).

Follows /services/<service> with a ChildrenWatch (--mode watch) or by
polling get_children (--mode poll), and sends GET / round robin at a fixed
rate over keep-alive connections. A connection to an instance that left the
list is closed at once: the instance is being drained, and a request on an
idle kept-alive socket could meet its shutdown.

  kazoo_caller.py --zk 127.0.0.1:2181 --service level [--mode watch|poll]
      [--interval 1.0] [--rate 50] [--requests 500] [--stop-file PATH]

Reads the list once before its first request (in both modes), then prints
"instances list=IP:PORT,..." when its list changes, "send
instance=IP:PORT" per request (after the list it picked from), "fail ..." per
failed request and "summary sent=N ok=N failed=N" at the end. Exit 0 when
nothing failed.
"""
import argparse
import http.client
import json
import os
import threading
import time

from kazoo.client import KazooClient


def read_instance(zk, path):
    """(ip, port) of one registration, or None for a node to skip."""
    try:
        data, _ = zk.get(path)
        record = json.loads(data)
        ip = record.get("address") or record.get("ip")  # Curator's, then zkroll's
        port = int(record["port"])
    except Exception as e:  # gone meanwhile, not JSON, no port: skip it
        print(f"skipping {path}: {e}", flush=True)
        return None
    if f"{ip}_{port}" != path.rsplit("/", 1)[1]:
        print(f"skipping {path}: record names {ip}:{port}", flush=True)
        return None
    return ip, port


class Instances:
    def __init__(self):
        self.lock = threading.Lock()
        self.list = []

    def update(self, zk, base, children):
        found = [read_instance(zk, f"{base}/{c}") for c in sorted(children)]
        found = [i for i in found if i]
        with self.lock:
            if found == self.list:
                return
            self.list = found
            print("instances list=" + ",".join(f"{i}:{p}" for i, p in found), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--zk", required=True)
    ap.add_argument("--service", required=True)
    ap.add_argument("--mode", choices=("watch", "poll"), default="watch")
    ap.add_argument("--interval", type=float, default=1.0)
    ap.add_argument("--rate", type=int, default=50)
    ap.add_argument("--requests", type=int, default=500)
    ap.add_argument("--stop-file")
    args = ap.parse_args()

    zk = KazooClient(hosts=args.zk)
    zk.start(timeout=30)
    base = f"/services/{args.service}"
    instances = Instances()
    if args.mode == "watch":
        # Fires on every change of the children and re-arms itself; kazoo
        # re-reads after a reconnect, so a change made meanwhile is seen.
        zk.ChildrenWatch(base)(lambda children: instances.update(zk, base, children))
    else:
        # The first read is made here, before any request, as ChildrenWatch
        # makes its own first read before it returns: a caller that started
        # sending while its first read was still under way would count its
        # own start as failures (no instance known yet).
        instances.update(zk, base, zk.get_children(base))

        def poll():
            while True:
                time.sleep(args.interval)
                instances.update(zk, base, zk.get_children(base))
        threading.Thread(target=poll, daemon=True).start()

    connections = {}  # (ip, port) -> HTTPConnection, used by this thread only
    sent = ok = failed = 0
    turn = 0
    next_at = time.monotonic()
    while sent < args.requests:
        if args.stop_file and os.path.exists(args.stop_file):
            break
        next_at += 1.0 / args.rate
        time.sleep(max(0.0, next_at - time.monotonic()))
        with instances.lock:
            current = list(instances.list)
            target = current[turn % len(current)] if current else None
            if target:
                print(f"send instance={target[0]}:{target[1]}", flush=True)
        for gone in set(connections) - set(current):
            connections.pop(gone).close()
        turn += 1
        sent += 1
        if target is None:
            failed += 1
            print("fail instance=none cause=no_instance", flush=True)
            continue
        conn = connections.get(target)
        if conn is None:
            conn = connections[target] = http.client.HTTPConnection(*target, timeout=2)
        try:
            conn.request("GET", "/")
            response = conn.getresponse()
            response.read()
            if response.status // 100 == 2:
                ok += 1
                continue
            cause = f"status_{response.status}"
        except (OSError, http.client.HTTPException) as e:
            cause = type(e).__name__
            conn.close()
        failed += 1
        print(f"fail instance={target[0]}:{target[1]} cause={cause}", flush=True)
    print(f"summary sent={sent} ok={ok} failed={failed}", flush=True)
    zk.stop()
    return 0 if failed == 0 and sent > 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
