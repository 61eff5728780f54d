#!/usr/bin/env bash
# Soak test: mixed load with watchers, leases and client connections coming
# and going, against ignetcd processes on the ignitetest double; reports RSS,
# goroutines, open fds/sockets and Ignite connections every interval.
#   it/soak/soak.sh                          # 30 minutes (the default)
#   it/soak/soak.sh -duration 5m -interval 30s -nodes 2 -rate 300
set -euo pipefail
cd "$(dirname "$0")/../.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/ignetcd" ./cmd/ignetcd
go build -o "$tmp/soak" ./it/soak
"$tmp/soak" -bin "$tmp/ignetcd" "$@"
