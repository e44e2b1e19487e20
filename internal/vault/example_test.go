package vault_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/agentiso/agentiso/internal/vault"
)

// A team's task board note: a body with frontmatter, written atomically,
// read back and decoded.
func Example_taskBoard() {
	dir, _ := os.MkdirTemp("", "vault-example")
	defer os.RemoveAll(dir)
	v, err := vault.Open(vault.Config{Root: filepath.Join(dir, "vault")})
	if err != nil {
		log.Fatal(err)
	}
	defer v.Close()
	ctx := context.Background()

	doc := vault.NewDocument([]byte("# Write the parser\n"))
	doc.Set("status", "open")
	doc.Set("owner", "ann")
	doc.Set("depends_on", []any{"t0"})
	if _, err := v.Write(ctx, "teams/alpha/tasks/t1.md", doc.Bytes(), vault.Overwrite); err != nil {
		log.Fatal(err)
	}

	// Later: mark it done, changing only that line, under the vault's write
	// lock.
	v.Update(ctx, "teams/alpha/tasks/t1.md", func(old []byte, exists bool) ([]byte, error) {
		d := vault.ParseDocument(old)
		if err := d.Set("status", "done"); err != nil {
			return nil, err
		}
		return d.Bytes(), nil
	})

	n, _ := v.Read(ctx, "teams/alpha/tasks/t1.md")
	fmt.Print(string(n.Content))
	var task struct {
		Status    string   `yaml:"status"`
		Owner     string   `yaml:"owner"`
		DependsOn []string `yaml:"depends_on"`
	}
	vault.ParseDocument(n.Content).Decode(&task)
	fmt.Printf("%+v\n", task)
	// Output:
	// ---
	// status: done
	// owner: ann
	// depends_on:
	//   - t0
	// ---
	// # Write the parser
	// {Status:done Owner:ann DependsOn:[t0]}
}
