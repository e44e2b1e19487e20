package vault

import (
	"bytes"
	"fmt"
	"math"
	"reflect"
	"strings"
	"unicode"
	"unicode/utf8"

	yaml "go.yaml.in/yaml/v3"

	"github.com/agentiso/agentiso/internal/errdefs"
)

// Document is a note split into its YAML frontmatter and its body, so that
// the frontmatter can be read and edited while every byte an edit does not
// concern stays as it was: a note parsed and written back is byte-identical,
// setting a key rewrites only that key's lines (comments, order, quoting
// and line endings of the rest are kept), and setting a new key then
// deleting it gives back the original bytes. (That holds for frontmatter
// whose lines end in LF or CRLF; YAML also breaks lines at a lone CR, NEL,
// LS and PS, and such a block is re-encoded whole when edited.)
//
// Frontmatter is a block at the very start of the note (after an optional
// UTF-8 byte order mark) opened by a line "---" and closed by a line "---"
// or "...". A note without one has an empty frontmatter; setting a key
// creates the block.
//
// A Document is not safe for concurrent use.
type Document struct {
	bom   bool   // a UTF-8 byte order mark precedes everything
	fm    bool   // the note has a frontmatter block
	open  string // the opening delimiter line with its line ending
	yaml  string // the YAML between the delimiters, each line with its ending
	close string // the closing delimiter line, with its line ending if any
	body  string
	// keepEmpty is set when the note was parsed with an empty block: a
	// Delete that empties the block again keeps it, as the author wrote it.
	keepEmpty bool
}

const byteOrderMark = "\uFEFF"

// Limits on frontmatter keys and values.
const (
	// MaxKeyBytes bounds a frontmatter key.
	MaxKeyBytes = 256
	// maxFrontmatterNodes bounds the values of one frontmatter once aliases
	// are expanded, so a note of a few kilobytes cannot make the host build
	// an exponentially large value (the "billion laughs").
	maxFrontmatterNodes = 100000
)

// ParseDocument splits a note into frontmatter and body. It never fails:
// text that does not open a frontmatter block is all body, and YAML errors
// surface when the frontmatter is used.
func ParseDocument(b []byte) *Document {
	s := string(b)
	d := &Document{}
	if strings.HasPrefix(s, byteOrderMark) {
		d.bom = true
		s = s[len(byteOrderMark):]
	}
	first := lineAt(s, 0)
	if first == "---\n" || first == "---\r\n" {
		rest := s[len(first):]
		for off := 0; off < len(rest); {
			line := lineAt(rest, off)
			if t := trimEOL(line); t == "---" || t == "..." {
				d.fm = true
				d.open = first
				d.yaml = rest[:off]
				d.close = line
				d.body = rest[off+len(line):]
				d.keepEmpty = strings.TrimSpace(d.yaml) == ""
				return d
			}
			off += len(line)
		}
	}
	d.body = s
	return d
}

// NewDocument returns a document with the given body and no frontmatter.
func NewDocument(body []byte) *Document { return &Document{body: string(body)} }

// Bytes returns the note: the frontmatter block, if any, and the body.
func (d *Document) Bytes() []byte {
	var b strings.Builder
	if d.bom {
		b.WriteString(byteOrderMark)
	}
	if d.fm {
		b.WriteString(d.open)
		b.WriteString(d.yaml)
		b.WriteString(d.close)
	}
	b.WriteString(d.body)
	return []byte(b.String())
}

// HasFrontmatter reports whether the note has a frontmatter block.
func (d *Document) HasFrontmatter() bool { return d.fm }

// Body returns the note after its frontmatter block.
func (d *Document) Body() []byte { return []byte(d.body) }

// SetBody replaces the note after its frontmatter block.
func (d *Document) SetBody(b []byte) { d.body = string(b) }

// bodyLine is the line number (1-based) of the first line of the body.
func (d *Document) bodyLine() int {
	if !d.fm {
		return 1
	}
	return 1 + strings.Count(d.open, "\n") + strings.Count(d.yaml, "\n") + strings.Count(d.close, "\n")
}

// Frontmatter returns the frontmatter as JSON-friendly values (maps,
// slices, strings, numbers, booleans, nil). Dates and other scalars JSON
// has no type for are returned as the text the note holds. It is nil for a
// note without frontmatter and an empty map for an empty block.
func (d *Document) Frontmatter() (map[string]any, error) {
	if !d.fm {
		return nil, nil
	}
	_, m, err := d.parse()
	if err != nil {
		return nil, err
	}
	return mappingValue(m)
}

// Get returns the value of one frontmatter key.
func (d *Document) Get(key string) (value any, ok bool, err error) {
	if !d.fm {
		return nil, false, nil
	}
	_, m, err := d.parse()
	if err != nil || m == nil {
		return nil, false, err
	}
	i := findKey(m, key)
	if i < 0 {
		return nil, false, nil
	}
	budget := maxFrontmatterNodes
	v, err := nodeValue(m.Content[i+1], &budget)
	return v, err == nil, err
}

// Decode decodes the frontmatter into v (a pointer to a struct or map with
// yaml tags). A note without frontmatter leaves v unchanged.
func (d *Document) Decode(v any) error {
	if !d.fm {
		return nil
	}
	_, m, err := d.parse()
	if err != nil || m == nil {
		return err
	}
	if err := m.Decode(v); err != nil {
		return errdefs.With(errdefs.Invalid, "frontmatter: "+yamlMessage(err), err)
	}
	return nil
}

// Set sets one frontmatter key to value (JSON-friendly values: strings,
// numbers, booleans, nil, slices and maps of them), creating the
// frontmatter block if the note has none. Only the lines of that key
// change; a new key is added at the end of the block.
func (d *Document) Set(key string, value any) error {
	if err := checkKey(key); err != nil {
		return err
	}
	vn, err := valueNode(value)
	if err != nil {
		return err
	}
	return d.setNode(key, vn)
}

// Delete removes one frontmatter key and reports whether it was there. The
// block is removed when nothing but white space is left in it, unless it
// was empty when the note was parsed.
func (d *Document) Delete(key string) (bool, error) {
	if !d.fm {
		return false, nil
	}
	doc, m, err := d.parse()
	if err != nil || m == nil {
		return false, err
	}
	i := findKey(m, key)
	if i < 0 {
		return false, nil
	}
	want, err := mappingValue(m)
	if err != nil {
		return false, err
	}
	delete(want, key)
	text, ok := d.spliceDelete(m, i)
	if !ok || !yamlHolds(text, want) {
		m.Content = append(m.Content[:i:i], m.Content[i+2:]...)
		if text, err = d.encode(doc); err != nil {
			return false, err
		}
		if !yamlHolds(text, want) {
			return false, errdefs.With(errdefs.Conflict,
				fmt.Sprintf("key: %s cannot be deleted without changing other keys that refer to it (YAML anchors); change the note's text with write or replace", key),
				fmt.Errorf("deleting frontmatter key %q: the rewritten YAML does not hold the remaining keys", key))
		}
	}
	d.yaml = text
	if len(want) == 0 && strings.TrimSpace(text) == "" && !d.keepEmpty {
		d.fm, d.open, d.yaml, d.close = false, "", "", ""
	}
	return true, nil
}

// setNode sets key to the YAML value vn.
func (d *Document) setNode(key string, vn *yaml.Node) error {
	nl := d.newline()
	if !d.fm {
		entry, err := renderEntry(keyNode(key), vn, nl)
		if err != nil {
			return err
		}
		d.fm, d.open, d.yaml, d.close = true, "---"+nl, entry, "---"+nl
		return nil
	}
	doc, m, err := d.parse()
	if err != nil {
		return err
	}
	want, err := mappingValue(m)
	if err != nil {
		return err
	}
	budget := maxFrontmatterNodes
	if want[key], err = nodeValue(vn, &budget); err != nil {
		return err
	}
	candidates, err := d.spliceSet(m, key, vn, nl)
	if err != nil {
		return err
	}
	text, ok := "", false
	for _, c := range candidates {
		if yamlHolds(c, want) {
			text, ok = c, true
			break
		}
	}
	if !ok {
		// The block is in a form the line splice does not handle (a flow
		// mapping, an indented one, a value that continues at column 0):
		// re-encode it whole. Comments survive; formatting may not.
		if doc == nil {
			doc = &yaml.Node{Kind: yaml.DocumentNode}
		}
		if m == nil {
			m = &yaml.Node{Kind: yaml.MappingNode}
			doc.Content = []*yaml.Node{m}
		}
		if i := findKey(m, key); i >= 0 {
			m.Content[i+1] = vn
		} else {
			m.Content = append(m.Content, keyNode(key), vn)
		}
		if text, err = d.encode(doc); err != nil {
			return err
		}
		if !yamlHolds(text, want) {
			// In practice: the value is an anchor that aliases elsewhere
			// refer to, which no rewrite of this key alone can keep.
			return errdefs.With(errdefs.Conflict,
				fmt.Sprintf("key: %s cannot be set without changing other keys that refer to it (YAML anchors); change the note's text with write or replace", key),
				fmt.Errorf("setting frontmatter key %q: the rewritten YAML does not hold the expected keys", key))
		}
	}
	d.yaml = text
	return nil
}

// spliceSet returns candidate frontmatter texts with key set to vn, best
// first: the value replaced within its line, the lines of that key replaced
// (or the key appended). It returns none when the block is not a plain
// block mapping at column 1. The caller keeps the first candidate that
// parses to the expected values.
func (d *Document) spliceSet(m *yaml.Node, key string, vn *yaml.Node, nl string) ([]string, error) {
	if m == nil {
		// An empty block, or one holding only comments, gets the entry at
		// its end. (A null written some other way, "~" or a tag, is
		// re-encoded.)
		if !onlyComments(d.yaml) {
			return nil, nil
		}
		entry, err := renderEntry(keyNode(key), vn, nl)
		if err != nil {
			return nil, err
		}
		return []string{withEOL(d.yaml, nl) + entry}, nil
	}
	if !isPlainBlock(m, d.yaml) {
		return nil, nil
	}
	i := findKey(m, key)
	if i < 0 {
		entry, err := renderEntry(keyNode(key), vn, nl)
		if err != nil {
			return nil, err
		}
		return []string{withEOL(d.yaml, nl) + entry}, nil
	}
	k, old := *m.Content[i], m.Content[i+1]
	k.HeadComment, k.LineComment, k.FootComment = "", "", ""
	v := *vn
	if old.Kind == v.Kind {
		// Keep what the author chose: a line comment on a scalar, the flow
		// style of a list such as tags: [a, b].
		if v.Kind == yaml.ScalarNode && v.LineComment == "" {
			v.LineComment = old.LineComment
		}
		if v.Kind != yaml.ScalarNode && old.Style&yaml.FlowStyle != 0 {
			v.Style |= yaml.FlowStyle
		}
	}
	entry, err := renderEntry(&k, &v, nl)
	if err != nil {
		return nil, err
	}
	lines := splitLines(d.yaml)
	start, end := entryLines(lines, k.Line, nextKeyLine(m, i))
	whole := strings.Join(lines[:start], "") + entry + strings.Join(lines[end:], "")
	if end-start == 1 {
		if line, ok := spliceScalar(lines[start], old, vn); ok {
			return []string{strings.Join(lines[:start], "") + line + strings.Join(lines[end:], ""), whole}, nil
		}
	}
	return []string{whole}, nil
}

// spliceScalar returns line, which holds the one-line scalar old, with old
// replaced by the scalar vn written on one line: everything else on the
// line (spacing, a comment) stays.
func spliceScalar(line string, old, vn *yaml.Node) (string, bool) {
	if old.Kind != yaml.ScalarNode || vn.Kind != yaml.ScalarNode || old.Anchor != "" ||
		old.Style&(yaml.TaggedStyle|yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
		return "", false
	}
	runes := []rune(line)
	if old.Column < 1 || old.Column > len(runes) {
		return "", false
	}
	startAt := len(string(runes[:old.Column-1]))
	n := rawScalarLen(line[startAt:], old)
	if n <= 0 {
		return "", false
	}
	b, err := yaml.Marshal(vn)
	if err != nil {
		return "", false
	}
	text := strings.TrimSuffix(string(b), "\n")
	if text == "" || strings.ContainsAny(text, "\r\n") {
		return "", false
	}
	return line[:startAt] + text + line[startAt+n:], true
}

// rawScalarLen returns the length of the source text of the one-line
// scalar n at the start of s, or 0 when it cannot tell.
func rawScalarLen(s string, n *yaml.Node) int {
	switch {
	case n.Style&yaml.DoubleQuotedStyle != 0:
		for i := 1; i < len(s); i++ {
			switch s[i] {
			case '\\':
				i++
			case '"':
				return i + 1
			}
		}
	case n.Style&yaml.SingleQuotedStyle != 0:
		for i := 1; i < len(s); i++ {
			if s[i] == '\'' {
				if i+1 < len(s) && s[i+1] == '\'' {
					i++
					continue
				}
				return i + 1
			}
		}
	case n.Style == 0 && strings.HasPrefix(s, n.Value) && n.Value != "":
		return len(n.Value)
	}
	return 0
}

// spliceDelete returns the frontmatter text without the lines of the i-th
// key's entry, and false when the block is not a plain block mapping.
func (d *Document) spliceDelete(m *yaml.Node, i int) (string, bool) {
	if !isPlainBlock(m, d.yaml) {
		return "", false
	}
	lines := splitLines(d.yaml)
	start, end := entryLines(lines, m.Content[i].Line, nextKeyLine(m, i))
	return strings.Join(lines[:start], "") + strings.Join(lines[end:], ""), true
}

// isPlainBlock reports whether m, parsed from text, is a block mapping
// whose keys all start at column 1 of lines that end in "\n": the form
// whose entries are whole lines. (The YAML parser also breaks lines at a
// lone CR, NEL, LS and PS, where line numbers would not match ours.)
func isPlainBlock(m *yaml.Node, text string) bool {
	if m.Style&yaml.FlowStyle != 0 || !plainBreaks(text) {
		return false
	}
	lines := strings.Count(text, "\n")
	for i := 0; i < len(m.Content); i += 2 {
		if k := m.Content[i]; k.Column != 1 || k.Line < 1 || k.Line > lines+1 {
			return false
		}
	}
	return true
}

// plainBreaks reports whether every line break of text is LF or CRLF.
func plainBreaks(text string) bool {
	return strings.Count(text, "\r") == strings.Count(text, "\r\n") && !strings.ContainsAny(text, "\u0085\u2028\u2029")
}

// onlyComments reports whether every line of text is blank or a comment,
// with plain line breaks.
func onlyComments(text string) bool {
	if !plainBreaks(text) {
		return false
	}
	for _, l := range splitLines(text) {
		if t := strings.TrimSpace(l); t != "" && t[0] != '#' {
			return false
		}
	}
	return true
}

// nextKeyLine is the line of the key after the i-th, or 0 for the last.
func nextKeyLine(m *yaml.Node, i int) int {
	if i+2 < len(m.Content) {
		return m.Content[i+2].Line
	}
	return 0
}

// entryLines returns the range [start, end) of lines (0-based) that hold
// the entry whose key is on line keyLine (1-based): the key's line and every
// following line that continues its value (indented lines and "- " items
// at column 0), up to but not including limitLine (0: no limit). Blank and
// comment lines after the last continuation line are left out: they belong
// to what follows.
func entryLines(lines []string, keyLine, limitLine int) (int, int) {
	last := keyLine
	for l := keyLine + 1; l <= len(lines) && (limitLine == 0 || l < limitLine); l++ {
		s := trimEOL(lines[l-1])
		switch {
		case strings.TrimSpace(s) == "" || s[0] == '#':
			continue
		case s[0] == ' ' || s[0] == '\t' || s == "-" || strings.HasPrefix(s, "- ") || strings.HasPrefix(s, "-\t"):
			last = l
		default:
			return keyLine - 1, last
		}
	}
	return keyLine - 1, last
}

// parse parses the frontmatter: its document node and top-level mapping,
// both nil for an empty block (or one holding only comments or null).
func (d *Document) parse() (doc, m *yaml.Node, err error) {
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(d.yaml), &n); err != nil {
		return nil, nil, errdefs.With(errdefs.Invalid, "frontmatter: not valid YAML: "+yamlMessage(err), err)
	}
	if n.Kind != yaml.DocumentNode || len(n.Content) == 0 {
		return nil, nil, nil
	}
	top := n.Content[0]
	switch {
	case top.Kind == yaml.MappingNode:
		return &n, top, nil
	case top.Kind == yaml.ScalarNode && top.ShortTag() == "!!null":
		return &n, nil, nil
	}
	return nil, nil, errdefs.Invalidf("frontmatter: holds a YAML %s, not a mapping of keys to values", kindName(top.Kind))
}

// encode renders a whole frontmatter document in the note's line endings.
func (d *Document) encode(doc *yaml.Node) (string, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return "", errdefs.With(errdefs.Invalid, "frontmatter: cannot be written as YAML", err)
	}
	if err := enc.Close(); err != nil {
		return "", errdefs.With(errdefs.Invalid, "frontmatter: cannot be written as YAML", err)
	}
	return convertEOL(b.String(), d.newline()), nil
}

// newline is the note's line ending: that of its frontmatter block, else the
// first one in its body, else "\n".
func (d *Document) newline() string {
	src := d.open
	if !d.fm {
		src = d.body
	}
	if i := strings.IndexByte(src, '\n'); i > 0 && src[i-1] == '\r' {
		return "\r\n"
	}
	return "\n"
}

// renderEntry renders one "key: value" entry of a block mapping.
func renderEntry(k, v *yaml.Node, nl string) (string, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	m := &yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{k, v}}
	if err := enc.Encode(m); err != nil {
		return "", errdefs.With(errdefs.Invalid, "value: cannot be written as YAML", err)
	}
	if err := enc.Close(); err != nil {
		return "", errdefs.With(errdefs.Invalid, "value: cannot be written as YAML", err)
	}
	return convertEOL(b.String(), nl), nil
}

// yamlHolds reports whether text parses to exactly the mapping want.
func yamlHolds(text string, want map[string]any) bool {
	var n yaml.Node
	if yaml.Unmarshal([]byte(text), &n) != nil {
		return false
	}
	var m *yaml.Node
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		m = n.Content[0]
		if m.Kind == yaml.ScalarNode && m.ShortTag() == "!!null" {
			m = nil
		} else if m.Kind != yaml.MappingNode {
			return false
		}
	}
	got, err := mappingValue(m)
	return err == nil && reflect.DeepEqual(got, want)
}

// findKey returns the index in m.Content of the key node named key, or -1.
func findKey(m *yaml.Node, key string) int {
	if m == nil {
		return -1
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if k := m.Content[i]; k.Kind == yaml.ScalarNode && k.Value == key {
			return i
		}
	}
	return -1
}

func keyNode(key string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key}
}

// checkKey validates a frontmatter key given by a caller.
func checkKey(key string) error {
	switch {
	case key == "":
		return errdefs.Invalidf("key: must not be empty")
	case len(key) > MaxKeyBytes:
		return errdefs.Invalidf("key: longer than %d bytes", MaxKeyBytes)
	case !utf8.ValidString(key):
		return errdefs.Invalidf("key: not valid UTF-8")
	case strings.IndexFunc(key, unicode.IsControl) >= 0:
		return errdefs.Invalidf("key: must not contain control characters")
	}
	return nil
}

// valueNode turns a JSON-friendly value into a YAML node. Whole numbers
// that JSON decoding made float64 are written as integers (3, not 3.0 or
// 1e+06).
func valueNode(v any) (*yaml.Node, error) {
	var n yaml.Node
	if err := n.Encode(wholeNumbers(v)); err != nil {
		return nil, errdefs.With(errdefs.Invalid, "value: cannot be written as YAML", err)
	}
	return &n, nil
}

func wholeNumbers(v any) any {
	switch x := v.(type) {
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return int64(x)
		}
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = wholeNumbers(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = wholeNumbers(e)
		}
		return out
	}
	return v
}

// mappingValue converts a mapping node (nil: empty) to a map.
func mappingValue(m *yaml.Node) (map[string]any, error) {
	if m == nil {
		return map[string]any{}, nil
	}
	budget := maxFrontmatterNodes
	v, err := nodeValue(m, &budget)
	if err != nil {
		return nil, err
	}
	return v.(map[string]any), nil
}

// nodeValue converts a YAML node to a JSON-friendly value, following
// aliases and merge keys within budget nodes.
func nodeValue(n *yaml.Node, budget *int) (any, error) {
	if *budget--; *budget < 0 {
		return nil, errdefs.Invalidf("frontmatter: too large once its aliases are expanded (more than %d values)", maxFrontmatterNodes)
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil, nil
		}
		return nodeValue(n.Content[0], budget)
	case yaml.AliasNode:
		if n.Alias == nil {
			return nil, errdefs.Invalidf("frontmatter: an alias refers to nothing")
		}
		return nodeValue(n.Alias, budget)
	case yaml.ScalarNode:
		return scalarValue(n), nil
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			v, err := nodeValue(c, budget)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	case yaml.MappingNode:
		out := map[string]any{}
		var merged []map[string]any
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, c := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode {
				return nil, errdefs.Invalidf("frontmatter: only plain keys are supported (line %d)", k.Line)
			}
			v, err := nodeValue(c, budget)
			if err != nil {
				return nil, err
			}
			if k.ShortTag() == "!!merge" {
				switch mv := v.(type) {
				case map[string]any:
					merged = append(merged, mv)
				case []any:
					for _, e := range mv {
						if em, ok := e.(map[string]any); ok {
							merged = append(merged, em)
						}
					}
				}
				continue
			}
			out[k.Value] = v
		}
		// Explicit keys win over merged ones, and earlier merges over later.
		for _, mm := range merged {
			for k, v := range mm {
				if _, ok := out[k]; !ok {
					out[k] = v
				}
			}
		}
		return out, nil
	}
	return nil, errdefs.Invalidf("frontmatter: unsupported YAML node")
}

// scalarValue converts a scalar: booleans and numbers to their JSON types,
// null to nil, everything else (strings, dates, binary) to its text.
func scalarValue(n *yaml.Node) any {
	switch n.ShortTag() {
	case "!!null":
		return nil
	case "!!bool", "!!int", "!!float":
		var x any
		if err := n.Decode(&x); err != nil {
			return n.Value
		}
		if f, ok := x.(float64); ok && (math.IsInf(f, 0) || math.IsNaN(f)) {
			return n.Value
		}
		return x
	}
	return n.Value
}

func kindName(k yaml.Kind) string {
	switch k {
	case yaml.SequenceNode:
		return "list"
	case yaml.ScalarNode:
		return "single value"
	case yaml.AliasNode:
		return "alias"
	}
	return "value"
}

// yamlMessage is a YAML error without the library's "yaml: " prefix.
func yamlMessage(err error) string {
	return strings.TrimPrefix(err.Error(), "yaml: ")
}

// lineAt returns the line of s starting at off, with its ending.
func lineAt(s string, off int) string {
	if i := strings.IndexByte(s[off:], '\n'); i >= 0 {
		return s[off : off+i+1]
	}
	return s[off:]
}

// splitLines splits s into lines that keep their endings.
func splitLines(s string) []string {
	var lines []string
	for off := 0; off < len(s); {
		l := lineAt(s, off)
		lines = append(lines, l)
		off += len(l)
	}
	return lines
}

func trimEOL(s string) string {
	s = strings.TrimSuffix(s, "\n")
	return strings.TrimSuffix(s, "\r")
}

// withEOL ends non-empty s with a line ending.
func withEOL(s, nl string) string {
	if s == "" || strings.HasSuffix(s, "\n") {
		return s
	}
	return s + nl
}

func convertEOL(s, nl string) string {
	if nl == "\n" {
		return s
	}
	return strings.ReplaceAll(s, "\n", nl)
}
