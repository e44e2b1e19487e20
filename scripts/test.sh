#!/usr/bin/env bash
# Runs the whole test suite, as root: formatting and vet, the dashboard's
# front end (typecheck, build, unit tests), every unit, integration and
# end-to-end test (real QEMU VMs under the guest image built here, cached by
# the hash of its inputs; the dashboard's in Debian's headless Chromium), and
# the benchmarks in short mode.
# With CI=true a test that lacks a prerequisite fails instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH
[ "$(id -u)" = 0 ] || { echo "run as root (sudo bash scripts/test.sh)" >&2; exit 1; }

echo "== gofmt, go vet"
unformatted=$(gofmt -l $(git ls-files '*.go'))
[ -z "$unformatted" ] || { echo "gofmt would change: $unformatted" >&2; exit 1; }
go vet ./...

echo "== dashboard front end (npm ci, typecheck, unit tests, build into internal/dashboard/dist)"
(cd web && npm ci --no-audit --no-fund && npm run build && npm test)

echo "== build"
bin=$(mktemp -d /tmp/agentiso-bin.XXXXXX)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/agentiso" ./cmd/agentiso
CGO_ENABLED=0 go build -o "$bin/agentiso-guest" ./cmd/agentiso-guest

echo "== guest image (a no-op when up to date)"
export AGENTISO_TEST_IMAGE_DIR=${AGENTISO_TEST_IMAGE_DIR:-/var/cache/agentiso/test-image}
"$bin/agentiso" image build --dir "$AGENTISO_TEST_IMAGE_DIR" --guest-binary "$bin/agentiso-guest"

echo "== tests"
go test -count=1 -timeout 25m ./...
go test -count=1 -race -timeout 15m ./internal/channel/ ./internal/guest/ ./internal/state/ ./internal/workspace/ ./internal/daemon/ ./internal/protocol/ ./internal/api/ ./internal/dashboard/ ./internal/swarm/ ./internal/mcpserver/ ./internal/team/ ./internal/bridge/

echo "== benchmarks (short mode)"
go test -run '^$' -bench . -benchtime 1x -timeout 20m ./internal/vm/ ./internal/channel/
# The product's own benchmark (the code BenchmarkAgentiso in test/e2e runs
# too): a private daemon, every figure of docs/performance.md, printed as a
# table. The full mode is `agentiso bench` without --short.
"$bin/agentiso" bench --short --image-dir "$AGENTISO_TEST_IMAGE_DIR"
