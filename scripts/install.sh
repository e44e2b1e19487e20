#!/usr/bin/env bash
# Sets up and runs agentiso on a fresh Debian 12 machine, as root: installs the
# host packages, builds the dashboard's front end and the binaries and installs
# them, creates the agentiso group, writes the default config, builds the guest image and starts the daemon.
# Safe to run again: every step is idempotent (the image build is a no-op when
# its inputs have not changed).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "run as root (sudo bash scripts/install.sh)" >&2; exit 1; }
export PATH=/usr/local/go/bin:$PATH

bash scripts/deps.sh

echo "building the dashboard's front end"
(cd web && npm ci --no-audit --no-fund && npm run build)

echo "building agentiso"
go build -o /usr/local/bin/agentiso.new ./cmd/agentiso
mv /usr/local/bin/agentiso.new /usr/local/bin/agentiso
install -d -m 0755 /usr/local/lib/agentiso
CGO_ENABLED=0 go build -o /usr/local/lib/agentiso/agentiso-guest.new ./cmd/agentiso-guest
mv /usr/local/lib/agentiso/agentiso-guest.new /usr/local/lib/agentiso/agentiso-guest

getent group agentiso >/dev/null || groupadd --system agentiso

agentiso init --guest-binary /usr/local/lib/agentiso/agentiso-guest

install -m 0644 deploy/agentiso.service /etc/systemd/system/agentiso.service
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  systemctl enable agentiso >/dev/null
  systemctl restart agentiso
  echo "daemon started by systemd (systemctl status agentiso)"
else
  # No systemd on this machine (a container): run the daemon in the background.
  pidfile=/run/agentiso-daemon.pid
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    kill "$(cat "$pidfile")"
    while kill -0 "$(cat "$pidfile")" 2>/dev/null; do sleep 0.2; done
  fi
  nohup agentiso daemon >>/var/log/agentiso.log 2>&1 &
  echo $! >"$pidfile"
  echo "daemon started in the background (pid $(cat "$pidfile"), log /var/log/agentiso.log)"
fi

for _ in $(seq 1 100); do
  [ -S /run/agentiso/agentiso.sock ] && break
  sleep 0.1
done
agentiso check || true
cat <<'TXT'

Add agentiso to your MCP client, e.g.:
  claude mcp add agentiso -- agentiso mcp
or in a client's JSON config:
  {"mcpServers": {"agentiso": {"command": "agentiso", "args": ["mcp"]}}}
Users in the agentiso group may connect: usermod -aG agentiso <user>

The dashboard is at http://127.0.0.1:7070/ ; log in with the token in
/var/lib/agentiso/dashboard-token (or set dashboard.admin_token_file).
TXT
