#!/usr/bin/env bash
# Sets up and runs agentiso on a fresh Debian 12 machine, as root: installs the
# host packages, builds the dashboard's front end and the binaries, then `agentiso install` installs them,
# the systemd unit, the agentiso group, the default config and the guest
# image, and (where systemd runs) enables and starts the service. Without
# systemd as PID 1 (a container) the daemon is started in the background.
# Safe to run again: every step is idempotent (the image build is a no-op when
# its inputs have not changed). `agentiso uninstall` undoes it.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "run as root (sudo bash scripts/install.sh)" >&2; exit 1; }
export PATH=/usr/local/go/bin:$PATH

bash scripts/deps.sh

echo "building the dashboard's front end"
(cd web && npm ci --no-audit --no-fund && npm run build)

echo "building agentiso"
build=$(mktemp -d /tmp/agentiso-build.XXXXXX)
trap 'rm -rf "$build"' EXIT
go build -o "$build/agentiso" ./cmd/agentiso
CGO_ENABLED=0 go build -o "$build/agentiso-guest" ./cmd/agentiso-guest

"$build/agentiso" install --guest-binary "$build/agentiso-guest"

if [ ! -d /run/systemd/system ]; then
  # No systemd on this machine (a container): run the daemon in the
  # background, replacing one a previous run started. Its VMs keep running
  # and the new daemon re-attaches to them.
  mkdir -p /run/agentiso
  pidfile=/run/agentiso/daemon.pid
  for f in "$pidfile" /run/agentiso-daemon.pid; do
    if [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null; then
      kill "$(cat "$f")"
      while kill -0 "$(cat "$f")" 2>/dev/null; do sleep 0.2; done
    fi
    rm -f "$f"
  done
  nohup /usr/local/bin/agentiso daemon >>/var/log/agentiso.log 2>&1 &
  echo $! >"$pidfile"
  echo "daemon started in the background (pid $(cat "$pidfile"), log /var/log/agentiso.log)"
fi

for _ in $(seq 1 100); do
  [ -S /run/agentiso/agentiso.sock ] && break
  sleep 0.1
done
/usr/local/bin/agentiso check || true
cat <<'TXT'

Add agentiso to your MCP client, e.g.:
  claude mcp add agentiso -- agentiso mcp
or in a client's JSON config:
  {"mcpServers": {"agentiso": {"command": "agentiso", "args": ["mcp"]}}}
Users in the agentiso group may connect: usermod -aG agentiso <user>

The dashboard is at http://127.0.0.1:7070/ ; log in with the token in
/var/lib/agentiso/dashboard-token (or set secrets.admin_token_file).
TXT
