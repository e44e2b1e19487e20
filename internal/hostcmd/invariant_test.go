package hostcmd

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// shells are programs that would interpret a string as a command line.
var shells = map[string]bool{
	"sh": true, "bash": true, "dash": true, "ash": true, "zsh": true, "ksh": true, "mksh": true,
	"csh": true, "tcsh": true, "fish": true, "busybox": true,
}

// runners are the calls that start a host program, each with the index of
// its first argv argument (the program). Every later argument is checked
// too, so `env sh -c` is caught as well.
var runners = map[string]int{
	"exec.Command":         0,
	"exec.CommandContext":  1,
	"hostcmd.Run":          1,
	"hostcmd.RunIn":        2,
	"Run":                  1, // inside package hostcmd
	"RunIn":                2,
	"syscall.Exec":         0,
	"unix.Exec":            0,
	"os.StartProcess":      0,
	"syscall.ForkExec":     0,
	"syscall.StartProcess": 0,
}

// shellEscaper matches the name of a function that quotes a string for a
// shell: with no shell there is nothing to quote for (finding L-14).
var shellEscaper = regexp.MustCompile(`(?i)^shell_?(escape|quote)|^(escape|quote)_?(for_?)?shell`)

// guestOnly are the trees whose code runs inside the VM, where exec runs
// the agent's command with sh -c by design.
var guestOnly = []string{"internal/guest", "cmd/agentiso-guest"}

// shellUses reports every place in the Go source src (file name for the
// messages) that starts a shell or defines a shell-escaping helper.
func shellUses(fset *token.FileSet, name string, src any) ([]string, error) {
	f, err := parser.ParseFile(fset, name, src, parser.SkipObjectResolution)
	if err != nil {
		return nil, err
	}
	var found []string
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.BasicLit:
			// QEMU runs an exec: migration URI through /bin/sh -c.
			if s, err := strconv.Unquote(n.Value); n.Kind == token.STRING && err == nil && strings.HasPrefix(s, "exec:") {
				found = append(found, fset.Position(n.Pos()).String()+": runs a shell through QEMU's "+s)
			}
		case *ast.FuncDecl:
			if shellEscaper.MatchString(n.Name.Name) {
				found = append(found, fset.Position(n.Pos()).String()+": defines "+n.Name.Name)
			}
		case *ast.CallExpr:
			first, ok := runners[callName(n.Fun)]
			if !ok {
				return true
			}
			for i := first; i < len(n.Args); i++ {
				lit, ok := n.Args[i].(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					continue
				}
				s, err := strconv.Unquote(lit.Value)
				if err == nil && shells[path.Base(s)] {
					found = append(found, fset.Position(lit.Pos()).String()+": runs "+s)
				}
			}
		}
		return true
	})
	return found, nil
}

func callName(e ast.Expr) string {
	switch e := e.(type) {
	case *ast.Ident:
		return e.Name
	case *ast.SelectorExpr:
		if x, ok := e.X.(*ast.Ident); ok {
			return x.Name + "." + e.Sel.Name
		}
	}
	return ""
}

// TestL14_HostCodeRunsNoShell is a repository invariant: no host code
// (everything but the guest agent, tests aside) runs a shell, directly or
// through QEMU's exec: migration, or quotes for one. Host programs run only as an argv, through this package, so there
// is no shell-escaping helper to duplicate or get wrong.
func TestL14_HostCodeRunsNoShell(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("repository root not found at %s: %v", root, err)
	}
	fset := token.NewFileSet()
	files := 0
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() {
			if strings.HasPrefix(d.Name(), ".") && rel != "." || d.Name() == "testdata" || d.Name() == "node_modules" {
				return filepath.SkipDir
			}
			for _, g := range guestOnly {
				if rel == g {
					return filepath.SkipDir
				}
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		files++
		found, err := shellUses(fset, p, nil)
		if err != nil {
			return err
		}
		for _, f := range found {
			t.Errorf("host code uses a shell: %s", f)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 50 {
		t.Fatalf("checked only %d files: the walk missed the repository", files)
	}
}

// TestShellUsesCatches keeps the invariant honest: each way of reaching a
// shell is found, and argv-only calls are not.
func TestShellUsesCatches(t *testing.T) {
	src := `package p
func a() {
	exec.Command("sh", "-c", cmd)
	exec.CommandContext(ctx, "/bin/bash", "-c", cmd)
	hostcmd.Run(ctx, "env", "dash", "-c", cmd)
	hostcmd.RunIn(ctx, dir, "busybox", "sh")
	syscall.Exec("/bin/sh", argv, env)
	exec.Command("qemu-img", "info", path)
	hostcmd.Run(ctx, "ip", "-c", "link")
	fmt.Println("sh")
	q.Execute(ctx, "migrate", map[string]any{"uri": "exec:cat > " + path})
	q.Execute(ctx, "migrate", map[string]any{"uri": "fd:" + name})
}
func ShellEscape(s string) string { return s }
func quote_for_shell(s string) string { return s }
`
	found, err := shellUses(token.NewFileSet(), "fixture.go", src)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"runs sh", "runs /bin/bash", "runs dash", "runs busybox", "runs sh", "runs /bin/sh", "runs a shell through QEMU's exec:cat > ", "defines ShellEscape", "defines quote_for_shell"}
	var got []string
	for _, f := range found {
		got = append(got, f[strings.LastIndex(f, ": ")+2:])
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("found %q, want %q", got, want)
	}
}
