#!/usr/bin/env bash
# Tests conf/getGpusResources.sh with fake nvidia-smi commands on PATH. Run: conf/test-getGpusResources.sh
# Prints "getGpusResources: N passed, M failed" and exits non-zero on any failure.
set -u
script="$(cd "$(dirname "$0")" && pwd)/getGpusResources.sh"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
passed=0
failed=0

# check NAME EXPECTED PATH: runs the script with only PATH to search, so a real nvidia-smi on this
# machine stays out of the way (the script needs nothing but bash builtins and nvidia-smi).
check() {
  local name="$1" expected="$2" path="$3" actual rc
  actual="$(PATH="$path" "$BASH" "$script")"
  rc=$?
  if [[ "$actual" == "$expected" && $rc -eq 0 ]]; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "FAIL $name: exit $rc, printed '$actual', expected '$expected'" >&2
  fi
}

# fake DIR BODY: a fake nvidia-smi in DIR running BODY.
fake() {
  mkdir -p "$1"
  printf '#!%s\n%s\n' "$BASH" "$2" >"$1/nvidia-smi"
  chmod +x "$1/nvidia-smi"
}

base="$tmp/none"
mkdir -p "$tmp/none"
check "no nvidia-smi" '{"name": "gpu", "addresses": []}' "$base"

fake "$tmp/two" 'printf "0\n1\n"'
check "two GPUs" '{"name": "gpu", "addresses": ["0","1"]}' "$tmp/two:$base"

fake "$tmp/one" 'echo 0'
check "one GPU" '{"name": "gpu", "addresses": ["0"]}' "$tmp/one:$base"

fake "$tmp/nodriver" 'echo "NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver." >&2; exit 9'
check "nvidia-smi without a driver" '{"name": "gpu", "addresses": []}' "$tmp/nodriver:$base"

fake "$tmp/nogpu" 'echo "No devices were found"; exit 6'
check "no GPU found" '{"name": "gpu", "addresses": []}' "$tmp/nogpu:$base"

fake "$tmp/crlf" 'printf "0\r\n 1\r\n"'
check "CRLF and spaces" '{"name": "gpu", "addresses": ["0","1"]}' "$tmp/crlf:$base"

echo "getGpusResources: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
