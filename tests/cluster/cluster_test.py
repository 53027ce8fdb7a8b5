#!/usr/bin/env python3
"""A cluster on one machine: ZooKeeper servers, agent hosts, callers and the
coordinator each in a network namespace of their own, a rollout of every
instance under a nemesis, and a verdict from the complete history of what
ZooKeeper committed (history_check.py).

    cluster_test.py SOURCE_DIR BUILD_DIR [--hosts 5] [--per-host 10] [--out DIR]

Environment: ZKROLL_CLUSTER_HOSTS / ZKROLL_CLUSTER_PER_HOST override the size
(smaller runs while developing), ZKROLL_CLUSTER_OUT keeps the run's files,
ZKROLL_CLUSTER_COORD_CUT=verify cuts the coordinator off right after a
verify instead of during a COMMAND.

Network: every namespace is named zkcl-*; a bridge lives in a namespace of
its own (zkcl-br), each host namespace has one veth pair to it and an address
in 10.250.16.0/24. Nothing is connected to the root namespace, so nothing
can reach a real network. Partitions are blackhole routes inside the cut-off
host's namespace (no iptables or nft on this machine): to the three
ZooKeeper addresses for an agent or the coordinator (the host keeps serving
its callers but cannot reach the ensemble), to one agent host for a caller.
The faults and their times go to faults.jsonl, the COMMANDs' own records of
when they ran to commands.jsonl, the decoded history to history.jsonl.
Every process is started inside one of these namespaces; on every exit path
(and at the start, for a run that was killed) every process in a zkcl-*
namespace is killed and the namespaces are deleted.

Exit code 0: no violation, no stuck instance, no unexplained failed request.
77: skipped (no root, no `ip netns`), with the reason on stdout.
"""

import argparse
import atexit
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

PREFIX = "zkcl-"
NET = "10.250.16"
ZK_IPS = [f"{NET}.{11 + i}" for i in range(3)]
CALLER_IPS = [f"{NET}.41", f"{NET}.42"]
COORD_IP = f"{NET}.51"
SERVICE = "web"
AGENT_SESSION_S = 3
COORD_SESSION_S = 4
SKIP = 77
DEADLINE_S = 450  # the whole run, set-up and verdict included
HERE = os.path.dirname(os.path.abspath(__file__))


def now_ms():
    return int(time.time() * 1000)


def stamp():
    return time.strftime("%H:%M:%S", time.gmtime()) + ".%03d" % (now_ms() % 1000)


def log(msg):
    print(f"[{stamp()}] {msg}", flush=True)


def run(args, timeout=30, check=True):
    p = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited {p.returncode}: {p.stderr.strip()}")
    return p


def ns_exec(ns):
    return ["ip", "netns", "exec", ns]


def poll_interval(seconds):
    """The pause between two looks of a bounded wait (never a wait for an
    event by itself)."""
    threading.Event().wait(seconds)


def wait_for(cond, seconds, what, interval=0.2):
    """Blocks until cond() is true; raises after `seconds`, naming `what`."""
    deadline = time.time() + seconds
    while True:
        v = cond()
        if v:
            return v
        if time.time() > deadline:
            raise TimeoutError(f"{what}: not within {seconds}s")
        poll_interval(interval)


# --- namespaces --------------------------------------------------------------

def our_namespaces():
    p = run(["ip", "netns", "list"], check=False)
    return [line.split()[0] for line in p.stdout.splitlines()
            if line.startswith(PREFIX)]


def namespace_pids(ns):
    p = run(["ip", "netns", "pids", ns], check=False)
    return [int(x) for x in p.stdout.split() if x.isdigit()]


def kill_namespace_processes(ns):
    """SIGKILL every process inside one of our namespaces (all started by
    this test: servers, agents, services, callers, coordinators, COMMANDs).
    Returns the pids still there after 2 s."""
    for _ in range(20):
        pids = namespace_pids(ns)
        if not pids:
            return []
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        poll_interval(0.1)
    return namespace_pids(ns)


def ancestors():
    """This process and its parents (their command lines may name the run's
    directory: they are not strays)."""
    out, pid = set(), os.getpid()
    while pid > 1 and pid not in out:
        out.add(pid)
        try:
            with open(f"/proc/{pid}/stat") as f:
                pid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return out


def teardown():
    """Kills everything in our namespaces and deletes them. Returns what
    survived: {namespace: [pids]} and the namespaces left."""
    survivors = {}
    for ns in our_namespaces():
        left = kill_namespace_processes(ns)
        if left:
            survivors[ns] = left
    for ns in our_namespaces():
        run(["ip", "netns", "del", ns], check=False)
    return survivors, our_namespaces()


class Cluster:
    def __init__(self, src, build, hosts, per_host, out):
        self.src, self.build, self.out = src, build, out
        self.hosts = [{"name": f"host-{k + 1}", "ns": f"{PREFIX}a{21 + k}",
                       "ip": f"{NET}.{21 + k}"} for k in range(hosts)]
        self.instances = []
        for h in self.hosts:
            for j in range(per_host):
                self.instances.append({"service": SERVICE, "ip": h["ip"],
                                       "port": 8001 + j, "host": h["name"]})
        self.zk = [{"ns": f"{PREFIX}zk{i + 1}", "ip": ip, "proc": None,
                    "dir": f"{out}/zk{i + 1}"} for i, ip in enumerate(ZK_IPS)]
        self.zk_connect = ",".join(f"{ip}:2181" for ip in ZK_IPS)
        self.procs = {}
        self.faults = []
        self.fault_log = open(f"{out}/faults.jsonl", "w")
        self.zkroll = f"{build}/coordinator/zkroll"

    # --- plumbing ---
    def make_network(self):
        run(["ip", "netns", "add", f"{PREFIX}br"])
        run(["ip", "-n", f"{PREFIX}br", "link", "add", "br0", "type", "bridge"])
        run(["ip", "-n", f"{PREFIX}br", "link", "set", "br0", "up"])
        nodes = [(z["ns"], z["ip"]) for z in self.zk] + \
                [(h["ns"], h["ip"]) for h in self.hosts] + \
                [(f"{PREFIX}c{i + 1}", ip) for i, ip in enumerate(CALLER_IPS)] + \
                [(f"{PREFIX}co", COORD_IP)]
        for k, (ns, ip) in enumerate(nodes):
            run(["ip", "netns", "add", ns])
            run(["ip", "link", "add", "eth0", "netns", ns, "type", "veth",
                 "peer", "name", f"p{k}", "netns", f"{PREFIX}br"])
            run(["ip", "-n", f"{PREFIX}br", "link", "set", f"p{k}", "master", "br0", "up"])
            run(["ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", "eth0"])
            run(["ip", "-n", ns, "link", "set", "eth0", "up"])
            run(["ip", "-n", ns, "link", "set", "lo", "up"])

    def spawn(self, name, ns, argv, env=None):
        f = open(f"{self.out}/{name}.log", "ab")
        p = subprocess.Popen(ns_exec(ns) + argv, stdout=f, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        self.procs[name] = p
        return p

    # --- ZooKeeper ---
    def start_zk(self, i):
        z = self.zk[i]
        os.makedirs(f"{z['dir']}/data", exist_ok=True)
        with open(f"{z['dir']}/data/myid", "w") as f:
            f.write(f"{i + 1}\n")
        cfg = f"{z['dir']}/zoo.cfg"
        with open(cfg, "w") as f:
            f.write("tickTime=200\ninitLimit=50\nsyncLimit=10\n"
                    f"dataDir={z['dir']}/data\nclientPort=2181\n"
                    f"clientPortAddress={z['ip']}\nminSessionTimeout=400\n"
                    "maxSessionTimeout=60000\nmaxClientCnxns=0\n"
                    "admin.enableServer=false\n4lw.commands.whitelist=*\n"
                    # Small log files; never purged (the history must stay complete).
                    "preAllocSize=1024\nautopurge.purgeInterval=0\n")
            for j, ip in enumerate(ZK_IPS):
                f.write(f"server.{j + 1}={ip}:2888:3888\n")
        z["proc"] = self.spawn(f"zk{i + 1}", z["ns"], [
            "java", "-Xmx128m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
            "-Dzookeeper.admin.enableServer=false",
            "-cp", os.environ.get("ZKROLL_ZK_CLASSPATH", "/usr/share/java/zookeeper.jar"),
            "org.apache.zookeeper.server.quorum.QuorumPeerMain", cfg])

    def modes(self):
        """srvr of each server, asked from the coordinator's namespace."""
        code = ("import socket,sys\n"
                "for ip in sys.argv[1:]:\n"
                "  try:\n"
                "    s=socket.create_connection((ip,2181),timeout=1); s.sendall(b'srvr')\n"
                "    d=b''\n"
                "    while True:\n"
                "      b=s.recv(4096)\n"
                "      if not b: break\n"
                "      d+=b\n"
                "    m=[l.split(':')[1].strip() for l in d.decode().splitlines() if l.startswith('Mode:')]\n"
                "    print(m[0] if m else '-')\n"
                "  except OSError: print('-')\n")
        p = run(ns_exec(f"{PREFIX}co") + [sys.executable, "-c", code] + ZK_IPS,
                check=False, timeout=20)
        out = p.stdout.split()
        return out if len(out) == 3 else ["-"] * 3

    def quorum_ok(self, want=3):
        m = self.modes()
        return m.count("leader") == 1 and m.count("leader") + m.count("follower") >= want

    # --- zkroll ---
    def zkroll_args(self):
        return [self.zkroll, "--zk", self.zk_connect, "--session-timeout",
                f"{COORD_SESSION_S}s"]

    def status(self):
        """{ "ip:port": {"registered": bool, "paused": bool} } from zkroll status."""
        p = run(ns_exec(f"{PREFIX}co") + self.zkroll_args() +
                ["status", "--service", SERVICE, "--output", "json"], check=False, timeout=30)
        out = {}
        for line in p.stdout.splitlines():
            try:
                e = json.loads(line)
            except ValueError:
                continue
            if e.get("event") == "instance":
                out[e["instance"]] = {"registered": bool(e.get("registered")),
                                      "paused": bool(e.get("paused"))}
        return out

    def versions(self):
        """What each instance answers, asked from the first caller host."""
        code = ("import json,sys,urllib.request\n"
                "out={}\n"
                "for a in sys.argv[1:]:\n"
                "  try:\n"
                "    with urllib.request.urlopen('http://'+a+'/',timeout=2) as r:\n"
                "      out[a]=json.loads(r.read()).get('version','?')\n"
                "  except Exception as e: out[a]='down'\n"
                "print(json.dumps(out))\n")
        addrs = [f"{i['ip']}:{i['port']}" for i in self.instances]
        p = run(ns_exec(f"{PREFIX}c1") + [sys.executable, "-c", code] + addrs,
                check=False, timeout=120)
        try:
            return json.loads(p.stdout)
        except ValueError:
            return {}

    # --- faults ---
    def fault(self, kind, target, start, end, scope, detail=""):
        f = {"kind": kind, "target": target, "start_ms": start, "end_ms": end,
             "scope": scope, "detail": detail}
        self.faults.append(f)
        self.fault_log.write(json.dumps(f) + "\n")
        self.fault_log.flush()
        log(f"fault {kind} on {target}: {(end - start) / 1000:.1f}s {detail}")
        return f

    def partition(self, ns, on):
        """Blackhole routes to the three servers in ns (one `ip` call, so
        the cut lands at once), or their removal."""
        cmds = "".join(f"route {'add' if on else 'del'} blackhole {ip}/32\n" for ip in ZK_IPS)
        p = subprocess.run(["ip", "-n", ns, "-force", "-batch", "-"], input=cmds,
                           capture_output=True, text=True, timeout=30)
        if on and p.returncode != 0:
            raise RuntimeError(f"cannot cut {ns} off: {p.stderr.strip()}")

    def host_settled(self, ips):
        """Every instance of these hosts is registered, or paused by a deploy."""
        st = self.status()
        return all(v["registered"] or v["paused"] for a, v in st.items()
                   if a.split(":")[0] in ips) and st


def rollout(c, name, addrs):
    # 40 of 50 at full size; smaller runs keep the same proportion.
    n = len(c.instances)
    min_healthy = n * 4 // 5
    batch = max(1, min(5, n - min_healthy))
    argv = c.zkroll_args() + [
        "rollout", "--service", SERVICE, "--batch", str(batch),
        "--min-healthy", str(min_healthy),
        "--min-healthy-timeout", "90s", "--drain-wait", "1500ms",
        "--check", "http:/healthz", "--health-attempts", "40", "--health-interval", "250ms",
        "--register-timeout", "60s", "--reason", f"cluster test {name}",
        "--output", "json"]
    if addrs is not None:
        argv += ["--instances", ",".join(addrs)]
    env = dict(os.environ, CLUSTER_DIR=c.out, DEMO_SERVICE_BIN=f"{c.build}/demo/zkroll-demo-service",
               DEMO_NEW_VERSION="v2", CLUSTER_SOURCE=c.src)
    argv += ["--", f"{HERE}/upgrade_in_host.sh"]
    f = open(f"{c.out}/{name}.jsonl", "wb")
    p = subprocess.Popen(ns_exec(f"{PREFIX}co") + argv, stdout=f,
                         stderr=open(f"{c.out}/{name}.log", "ab"), env=env,
                         start_new_session=True)
    c.procs[name] = p
    return p


def events(c, name):
    out = []
    try:
        for line in open(f"{c.out}/{name}.jsonl"):
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    except OSError:
        pass
    return out


def commands_running(c, name):
    """Instances whose COMMAND step started and has not ended yet."""
    running = set()
    for e in events(c, name):
        if e.get("event") == "step" and e.get("step") == "command":
            inst = e.get("instance", "").split("@")[-1]
            if e.get("verdict") == "started":
                running.add(inst)
            else:
                running.discard(inst)
    return running


def command_records_since(c, start_ms):
    """COMMANDs started since start_ms that recorded their end."""
    n = 0
    with open(f"{c.out}/commands.jsonl") as f:
        for line in f:
            try:
                n += json.loads(line)["start_ms"] >= start_ms
            except (ValueError, KeyError):
                pass
    return n


def verified_not_started(c, name):
    """Instances whose verify step passed and whose COMMAND has not started:
    the gap between the last read of the flag and COMMAND."""
    verified = set()
    for e in events(c, name):
        if e.get("event") != "step":
            continue
        inst = e.get("instance", "").split("@")[-1]
        if e.get("step") == "verify" and e.get("verdict") == "ok":
            verified.add(inst)
        elif e.get("step") == "command":
            verified.discard(inst)
    return verified


def commands_started(c, name):
    return sum(1 for e in events(c, name) if e.get("event") == "step"
               and e.get("step") == "command" and e.get("verdict") == "started")


def nemesis_and_rollouts(c):
    """The fault schedule. Returns the exit codes of the rollouts."""
    codes = {}
    hosts = c.hosts
    victim_part, victim_stop = hosts[-1], hosts[-2] if len(hosts) > 1 else hosts[-1]

    r1 = rollout(c, "rollout1", None)
    wait_for(lambda: commands_started(c, "rollout1") >= 1, 90, "rollout1 starts a COMMAND")

    # 1. An agent host cut off from the ensemble longer than its session timeout.
    t0 = now_ms()
    c.partition(victim_part["ns"], True)
    wait_for(lambda: now_ms() - t0 >= (AGENT_SESSION_S * 2 + 1) * 1000, 30, "partition hold")
    c.partition(victim_part["ns"], False)
    t1 = now_ms()
    wait_for(lambda: c.host_settled({victim_part["ip"]}), 60,
             f"{victim_part['name']} registers again after the heal")
    f = c.fault("partition-agent-host", victim_part["name"], t0, t1, [victim_part["ip"]],
                f"blackhole routes to the ensemble for {(t1 - t0) / 1000:.1f}s "
                f"(session {AGENT_SESSION_S}s)")
    f["recovery_ms"] = now_ms() - t1

    # 2. Kill the ZooKeeper leader, restart it.
    modes = wait_for(lambda: (m := c.modes()) and "leader" in m and m, 60, "a leader")
    li = modes.index("leader")
    t0 = now_ms()
    c.zk[li]["proc"].kill()
    c.zk[li]["proc"].wait(timeout=20)
    wait_for(lambda: c.modes().count("leader") == 1, 60, "a new leader among the other two")
    c.start_zk(li)
    t1 = now_ms()
    wait_for(lambda: c.quorum_ok(3), 90, "the killed server rejoins the quorum")
    f = c.fault("kill-zk-leader", f"zk{li + 1}", t0, t1, "all",
                f"SIGKILL; new leader {c.modes().index('leader') + 1}; restarted")
    f["recovery_ms"] = now_ms() - t1

    # 3. Freeze an agent past its session timeout.
    ap = c.procs[f"agent-{victim_stop['name']}"]
    t0 = now_ms()
    os.kill(ap.pid, signal.SIGSTOP)
    wait_for(lambda: now_ms() - t0 >= (AGENT_SESSION_S * 2) * 1000, 30, "SIGSTOP hold")
    os.kill(ap.pid, signal.SIGCONT)
    t1 = now_ms()
    wait_for(lambda: c.host_settled({victim_stop["ip"]}), 60,
             f"{victim_stop['name']} registers again after SIGCONT")
    f = c.fault("sigstop-agent", victim_stop["name"], t0, t1, [victim_stop["ip"]],
                f"agent pid {ap.pid} stopped {(t1 - t0) / 1000:.1f}s (session {AGENT_SESSION_S}s)")
    f["recovery_ms"] = now_ms() - t1

    # 4. Partition the coordinator's host while a COMMAND runs (or, with
    #    ZKROLL_CLUSTER_COORD_CUT=verify, right after a verify: the gap of
    #    the open finding in docs/reliability.md, reproduced on demand).
    at_verify = os.environ.get("ZKROLL_CLUSTER_COORD_CUT", "command") == "verify"
    moment = verified_not_started if at_verify else commands_running
    if r1.poll() is None:
        # The verify -> COMMAND gap lasts milliseconds: look often.
        running = wait_for(lambda: moment(c, "rollout1") or r1.poll() is not None,
                           90, "a COMMAND running in rollout1",
                           interval=0.002 if at_verify else 0.2)
        if r1.poll() is None:
            t0 = now_ms()
            c.partition(f"{PREFIX}co", True)
            wait_for(lambda: now_ms() - t0 >= (COORD_SESSION_S * 2) * 1000, 30, "hold")
            c.partition(f"{PREFIX}co", False)
            t1 = now_ms()
            f = c.fault("partition-coordinator", "coordinator", t0, t1,
                        sorted(running),
                        f"{'verified, COMMAND not started' if at_verify else 'COMMAND running'}"
                        f" on {sorted(running)}; session {COORD_SESSION_S}s")
    codes["rollout1"] = r1.wait(timeout=240)
    log(f"rollout1 exited {codes['rollout1']}")
    if c.faults[-1]["kind"] == "partition-coordinator":
        # Recovered: the stale coordinator's flags are gone (with its session).
        wait_for(lambda: not any(v["paused"] for v in c.status().values()), 60,
                 "the partitioned coordinator's flags are gone")
        c.faults[-1]["recovery_ms"] = now_ms() - c.faults[-1]["end_ms"]

    # 5. A new rollout of what is not upgraded yet, killed mid-rollout;
    #    then another of the rest (`rollout --resume` does not exist yet).
    for n in (2, 3):
        wait_for(lambda: not any(v["paused"] for v in c.status().values()), 60,
                 "no pause flag left before the next rollout")
        v = c.versions()
        rest = sorted(a for a in v if v[a] != "v2")
        log(f"rollout{n}: {len(rest)} instances not answering v2 yet")
        if not rest:
            break
        r_start = now_ms()
        r = rollout(c, f"rollout{n}", rest)
        if n == 2:
            wait_for(lambda: commands_running(c, "rollout2") or r.poll() is not None, 120,
                     "a COMMAND running in rollout2")
            if r.poll() is None:
                running = commands_running(c, "rollout2")
                t0 = now_ms()
                r.kill()  # SIGKILL of `ip netns exec`, which exec'd zkroll: zkroll itself
                codes["rollout2"] = r.wait(timeout=20)
                f = c.fault("kill-coordinator", "coordinator", t0, now_ms(), sorted(running),
                            f"SIGKILL with COMMAND running on {sorted(running)}")
                # Recovered: its flags went with its session (the lock too).
                wait_for(lambda: not any(v["paused"] for v in c.status().values()), 60,
                         "the killed coordinator's flags are gone")
                f["recovery_ms"] = now_ms() - f["end_ms"]
                # Its COMMANDs run on without it (nothing stops them; see
                # docs/reliability.md). As an operator would, wait until they
                # are done before the next rollout: two upgrade scripts on one
                # instance would fight over its port.
                started = commands_started(c, "rollout2")
                wait_for(lambda: command_records_since(c, r_start) >= started, 30,
                         "the killed coordinator's COMMANDs end")
                continue
        codes[f"rollout{n}"] = r.wait(timeout=300)
        log(f"rollout{n} exited {codes[f'rollout{n}']}")
    return codes


def attribute_failures(faults, summaries):
    """Each failed request, by caller second and instance, to a fault window:
    one that overlaps that second (from 1s before the fault to 3s after its
    recovery), whose scope is "all" or holds the instance's host address
    or the instance itself, and, for a fault of one caller ("caller"), seen
    by that caller. Returns (attributed count, unexplained rows);
    adds "failed_requests" to the faults that explain some."""
    attributed, unexplained = 0, []
    for s in summaries:
        start = s["summary"]["started_at_unix_ms"]
        for row in s["timeline"]:
            failed = int(row.get("failed") or 0)
            if not failed:
                continue
            t = start + int(row["second"]) * 1000
            inst = row.get("instance", "")
            ok = False
            for f in faults:
                if f.get("caller") not in (None, s["name"]):
                    continue
                lo = f["start_ms"] - 1000
                hi = f["end_ms"] + f.get("recovery_ms", 0) + 3000
                if not (t + 1000 >= lo and t <= hi):
                    continue
                if f["scope"] == "all" or inst.split(":")[0] in f["scope"] or inst in f["scope"]:
                    ok = True
                    f["failed_requests"] = f.get("failed_requests", 0) + failed
                    break
            if ok:
                attributed += failed
            else:
                unexplained.append({"caller": s["name"], "second": row["second"],
                                    "instance": inst, "failed": failed})
    return attributed, unexplained


def read_timeline(path):
    import csv
    try:
        return list(csv.DictReader(open(path)))
    except OSError:
        return []


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("source")
    ap.add_argument("build")
    ap.add_argument("--hosts", type=int, default=int(os.environ.get("ZKROLL_CLUSTER_HOSTS", 5)))
    ap.add_argument("--per-host", type=int,
                    default=int(os.environ.get("ZKROLL_CLUSTER_PER_HOST", 10)))
    ap.add_argument("--out", default=os.environ.get("ZKROLL_CLUSTER_OUT"))
    a = ap.parse_args()
    if not (2 <= a.hosts <= 9 and 1 <= a.per_host <= 50):
        print(f"cluster_test: --hosts {a.hosts} (2..9) or --per-host {a.per_host} (1..50) out of range")
        return 2

    if os.geteuid() != 0:
        print("SKIP: the cluster test needs root (CAP_NET_ADMIN) to create network namespaces")
        return SKIP
    # One run per machine: the namespaces, the subnet and the clean-up of
    # leftovers below are machine-wide, so a second run started meanwhile
    # (another build tree) would kill the first one's processes. It waits.
    lock = open("/run/lock/zkroll-cluster-test.lock" if os.path.isdir("/run/lock")
                else "/tmp/zkroll-cluster-test.lock", "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        log("another cluster run holds the machine-wide lock; waiting for it (at most 15 min)")
        deadline = time.monotonic() + 900
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    print("cluster_test: another cluster run held the lock for 15 minutes")
                    return 1
                poll_interval(0.5)
    if shutil.which("ip") is None:
        print("SKIP: the cluster test needs iproute2 (`ip netns`)")
        return SKIP
    probe = subprocess.run(["ip", "netns", "add", f"{PREFIX}probe"], capture_output=True, text=True)
    if probe.returncode != 0:
        print(f"SKIP: cannot create a network namespace: {probe.stderr.strip()}")
        return SKIP
    run(["ip", "netns", "del", f"{PREFIX}probe"], check=False)
    for b in ("coordinator/zkroll", "agent/zkroll-agent", "demo/zkroll-demo-service",
              "demo/zkroll-loadgen"):
        if not os.access(f"{a.build}/{b}", os.X_OK):
            print(f"cluster_test: {a.build}/{b} is missing: build it first")
            return 2

    leftovers = our_namespaces()
    if leftovers:
        log(f"removing leftovers of an earlier run: {leftovers}")
        teardown()

    keep = a.out is not None
    out = a.out or tempfile.mkdtemp(prefix="zkroll-cluster.")
    out = os.path.abspath(out)
    os.makedirs(out, exist_ok=True)
    atexit.register(teardown)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda s, f: sys.exit(128 + s))

    t_start = time.time()
    c = Cluster(a.source, a.build, a.hosts, a.per_host, out)

    # The whole run is bounded (ctest's own timeout would kill us without
    # the clean-up below).
    def overtime(signum, frame):
        raise TimeoutError(f"the cluster test ran longer than {DEADLINE_S}s")
    signal.signal(signal.SIGALRM, overtime)
    signal.alarm(DEADLINE_S)
    rc = 1
    try:
        rc = scenario(c, t_start)
    except (TimeoutError, RuntimeError, subprocess.TimeoutExpired) as e:
        print(f"FAIL: {e}")
        rc = 1
    finally:
        signal.alarm(0)
        for p in c.procs.values():
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        survivors, namespaces_left = teardown()
        # Processes of ours outside the namespaces would name the run's
        # directory (servers' configs, COMMAND wrappers' records).
        strays = [x for x in run(["pgrep", "-f", out], check=False).stdout.split()
                  if int(x) not in ancestors()]
        log(f"done in {time.time() - t_start:.0f}s; processes left in our namespaces: "
            f"{survivors or 'none'}; other processes naming {out}: {strays or 'none'}; "
            f"namespaces left: {namespaces_left or 'none'}")
    if survivors or strays or namespaces_left:
        print("FAIL: the test did not stop everything it started")
        rc = 1
    if not keep and rc == 0:
        shutil.rmtree(out, ignore_errors=True)
    else:
        log(f"the run's files (logs, faults.jsonl, history.jsonl) are in {out}")
    return rc


def scenario(c, t_start):
    open(f"{c.out}/commands.jsonl", "a").close()  # COMMANDs append their records
    c.make_network()
    log(f"network: {len(our_namespaces())} namespaces in {NET}.0/24, bridge in {PREFIX}br")
    for i in range(3):
        c.start_zk(i)
    wait_for(lambda: c.quorum_ok(3), 120, "the ensemble elects a leader")
    log(f"ensemble up: {c.modes()}")

    svc = f"{c.build}/demo/zkroll-demo-service"
    for h in c.hosts:
        os.makedirs(f"{c.out}/hosts/{h['ip']}/instances", exist_ok=True)
        mine = [i for i in c.instances if i["host"] == h["name"]]
        for i in mine:
            p = c.spawn(f"svc-{i['ip']}-{i['port']}", h["ns"],
                        [svc, "--ip", i["ip"], "--port", str(i["port"]), "--version", "v1"])
            with open(f"{c.out}/hosts/{h['ip']}/instances/{i['port']}.pid", "w") as f:
                f.write(f"{p.pid}\n")
        argv = [f"{c.build}/agent/zkroll-agent", "--zk", c.zk_connect, "--host", h["name"],
                "--check", "http:/healthz", "--interval", "300ms", "--timeout", "500ms",
                "--rise", "2", "--fall", "2", "--resync", "5s",
                "--session-timeout", f"{AGENT_SESSION_S}s"]
        for i in mine:
            argv += ["--instance", f"{SERVICE}@{i['ip']}:{i['port']}"]
        c.spawn(f"agent-{h['name']}", h["ns"], argv)
    n = len(c.instances)
    wait_for(lambda: sum(v["registered"] for v in c.status().values()) == n, 90,
             f"{n} instances registered")
    log(f"{n} instances on {len(c.hosts)} hosts registered")

    stop_file = f"{c.out}/stop-load"
    callers = []
    for k, ip in enumerate(CALLER_IPS):
        name = f"caller{k + 1}"
        c.spawn(name, f"{PREFIX}c{k + 1}", [
            f"{c.build}/demo/zkroll-loadgen", "--zk", c.zk_connect, "--service", SERVICE,
            "--mode", "watch", "--rate", "100", "--duration", "300s", "--connections", "8",
            "--timeout", "2s", "--timeline", f"{c.out}/{name}-timeline.csv",
            "--summary-json", f"{c.out}/{name}-summary.json", "--stop-file", stop_file,
            "--quiet"])
        callers.append(name)

    codes = nemesis_and_rollouts(c)

    # 6. A caller host cut off from one agent host (a blackhole route in the
    #    caller's namespace): its requests there fail, and the verdict must
    #    attribute each of them to this window.
    victim = c.hosts[0]
    t0 = now_ms()
    run(["ip", "-n", f"{PREFIX}c1", "route", "add", "blackhole", f"{victim['ip']}/32"])
    wait_for(lambda: now_ms() - t0 >= 3000, 10, "caller partition hold")
    run(["ip", "-n", f"{PREFIX}c1", "route", "del", "blackhole", f"{victim['ip']}/32"])
    f = c.fault("partition-caller", "caller1", t0, now_ms(), [victim["ip"]],
                f"blackhole route from caller1 to {victim['name']}")
    f["caller"] = "caller1"
    f["recovery_ms"] = 2000  # requests cut off end by their 2 s timeout

    # Quiescence: every instance on v2, registered, no flag.
    def settled():
        st, v = c.status(), c.versions()
        return (len(st) == n and all(x["registered"] and not x["paused"] for x in st.values())
                and len(v) == n and all(x == "v2" for x in v.values()))
    try:
        wait_for(settled, 90, "every instance on v2, registered, unpaused")
        converged = True
    except TimeoutError as e:
        log(str(e))
        converged = False
    with open(stop_file, "w"):
        pass
    for name in callers:
        c.procs[name].wait(timeout=30)
    wait_for(lambda: c.quorum_ok(3), 60, "all three servers in the quorum before reading logs")

    versions = c.versions()
    healthy = [f"{SERVICE}/{a.replace(':', '_')}" for a, ver in versions.items() if ver != "down"]
    cfg = f"{c.out}/cluster.json"
    with open(cfg, "w") as f:
        # The window docs/reliability.md admits for a COMMAND after a silent
        # partition: T/3 past the expiry, plus SIGTERM -> SIGKILL (2 s), plus
        # 250 ms for the two clocks' granularity.
        json.dump({"instances": c.instances, "healthy": healthy,
                   "command_grace_ms": COORD_SESSION_S * 1000 // 3 + 2000 + 250}, f)
    # The servers keep logging (agents rewrite /agents/<host> on resync):
    # the checker and the TxnLogToolkit cross-check read one frozen copy.
    copies = []
    for i, z in enumerate(c.zk):
        dst = f"{c.out}/history/zk{i + 1}"
        os.makedirs(f"{dst}/version-2", exist_ok=True)
        for name in sorted(os.listdir(f"{z['dir']}/data/version-2")):
            if name.startswith("log."):
                shutil.copy(f"{z['dir']}/data/version-2/{name}", f"{dst}/version-2/{name}")
        copies.append(dst)
    checker = run([sys.executable, f"{HERE}/history_check.py", "--config", cfg,
                   "--report", f"{c.out}/history-report.json", "--dump", f"{c.out}/history.jsonl",
                   "--toolkit-crosscheck"] +
                  ["--commands", f"{c.out}/commands.jsonl"] +
                  sum((["--datadir", d] for d in copies), []),
                  check=False, timeout=300)
    print(checker.stdout, end="")
    if checker.returncode == 2:
        print(checker.stderr)
        return 1
    report = json.load(open(f"{c.out}/history-report.json"))

    summaries = []
    for name in callers:
        try:
            s = json.load(open(f"{c.out}/{name}-summary.json"))
        except (OSError, ValueError):
            log(f"{name}: no summary")
            return 1
        if "started_at_unix_ms" not in s:
            log(f"{name}: its summary is incomplete (was the load generator killed?)")
            return 1
        summaries.append({"name": name, "summary": s,
                          "timeline": read_timeline(f"{c.out}/{name}-timeline.csv")})
    attributed, unexplained = attribute_failures(c.faults, summaries)
    sent = sum(s["summary"]["sent"] for s in summaries)
    failed = sum(s["summary"]["failed"] for s in summaries)
    timeline_failed = sum(int(r.get("failed") or 0) for s in summaries for r in s["timeline"])
    if timeline_failed != failed:
        unexplained.append({"note": f"timelines count {timeline_failed} failed, summaries {failed}"})

    stuck = sorted(set(report["stuck"]) | {a for a, v in versions.items() if v != "v2"})
    print("\n== cluster run summary")
    print(f"hosts: 3 ZooKeeper, {len(c.hosts)} agent hosts x {len(c.instances) // len(c.hosts)} "
          f"instances, 2 callers, 1 coordinator; rollouts: {codes}")
    print(f"faults injected: {len(c.faults)}")
    for f in c.faults:
        rec = f.get("recovery_ms")
        at = time.strftime("%H:%M:%S", time.gmtime(f["start_ms"] / 1000))
        print(f"  {at} {f['kind']:<22} {f['target']:<12} {(f['end_ms'] - f['start_ms']) / 1000:5.1f}s"
              f"  heal->recovered {'%.1fs' % (rec / 1000) if rec is not None else '-':>6}"
              f"  failed requests {f.get('failed_requests', 0)}  {f['detail']}")
    print(f"transactions checked: {report['transactions']} (from {report['log_files']} log files "
          f"of 3 servers), counts {report['counts']}")
    for died, what in ((False, "with a live coordinator"),
                       (True, "of a killed coordinator (not bounded by zkroll)")):
        outl = [o["ms"] for o in report["command_outlived_flag"] if o["coordinator_died"] == died]
        print(f"COMMANDs {what} that outlived their flag: {len(outl)}"
              + (f", by {min(outl) / 1000:.2f}-{max(outl) / 1000:.2f}s" if outl else "")
              + ("" if died else f" (allowed {report['command_grace_ms'] / 1000:.2f}s)"))
    print(f"COMMANDs whose end nobody recorded: {report['counts'].get('commands_unfinished', 0)}")
    ov = report["command_overlaps"]
    print(f"two COMMANDs at once on one instance: {len(ov)}"
          + (f" ({sum(o['coordinator_died'] for o in ov)} with a killed coordinator)" if ov else ""))
    print(f"violations: {len(report['violations'])}")
    print(f"instances stuck: {len(stuck)} {stuck if stuck else ''}")
    print(f"requests: {sent} sent, {failed} failed ({attributed} attributed to fault windows)")
    print(f"unexplained failed requests: {sum(u.get('failed', 0) for u in unexplained)} "
          f"{unexplained[:10] if unexplained else ''}")
    print(f"run time: {time.time() - t_start:.0f}s")
    with open(f"{c.out}/summary.json", "w") as f:
        json.dump({"faults": c.faults, "rollouts": codes, "transactions": report["transactions"],
                   "violations": len(report["violations"]), "stuck": stuck, "sent": sent,
                   "failed": failed, "unexplained": unexplained}, f, indent=1)
    expected = {"partition-agent-host", "kill-zk-leader", "sigstop-agent",
                "partition-coordinator", "kill-coordinator", "partition-caller"}
    missing = expected - {f["kind"] for f in c.faults}
    if missing:
        print(f"faults NOT injected (the rollouts ended too early): {sorted(missing)}")
    ok = (not report["violations"] and not stuck and not unexplained and converged
          and sent > 0 and not missing)
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
