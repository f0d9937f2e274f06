#!/usr/bin/env bash
# Scale-out: two `hybrid serve` processes behind Debian's nginx (grpc_pass). Requests spread over
# both (each server's metrics count some); one server killed mid-run loses no request: nginx and
# the client retry on the other, and every answer equals the in-process one.
# Usage: scale_out_test.sh HYBRID MODEL
set -euo pipefail
hybrid=$1 model=$2
tmp=$(mktemp -d)
servers=()
source "$(dirname "$0")/lib.sh"
nginx_pid=""
trap 'stop_all; [[ -n $nginx_pid ]] && kill "$nginx_pid" 2>/dev/null; rm -rf "$tmp"' EXIT
nginx=$(command -v nginx || echo /usr/sbin/nginx)
[[ -x $nginx ]] || fail "nginx is not installed (scripts/setup installs it)"

start_server a "$model" --max-batch 16 --threads 1
start_server b "$model" --max-batch 16 --threads 1
port=$(free_port)
mkdir -p "$tmp/nginx"
cat > "$tmp/nginx.conf" <<CONF
worker_processes 1;
error_log $tmp/nginx/error.log warn;
pid $tmp/nginx/nginx.pid;
events { worker_connections 512; }
http {
  access_log off;
  client_body_temp_path $tmp/nginx/body;
  proxy_temp_path $tmp/nginx/proxy;
  fastcgi_temp_path $tmp/nginx/fastcgi;
  uwsgi_temp_path $tmp/nginx/uwsgi;
  scgi_temp_path $tmp/nginx/scgi;
  client_max_body_size 0;
  upstream cloud {
    server 127.0.0.1:$a_grpc max_fails=1 fail_timeout=30s;
    server 127.0.0.1:$b_grpc max_fails=1 fail_timeout=30s;
  }
  server {
    listen 127.0.0.1:$port http2;
    location / {
      grpc_pass grpc://cloud;
      # Inference is idempotent: a request cut off by a dying server may go to another.
      grpc_next_upstream error timeout non_idempotent;
      grpc_read_timeout 60s;
    }
  }
}
CONF
"$nginx" -c "$tmp/nginx.conf" -p "$tmp/nginx" -g 'daemon off;' 2> "$tmp/nginx/stderr" &
nginx_pid=$!
for _ in $(seq 1 100); do
  python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 1)" 2>/dev/null && break
  sleep 0.1
done

"$hybrid" eval "$model" --limit 2000 --latency-samples 0 --json "$tmp/local.json" > /dev/null 2>&1
"$hybrid" eval "$model" --limit 2000 --latency-samples 0 --batch 32 --cloud "127.0.0.1:$port" \
  --json "$tmp/lb.json" > "$tmp/lb.txt" 2>&1 || { cat "$tmp/lb.txt" "$tmp/nginx/error.log"; fail "eval through nginx"; }
same_answers "$tmp/local.json" "$tmp/lb.json" || fail "answers through nginx differ from in-process"
ra=$(metric "$a_http" hybrid_request_success_total)
rb=$(metric "$b_http" hybrid_request_success_total)
[[ $ra -gt 0 && $rb -gt 0 ]] || fail "requests did not spread: server a $ra, server b $rb"
echo "ok: through nginx, requests spread over both servers (a: $ra, b: $rb) with the in-process answers"

# Kill server a while an evaluation runs through nginx.
"$hybrid" eval "$model" --limit 2000 --latency-samples 0 --batch 32 --cloud "127.0.0.1:$port" \
  --cloud-deadline-ms 10000 --json "$tmp/kill.json" > "$tmp/kill.txt" 2>&1 &
eval_pid=$!
for _ in $(seq 1 400); do
  [[ $(metric "$a_http" hybrid_request_success_total) -ge $((ra + 20)) ]] && break
  sleep 0.02
done
kill -9 "$a_pid"
wait "$a_pid" 2>/dev/null || true
before_b=$(metric "$b_http" hybrid_request_success_total)
wait "$eval_pid" || { cat "$tmp/kill.txt"; fail "eval failed when a server was killed"; }
python3 - "$tmp/kill.json" "$tmp/local.json" <<'PY' || fail "a request was lost or answered wrongly"
import json, sys
k, local = (json.load(open(p)) for p in sys.argv[1:3])
c = k["cloud"]
assert c["samples"] == 7000, c
# Every request accounted: answered by a server (and then as in process) or by the edge, counted.
differ = sum(a != b for a, b in zip(k["cloud_predictions"], local["cloud_predictions"]))
assert differ <= c["degraded_samples"], f"{differ} answers differ, {c['degraded_samples']} degraded"
print(f"ok: server a killed mid-run: {c['requests']} requests ({c['attempts']} attempts), "
      f"{c['degraded_samples']} inputs degraded, none lost")
PY
after_b=$(metric "$b_http" hybrid_request_success_total)
[[ $after_b -gt $before_b ]] || fail "server b took no request after server a died"
echo "ok: server b answered $((after_b - rb)) requests of that run"
