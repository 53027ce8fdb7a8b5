#!/usr/bin/env python3
"""History checker: replays every transaction a ZooKeeper ensemble committed
and checks zkroll's invariants at each one.

    history_check.py --datadir DIR [--datadir DIR ...] --config cluster.json
                     [--commands commands.jsonl] [--report report.json]
                     [--dump txns.jsonl] [--toolkit-crosscheck]

Input
  --datadir   a server's dataDir (its transaction logs are DIR/version-2/log.*).
              Give every server of the ensemble: the history is the union of
              their logs, deduplicated by zxid (see "Completeness").
  --config    JSON written by the test harness:
              {"instances": [{"service": S, "ip": IP, "port": P, "host": H}],
               "healthy": ["S/IP_PORT", ...],   (healthy at the end of the run)
               "command_grace_ms": 250}          (optional, see below)

Completeness
  A leader commits a proposal only after a quorum has written it to its
  transaction log (followers log before they ACK), so every committed
  transaction is in the log of at least one server, as long as no log file
  is purged (the harness never enables autopurge). A server that was down
  catches up by DIFF (it logs the missing transactions) or SNAP (it does
  not): no single server's log is complete after a leader kill, the union is.
  A proposal logged by a leader that died before committing it is truncated
  (TRUNC) from that server's log when it rejoins, so the harness reads the
  logs only after every server is back in the quorum, and copies them first
  (the servers keep logging; a last record caught half-written counts as
  not logged). Two servers holding different transactions under one zxid
  is reported as a violation. --toolkit-crosscheck counts every file again
  with ZooKeeper's own TxnLogToolkit (from the server jar).

Checks, transaction by transaction (multi ops in their order)
  registration-during-pause  an instance node /services/S/IP_PORT is created
                             while /pause/S/IP_PORT exists (and is not an
                             expired maintenance flag)
  foreign-registration       an instance node is created by a session that
                             never owned /agents/<host of that instance>
  command-without-flag       a journal write that starts a "command" step of
                             /deploys/S/ID/IP_PORT while /pause/S/IP_PORT does
                             not exist, carries another deploy id, or is not
                             owned by the session that wrote the journal (a
                             step first written already ended with "COMMAND
                             was not run" starts nothing: the coordinator
                             gave up before COMMAND, see not_run())
  command-outlived-flag      a COMMAND ended (its own record from --commands,
                             else the journal's ended_at, which is when the
                             coordinator judged the step; both on the
                             coordinator's clock) more than command_grace_ms
                             (config; default 250) after the transaction that
                             removed its deploy's flag (delete or session
                             expiry; the server's clock). Both clocks are this
                             machine's in the cluster test. While the flag is
                             gone the agent may register an instance whose
                             COMMAND still runs. docs/reliability.md ("The
                             window that remains") bounds this under a silent
                             partition by T/3 plus the 2 s from SIGTERM to
                             SIGKILL (T: the coordinator's session timeout);
                             the cluster test passes that bound as the grace,
                             so the check holds the documented claim. Every
                             such overlap is listed in the report either way,
                             also for COMMANDs whose coordinator died (no
                             journal end): nothing bounds those, they are
                             listed and not held to the window.
  command-overlap            two COMMANDs ran on one instance at the same time
                             (their own records, --commands); listed, not a
                             violation, when one of them belongs to a
                             coordinator that died (no journal end)
  stranded-flag              a pause flag carrying a deploy id still exists
                             after the last transaction
  not-registered             a healthy, unpaused instance has no node at the end
  zxid-conflict              two servers logged different transactions under
                             one zxid

Exit code 0 when no violation was found, 1 otherwise, 2 on bad input.
The transaction log format is ZooKeeper's (jute, big endian):
  file header: magic "ZKLG", int version, long dbid
  record: long crc, int length, <length bytes>, byte 'B'
  bytes:  TxnHeader(long session, int cxid, long zxid, long time, int type)
          then the type's Txn record (then, since 3.6, an optional digest).
"""

import argparse
import glob
import json
import os
import struct
import sys
import zlib
from datetime import datetime, timezone

# Operation codes (org.apache.zookeeper.ZooDefs.OpCode).
OP_NAMES = {
    -11: "closeSession", -10: "createSession", -1: "error", 1: "create",
    2: "delete", 5: "setData", 7: "setACL", 9: "sync", 13: "check",
    14: "multi", 15: "create2", 16: "reconfig", 19: "createContainer",
    20: "deleteContainer", 21: "createTTL",
}


class Reader:
    def __init__(self, buf, pos=0):
        self.buf, self.pos = buf, pos

    def take(self, n):
        if self.pos + n > len(self.buf):
            raise ValueError("truncated record")
        b = self.buf[self.pos:self.pos + n]
        self.pos += n
        return b

    def int(self):
        return struct.unpack(">i", self.take(4))[0]

    def long(self):
        return struct.unpack(">q", self.take(8))[0]

    def bool(self):
        return self.take(1) != b"\0"

    def buffer(self):
        n = self.int()
        return b"" if n < 0 else self.take(n)

    def string(self):
        return self.buffer().decode("utf-8", "replace")

    def acls(self):
        for _ in range(max(self.int(), 0)):
            self.int(); self.string(); self.string()


def parse_op(op_type, r):
    """One operation (top level or inside a multi) as a dict."""
    op = {"type": OP_NAMES.get(op_type, str(op_type))}
    if op_type in (1, 15):  # CreateTxn
        op["path"] = r.string(); op["data"] = r.buffer(); r.acls()
        op["ephemeral"] = r.bool()
    elif op_type in (19, 21):  # CreateContainerTxn / CreateTTLTxn: never ephemeral
        op["path"] = r.string(); op["data"] = r.buffer(); r.acls()
        op["ephemeral"] = False
    elif op_type in (2, 20):  # DeleteTxn
        op["path"] = r.string()
    elif op_type == 5:  # SetDataTxn
        op["path"] = r.string(); op["data"] = r.buffer()
    elif op_type == 13:  # CheckVersionTxn
        op["path"] = r.string()
    elif op_type == 7:  # SetACLTxn
        op["path"] = r.string()
    elif op_type == -1:  # ErrorTxn
        op["err"] = r.int()
    elif op_type == 14:  # MultiTxn: vector<Txn{int type, buffer data}>
        ops = []
        for _ in range(max(r.int(), 0)):
            t = r.int()
            ops.append(parse_op(t, Reader(r.buffer())))
        op["ops"] = ops
    # createSession (timeout), closeSession (paths, since 3.6), reconfig:
    # nothing the checks need; ephemerals are tracked by the replay itself.
    return op


def read_log(path):
    """Every transaction of one log file, in file order."""
    with open(path, "rb") as f:
        buf = f.read()
    if buf[:4] != b"ZKLG":
        raise ValueError(f"{path}: not a ZooKeeper transaction log (bad magic)")
    r = Reader(buf, 16)
    out = []
    while r.pos + 12 <= len(buf):
        start = r.pos
        crc = r.long()
        n = r.int()
        if n <= 0:
            break  # preallocated zero padding: end of the log
        if r.pos + n + 1 > len(buf):
            break  # a record the server was writing when it died: not logged
        body = r.take(n)
        marker_ok = r.take(1) == b"B"
        sum_ok = zlib.adler32(body) & 0xFFFFFFFF == crc & 0xFFFFFFFF
        if not (marker_ok and sum_ok):
            if not buf[r.pos:].strip(b"\0"):
                break  # the last record, caught while being written: not logged yet
            raise ValueError(f"{path}: " + ("checksum mismatch" if not sum_ok else
                                            "no end marker") + f" at byte {start}")
        br = Reader(body)
        txn = {"session": br.long(), "cxid": br.int(), "zxid": br.long(),
               "time": br.long(), "type_code": br.int()}
        txn.update(parse_op(txn["type_code"], br))
        txn["raw"] = body
        txn["file"] = os.path.basename(path)
        out.append(txn)
    return out


def collect(datadirs):
    """The union of the servers' logs by zxid; conflicts listed separately."""
    by_zxid, conflicts, files, per_server = {}, [], 0, {}
    for d in datadirs:
        logs = sorted(glob.glob(os.path.join(d, "version-2", "log.*")))
        if not logs:
            raise ValueError(f"{d}: no transaction log under version-2/")
        mine = set()
        for path in logs:
            files += 1
            for t in read_log(path):
                mine.add(t["zxid"])
                seen = by_zxid.get(t["zxid"])
                if seen is None:
                    by_zxid[t["zxid"]] = t
                elif seen["raw"] != t["raw"]:
                    conflicts.append(t["zxid"])
        per_server[d] = len(mine)
    return [by_zxid[z] for z in sorted(by_zxid)], conflicts, files, per_server


def parse_json(data):
    try:
        return json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None


def rfc3339_ms(text):
    try:
        t = datetime.strptime(text.rstrip("Z")[:26], "%Y-%m-%dT%H:%M:%S.%f" if "." in text
                              else "%Y-%m-%dT%H:%M:%S")
        return int(t.replace(tzinfo=timezone.utc).timestamp() * 1000)
    except ValueError:
        return None


def flag_pauses(node, now_ms):
    """Same rule as the agent: a flag pauses unless it parses and has an
    expires_at in the past (an unparsable flag pauses: fail safe)."""
    rec = parse_json(node["data"])
    if not isinstance(rec, dict):
        return True
    exp = rec.get("expires_at") or ""
    if not exp:
        return True
    ms = rfc3339_ms(exp)
    return ms is None or ms > now_ms


def hexs(s):
    return "0x%x" % (s & 0xFFFFFFFFFFFFFFFF)


class Replay:
    def __init__(self, config):
        self.nodes = {}          # path -> {"data", "owner" (0 = persistent), "czxid"}
        self.violations = []
        self.host_of = {}        # "S/IP_PORT" -> host
        for i in config["instances"]:
            self.host_of[f"{i['service']}/{i['ip']}_{i['port']}"] = i["host"]
        self.agent_sessions = {}  # host -> sessions that ever owned /agents/<host>
        self.flag_removed = {}    # (service, ip_port, deploy id) -> (zxid, time, how)
        self.grace_ms = int(config.get("command_grace_ms", 250))
        self.outlived = []        # COMMANDs that ended after their flag was gone
        self.dead_coordinator = set()  # COMMAND keys whose journal has no end
        self.overlaps = []        # two COMMANDs on one instance at once
        self.counts = {"txns": 0, "ops": 0, "registrations": 0, "commands": 0,
                       "flags_created": 0, "sessions_closed": 0}

    def violate(self, kind, txn, detail):
        self.violations.append({"kind": kind, "zxid": hexs(txn["zxid"]),
                                "session": hexs(txn["session"]),
                                "time_ms": txn["time"], "detail": detail})

    def prepass(self, txns):
        """Which sessions were agents: the owner of /agents/<host> at any time."""
        for t in txns:
            for op in t.get("ops", [t]):
                p = op.get("path", "")
                if op["type"] in ("create", "create2") and p.startswith("/agents/") \
                        and op.get("ephemeral"):
                    self.agent_sessions.setdefault(p[len("/agents/"):], set()).add(t["session"])

    def apply(self, txn):
        self.counts["txns"] += 1
        if txn["type"] == "multi":
            # A multi that failed is logged as a multi of error results:
            # nothing of it applied.
            if any(op["type"] == "error" for op in txn["ops"]):
                return
            for op in txn["ops"]:
                self.apply_op(txn, op)
        elif txn["type"] == "closeSession":
            self.counts["sessions_closed"] += 1
            for p in [p for p, n in self.nodes.items() if n["owner"] == txn["session"]]:
                self.removing(txn, p, "expired with its session")
                del self.nodes[p]
        else:
            self.apply_op(txn, txn)

    def apply_op(self, txn, op):
        self.counts["ops"] += 1
        t, path = op["type"], op.get("path")
        if t in ("create", "create2", "createContainer", "createTTL"):
            self.before_create(txn, op)
            self.nodes[path] = {"data": op["data"], "czxid": txn["zxid"],
                                "owner": txn["session"] if op.get("ephemeral") else 0}
            self.after_write(txn, path, None)
        elif t in ("delete", "deleteContainer"):
            self.removing(txn, path, "deleted")
            self.nodes.pop(path, None)
        elif t == "setData":
            old = self.nodes.get(path)
            prev = old["data"] if old else None
            if old is not None:
                old["data"] = op["data"]
            self.after_write(txn, path, prev)

    def removing(self, txn, path, how):
        parts = path.split("/")
        if len(parts) == 4 and parts[1] == "pause" and path in self.nodes:
            rec = parse_json(self.nodes[path]["data"])
            if isinstance(rec, dict) and rec.get("deploy_id"):
                self.flag_removed.setdefault((parts[2], parts[3], rec["deploy_id"]),
                                             (txn["zxid"], txn["time"], how))

    def before_create(self, txn, op):
        parts = op["path"].split("/")
        if len(parts) == 4 and parts[1] == "services":
            key = f"{parts[2]}/{parts[3]}"
            self.counts["registrations"] += 1
            flag = self.nodes.get(f"/pause/{key}")
            if flag is not None and flag_pauses(flag, txn["time"]):
                self.violate("registration-during-pause", txn,
                             f"{op['path']} created while /pause/{key} exists "
                             f"(flag created at zxid {hexs(flag['czxid'])} by session "
                             f"{hexs(flag['owner'])})")
            host = self.host_of.get(key)
            if host is None:
                self.violate("foreign-registration", txn,
                             f"{op['path']}: not an instance of the test's configuration")
            elif txn["session"] not in self.agent_sessions.get(host, set()):
                self.violate("foreign-registration", txn,
                             f"{op['path']} created by session {hexs(txn['session'])}, "
                             f"which never owned /agents/{host}")
        elif len(parts) == 4 and parts[1] == "pause":
            self.counts["flags_created"] += 1

    def after_write(self, txn, path, prev_data):
        parts = path.split("/")
        if not (len(parts) == 5 and parts[1] == "deploys"):
            return
        service, deploy_id, inst = parts[2], parts[3], parts[4]
        new = parse_json(self.nodes[path]["data"]) if path in self.nodes else None
        old = parse_json(prev_data) if prev_data is not None else None

        def commands(rec):
            if not isinstance(rec, dict):
                return 0
            return sum(1 for s in rec.get("steps", [])
                       if s.get("name") == "command" and not not_run(s))

        if commands(new) <= commands(old):
            return
        # This write records a COMMAND step starting.
        self.counts["commands"] += 1
        fpath = f"/pause/{service}/{inst}"
        flag = self.nodes.get(fpath)
        if flag is None:
            # The step's own start time tells a late journal write (the
            # coordinator could not write it before COMMAND started) from a
            # COMMAND started without its flag; both are reported.
            started = [s.get("started_at", "?") for s in new.get("steps", [])
                       if s.get("name") == "command"][-1]
            gone = self.flag_removed.get((service, inst, deploy_id))
            self.violate("command-without-flag", txn,
                         f"{path}: command step (started_at {started}) is written while "
                         f"{fpath} does not exist" +
                         (f" (it {gone[2]} at zxid {hexs(gone[0])})" if gone else ""))
            return
        rec = parse_json(flag["data"])
        fid = rec.get("deploy_id") if isinstance(rec, dict) else None
        if fid != deploy_id:
            self.violate("command-without-flag", txn,
                         f"{path}: command step starts while {fpath} carries deploy id "
                         f"{fid!r}, not {deploy_id!r}")
        elif flag["owner"] != txn["session"]:
            self.violate("command-without-flag", txn,
                         f"{path}: command step written by session {hexs(txn['session'])} "
                         f"but {fpath} is owned by {hexs(flag['owner'])}")

    def check_command_ends(self, commands):
        """Every COMMAND step, against the removal of its flag. A COMMAND's
        end is its own record (commands: (service, ip_port, deploy id) ->
        end ms) when there is one, else the journal's ended_at."""
        self.counts["commands_unfinished"] = 0
        for p, n in sorted(self.nodes.items()):
            parts = p.split("/")
            if not (len(parts) == 5 and parts[1] == "deploys"):
                continue
            rec = parse_json(n["data"])
            if not isinstance(rec, dict):
                continue
            for step in rec.get("steps", []):
                if step.get("name") != "command":
                    continue
                key = (parts[2], parts[4], parts[3])
                if not_run(step) and key not in commands:
                    continue  # stopped before COMMAND started, and no record of it
                journal_end = rfc3339_ms(step.get("ended_at") or "")
                if journal_end is None:
                    self.dead_coordinator.add(key)
                ended = commands[key][1] if key in commands else journal_end
                if ended is None:
                    # Nobody recorded its end: nothing to compare.
                    self.counts["commands_unfinished"] += 1
                    continue
                gone = self.flag_removed.get(key)
                if gone is None or ended <= gone[1]:
                    continue
                # No journal end: the coordinator died while COMMAND ran.
                # Nothing in zkroll bounds such a COMMAND (docs/reliability.md):
                # listed, not held to the window.
                died = journal_end is None
                self.outlived.append({"journal": p, "ms": ended - gone[1],
                                      "flag": gone[2], "zxid": hexs(gone[0]),
                                      "end_from": "COMMAND" if key in commands else "journal",
                                      "coordinator_died": died})
                if not died and ended > gone[1] + self.grace_ms:
                    self.violate("command-outlived-flag",
                                 {"zxid": gone[0], "session": 0, "time": gone[1]},
                                 f"{p}: COMMAND ended at {step['ended_at']} "
                                 f"({step.get('verdict')}: {step.get('detail', '')[:90]}), "
                                 f"{(ended - gone[1]) / 1000:.3f}s after /pause/{parts[2]}/"
                                 f"{parts[4]} {gone[2]} at zxid {hexs(gone[0])}")

    def check_overlaps(self, commands, end):
        """Two COMMANDs on one instance must not run at once (their own
        records). With a killed coordinator in the pair it is listed only:
        nothing in zkroll stops a dead coordinator's COMMAND."""
        by_instance = {}
        for key, (start, stop) in commands.items():
            by_instance.setdefault((key[0], key[1]), []).append((start, stop, key[2]))
        for (service, inst), runs in sorted(by_instance.items()):
            runs.sort()
            for a, b in zip(runs, runs[1:]):
                if b[0] >= a[1]:
                    continue
                died = any((service, inst, r[2]) in self.dead_coordinator for r in (a, b))
                self.overlaps.append({"instance": f"{service}/{inst}", "deploys": [a[2], b[2]],
                                      "ms": a[1] - b[0], "coordinator_died": died})
                if not died:
                    self.violate("command-overlap", end,
                                 f"{service}/{inst}: COMMAND of deploy {b[2]} started "
                                 f"{(a[1] - b[0]) / 1000:.3f}s before the COMMAND of deploy "
                                 f"{a[2]} ended")

    def finish(self, last_txn, healthy, commands):
        end = {"zxid": last_txn["zxid"] if last_txn else 0, "session": 0,
               "time": last_txn["time"] if last_txn else 0}
        self.check_command_ends(commands)
        self.check_overlaps(commands, end)
        for p, n in sorted(self.nodes.items()):
            parts = p.split("/")
            if len(parts) == 4 and parts[1] == "pause":
                rec = parse_json(n["data"])
                if isinstance(rec, dict) and rec.get("deploy_id"):
                    self.violate("stranded-flag", end,
                                 f"{p} of deploy {rec['deploy_id']} (owner session "
                                 f"{hexs(n['owner'])}, created at zxid {hexs(n['czxid'])}) "
                                 "still exists after the last transaction")
        stuck = []
        for key in sorted(healthy):
            if f"/pause/{key}" in self.nodes:
                continue  # paused: not expected to be registered
            node = self.nodes.get(f"/services/{key}")
            if node is None:
                stuck.append(key)
                self.violate("not-registered", end,
                             f"healthy, unpaused instance {key} has no /services node at the end")
            elif node["owner"] not in self.agent_sessions.get(self.host_of.get(key), set()):
                stuck.append(key)
                self.violate("not-registered", end,
                             f"/services/{key} at the end is owned by {hexs(node['owner'])}, "
                             "not by its agent")
        return stuck


TOOLKIT_CP = ":".join(["/usr/share/java/zookeeper.jar", "/usr/share/java/zookeeper-jute.jar",
                       "/usr/share/java/slf4j-api.jar"])


def toolkit_crosscheck(datadirs):
    """Counts each log file's transactions with ZooKeeper's own TxnLogToolkit
    (from the server jar) and compares with this reader: a record this
    reader skipped or invented would show. Returns a list of mismatches."""
    import subprocess
    bad = []
    for d in datadirs:
        for path in sorted(glob.glob(os.path.join(d, "version-2", "log.*"))):
            p = subprocess.run(["java", "-cp", TOOLKIT_CP,
                                "org.apache.zookeeper.server.persistence.TxnLogToolkit", path],
                               capture_output=True, text=True, timeout=120)
            m = [int(x) for x in __import__("re").findall(r"EOF reached after (\d+) txns",
                                                          p.stdout + p.stderr)]
            ours = len(read_log(path))
            if not m or m[-1] != ours:
                bad.append(f"{path}: TxnLogToolkit counts {m[-1] if m else '?'} "
                           f"transactions, this reader {ours}")
    return bad


def not_run(step):
    """A command step the coordinator ended before starting COMMAND: it
    journals the step first and starts COMMAND only once that write was
    answered; when it could not (cut off, session lost) it ends the step
    saying "COMMAND was not run". Such a step is no COMMAND (a COMMAND's
    own record of the same deploy and instance still counts)."""
    return bool(step.get("ended_at")) and \
        "COMMAND was not run" in step.get("detail", "")


def read_commands(path):
    """COMMANDs' own records (JSON lines: service, instance ip_port,
    deploy_id, start_ms, end_ms), as (service, ip_port, deploy id) ->
    (start ms, end ms)."""
    out = {}
    if path:
        with open(path) as f:
            for n, line in enumerate(f, 1):
                try:
                    r = json.loads(line)
                    out[(r["service"], r["instance"], r["deploy_id"])] = (
                        int(r["start_ms"]), int(r["end_ms"]))
                except (ValueError, KeyError, TypeError):
                    raise ValueError(f"{path}:{n}: not a COMMAND record: {line.strip()!r}")
    return out


def check(datadirs, config, commands=None):
    txns, conflicts, files, per_server = collect(datadirs)
    replay = Replay(config)
    replay.prepass(txns)
    for z in sorted(set(conflicts)):
        replay.violate("zxid-conflict", {"zxid": z, "session": 0, "time": 0},
                       "servers logged different transactions under this zxid")
    for t in txns:
        replay.apply(t)
    stuck = replay.finish(txns[-1] if txns else None, config.get("healthy", []),
                          read_commands(commands))
    return {"log_files": files, "transactions": len(txns), "per_server": per_server,
            "first_zxid": hexs(txns[0]["zxid"]) if txns else None,
            "last_zxid": hexs(txns[-1]["zxid"]) if txns else None,
            "counts": replay.counts, "stuck": stuck,
            "command_outlived_flag": replay.outlived, "command_grace_ms": replay.grace_ms,
            "command_overlaps": replay.overlaps,
            "violations": replay.violations}, txns


def server_name(datadir):
    """zk1 for .../zk1/data and for .../zk1."""
    parts = datadir.rstrip("/").split("/")
    return parts[-2] if parts[-1] == "data" and len(parts) > 1 else parts[-1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--datadir", action="append", required=True)
    ap.add_argument("--config", required=True)
    ap.add_argument("--report")
    ap.add_argument("--dump", help="write every transaction as one JSON line")
    ap.add_argument("--commands", help="COMMANDs' own records of when they ended (JSON lines)")
    ap.add_argument("--toolkit-crosscheck", action="store_true",
                    help="also count each log's transactions with ZooKeeper's TxnLogToolkit")
    a = ap.parse_args()
    try:
        config = json.load(open(a.config))
        report, txns = check(a.datadir, config, a.commands)
    except (OSError, ValueError, KeyError) as e:
        print(f"history_check: {e}", file=sys.stderr)
        return 2
    if a.toolkit_crosscheck:
        bad = toolkit_crosscheck(a.datadir)
        for b in bad:
            print(f"history_check: {b}", file=sys.stderr)
        if bad:
            return 2
        print("TxnLogToolkit agrees on the transaction count of every log file")
    if a.dump:
        with open(a.dump, "w") as f:
            for t in txns:
                row = {k: v for k, v in t.items() if k not in ("raw", "data", "ops")}
                row["zxid"] = hexs(t["zxid"]); row["session"] = hexs(t["session"])
                if "data" in t:
                    row["data"] = t["data"].decode("utf-8", "replace")
                if "ops" in t:
                    row["ops"] = [{k: (v.decode("utf-8", "replace") if isinstance(v, bytes) else v)
                                   for k, v in op.items()} for op in t["ops"]]
                f.write(json.dumps(row) + "\n")
    if a.report:
        with open(a.report, "w") as f:
            json.dump(report, f, indent=1)
    print(f"history: {report['transactions']} transactions from {report['log_files']} log "
          f"files ({report['first_zxid']} .. {report['last_zxid']}), counts {report['counts']}")
    print("transactions in each server's own logs: " +
          ", ".join(f"{server_name(d)}: {n}" for d, n in report["per_server"].items()))
    for o in report["command_outlived_flag"]:
        allowed = ("not bounded: its coordinator died" if o["coordinator_died"]
                   else f"allowed {report['command_grace_ms']} ms")
        print(f"COMMAND outlived its flag by {o['ms']} ms ({allowed}; end from the "
              f"{o['end_from']}): {o['journal']}, flag {o['flag']} at zxid {o['zxid']}")
    for o in report["command_overlaps"]:
        print(f"two COMMANDs at once on {o['instance']} for {o['ms']} ms (deploys "
              f"{', '.join(o['deploys'])}{'; one coordinator had died' if o['coordinator_died'] else ''})")
    for v in report["violations"]:
        print(f"VIOLATION {v['kind']} at zxid {v['zxid']} session {v['session']}: {v['detail']}")
    print(f"violations: {len(report['violations'])}")
    return 1 if report["violations"] else 0


if __name__ == "__main__":
    sys.exit(main())
