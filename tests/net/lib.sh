# Helpers shared by the network tests: start `hybrid serve` processes on free ports, read their
# metrics, compare evaluation results. Source it after setting $hybrid and $tmp.

fail() { echo "FAIL: $*" >&2; exit 1; }

# start_server NAME MODEL [options...]: starts a server in the background; sets NAME_pid,
# NAME_grpc and NAME_http; its log goes to $tmp/NAME.log.
start_server() {
  local name=$1
  shift
  rm -f "$tmp/$name.ports"
  "$hybrid" serve "$@" --host 127.0.0.1 --grpc-port 0 --http-port 0 \
    --port-file "$tmp/$name.ports" 2> "$tmp/$name.log" &
  local pid=$!
  for _ in $(seq 1 300); do
    [[ -s $tmp/$name.ports ]] && break
    kill -0 "$pid" 2>/dev/null || { cat "$tmp/$name.log" >&2; fail "server $name exited at start"; }
    sleep 0.1
  done
  [[ -s $tmp/$name.ports ]] || fail "server $name did not start listening"
  local grpc http
  read -r grpc http < "$tmp/$name.ports"
  printf -v "${name}_pid" '%s' "$pid"
  printf -v "${name}_grpc" '%s' "$grpc"
  printf -v "${name}_http" '%s' "$http"
  servers+=("$pid")
}

stop_all() {
  for pid in "${servers[@]:-}"; do
    [[ -n $pid ]] || continue
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
}

# metric HTTP_PORT NAME: the sum of a counter's series on a server (0 when absent).
metric() {
  python3 - "$1" "$2" <<'PY'
import sys, urllib.request
port, name = sys.argv[1], sys.argv[2]
text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
total = 0.0
for line in text.splitlines():
    if line.startswith(name + "{") or line.startswith(name + " "):
        total += float(line.rsplit(" ", 1)[1])
print(int(total))
PY
}

# free_port: a TCP port nothing listens on at the moment.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# json FILE EXPR: evaluates a Python expression on the JSON document `j` of FILE.
json() {
  python3 -c "import json, sys; j = json.load(open(sys.argv[1])); print($2)" "$1"
}

# same_answers A.json B.json: the two evaluations answered every test sample alike and agree on
# every operating point (latency aside).
same_answers() {
  python3 - "$1" "$2" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
if a["cloud_predictions"] != b["cloud_predictions"]:
    diff = sum(x != y for x, y in zip(a["cloud_predictions"], b["cloud_predictions"]))
    sys.exit(f"{diff} test samples answered differently")
for key in ("edge_only_accuracy", "cloud_only_accuracy", "sweep"):
    if a[key] != b[key]:
        sys.exit(f"{key} differs")
strip = lambda p: {k: v for k, v in p.items() if k != "latency_ms"}
if [strip(p) for p in a["points"]] != [strip(p) for p in b["points"]]:
    sys.exit("operating points differ")
PY
}
