# Shell helpers to run a throwaway single-node ZooKeeper server from the
# Debian `zookeeper` package (sourced by scripts/demo.sh and bench/).
#
#   zk_start DIR PORT   start a server with its data in DIR on 127.0.0.1:PORT
#                       and wait until it answers (60s at most)
#   zk_stop  DIR        stop the server started in DIR
#   zk_free_port        print a free loopback TCP port; with ZK_PORTS_FILE
#                       set, never one listed there, and list the new one
#                       (a script picks several ports before it binds any,
#                       and each $(zk_free_port) runs in its own subshell)
#   zk_zxid PORT        print the server's last committed zxid (decimal)

zk_free_port() {
  # Below the kernel's ephemeral range: ports there are handed out to every
  # connect() and every bind to port 0 (the agents' metrics listeners), so a
  # port picked in it could be taken before our server binds it.
  python3 - "${ZK_PORTS_FILE:-}" <<'PY'
import random, socket, sys
taken_file = sys.argv[1]
taken = set()
if taken_file:
    try:
        taken = {int(w) for w in open(taken_file).read().split()}
    except OSError:
        pass
try:
    low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
except (OSError, ValueError, IndexError):
    low = 32768

def free(port):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()

chosen = None
for _ in range(500):
    port = random.randint(max(1024, low - 12001), low - 1)
    if port not in taken and free(port):
        chosen = port
        break
for _ in range(100):
    if chosen is not None:
        break
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    if port not in taken:
        chosen = port
if chosen is None:
    sys.exit("zk_free_port: no free loopback port")
if taken_file:
    with open(taken_file, "a") as f:
        f.write(f"{chosen}\n")
print(chosen)
PY
}

zk_ruok() {
  python3 - "$1" <<'PY'
import socket, sys
try:
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1)
    s.sendall(b"ruok")
    sys.exit(0 if s.recv(4) == b"imok" else 1)
except OSError:
    sys.exit(1)
PY
}

# From `srvr` ("Zxid: 0x..."). Reads commit nothing, so the difference of
# two readings counts exactly the transactions the server committed between
# them: writes, session creations and closes. The benchmarks divide it by
# the instances a rollout went through.
zk_zxid() {
  python3 - "$1" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"srvr")
data = b""
while True:
    chunk = s.recv(4096)
    if not chunk: break
    data += chunk
for line in data.decode().splitlines():
    if line.startswith("Zxid:"):
        print(int(line.split()[1], 16))
PY
}

zk_start() {
  local dir=$1 port=$2
  mkdir -p "$dir/data"
  cat >"$dir/zoo.cfg" <<CFG
tickTime=500
dataDir=$dir/data
clientPort=$port
clientPortAddress=127.0.0.1
maxClientCnxns=0
admin.enableServer=false
4lw.commands.whitelist=ruok,srvr,stat,mntr
CFG
  java -Xmx512m -XX:+UseSerialGC -Dzookeeper.admin.enableServer=false \
    -cp /usr/share/java/zookeeper.jar \
    org.apache.zookeeper.server.ZooKeeperServerMain "$dir/zoo.cfg" \
    >"$dir/server.log" 2>&1 &
  echo $! >"$dir/pid"
  local i
  for i in $(seq 1 240); do
    if zk_ruok "$port"; then return 0; fi
    if ! kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
      echo "ZooKeeper exited at start; see $dir/server.log" >&2
      return 1
    fi
    sleep 0.25
  done
  echo "ZooKeeper did not answer on 127.0.0.1:$port within 60s; see $dir/server.log" >&2
  return 1
}

zk_stop() {
  local dir=$1
  if [ -f "$dir/pid" ]; then
    kill "$(cat "$dir/pid")" 2>/dev/null || true
    wait "$(cat "$dir/pid")" 2>/dev/null || true
    rm -f "$dir/pid"
  fi
}
