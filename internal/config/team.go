package config

// Team configures teams of agents (the `team` tool).
type Team struct {
	MaxDepth          int `toml:"max_depth" comment:"How deep sub-teams nest: a top-level team is depth 1."`
	MaxMembers        int `toml:"max_members" comment:"Most members (roles) one team may have."`
	DefaultMaxVMs     int `toml:"default_max_vms" comment:"A top-level team's VM budget when create gives no max_vms; sub-teams share their ancestors' budgets."`
	MessagesPerMinute int `toml:"messages_per_minute" comment:"Messages one sender may send within a team per minute."`
	TasksPerGuest     int `toml:"tasks_per_guest" comment:"Task assignments one member's workspace runs at once; the rest wait."`
}

func defaultTeam() Team {
	return Team{MaxDepth: 3, MaxMembers: 16, DefaultMaxVMs: 10, MessagesPerMinute: 60, TasksPerGuest: 4}
}

func (t Team) validate(p *problems) {
	p.intRange("team.max_depth", int64(t.MaxDepth), 1, 8)
	p.intRange("team.max_members", int64(t.MaxMembers), 1, 64)
	p.intRange("team.default_max_vms", int64(t.DefaultMaxVMs), 1, 1024)
	p.intRange("team.messages_per_minute", int64(t.MessagesPerMinute), 1, 100000)
	p.intRange("team.tasks_per_guest", int64(t.TasksPerGuest), 1, 16)
}
