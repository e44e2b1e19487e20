package config

// Bridge configures the MCP bridge: a streamable-HTTP MCP endpoint for
// agents inside workspaces, each authenticated by its workspace's token.
type Bridge struct {
	Enabled bool   `toml:"enabled" comment:"Serve the MCP bridge and give team members tokens for it."`
	Listen  string `toml:"listen" comment:"host:port to listen on: the network bridge's address, so that only workspaces reach it."`
	// Tools is the allowlist a team gets when its create names none.
	Tools []string `toml:"tools" comment:"Tools a member's token allows unless its team's create gives bridge_tools."`
}

func defaultBridge() Bridge {
	return Bridge{Enabled: false, Listen: "", Tools: []string{"exec", "file_read", "file_write", "file_list", "vault", "team"}}
}

func (b Bridge) validate(p *problems) {
	if !b.Enabled {
		return
	}
	if b.Listen == "" {
		p.addf("bridge.listen", "required when the bridge is enabled (host:port)")
	}
	if len(b.Tools) == 0 {
		p.addf("bridge.tools", "must list at least one tool")
	}
}
