package session

// Class is a tool call's cost class for rate limiting (TOOLS.md).
type Class int

// The cost classes.
const (
	// Default is every tool not in another class.
	Default Class = iota
	// Create is a call that makes VMs.
	Create
	// Exec is a call that runs commands.
	Exec
	numClasses
)

// String returns the class's name, as messages and the configuration spell it.
func (c Class) String() string {
	switch c {
	case Create:
		return "create"
	case Exec:
		return "exec"
	}
	return "default"
}

// ClassOf returns the cost class of a call of tool, whose action parameter
// (for tools that have one) is action. A tool this table does not know is
// Default: a new tool is limited from the start.
func ClassOf(tool, action string) Class {
	switch tool {
	case "workspace_create", "workspace_fork", "workspace_prepare", "swarm_run":
		return Create
	case "team":
		if action == "create" {
			return Create
		}
	case "exec", "exec_background", "exec_parallel":
		return Exec
	}
	return Default
}
