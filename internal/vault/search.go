package vault

import (
	"context"
	"regexp"
	"regexp/syntax"
	"strings"

	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/protocol"
)

// Search limits.
const (
	// DefaultMaxResults is the number of hits a search returns when the
	// query does not say.
	DefaultMaxResults = 20
	// MaxMaxResults is the most hits one search may ask for.
	MaxMaxResults = 1000
	// contextLines is how many lines before and after a hit its context
	// shows.
	contextLines = 2
	// maxLineBytes bounds each line of a hit and of its context, so a
	// minified file's one long line does not fill the answer.
	maxLineBytes = 1000
	// maxRegexInsts bounds a compiled pattern. RE2 matches in time linear
	// in the text but proportional to the program's size too, so a short
	// pattern with large counted repeats (x{1000}{1000} is refused by the
	// parser, (.*){1000} is not) is refused here rather than run. Real
	// searches compile to tens or hundreds of instructions.
	maxRegexInsts = 2000
)

// SearchQuery is a search of the notes' lines.
type SearchQuery struct {
	// Query is a substring to find, or with Regex a regular expression (RE2
	// syntax: no backreferences, linear time).
	Query string
	Regex bool
	// PathPrefix keeps notes whose path starts with it ("projects/" for a
	// folder).
	PathPrefix string
	// Tag keeps notes that carry this tag (frontmatter or inline).
	Tag string
	// MaxResults bounds the hits (0: DefaultMaxResults).
	MaxResults int
}

// SearchHit is one matching line.
type SearchHit struct {
	Path       string `json:"path"`
	LineNumber int    `json:"line_number"`
	Line       string `json:"line"`
	// Context is the line with up to two lines before and after it.
	Context string `json:"context"`
}

// SearchResult is the answer to a search.
type SearchResult struct {
	Hits []SearchHit
	// Truncated is set when more lines matched than MaxResults.
	Truncated bool
	// TimedOut is set when the search ran out of time (Config.SearchTimeout)
	// before it had read every note: Hits are those found until then.
	TimedOut bool
	// NotesSearched is the number of notes whose text was searched.
	NotesSearched int
}

// Search finds the lines of notes that contain the query, in path order.
func (v *Vault) Search(ctx context.Context, q SearchQuery) (*SearchResult, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	match, err := v.matcher("query", q.Query, q.Regex)
	if err != nil {
		return nil, err
	}
	max := q.MaxResults
	switch {
	case max == 0:
		max = DefaultMaxResults
	case max < 0 || max > MaxMaxResults:
		return nil, errdefs.Invalidf("max_results: must be 1..%d", MaxMaxResults)
	}
	prefix := ""
	if q.PathPrefix != "" {
		p, err := CleanPath("path_prefix", q.PathPrefix, true)
		if err != nil {
			return nil, err
		}
		if p != "." {
			prefix = p
			if strings.HasSuffix(q.PathPrefix, "/") {
				prefix += "/"
			}
		}
	}
	tag := ""
	if q.Tag != "" {
		if tag, err = CleanTag("tag", q.Tag); err != nil {
			return nil, err
		}
	}

	ctx, cancel := context.WithTimeout(ctx, v.cfg.SearchTimeout)
	defer cancel()
	res := &SearchResult{Hits: []SearchHit{}}
	snap, err := v.refresh(ctx)
	if err != nil {
		if ctx.Err() != nil && context.Cause(ctx) == context.DeadlineExceeded {
			res.TimedOut = true
			return res, nil
		}
		return nil, err
	}
	for _, p := range snap.paths {
		if ctx.Err() != nil {
			res.TimedOut = true
			break
		}
		info := snap.notes[p]
		if !strings.HasPrefix(p, prefix) || (tag != "" && !containsFold(info.tags, tag)) || info.size > v.cfg.MaxNoteBytes {
			continue
		}
		n, err := v.read("path", p)
		if err != nil {
			continue // changed or removed since the walk
		}
		res.NotesSearched++
		lines := strings.Split(string(n.Content), "\n")
		for i, line := range lines {
			if i%1024 == 0 && ctx.Err() != nil {
				res.TimedOut = true
				break
			}
			line = strings.TrimSuffix(line, "\r")
			if !match(line) {
				continue
			}
			if len(res.Hits) == max {
				res.Truncated = true
				return res, nil
			}
			res.Hits = append(res.Hits, SearchHit{
				Path: p, LineNumber: i + 1, Line: shorten(line), Context: contextOf(lines, i),
			})
		}
		if res.TimedOut {
			break
		}
	}
	return res, nil
}

// Replace replaces every occurrence of old in the note at p with new and
// returns how many there were; with regex, old is a regular expression and
// new may refer to its groups ($1, ${name}). A note without occurrences is
// not written.
func (v *Vault) Replace(ctx context.Context, p, old, new string, regex bool) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if old == "" {
		return 0, errdefs.Invalidf("old_string: must not be empty")
	}
	var re *regexp.Regexp
	if regex {
		var err error
		if re, err = v.compile("old_string", old); err != nil {
			return 0, err
		}
	}
	if !isText([]byte(new)) {
		return 0, errdefs.Invalidf("new_string: must be UTF-8 text without NUL bytes")
	}
	p, err := CleanPath("path", p, false)
	if err != nil {
		return 0, err
	}
	count := 0
	_, err = v.update("path", "new_string", p, func(b []byte, exists bool) ([]byte, error) {
		if !exists {
			return nil, errdefs.NotFoundf("path: %s does not exist", p)
		}
		s := string(b)
		if re == nil {
			count = strings.Count(s, old)
			return []byte(strings.ReplaceAll(s, old, new)), nil
		}
		count = len(re.FindAllStringIndex(s, -1))
		return []byte(re.ReplaceAllString(s, new)), nil
	})
	if err != nil {
		return 0, err
	}
	return count, nil
}

// matcher returns the line test for a query.
func (v *Vault) matcher(field, query string, regex bool) (func(string) bool, error) {
	if query == "" {
		return nil, errdefs.Invalidf("%s: must not be empty", field)
	}
	if !regex {
		if len(query) > v.cfg.MaxPatternBytes {
			return nil, errdefs.Invalidf("%s: %d bytes is longer than the limit of %d", field, len(query), v.cfg.MaxPatternBytes)
		}
		return func(line string) bool { return strings.Contains(line, query) }, nil
	}
	re, err := v.compile(field, query)
	if err != nil {
		return nil, err
	}
	return re.MatchString, nil
}

// compile compiles a caller's regular expression with Go's RE2 engine
// (linear-time matching, no backtracking), after bounding the pattern's
// length (finding M-17) and then its compiled size.
func (v *Vault) compile(field, pattern string) (*regexp.Regexp, error) {
	if len(pattern) > v.cfg.MaxPatternBytes {
		return nil, errdefs.Invalidf("%s: the regular expression is %d bytes, longer than the limit of %d", field, len(pattern), v.cfg.MaxPatternBytes)
	}
	parsed, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return nil, errdefs.With(errdefs.Invalid, field+": not a valid regular expression: "+strings.TrimPrefix(err.Error(), "error parsing regexp: "), err)
	}
	prog, err := syntax.Compile(parsed.Simplify())
	if err != nil {
		return nil, errdefs.With(errdefs.Invalid, field+": not a valid regular expression", err)
	}
	if len(prog.Inst) > maxRegexInsts {
		return nil, errdefs.Invalidf("%s: the regular expression is too complex (%d instructions compiled; the limit is %d)", field, len(prog.Inst), maxRegexInsts)
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, errdefs.With(errdefs.Invalid, field+": not a valid regular expression", err)
	}
	return re, nil
}

// contextOf returns line i with up to contextLines lines either side.
func contextOf(lines []string, i int) string {
	lo, hi := max(0, i-contextLines), min(len(lines), i+contextLines+1)
	out := make([]string, 0, hi-lo)
	for _, l := range lines[lo:hi] {
		out = append(out, shorten(strings.TrimSuffix(l, "\r")))
	}
	return strings.Join(out, "\n")
}

// shorten cuts a line to maxLineBytes on a character boundary, marking the
// cut.
func shorten(line string) string {
	if len(line) <= maxLineBytes {
		return line
	}
	return line[:protocol.RuneBoundary(line, maxLineBytes)] + "…"
}
