package network

import (
	"encoding/json"
	"go/parser"
	"go/token"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// M-4: rules are built from typed values through netlink, never from text.
// The package has no path that hands nft a string (it links no program
// runner outside its tests), and a pair of VMs allowed to talk, which the
// original spliced into rule text as strings, reaches the kernel as set
// elements holding exactly the two addresses (and the two TAPs) given.
func TestM4_RulesBuiltFromTypedValues(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("no Go files: %v", err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if path == "os/exec" || strings.HasSuffix(path, "/internal/hostcmd") || path == "text/template" {
				t.Errorf("%s imports %s: rules could be built as text", name, path)
			}
		}
	}

	h, ns := testHost(t)
	rs := sampleRuleset()
	if err := h.Apply(rs); err != nil {
		t.Fatal(err)
	}
	a, b := rs.Peers[0].A, rs.Peers[0].B
	want := []string{a.String() + "," + b.String(), b.String() + "," + a.String()}
	slices.Sort(want)
	if got := setElems(t, ns, "inet", "peers"); !slices.Equal(got, want) {
		t.Errorf("inet peers set = %v, want %v", got, want)
	}
	ta, tb := TAPName(a), TAPName(b)
	want = []string{ta + "," + tb, tb + "," + ta}
	slices.Sort(want)
	if got := setElems(t, ns, "bridge", "peers"); !slices.Equal(got, want) {
		t.Errorf("bridge peers set = %v, want %v", got, want)
	}
}

// setElems lists the elements of a set of the daemon's table of family fam,
// each a comma-joined concatenation, sorted.
func setElems(t *testing.T, ns, fam, set string) []string {
	t.Helper()
	var doc struct {
		Nftables []struct {
			Set *struct {
				Elem []struct {
					Concat []any `json:"concat"`
				} `json:"elem"`
			} `json:"set"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal([]byte(nft(t, ns, "-j", "list", "set", fam, TableName, set)), &doc); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, o := range doc.Nftables {
		if o.Set == nil {
			continue
		}
		for _, e := range o.Set.Elem {
			var parts []string
			for _, p := range e.Concat {
				parts = append(parts, strings.TrimSpace(toString(p)))
			}
			out = append(out, strings.Join(parts, ","))
		}
	}
	slices.Sort(out)
	return out
}

func toString(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// L-3: every identifier is checked before it reaches a rule or a netlink
// call. A bridge, host interface or TAP name with a quote, a space, an nft
// wildcard or too many bytes, or an address outside the subnet, is refused
// with the field named, and the tables in force stay exactly as they were.
func TestL3_BadIdentifiersChangeNothing(t *testing.T) {
	h, ns := testHost(t)
	if err := h.Apply(sampleRuleset()); err != nil {
		t.Fatal(err)
	}
	tables := func() string {
		return nft(t, ns, "-j", "list", "table", "bridge", TableName) + nft(t, ns, "-j", "list", "table", "inet", TableName)
	}
	before := tables()
	outside := netip.MustParseAddr("10.9.9.9")
	for _, c := range []struct {
		name, want string
		mod        func(*Ruleset)
	}{
		{"bridge with a quote", "bridge:", func(r *Ruleset) { r.Bridge = `br"; flush` }},
		{"host interface wildcard", "host_interfaces[0]:", func(r *Ruleset) { r.HostInterfaces = []string{"lan*"} }},
		{"host interface with a space", "host_interfaces[0]:", func(r *Ruleset) { r.HostInterfaces = []string{"lan 0"} }},
		{"tap with a brace", "vms[1].tap:", func(r *Ruleset) { r.VMs[1].TAP = "agt}x" }},
		{"tap too long", "vms[1].tap:", func(r *Ruleset) { r.VMs[1].TAP = "agt0123456789abc" }},
		{"tap not ours", "vms[1].tap:", func(r *Ruleset) { r.VMs[1].TAP = "eth0" }},
		{"address outside the subnet", "vms[1].ip:", func(r *Ruleset) { r.VMs[1].IP = outside }},
		{"broadcast MAC", "vms[1].mac:", func(r *Ruleset) { r.VMs[1].MAC = []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff} }},
	} {
		t.Run(c.name, func(t *testing.T) {
			rs := sampleRuleset()
			c.mod(&rs)
			err := h.Apply(rs)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Apply = %v, want an error naming %q", err, c.want)
			}
			if after := tables(); after != before {
				t.Errorf("a refused ruleset changed the tables:\nbefore %s\nafter %s", before, after)
			}
		})
	}
	if err := h.AddTAP(`agt"x`); err == nil || !strings.Contains(err.Error(), "tap:") {
		t.Errorf("AddTAP with a quote: %v", err)
	}
	if _, err := NewHost(Config{Bridge: "br x", Subnet: testSubnet}); err == nil || !strings.Contains(err.Error(), "bridge:") {
		t.Errorf("NewHost with a space in the bridge name: %v", err)
	}
}
