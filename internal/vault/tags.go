package vault

import (
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	yaml "go.yaml.in/yaml/v3"

	"github.com/agentiso/agentiso/internal/errdefs"
)

// MaxTagBytes bounds a tag.
const MaxTagBytes = 128

// tagsKey is the frontmatter key that lists a note's tags (Obsidian's).
const tagsKey = "tags"

// Tags are a note's tags, without '#', each once (compared without regard
// to case, as Obsidian does), in order of appearance.
type Tags struct {
	// Frontmatter are the tags listed under the frontmatter key "tags": a
	// list, or one string of tags separated by commas or spaces.
	Frontmatter []string `json:"frontmatter_tags"`
	// Inline are the #tags written in the text, outside code.
	Inline []string `json:"inline_tags"`
}

// All returns the frontmatter tags followed by the inline ones not among
// them.
func (t Tags) All() []string {
	var all []string
	for _, s := range append(append([]string{}, t.Frontmatter...), t.Inline...) {
		all = addFold(all, s)
	}
	if all == nil {
		all = []string{}
	}
	return all
}

// Tags returns the note's tags. A frontmatter that is not valid YAML is an
// error; use the body's tags alone with InlineTags.
func (d *Document) Tags() (Tags, error) {
	var t Tags
	if d.fm {
		_, m, err := d.parse()
		if err != nil {
			return Tags{}, err
		}
		t.Frontmatter, _ = frontmatterTags(m)
	}
	t.Inline = d.InlineTags()
	if t.Frontmatter == nil {
		t.Frontmatter = []string{}
	}
	return t, nil
}

// InlineTags returns the #tags written in the body outside code.
func (d *Document) InlineTags() []string {
	tags := []string{}
	eachTextLine(d.body, func(_ int, line string) {
		for _, m := range inlineTag.FindAllStringSubmatch(line, -1) {
			if isTag(m[1]) {
				tags = addFold(tags, m[1])
			}
		}
	})
	return tags
}

// AddTag adds tag to the frontmatter list and reports whether it was added
// (false: already listed).
func (d *Document) AddTag(tag string) (bool, error) {
	tag, err := CleanTag("tag", tag)
	if err != nil {
		return false, err
	}
	var m *yaml.Node
	if d.fm {
		if _, m, err = d.parse(); err != nil {
			return false, err
		}
	}
	cur, _ := frontmatterTags(m)
	if containsFold(cur, tag) {
		return false, nil
	}
	return true, d.setNode(tagsKey, listNode(append(cur, tag)))
}

// RemoveTag removes tag from the frontmatter list and reports whether it
// was there. An inline #tag is text, which RemoveTag does not change.
func (d *Document) RemoveTag(tag string) (bool, error) {
	tag, err := CleanTag("tag", tag)
	if err != nil || !d.fm {
		return false, err
	}
	_, m, err := d.parse()
	if err != nil {
		return false, err
	}
	cur, _ := frontmatterTags(m)
	var keep []string
	for _, t := range cur {
		if !strings.EqualFold(t, tag) {
			keep = append(keep, t)
		}
	}
	if len(keep) == len(cur) {
		return false, nil
	}
	if len(keep) == 0 {
		_, err := d.Delete(tagsKey)
		return err == nil, err
	}
	return true, d.setNode(tagsKey, listNode(keep))
}

// CleanTag checks a tag given by a caller and returns it without a leading
// '#'. A tag is letters, digits, '_', '-' and '/' (nesting), with at least
// one character that is not a digit, as in Obsidian.
func CleanTag(field, tag string) (string, error) {
	tag = strings.TrimPrefix(strings.TrimSpace(tag), "#")
	switch {
	case tag == "":
		return "", errdefs.Invalidf("%s: must not be empty", field)
	case len(tag) > MaxTagBytes:
		return "", errdefs.Invalidf("%s: longer than %d bytes", field, MaxTagBytes)
	case !utf8.ValidString(tag) || !isTag(tag):
		return "", errdefs.Invalidf("%s: a tag is letters, digits, '_', '-' and '/', not only digits", field)
	}
	return tag, nil
}

// inlineTag matches a #tag at the start of a line or after white space or
// an opening bracket; isTag then checks what it captured.
var inlineTag = regexp.MustCompile(`(?:^|[\s(\[,;])#([\p{L}\p{N}_/-]+)`)

func isTag(s string) bool {
	if s == "" {
		return false
	}
	digitsOnly := true
	for _, r := range s {
		switch {
		case unicode.IsLetter(r) || r == '_' || r == '-' || r == '/':
			digitsOnly = false
		case unicode.IsDigit(r) || unicode.IsNumber(r):
		default:
			return false
		}
	}
	return !digitsOnly
}

// frontmatterTags returns the tags listed under the frontmatter key "tags",
// and its value node (nil when absent).
func frontmatterTags(m *yaml.Node) ([]string, *yaml.Node) {
	i := findKey(m, tagsKey)
	if i < 0 {
		return nil, nil
	}
	n := m.Content[i+1]
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	var tags []string
	add := func(s string) {
		s = strings.TrimPrefix(strings.TrimSpace(s), "#")
		if s != "" {
			tags = addFold(tags, s)
		}
	}
	switch n.Kind {
	case yaml.SequenceNode:
		for _, c := range n.Content {
			if c.Kind == yaml.ScalarNode && c.ShortTag() != "!!null" {
				add(c.Value)
			}
		}
	case yaml.ScalarNode:
		if n.ShortTag() != "!!null" {
			for _, s := range strings.FieldsFunc(n.Value, func(r rune) bool { return r == ',' || unicode.IsSpace(r) }) {
				add(s)
			}
		}
	}
	return tags, n
}

func listNode(items []string) *yaml.Node {
	n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
	for _, s := range items {
		n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s})
	}
	return n
}

func containsFold(list []string, s string) bool {
	for _, e := range list {
		if strings.EqualFold(e, s) {
			return true
		}
	}
	return false
}

func addFold(list []string, s string) []string {
	if containsFold(list, s) {
		return list
	}
	return append(list, s)
}

// eachTextLine calls f with each line of body (numbered from 1) that is not
// inside a fenced code block, with inline code spans blanked out, so that
// tags and links written as code are not taken for real ones.
func eachTextLine(body string, f func(n int, line string)) {
	var fence string // the open fence's marker, "" outside code
	for n, line := range strings.Split(body, "\n") {
		line = strings.TrimSuffix(line, "\r")
		if marker := fenceMarker(line); marker != "" {
			switch {
			case fence == "":
				fence = marker
				continue
			case strings.HasPrefix(marker, fence[:1]) && len(marker) >= len(fence):
				fence = ""
				continue
			}
		}
		if fence != "" {
			continue
		}
		f(n+1, blankCodeSpans(line))
	}
}

// fenceMarker returns the run of ``` or ~~~ (three or more) that opens a
// line indented by at most three spaces, or "".
func fenceMarker(line string) string {
	t := strings.TrimLeft(line, " ")
	if len(line)-len(t) > 3 || len(t) < 3 || (t[0] != '`' && t[0] != '~') {
		return ""
	}
	n := 0
	for n < len(t) && t[n] == t[0] {
		n++
	}
	if n < 3 {
		return ""
	}
	return t[:n]
}

// blankCodeSpans replaces the content of `code spans` with spaces.
func blankCodeSpans(line string) string {
	if !strings.Contains(line, "`") {
		return line
	}
	b := []byte(line)
	for i := 0; i < len(b); {
		if b[i] != '`' {
			i++
			continue
		}
		run := 0
		for i+run < len(b) && b[i+run] == '`' {
			run++
		}
		closeAt := strings.Index(string(b[i+run:]), strings.Repeat("`", run))
		if closeAt < 0 {
			break
		}
		for j := i + run; j < i+run+closeAt; j++ {
			b[j] = ' '
		}
		i += run + closeAt + run
	}
	return string(b)
}
