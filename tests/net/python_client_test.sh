#!/usr/bin/env bash
# A client in another language: Python stubs generated from the project's .proto files with
# Debian's protoc and grpc_python_plugin, run by Debian's python3-grpcio against `hybrid serve`.
# Usage: python_client_test.sh HYBRID MODEL LIBHYBRID PROTO_DIR
set -euo pipefail
hybrid=$1 model=$2 libhybrid=$3 proto=$4
tmp=$(mktemp -d)
servers=()
source "$(dirname "$0")/lib.sh"
trap 'stop_all; rm -rf "$tmp"' EXIT
# Debian's grpcio serves /usr/bin/python3 (another python3 may come first on the PATH).
python=/usr/bin/python3
"$python" -c "import grpc, google.protobuf" 2>/dev/null || fail "python3-grpcio is not installed"
plugin=$(command -v grpc_python_plugin || echo /usr/bin/grpc_python_plugin)
protoc -I "$proto" --python_out="$tmp" --grpc_python_out="$tmp" \
  --plugin=protoc-gen-grpc_python="$plugin" "$proto/inference.proto" "$proto/health.proto"
start_server py "$model"
"$python" "$(dirname "$0")/python_client.py" "$py_grpc" "$model" "$libhybrid" "$tmp"
