#!/usr/bin/env bash
# End-to-end checks of the `hybrid` program: usage, the example model, and bad input refused with
# a message that names the problem and a non-zero exit (never a crash).
# Usage: cli_test.sh HYBRID_BINARY EXAMPLE_MODEL
set -uo pipefail
hybrid="$1"
model="$2"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
passed=0
failed=0

pass() { passed=$((passed + 1)); }
fail() { echo "FAIL: $*"; failed=$((failed + 1)); }

# A sanitizer build reports leaks and undefined behaviour on standard error; an expected failure
# must not hide one.
sanitizer_report() { grep -qE 'ERROR: (Leak|Address)Sanitizer|runtime error:' <<<"$1"; }

# expect_ok NEEDLE CMD...: exit 0 and output contains NEEDLE.
expect_ok() {
  local needle="$1"; shift
  local out code
  out="$("$@" 2>&1)"; code=$?
  if [ $code -ne 0 ]; then fail "'$*' exited $code: $out"; return; fi
  if ! grep -qF -- "$needle" <<<"$out"; then fail "'$*' output lacks '$needle': $out"; return; fi
  pass
}

# expect_error NEEDLE CMD...: a non-zero exit below 128 (no signal) and NEEDLE in the output.
expect_error() {
  local needle="$1"; shift
  local out code
  out="$("$@" 2>&1)"; code=$?
  if [ $code -eq 0 ]; then fail "'$*' succeeded but should fail: $out"; return; fi
  if [ $code -ge 128 ]; then fail "'$*' crashed (exit $code): $out"; return; fi
  if sanitizer_report "$out"; then fail "'$*' tripped a sanitizer: $out"; return; fi
  if ! grep -qF -- "$needle" <<<"$out"; then fail "'$*' message lacks '$needle': $out"; return; fi
  pass
}

expect_ok "inspect" "$hybrid" --help
expect_ok "MODEL" "$hybrid" inspect --help
expect_ok "--backend" "$hybrid" run --help
expect_error "" "$hybrid"
expect_error "" "$hybrid" frobnicate

expect_ok "binary" "$hybrid" inspect "$model"
expect_ok "metadata   recipe (69 bytes; --json shows it)" "$hybrid" inspect "$model"
expect_ok "edge -> cloud" "$hybrid" inspect "$model" --json "$tmp/inspect.json"
expect_ok '"boundary_bytes"' cat "$tmp/inspect.json"
expect_ok "label" "$hybrid" run "$model" --dataset fashion-mnist --index 0
expect_ok "exit1" "$hybrid" run "$model" --dataset fashion-mnist --index 3 --backend ref --json "$tmp/one.json"
expect_ok '"top"' cat "$tmp/one.json"
for backend in ref onednn xnnpack native; do
  expect_ok "accuracy" "$hybrid" run "$model" --dataset fashion-mnist --all --limit 100 --backend "$backend"
done
expect_ok 'accuracy' "$hybrid" run "$model" --all --limit 50 --json "$tmp/all.json"
expect_ok '"accuracy"' cat "$tmp/all.json"

# Bad model files.
: >"$tmp/empty.hybrid"
expect_error "empty" "$hybrid" inspect "$tmp/empty.hybrid"
expect_error "No such file" "$hybrid" inspect "$tmp/missing.hybrid"
expect_error "not a regular file" "$hybrid" inspect "$tmp"
head -c 5000 /dev/urandom >"$tmp/noise.hybrid"
expect_error "not a hybrid model file" "$hybrid" inspect "$tmp/noise.hybrid"
size=$(stat -c %s "$model")
head -c $((size - 1000)) "$model" >"$tmp/truncated.hybrid"
expect_error "truncated" "$hybrid" inspect "$tmp/truncated.hybrid"
expect_error "truncated" "$hybrid" run "$tmp/truncated.hybrid" --dataset fashion-mnist --index 0
head -c 100 "$model" >"$tmp/short.hybrid"
expect_error "truncated" "$hybrid" inspect "$tmp/short.hybrid"
# Flip bytes inside the FlatBuffer: refused or (rarely) still valid, never a crash.
for seed in 1 2 3 4 5 6 7 8; do
  cp "$model" "$tmp/flip.hybrid"
  off=$(( (seed * 997) % 1500 + 8 ))
  printf '\xff\xff\xff\xff' | dd of="$tmp/flip.hybrid" bs=1 seek=$off conv=notrunc status=none
  out="$("$hybrid" inspect "$tmp/flip.hybrid" 2>&1)"; code=$?
  if [ $code -ge 128 ]; then fail "corrupted model crashed inspect (exit $code)"; else pass; fi
done

# Bad arguments and data.
expect_error "--index N or --all" "$hybrid" run "$model" --dataset fashion-mnist
expect_error "excludes" "$hybrid" run "$model" --dataset fashion-mnist --all --index 1
expect_error "out of range" "$hybrid" run "$model" --dataset fashion-mnist --index 10000
expect_error "backend" "$hybrid" run "$model" --dataset fashion-mnist --index 0 --backend tpu
expect_error "unknown dataset" "$hybrid" run "$model" --dataset imagenet --index 0
expect_error "not found" "$hybrid" run "$model" --dataset fashion-mnist --data-dir "$tmp/nowhere" --index 0
expect_error "cifar" "$hybrid" run "$model" --dataset cifar10 --index 0
mkdir -p "$tmp/fm"
head -c 1000 /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz >"$tmp/fm/t10k-images-idx3-ubyte.gz"
cp /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz "$tmp/fm/"
expect_error "t10k-images" "$hybrid" run "$model" --dataset fashion-mnist --data-dir "$tmp/fm" --index 0
expect_error "binary" "$hybrid" run "$model" --dataset fashion-mnist --index 0 --backend onednn --no-fallback

# Split-execution evaluation and exploration.
expect_ok "--coverage" "$hybrid" eval --help
expect_ok "Pareto" "$hybrid" explore --help
expect_ok "oracle" "$hybrid" eval "$model" --limit 300 --latency-samples 20 --coverage 0.5,0.9 \
  --json "$tmp/eval.json" --plot "$tmp/eval.svg"
expect_ok '"fp32_edge_energy_uj"' cat "$tmp/eval.json"
expect_ok '"end_to_end"' cat "$tmp/eval.json"
expect_ok '<svg' head -c 300 "$tmp/eval.svg"
expect_ok "accuracy" "$hybrid" eval "$model" --limit 200 --latency-samples 0 --router oracle
expect_ok "Pareto front" "$hybrid" explore "$model" "$model" --limit 200 --steps 4
expect_error "unknown router 'coin'" "$hybrid" eval "$model" --router coin
expect_error "no learned router" "$hybrid" eval "$model" --router learned --limit 100
expect_error "unknown dataset" "$hybrid" eval "$model" --dataset imagenet
expect_error "is not a coverage" "$hybrid" eval "$model" --coverage 0.5,1.5
expect_error ".svg or .png" "$hybrid" eval "$model" --plot "$tmp/plot.pdf"
printf '{"mac_pj": {}}' >"$tmp/energy.json"
expect_error "missing 'f32'" "$hybrid" eval "$model" --energy "$tmp/energy.json"
expect_error "no radio 'satellite'" "$hybrid" explore "$model" --radio satellite

# Training: `hybrid train` runs hybrid-train when the build has the trainer.
if [ -x "$(dirname "$hybrid")/hybrid-train" ]; then
  expect_ok "--resume" "$hybrid" train --help
  expect_error "cannot read recipe" "$hybrid" train "$tmp/none.json"
  printf '{"name": "x", "shape": "A",' >"$tmp/broken.json"
  expect_error "not valid JSON" "$hybrid" train "$tmp/broken.json"
  printf '{"name": "x", "shape": "A", "netz": {}}' >"$tmp/typo.json"
  expect_error "unknown field 'netz'" "$hybrid" train "$tmp/typo.json"
  expect_error "requires --checkpoint" "$hybrid" train "$tmp/typo.json" --stop-after 1
  cat >"$tmp/tiny.json" <<'EOF'
{"name": "tiny", "shape": "A", "epochs": 1, "batch": 64, "validation": 200, "split": "f32",
 "net": {"stem_channels": 4, "stages": [{"channels": 4, "blocks": 1, "precision": "binary"},
                                        {"channels": 8, "blocks": 1, "stride": 2}]},
 "split_after": 0, "exits": [{"after_stage": 0}]}
EOF
  expect_ok "test accuracy" "$hybrid" train "$tmp/tiny.json" --limit 256 --threads 1 --out "$tmp/tiny.hybrid"
  expect_ok "exit0" "$hybrid" run "$tmp/tiny.hybrid" --all --limit 100
  # Refitting a router: its arguments, and a model that has none.
  expect_error "a recipe or --refit-router MODEL is required" "$hybrid" train
  expect_error "--out (with --refit-router) is required" "$hybrid" train --refit-router "$tmp/tiny.hybrid"
  expect_error "excludes" "$hybrid" train "$tmp/tiny.json" --refit-router "$tmp/tiny.hybrid" --out "$tmp/x.hybrid"
  expect_error "no learned router" "$hybrid" train --refit-router "$tmp/tiny.hybrid" --out "$tmp/x.hybrid"
  expect_error "--router-seed requires --refit-router" "$hybrid" train "$tmp/tiny.json" --router-seed 3
  if [ -e "$tmp/x.hybrid" ]; then fail "a failed refit wrote its output"; else pass; fi
fi

echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
