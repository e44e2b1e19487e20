#!/usr/bin/env bash
# Installs the Debian packages agentiso needs on the host, and Go if missing.
# Idempotent; run as root. Used by scripts/install.sh and .ci/run.
set -euo pipefail

packages=(
  qemu-system-x86 qemu-utils e2fsprogs debootstrap lz4 zstd
  nftables iproute2 conntrack kmod git ca-certificates curl
  systemd  # runs the service; its systemd-analyze verifies the unit in the tests
  chromium
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# The guest kernel comes from Debian's package index: make sure it is present.
if ! apt-cache show linux-image-cloud-amd64 >/dev/null 2>&1; then
  apt-get update -q
fi

# The dashboard's front end is built with Node.js 20 and npm (vite 8 needs
# npm 11; the machine's Node.js ships it). Debian 12's own nodejs is 18.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "Node.js 20 with npm is not installed: the dashboard's front end needs it (https://nodejs.org)" >&2
  exit 1
fi
node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
  echo "Node.js $(node --version) is too old for the dashboard's build: install Node.js 20" >&2
  exit 1
fi

if ! command -v go >/dev/null 2>&1 && [ ! -x /usr/local/go/bin/go ]; then
  echo "Go is not installed: install Go 1.26 to /usr/local/go (https://go.dev/dl/)" >&2
  exit 1
fi
