package deploy

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentiso/agentiso/internal/testenv"
)

// unitSettings parses a unit file into section.key -> values (a key may
// repeat).
func unitSettings(b []byte) map[string][]string {
	out := map[string][]string{}
	section := ""
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "["):
			section = strings.Trim(line, "[]")
		default:
			k, v, _ := strings.Cut(line, "=")
			out[section+"."+k] = append(out[section+"."+k], v)
		}
	}
	return out
}

// TestH11_UnitBoundsTheService: the unit caps the daemon's file
// descriptors and tasks, restarts it on failure, and never takes the VMs
// down with it.
func TestH11_UnitBoundsTheService(t *testing.T) {
	u := unitSettings(Unit)
	for key, want := range map[string]string{
		"Service.KillMode":        "process",
		"Service.Restart":         "on-failure",
		"Service.LimitNOFILE":     "65536",
		"Service.LimitNPROC":      "8192",
		"Service.TasksMax":        "4096",
		"Service.NoNewPrivileges": "yes",
		"Service.ProtectSystem":   "strict",
		"Service.DevicePolicy":    "closed",
		"Install.WantedBy":        "multi-user.target",
	} {
		if got := u[key]; len(got) != 1 || got[0] != want {
			t.Errorf("%s = %q, want %q", key, got, want)
		}
	}
	if got := u["Service.ExecStart"]; len(got) != 1 || !strings.HasPrefix(got[0], "/usr/local/bin/agentiso daemon ") {
		t.Errorf("ExecStart = %q", got)
	}
}

// TestUnitGrantsWhatTheCodeUses is a repository invariant between the
// unit's hardening and the host code, which systemd would otherwise only
// reveal on a production host: the devices QEMU opens are allowed, the
// capabilities the code needs are in the bounding set, and code that
// mounts or makes namespaces (needing CAP_SYS_ADMIN and forbidden by
// RestrictNamespaces=yes) does not exist, nor does the unit protect what
// the daemon must write (cgroups).
func TestUnitGrantsWhatTheCodeUses(t *testing.T) {
	u := unitSettings(Unit)
	devices := strings.Join(u["Service.DeviceAllow"], "\n")
	for _, dev := range []string{"/dev/kvm rw", "/dev/net/tun rw"} {
		if !strings.Contains(devices, dev) {
			t.Errorf("DeviceAllow lacks %s", dev)
		}
	}
	caps := strings.Fields(strings.Join(u["Service.CapabilityBoundingSet"], " "))
	for _, c := range []string{"CAP_NET_ADMIN", "CAP_SYS_RESOURCE", "CAP_CHOWN"} {
		if !contains(caps, c) {
			t.Errorf("CapabilityBoundingSet lacks %s", c)
		}
	}
	for _, key := range []string{"Service.ProtectControlGroups", "Service.MemoryDenyWriteExecute", "Service.PrivateDevices"} {
		if v := u[key]; len(v) > 0 && v[len(v)-1] != "no" {
			t.Errorf("%s=%s: the daemon writes cgroups, TCG needs writable code, QEMU needs /dev/kvm", key, v)
		}
	}

	// Calls that need CAP_SYS_ADMIN or a new namespace.
	forbidden := map[string]bool{
		"unix.Mount": true, "syscall.Mount": true, "unix.Unshare": true, "syscall.Unshare": true,
		"unix.Setns": true, "netns.New": true, "netns.Set": true, "netns.NewNamed": true,
		"unix.PivotRoot": true, "syscall.PivotRoot": true,
	}
	if contains(caps, "CAP_SYS_ADMIN") && u["Service.RestrictNamespaces"] == nil {
		return // the unit would allow them
	}
	root := ".."
	fset := token.NewFileSet()
	files := 0
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() {
			// The guest's code runs inside the VM; tests and their helpers
			// (internal/testenv, which no service code imports: checked
			// below) are not the service.
			if rel == "internal/guest" || rel == "cmd/agentiso-guest" || rel == "test" || rel == "internal/testenv" || strings.HasPrefix(d.Name(), ".") && rel != "." || d.Name() == "testdata" {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		files++
		f, err := parser.ParseFile(fset, p, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		for _, imp := range f.Imports {
			if strings.HasPrefix(strings.Trim(imp.Path.Value, `"`), "github.com/agentiso/agentiso/internal/testenv") {
				t.Errorf("%s imports %s: test helpers are not checked here, so service code must not use them", fset.Position(imp.Pos()), imp.Path.Value)
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if sel, ok := n.(*ast.SelectorExpr); ok {
				if x, ok := sel.X.(*ast.Ident); ok && forbidden[x.Name+"."+sel.Sel.Name] {
					t.Errorf("%s: %s.%s needs CAP_SYS_ADMIN or a new namespace, which %s forbids: change the unit and this test together",
						fset.Position(sel.Pos()), x.Name, sel.Sel.Name, UnitName)
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 50 {
		t.Fatalf("checked only %d files", files)
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// verify runs systemd-analyze verify on unit (with ExecStart pointing at an
// executable that exists here) and returns its complaints.
func verify(t *testing.T, unit []byte) (string, error) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	unit = []byte(strings.Replace(string(unit), "ExecStart=/usr/local/bin/agentiso ", "ExecStart="+exe+" ", 1))
	path := filepath.Join(t.TempDir(), UnitName)
	if err := os.WriteFile(path, unit, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("systemd-analyze", "verify", path).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// TestUnitVerifies: systemd itself accepts the unit without a complaint,
// and would complain about a bad one.
func TestUnitVerifies(t *testing.T) {
	testenv.Require(t, "systemd-analyze")
	if out, err := verify(t, Unit); err != nil || out != "" {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	bad := append(append([]byte(nil), Unit...), "\n[Service]\nLimitNPROCS=10\n"...)
	if out, _ := verify(t, bad); !strings.Contains(out, "LimitNPROCS") {
		t.Fatalf("systemd-analyze verify did not notice an unknown key: %q", out)
	}
}
