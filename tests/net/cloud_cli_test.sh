#!/usr/bin/env bash
# `hybrid serve` as a process of its own: `hybrid eval --cloud` and `hybrid run --cloud` give
# exactly the in-process answers; SIGTERM shuts it down cleanly; a server down at start, or killed
# mid-run, leaves every input answered (by the edge when the cloud could not) and counted.
# Usage: cloud_cli_test.sh HYBRID MODEL
set -euo pipefail
hybrid=$1 model=$2
tmp=$(mktemp -d)
servers=()
source "$(dirname "$0")/lib.sh"
trap 'stop_all; rm -rf "$tmp"' EXIT
limit=2000

start_server one "$model" --max-batch 32
"$hybrid" eval "$model" --limit $limit --latency-samples 0 --json "$tmp/local.json" > "$tmp/local.txt" 2>&1 ||
  { cat "$tmp/local.txt"; fail "in-process eval"; }
"$hybrid" eval "$model" --limit $limit --latency-samples 20 --cloud "127.0.0.1:$one_grpc" \
  --json "$tmp/cloud.json" > "$tmp/cloud.txt" 2>&1 || { cat "$tmp/cloud.txt"; fail "eval --cloud"; }
same_answers "$tmp/local.json" "$tmp/cloud.json" || fail "eval --cloud answers differ from in-process"
[[ $(json "$tmp/cloud.json" 'j["cloud"]["degraded_samples"]') == 0 ]] || fail "degraded answers"
grep -q "^cloud at 127.0.0.1:$one_grpc: .* bytes sent" "$tmp/cloud.txt" ||
  fail "eval --cloud does not report bytes and network time: $(cat "$tmp/cloud.txt")"
echo "ok: eval --cloud equals the in-process evaluation ($(grep '^cloud at' "$tmp/cloud.txt"))"

"$hybrid" run "$model" --all --limit 500 --predictions "$tmp/run_local.csv" > /dev/null 2>&1
"$hybrid" run "$model" --all --limit 500 --predictions "$tmp/run_cloud.csv" \
  --cloud "127.0.0.1:$one_grpc" > /dev/null 2>&1 || fail "run --cloud"
cmp -s "$tmp/run_local.csv" "$tmp/run_cloud.csv" || fail "run --cloud answers differ"
echo "ok: run --cloud equals the in-process run"

requests=$(metric "$one_http" hybrid_request_success_total)
[[ $requests -gt 0 ]] || fail "the server's metrics count no request"
kill -TERM "$one_pid"
wait "$one_pid" || fail "the server exited with $? on SIGTERM"
grep -q '"event":"stopped"' "$tmp/one.log" || fail "no 'stopped' in the server's log"
echo "ok: SIGTERM stops the server cleanly after $requests requests"

# Down at start: the edge answers everything, flagged and counted.
dead=$(free_port)
"$hybrid" eval "$model" --limit 500 --latency-samples 5 --cloud "127.0.0.1:$dead" \
  --json "$tmp/down.json" > "$tmp/down.txt" 2>&1 || { cat "$tmp/down.txt"; fail "eval with the cloud down"; }
[[ $(json "$tmp/down.json" 'j["cloud"]["degraded_samples"] == j["cloud"]["samples"] > 0') == True ]] ||
  fail "with the cloud down not every input is counted degraded: $(json "$tmp/down.json" 'j["cloud"]')"
[[ $(json "$tmp/down.json" 'j["cloud_only_accuracy"] == j["edge_only_accuracy"]') == True ]] ||
  fail "with the cloud down the answers are not the edge's"
if "$hybrid" run "$model" --index 0 --cloud "127.0.0.1:$dead" > /dev/null 2> "$tmp/run_down.txt"; then
  fail "run --cloud succeeded with the cloud down"
fi
grep -q "the cloud did not answer" "$tmp/run_down.txt" || fail "run --cloud: $(cat "$tmp/run_down.txt")"
echo "ok: a cloud down at start degrades to the edge's answers, each counted"

# Killed mid-run: every input still answered; those the cloud did not answer are counted.
start_server two "$model" --max-batch 32
"$hybrid" eval "$model" --latency-samples 0 --batch 64 --cloud "127.0.0.1:$two_grpc" \
  --cloud-deadline-ms 5000 --json "$tmp/killed.json" > "$tmp/killed.txt" 2>&1 &
eval_pid=$!
for _ in $(seq 1 300); do
  # Past the first 2000 test samples (5000 validation + 2000 test = 110 requests of 64).
  [[ $(metric "$two_http" hybrid_request_success_total) -ge 120 ]] && break
  sleep 0.05
done
kill -9 "$two_pid"
wait "$two_pid" 2>/dev/null || true
wait "$eval_pid" || { cat "$tmp/killed.txt"; fail "eval failed when the server was killed"; }
python3 - "$tmp/killed.json" "$tmp/local.json" <<'PY' || fail "inputs lost or miscounted after the kill"
import json, sys
k, local = (json.load(open(p)) for p in sys.argv[1:3])
c = k["cloud"]
assert len(k["cloud_predictions"]) == k["test_samples"] == 10000, "answers missing"
assert c["degraded_samples"] > 0, "the kill degraded nothing"
assert c["samples"] == 15000, c
# Before the kill the cloud's answers are the in-process ones.
n = len(local["cloud_predictions"])
assert k["cloud_predictions"][:n] == local["cloud_predictions"], "answers before the kill differ"
print(f"ok: server killed mid-run: {c['samples']} inputs, {c['degraded_samples']} answered by the "
      f"edge, none lost; the {n} answered before the kill equal the in-process ones")
PY
