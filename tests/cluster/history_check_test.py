#!/usr/bin/env python3
"""Unit tests of history_check.py: hand-made histories, written as real
ZooKeeper transaction log files (same binary format, checksums and end
markers as the server writes), each breaking one invariant; the checker must
report exactly that violation. A clean history is the control: it must pass.
"""

import json
import os
import struct
import subprocess
import sys
import tempfile
import time
import unittest
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
CHECKER = os.path.join(HERE, "history_check.py")

AGENT, AGENT2, COORD, COORD2, STRANGER = 0x101, 0x102, 0x201, 0x202, 0x301
INST = "/services/web/10.9.0.11_8080"
FLAG = "/pause/web/10.9.0.11_8080"
JOURNAL = "/deploys/web/d-1/10.9.0.11_8080"


def jint(v): return struct.pack(">i", v)
def jlong(v): return struct.pack(">q", v)
def jbuf(b): return jint(len(b)) + b
def jstr(s): return jbuf(s.encode())
ACL = jint(1) + jint(31) + jstr("world") + jstr("anyone")


def create(path, data=b"", ephemeral=False):
    return 1, jstr(path) + jbuf(data) + ACL + (b"\1" if ephemeral else b"\0") + jint(1)


def delete(path): return 2, jstr(path)
def set_data(path, data): return 5, jstr(path) + jbuf(data) + jint(1)
def error(code=-101): return -1, jint(code)
def create_session(): return -10, jint(4000)
def close_session(): return -11, jint(0)


def multi(*ops):
    return 14, jint(len(ops)) + b"".join(jint(t) + jbuf(b) for t, b in ops)


def flag_data(deploy="d-1"):
    return json.dumps({"service": "web", "ip": "10.9.0.11", "port": 8080,
                       "deploy_id": deploy}).encode()


def journal(*steps, command_ended=None, command_detail=None):
    """Steps by name; command_ended (ms after the log's time base) records the
    end of the command step, command_detail its detail."""
    out = [{"name": s, "verdict": "running"} for s in steps]
    if command_ended is not None:
        t = (1_700_000_000_000 + command_ended) / 1000
        out[-1]["verdict"] = "aborted"
        out[-1]["ended_at"] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + \
            ".%03dZ" % (command_ended % 1000)
    if command_detail is not None:
        out[-1]["detail"] = command_detail
    return json.dumps({"instance": "10.9.0.11_8080", "outcome": "running",
                       "steps": out}).encode()


def write_log(datadir, txns, first_zxid=1):
    """txns: [(session, (type, body))]; zxids are consecutive from first_zxid."""
    os.makedirs(os.path.join(datadir, "version-2"), exist_ok=True)
    out = b"ZKLG" + jint(2) + jlong(0)
    for i, (session, (t, body)) in enumerate(txns):
        z = first_zxid + i
        rec = jlong(session) + jint(z) + jlong(z) + jlong(1_700_000_000_000 + z) \
            + jint(t) + body
        out += jlong(zlib.adler32(rec)) + jint(len(rec)) + rec + b"B"
    out += b"\0" * 64  # the server preallocates its log files with zeros
    with open(os.path.join(datadir, "version-2", "log.%x" % first_zxid), "wb") as f:
        f.write(out)


def setup():
    """Agent registers, an agent for host b, a coordinator session."""
    return [
        (AGENT, create_session()),
        (AGENT, create("/agents")), (AGENT, create("/agents/host-a", b"{}", True)),
        (AGENT, create("/services")), (AGENT, create("/services/web")),
        (AGENT, create(INST, b"{}", True)),
        (AGENT2, create_session()), (AGENT2, create("/agents/host-b", b"{}", True)),
        (COORD, create_session()),
        (COORD, create("/pause")), (COORD, create("/pause/web")),
        (COORD, create("/deploys")), (COORD, create("/deploys/web")),
        (COORD, create("/deploys/web/d-1", b"{}")),
    ]


def clean_deploy():
    return setup() + [
        (COORD, multi(delete(INST), create(FLAG, flag_data(), True))),
        (COORD, create(JOURNAL, journal("pause"))),
        (COORD, set_data(JOURNAL, journal("pause", "drain", "verify", "command"))),
        (COORD, delete(FLAG)),
        (AGENT, create(INST, b"{}", True)),
    ]


CONFIG = {"instances": [{"service": "web", "ip": "10.9.0.11", "port": 8080, "host": "host-a"},
                        {"service": "web", "ip": "10.9.0.12", "port": 8080, "host": "host-b"}],
          "healthy": ["web/10.9.0.11_8080"]}


class HistoryCheckTest(unittest.TestCase):
    def run_checker(self, *logs, config=CONFIG, commands=None):
        """logs: lists of txns, one data dir each (or (txns, first_zxid))."""
        with tempfile.TemporaryDirectory() as d:
            dirs = []
            for i, log in enumerate(logs):
                txns, first = log if isinstance(log, tuple) else (log, 1)
                dirs.append(os.path.join(d, f"server{i}"))
                write_log(dirs[-1], txns, first)
            cfg = os.path.join(d, "cluster.json")
            with open(cfg, "w") as f:
                json.dump(config, f)
            rep = os.path.join(d, "report.json")
            args = [sys.executable, CHECKER, "--config", cfg, "--report", rep]
            for x in dirs:
                args += ["--datadir", x]
            if commands is not None:
                with open(os.path.join(d, "commands.jsonl"), "w") as f:
                    for c in commands:
                        f.write(json.dumps(c) + "\n")
                args += ["--commands", os.path.join(d, "commands.jsonl")]
            p = subprocess.run(args, capture_output=True, text=True)
            report = None
            if os.path.exists(rep):
                with open(rep) as f:
                    report = json.load(f)
            return p.returncode, report, p.stdout + p.stderr

    def kinds(self, report):
        return sorted(v["kind"] for v in report["violations"])

    def test_clean_history_passes(self):
        rc, report, out = self.run_checker(clean_deploy())
        self.assertEqual(rc, 0, out)
        self.assertEqual(report["violations"], [])
        self.assertEqual(report["transactions"], len(clean_deploy()))
        self.assertEqual(report["counts"]["commands"], 1)
        self.assertEqual(report["counts"]["registrations"], 2)

    def test_registration_during_pause_is_reported(self):
        h = setup() + [
            (COORD, multi(delete(INST), create(FLAG, flag_data(), True))),
            (AGENT, create(INST, b"{}", True)),  # the flag is still there
            (COORD, delete(FLAG)),
        ]
        rc, report, out = self.run_checker(h)
        self.assertEqual(rc, 1, out)
        self.assertEqual(self.kinds(report), ["registration-during-pause"])
        self.assertIn("VIOLATION registration-during-pause", out)

    def test_registration_after_flag_expired_with_session_is_fine(self):
        h = setup() + [
            (COORD, multi(delete(INST), create(FLAG, flag_data(), True))),
            (COORD, close_session()),  # session expiry takes the flag with it
            (AGENT, create(INST, b"{}", True)),
        ]
        rc, report, out = self.run_checker(h)
        self.assertEqual(rc, 0, out)

    def test_failed_multi_changes_nothing(self):
        # A multi with an error result applied nothing: the flag never existed,
        # so the registration that follows is not "during a pause"; and the
        # registration the multi failed to delete is still there at the end.
        h = setup() + [
            (COORD, multi(delete(INST), error())),
        ]
        rc, report, out = self.run_checker(h)
        self.assertEqual(rc, 0, out)

    def test_stranded_flag_is_reported(self):
        h = setup() + [
            (COORD, multi(delete(INST), create(FLAG, flag_data(), True))),
        ]  # neither deleted nor expired: the coordinator's session is still open
        rc, report, out = self.run_checker(h, config=dict(CONFIG, healthy=[]))
        self.assertEqual(rc, 1, out)
        self.assertEqual(self.kinds(report), ["stranded-flag"])

    def test_foreign_registration_is_reported(self):
        h = setup() + [
            (COORD, multi(delete(INST), create(FLAG, flag_data(), True))),
            (COORD, delete(FLAG)),
            (STRANGER, create_session()),
            (STRANGER, create(INST, b"{}", True)),
        ]
        rc, report, out = self.run_checker(h)
        self.assertEqual(self.kinds(report), ["foreign-registration", "not-registered"])
        # The other host's agent is not this instance's agent either.
        h[-1] = (AGENT2, create(INST, b"{}", True))
        rc, report, out = self.run_checker(h)
        self.assertIn("foreign-registration", self.kinds(report))

    def test_command_without_flag_is_reported(self):
        base = setup() + [
            (COORD, multi(delete(INST), create(FLAG, flag_data(), True))),
            (COORD, create(JOURNAL, journal("pause"))),
        ]
        # The coordinator's session expired (flag gone), a new session of the
        # same coordinator writes the command step.
        h = base + [(COORD, close_session()), (COORD2, create_session()),
                    (COORD2, set_data(JOURNAL, journal("pause", "verify", "command"))),
                    (AGENT, create(INST, b"{}", True))]
        rc, report, out = self.run_checker(h)
        self.assertEqual(self.kinds(report), ["command-without-flag"])
        # The flag exists but belongs to another session.
        h = base + [(COORD2, create_session()),
                    (COORD2, set_data(JOURNAL, journal("pause", "verify", "command"))),
                    (COORD, delete(FLAG)), (AGENT, create(INST, b"{}", True))]
        rc, report, out = self.run_checker(h)
        self.assertEqual(self.kinds(report), ["command-without-flag"])
        self.assertIn("is owned by", out)
        # The flag is another deploy's.
        h = setup() + [
            (COORD, multi(delete(INST), create(FLAG, flag_data("d-0"), True))),
            (COORD, create(JOURNAL, journal("pause", "command"))),
            (COORD, delete(FLAG)), (AGENT, create(INST, b"{}", True))]
        rc, report, out = self.run_checker(h)
        self.assertEqual(self.kinds(report), ["command-without-flag"])

    def test_command_step_ended_before_command_started_is_no_command(self):
        # Cut off between verify and COMMAND: the coordinator's next session
        # records the command step, already ended without COMMAND.
        base = setup() + [
            (COORD, multi(delete(INST), create(FLAG, flag_data(), True))),
            (COORD, create(JOURNAL, journal("pause"))),
            (COORD, close_session()), (COORD2, create_session())]
        not_run = ("the journal could not record that COMMAND starts (...), "
                   "and then our pause flag is gone; COMMAND was not run")
        h = base + [(COORD2, set_data(JOURNAL, journal(
            "pause", "verify", "command", command_ended=2, command_detail=not_run))),
            (AGENT, create(INST, b"{}", True))]
        rc, report, out = self.run_checker(h)
        self.assertEqual(self.kinds(report), [], out)
        # The same step without that detail is a COMMAND without its flag.
        h = base + [(COORD2, set_data(JOURNAL, journal(
            "pause", "verify", "command", command_ended=2,
            command_detail="COMMAND was stopped"))),
            (AGENT, create(INST, b"{}", True))]
        rc, report, out = self.run_checker(h)
        self.assertIn("command-without-flag", self.kinds(report), out)

    def test_command_outliving_its_flag_is_reported(self):
        # Transaction times are the log's time base + zxid (ms). The flag
        # expires with the coordinator's session at zxid 17; COMMAND's end is
        # recorded at +3000 ms: it ran on without the flag.
        h = setup() + [
            (COORD, multi(delete(INST), create(FLAG, flag_data(), True))),  # 15
            (COORD, create(JOURNAL, journal("pause", "command"))),          # 16
            (COORD, close_session()),                                       # 17
            (COORD2, create_session()),                                     # 18
            (COORD2, set_data(JOURNAL, journal("pause", "command", command_ended=3000))),
            (AGENT, create(INST, b"{}", True)),
        ]
        rc, report, out = self.run_checker(h)
        self.assertEqual(self.kinds(report), ["command-outlived-flag"], out)
        self.assertIn("expired with its session", out)
        # Within an allowed window (the documented bound) it is listed, not a violation.
        rc, report, out = self.run_checker(h, config=dict(CONFIG, command_grace_ms=3500))
        self.assertEqual(rc, 0, out)
        self.assertEqual([o["ms"] for o in report["command_outlived_flag"]], [3000 - 17])
        # The same COMMAND ending before the flag went is fine.
        h[-2] = (COORD2, set_data(JOURNAL, journal("pause", "command", command_ended=16)))
        rc, report, out = self.run_checker(h)
        self.assertEqual(rc, 0, out)

    def test_command_end_from_its_own_record(self):
        # The journal judged the step late (the post-COMMAND check waited for
        # ZooKeeper), but COMMAND's own record says it ended before the flag
        # went: no violation. Its own record of a late end is one.
        h = setup() + [
            (COORD, multi(delete(INST), create(FLAG, flag_data(), True))),  # 15
            (COORD, create(JOURNAL, journal("pause", "command"))),          # 16
            (COORD, close_session()),                                       # 17
            (COORD2, create_session()),                                     # 18
            (COORD2, set_data(JOURNAL, journal("pause", "command", command_ended=3000))),
            (AGENT, create(INST, b"{}", True)),
        ]
        rec = {"service": "web", "instance": "10.9.0.11_8080", "deploy_id": "d-1",
               "start_ms": 1_700_000_000_000 + 16, "end_ms": 1_700_000_000_000 + 17}
        rc, report, out = self.run_checker(h, commands=[rec])
        self.assertEqual(rc, 0, out)
        rec["end_ms"] += 5000
        rc, report, out = self.run_checker(h, commands=[rec])
        self.assertEqual(self.kinds(report), ["command-outlived-flag"], out)
        self.assertEqual(report["command_outlived_flag"][0]["end_from"], "COMMAND")

    def test_command_of_a_dead_coordinator_is_listed_not_held(self):
        # No journal end (the coordinator was killed); COMMAND's own record
        # shows it ran 2 s past the flag: listed, not a violation.
        h = setup() + [
            (COORD, multi(delete(INST), create(FLAG, flag_data(), True))),  # 15
            (COORD, create(JOURNAL, journal("pause", "command"))),          # 16
            (COORD, close_session()),                                       # 17
            (AGENT, create(INST, b"{}", True)),
        ]
        rec = {"service": "web", "instance": "10.9.0.11_8080", "deploy_id": "d-1",
               "start_ms": 1_700_000_000_000 + 16, "end_ms": 1_700_000_000_000 + 2017}
        rc, report, out = self.run_checker(h, commands=[rec])
        self.assertEqual(rc, 0, out)
        self.assertEqual([(o["ms"], o["coordinator_died"]) for o in report["command_outlived_flag"]],
                         [(2000, True)])
        self.assertIn("not bounded: its coordinator died", out)

    def test_two_commands_at_once_on_one_instance_are_reported(self):
        j2 = "/deploys/web/d-2/10.9.0.11_8080"
        h = setup() + [
            (COORD, multi(delete(INST), create(FLAG, flag_data(), True))),       # 15
            (COORD, create(JOURNAL, journal("pause", "command"))),               # 16
            (COORD, set_data(JOURNAL, journal("pause", "command", command_ended=18))),
            (COORD, delete(FLAG)),                                               # 18
            (COORD2, create_session()),
            (COORD2, create(FLAG, flag_data("d-2"), True)),                      # 20
            (COORD2, create(j2, journal("pause", "command"))),                   # 21
            (COORD2, set_data(j2, journal("pause", "command", command_ended=22))),
            (COORD2, delete(FLAG)),                                              # 23
            (AGENT, create(INST, b"{}", True)),
        ]
        base = 1_700_000_000_000

        def recs(first_end):
            return [{"service": "web", "instance": "10.9.0.11_8080", "deploy_id": "d-1",
                     "start_ms": base + 16, "end_ms": base + first_end},
                    {"service": "web", "instance": "10.9.0.11_8080", "deploy_id": "d-2",
                     "start_ms": base + 21, "end_ms": base + 22}]
        rc, report, out = self.run_checker(h, commands=recs(17))
        self.assertEqual(rc, 0, out)
        # d-1's COMMAND still ran when d-2's started (its flag gone at 18,
        # within the window, so only the overlap is reported).
        rc, report, out = self.run_checker(h, commands=recs(21 + 1),
                                           config=dict(CONFIG, command_grace_ms=3500))
        self.assertEqual(self.kinds(report), ["command-overlap"], out)
        self.assertEqual(report["command_overlaps"][0]["ms"], 1)

    def test_healthy_instance_not_registered_is_reported(self):
        h = setup() + [
            (COORD, multi(delete(INST), create(FLAG, flag_data(), True))),
            (COORD, delete(FLAG)),
        ]
        rc, report, out = self.run_checker(h)
        self.assertEqual(self.kinds(report), ["not-registered"])
        self.assertEqual(report["stuck"], ["web/10.9.0.11_8080"])

    def test_union_of_servers_is_the_history(self):
        h = clean_deploy()
        cut = len(h) - 3
        # Server 1 missed the tail (it was down), server 2 the head (SNAP sync):
        # alone each is incomplete; their union is the whole history.
        rc, report, out = self.run_checker(h[:cut], (h[5:], 6))
        self.assertEqual(rc, 0, out)
        self.assertEqual(report["transactions"], len(h))
        # Server 1 alone ends with the flag in place: stranded (and the instance
        # counts as paused, so it is not expected to be registered).
        rc, report, out = self.run_checker(h[:cut])
        self.assertEqual(self.kinds(report), ["stranded-flag"])

    def test_servers_disagreeing_on_a_zxid_is_reported(self):
        h = clean_deploy()
        other = list(h)
        other[-1] = (AGENT2, create("/elsewhere"))
        rc, report, out = self.run_checker(h, other)
        self.assertIn("zxid-conflict", self.kinds(report))

    def test_corrupt_log_is_an_input_error(self):
        with tempfile.TemporaryDirectory() as d:
            write_log(d, clean_deploy())
            path = os.path.join(d, "version-2", "log.1")
            data = bytearray(open(path, "rb").read())
            data[40] ^= 0xFF
            open(path, "wb").write(bytes(data))
            cfg = os.path.join(d, "c.json")
            json.dump(CONFIG, open(cfg, "w"))
            p = subprocess.run([sys.executable, CHECKER, "--datadir", d, "--config", cfg],
                               capture_output=True, text=True)
            self.assertEqual(p.returncode, 2)
            self.assertIn("checksum mismatch", p.stderr)


if __name__ == "__main__":
    unittest.main()
