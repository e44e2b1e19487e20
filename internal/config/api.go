package config

import "path/filepath"

// API configures the REST API's Unix socket, the one the human CLI uses
// (the dashboard serves the same API over TCP).
type API struct {
	Enabled    bool   `toml:"enabled" comment:"Serve the REST API on a Unix socket for the CLI."`
	SocketPath string `toml:"socket_path" comment:"The socket (mode 0660, group server.socket_group); root's connections act as administrator. Empty: api.sock beside server.socket_path."`
}

// DefaultAPI is the API socket's default configuration.
func DefaultAPI() API { return API{Enabled: true} }

// APISocketPath is the REST API's Unix socket.
func (c Config) APISocketPath() string {
	if c.API.SocketPath != "" {
		return c.API.SocketPath
	}
	return filepath.Join(filepath.Dir(c.Server.SocketPath), "api.sock")
}

func (a API) validate(p *problems) {
	if a.SocketPath == "" {
		return
	}
	p.absPath("api.socket_path", a.SocketPath)
	if len(a.SocketPath) > MaxSocketPathBytes {
		p.addf("api.socket_path", "%d bytes is longer than the %d-byte limit of a Unix socket address", len(a.SocketPath), MaxSocketPathBytes)
	}
}
