package dashboard

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// M-14: a workspace's programs write arbitrary bytes to the dashboard's
// terminal. xterm.js's proposed APIs stay off: the front end sets
// allowProposedApi to false in the one options object every terminal is
// made with, and nowhere turns it on. (Its vitest, terminalOptions.test.ts,
// checks the value at run time; this checks the source and any build.)
func TestM14_TerminalKeepsProposedAPIsOff(t *testing.T) {
	src := filepath.Join("..", "..", "web", "src")
	var found, optionsFile bool
	newTerminal := regexp.MustCompile(`new\s+XTerm\(([^)]*)\)`)
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !(strings.HasSuffix(path, ".ts") || strings.HasSuffix(path, ".tsx")) || strings.Contains(path, ".test.") {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		s := string(b)
		for _, m := range regexp.MustCompile(`allowProposedApi\s*:\s*([^,\s}]+)`).FindAllStringSubmatch(s, -1) {
			if m[1] != "false" {
				t.Errorf("%s sets allowProposedApi to %s", path, m[1])
			}
			optionsFile = true
		}
		for _, m := range newTerminal.FindAllStringSubmatch(s, -1) {
			found = true
			if strings.TrimSpace(m[1]) != "terminalOptions" {
				t.Errorf("%s makes a terminal with %q, not terminalOptions", path, m[1])
			}
		}
		if strings.Contains(s, "dangerouslySetInnerHTML") {
			t.Errorf("%s uses dangerouslySetInnerHTML", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !found || !optionsFile {
		t.Fatalf("no terminal (%v) or no allowProposedApi setting (%v) found under %s", found, optionsFile, src)
	}
	// A built bundle must not turn it on either (minified true is !0).
	built, _ := filepath.Glob(filepath.Join("dist", "assets", "*.js"))
	for _, f := range built {
		b, _ := os.ReadFile(f)
		if regexp.MustCompile(`allowProposedApi:(!0|true)`).Match(b) {
			t.Errorf("%s turns allowProposedApi on", f)
		}
	}
}
