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

	deps := guestDeps(t)
	for _, banned := range []string{"net/http", "net/rpc", "net/smtp", "github.com/mdlayher/vsock"} {
		if slices.Contains(deps, banned) {
			t.Errorf("the guest binary links %s", banned)
		}
	}
}

// The guest binary links none of the host's machinery: no state database,
// no MCP, no nftables or netlink library. It configures its interface with
// the image's ip program; what it could not do cannot be turned against the
// host.
func TestGuestLinksNoHostPackages(t *testing.T) {
	for _, dep := range guestDeps(t) {
		for _, banned := range []string{
			"modernc.org/sqlite", "github.com/modelcontextprotocol/", "github.com/google/nftables",
			"github.com/vishvananda/", "github.com/mdlayher/netlink",
			"github.com/agentiso/agentiso/internal/network", "github.com/agentiso/agentiso/internal/state",
		} {
			if strings.HasPrefix(dep, banned) {
				t.Errorf("the guest binary links %s", dep)
			}
		}
	}
}

// guestDeps lists every package the guest binary links.
func guestDeps(t *testing.T) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// go test puts its own toolchain first in PATH.
	out, err := hostcmd.Run(ctx, "go", "list", "-deps", "github.com/agentiso/agentiso/cmd/agentiso-guest")
	if err != nil {
		t.Fatal(err)
	}
	deps := strings.Fields(string(out))
	if !slices.Contains(deps, "github.com/agentiso/agentiso/internal/guest") {
		t.Fatalf("go list did not list the guest package: %v", deps)
	}
	return deps
}
