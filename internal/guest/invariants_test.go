package guest

import (
	"context"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentiso/agentiso/internal/hostcmd"
)

// The guest opens no network listener: the host channel is its only way in
// (C-2, and M-11 which C-2 subsumes). No guest code calls a Listen
// function, and the guest binary links no server package.
func TestC2_GuestOpensNoListener(t *testing.T) {
	dirs := []string{".", "pid1", "../../cmd/agentiso-guest"}
	fset := token.NewFileSet()
	for _, dir := range dirs {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil || len(files) == 0 {
			t.Fatalf("no Go files in %s: %v", dir, err)
		}
		for _, name := range files {
			if strings.HasSuffix(name, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(fset, name, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			ast.Inspect(f, func(n ast.Node) bool {
				if sel, ok := n.(*ast.SelectorExpr); ok && strings.HasPrefix(sel.Sel.Name, "Listen") {
					t.Errorf("%s: guest code calls %s", fset.Position(sel.Pos()), sel.Sel.Name)
				}
				return true
			})
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// go test puts its own toolchain first in PATH.
	out, err := hostcmd.Run(ctx, "go", "list", "-deps", "github.com/agentiso/agentiso/cmd/agentiso-guest")
	if err != nil {
		t.Fatal(err)
	}
	deps := strings.Fields(string(out))
	for _, banned := range []string{"net/http", "net/rpc", "net/smtp", "github.com/mdlayher/vsock"} {
		if slices.Contains(deps, banned) {
			t.Errorf("the guest binary links %s", banned)
		}
	}
}
