package mcpserver

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentiso/agentiso/internal/vault"
)

type allowAll struct{}

func (allowAll) Allow(string, string, string) error { return nil }

func callVault(t *testing.T, cs *mcp.ClientSession, args map[string]any) (map[string]any, string) {
	t.Helper()
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "vault", Arguments: args})
	if err != nil {
		t.Fatalf("vault(%v): protocol error %v", args, err)
	}
	if res.IsError {
		return nil, resultText(t, res)
	}
	var out map[string]any
	b, _ := json.Marshal(res.StructuredContent)
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("vault(%v): result %s is not an object: %v", args, b, err)
	}
	return out, ""
}

// TestVaultToolFrontmatterValues checks what only the tool edge decides: a
// JSON null is a value to set (an absent value is an error), numbers stay
// whole, and the disabled vault answers with what to change.
func TestVaultToolFrontmatterValues(t *testing.T) {
	dir := t.TempDir()
	v, err := vault.Open(vault.Config{Root: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	cs := connect(t, Deps{Limiter: allowAll{}, Vault: v})
	if _, msg := callVault(t, cs, map[string]any{"action": "write", "path": "n.md", "content": "body\n"}); msg != "" {
		t.Fatal(msg)
	}
	if _, msg := callVault(t, cs, map[string]any{"action": "frontmatter", "frontmatter_action": "set", "path": "n.md", "key": "k"}); !strings.HasPrefix(msg, "value: required") {
		t.Errorf("set without value: %q", msg)
	}
	for _, tc := range []struct {
		value any
		line  string
	}{{nil, "k: null"}, {3, "k: 3"}, {2.5, "k: 2.5"}, {"2024-01-02", `k: "2024-01-02"`}, {[]any{"a"}, "k:\n  - a"}} {
		out, msg := callVault(t, cs, map[string]any{"action": "frontmatter", "frontmatter_action": "set", "path": "n.md", "key": "k", "value": tc.value})
		if msg != "" {
			t.Fatalf("set %v: %s", tc.value, msg)
		}
		b, _ := os.ReadFile(filepath.Join(dir, "n.md"))
		if want := "---\n" + tc.line + "\n---\nbody\n"; string(b) != want {
			t.Errorf("set %#v: note %q, want %q", tc.value, b, want)
		}
		if _, ok := out["value"]; !ok {
			t.Errorf("set %#v: result %v has no value", tc.value, out)
		}
	}

	off := connect(t, Deps{Limiter: allowAll{}})
	if _, msg := callVault(t, off, map[string]any{"action": "stats"}); !strings.Contains(msg, "[vault] enabled = false") {
		t.Errorf("disabled vault: %q", msg)
	}
}
