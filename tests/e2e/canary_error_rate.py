#!/usr/bin/env python3
"""A --canary-check for the rollout safety test: judges the error rate of
each instance of the demo service from its own counters, the way a real
canary check queries an error-rate metric.

  canary_error_rate.py MAX_FRACTION MIN_REQUESTS PORT [PORT...]

For every 127.0.0.1:PORT it reads GET /stats (root_requests, root_errors:
answers of GET / and those with a status of 500 or more, counted since
that process started) and fails (exit 1, naming the instance) when an
instance answered fewer than MIN_REQUESTS requests (too little traffic to
judge: not promoted) or more than MAX_FRACTION of them with a 5xx. An
instance that cannot be reached fails too. Exit 0: every instance is good.
It sends no GET / itself, so every request the counters hold came from the
load generator. Exit 2 on bad arguments.
"""
import http.client
import json
import sys


def main(argv):
    try:
        max_fraction = float(argv[1])
        min_requests = int(argv[2])
        ports = [int(p) for p in argv[3:]]
        if not ports or not 0 <= max_fraction <= 1 or min_requests < 0:
            raise ValueError
        if any(not 0 < p < 65536 for p in ports):
            raise ValueError
    except (IndexError, ValueError):
        print("usage: canary_error_rate.py MAX_FRACTION MIN_REQUESTS PORT...",
              file=sys.stderr)
        return 2
    bad = []
    for port in ports:
        instance = f"127.0.0.1:{port}"
        try:
            # Keep-alive, closed by us after the answer: a connection the
            # service closes first lingers on its side in TIME_WAIT, a peer
            # that holds a later --drain auto of the instance to its cap.
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            try:
                conn.request("GET", "/stats")
                stats = json.loads(conn.getresponse().read())
            finally:
                conn.close()
            requests = int(stats["root_requests"])
            errors = int(stats["root_errors"])
        except (OSError, ValueError, KeyError, http.client.HTTPException) as e:
            bad.append(f"{instance}: cannot read /stats: {e}")
            continue
        rate = errors / requests if requests else 0.0
        line = (f"{instance} {stats.get('version', '?')}: {errors} of "
                f"{requests} requests failed ({rate:.1%})")
        print(line)
        if requests < min_requests:
            bad.append(f"{line}: fewer than {min_requests} requests to judge")
        elif rate > max_fraction:
            bad.append(f"{line}: above {max_fraction:.1%}")
    for b in bad:
        print("bad: " + b, file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
