// Package deploy holds the files agentiso installs beside its binaries, so
// `agentiso install` carries them inside the binary and cannot install a
// copy that differs from the one tested here.
package deploy

import _ "embed"

// Unit is the systemd unit of the daemon (agentiso.service).
//
//go:embed agentiso.service
var Unit []byte

// UnitName is the unit's file name.
const UnitName = "agentiso.service"
