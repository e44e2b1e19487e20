package mcpserver

import (
	"context"
	"encoding/json"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/vault"
)

// Vault is the knowledge base the vault tool works on.
type Vault interface {
	Read(ctx context.Context, p string) (*vault.Note, error)
	Write(ctx context.Context, p string, content []byte, mode vault.WriteMode) (*vault.WriteResult, error)
	Search(ctx context.Context, q vault.SearchQuery) (*vault.SearchResult, error)
	List(ctx context.Context, dir string, recursive bool) (*vault.Listing, error)
	Delete(ctx context.Context, p string) error
	Frontmatter(ctx context.Context, p string) (map[string]any, error)
	SetFrontmatter(ctx context.Context, p, key string, value any) (*vault.WriteResult, error)
	DeleteFrontmatter(ctx context.Context, p, key string) (bool, error)
	Tags(ctx context.Context, p string) (vault.Tags, error)
	AddTag(ctx context.Context, p, tag string) (bool, error)
	RemoveTag(ctx context.Context, p, tag string) (bool, error)
	Replace(ctx context.Context, p, old, new string, regex bool) (int, error)
	Move(ctx context.Context, from, to string, overwrite bool) (*vault.MoveResult, error)
	Links(ctx context.Context, p string) ([]vault.Link, error)
	Backlinks(ctx context.Context, p string) ([]vault.Backlink, error)
	Stats(ctx context.Context, recent int) (*vault.Stats, error)
}

// Limits of the vault tool.
const (
	maxBatchRead      = 10
	defaultRecentNote = 10
	maxRecentNotes    = 100
)

type vaultIn struct {
	Action string `json:"action" jsonschema:"one of read, write, search, list, delete, frontmatter, tags, replace, move, batch_read, stats"`
	Path   string `json:"path,omitempty" jsonschema:"note path relative to the vault root, e.g. projects/plan.md (read, write, delete, frontmatter, tags, replace, move); for list the folder (default: the root)"`
	// read
	Format string `json:"format,omitempty" jsonschema:"read: markdown (default: the text) or json (also the parsed frontmatter, tags, wikilinks and backlinks)"`
	// write
	Content *string `json:"content,omitempty" jsonschema:"write: the text to write"`
	Mode    string  `json:"mode,omitempty" jsonschema:"write: overwrite (default), append, or prepend (after the frontmatter)"`
	// search
	Query      string `json:"query,omitempty" jsonschema:"search: text to find in each line, or a regular expression (RE2 syntax) with regex"`
	Regex      bool   `json:"regex,omitempty" jsonschema:"search, replace: treat query / old_string as a regular expression"`
	PathPrefix string `json:"path_prefix,omitempty" jsonschema:"search: only notes whose path starts with this, e.g. projects/"`
	Tag        string `json:"tag,omitempty" jsonschema:"search: only notes with this tag; tags add/remove: the tag"`
	MaxResults int    `json:"max_results,omitempty" jsonschema:"search: most matching lines to return (default 20, max 1000)"`
	// list
	Recursive bool `json:"recursive,omitempty" jsonschema:"list: include everything below the folder"`
	// delete
	Confirm bool `json:"confirm,omitempty" jsonschema:"delete: must be true; deletion cannot be undone"`
	// frontmatter
	FrontmatterAction string `json:"frontmatter_action,omitempty" jsonschema:"frontmatter: get, set or delete"`
	Key               string `json:"key,omitempty" jsonschema:"frontmatter set/delete: the key"`
	Value             any    `json:"value,omitempty" jsonschema:"frontmatter set: the value (string, number, boolean, null, list or object)"`
	// tags
	TagsAction string `json:"tags_action,omitempty" jsonschema:"tags: list, add or remove (add and remove change the frontmatter tags list)"`
	// replace
	OldString string  `json:"old_string,omitempty" jsonschema:"replace: the text (or with regex the pattern) to replace; every occurrence is replaced"`
	NewString *string `json:"new_string,omitempty" jsonschema:"replace: the replacement; with regex $1 or ${name} insert groups"`
	// move
	NewPath   string `json:"new_path,omitempty" jsonschema:"move: the new path"`
	Overwrite bool   `json:"overwrite,omitempty" jsonschema:"move: replace a note already at new_path"`
	// batch_read
	Paths              []string `json:"paths,omitempty" jsonschema:"batch_read: up to 10 note paths"`
	IncludeContent     *bool    `json:"include_content,omitempty" jsonschema:"batch_read: include each note's text (default true)"`
	IncludeFrontmatter *bool    `json:"include_frontmatter,omitempty" jsonschema:"batch_read: include each note's parsed frontmatter (default true)"`
	// stats
	RecentCount int `json:"recent_count,omitempty" jsonschema:"stats: how many recently modified notes to list (default 10, max 100)"`
}

type vaultNoteOut struct {
	Path     string    `json:"path"`
	Format   string    `json:"format"`
	Content  string    `json:"content"`
	Size     int64     `json:"size"`
	Modified time.Time `json:"modified"`
}

type vaultNoteJSONOut struct {
	vaultNoteOut
	Frontmatter      map[string]any   `json:"frontmatter"`
	FrontmatterError string           `json:"frontmatter_error,omitempty"`
	Body             string           `json:"body"`
	Tags             []string         `json:"tags"`
	Links            []vault.Link     `json:"links"`
	Backlinks        []vault.Backlink `json:"backlinks"`
}

type vaultWriteOut struct {
	Path         string `json:"path"`
	Mode         string `json:"mode"`
	BytesWritten int    `json:"bytes_written"`
	Size         int64  `json:"size"`
	Created      bool   `json:"created"`
}

type vaultSearchOut struct {
	Query         string            `json:"query"`
	Regex         bool              `json:"regex"`
	ResultCount   int               `json:"result_count"`
	Results       []vault.SearchHit `json:"results"`
	Truncated     bool              `json:"truncated"`
	TimedOut      bool              `json:"timed_out"`
	NotesSearched int               `json:"notes_searched"`
}

type vaultListOut struct {
	Path      string        `json:"path"`
	Recursive bool          `json:"recursive"`
	Count     int           `json:"count"`
	Entries   []vault.Entry `json:"entries"`
	Truncated bool          `json:"truncated"`
}

type vaultDeleteOut struct {
	Path    string `json:"path"`
	Deleted bool   `json:"deleted"`
}

type vaultFrontmatterOut struct {
	Path        string         `json:"path"`
	Frontmatter map[string]any `json:"frontmatter"`
}

type vaultFrontmatterSetOut struct {
	Path        string         `json:"path"`
	Key         string         `json:"key"`
	Value       any            `json:"value"`
	Frontmatter map[string]any `json:"frontmatter"`
}

type vaultFrontmatterDeleteOut struct {
	Path    string `json:"path"`
	Key     string `json:"key"`
	Deleted bool   `json:"deleted"`
}

type vaultTagsOut struct {
	Path string   `json:"path"`
	All  []string `json:"tags"`
	vault.Tags
}

type vaultTagChangeOut struct {
	Path    string   `json:"path"`
	Tag     string   `json:"tag"`
	Added   *bool    `json:"added,omitempty"`
	Removed *bool    `json:"removed,omitempty"`
	Tags    []string `json:"tags"`
}

type vaultReplaceOut struct {
	Path         string `json:"path"`
	Replacements int    `json:"replacements"`
}

type vaultMoveOut struct {
	Moved bool   `json:"moved"`
	From  string `json:"from"`
	To    string `json:"to"`
	// Backlinks are notes whose wikilinks named the old path; they are not
	// rewritten.
	Backlinks []vault.Backlink `json:"backlinks"`
}

type vaultBatchNote struct {
	Path        string         `json:"path"`
	Content     *string        `json:"content,omitempty"`
	Frontmatter map[string]any `json:"frontmatter,omitempty"`
	Error       string         `json:"error,omitempty"`
}

type vaultBatchOut struct {
	Count int              `json:"count"`
	Notes []vaultBatchNote `json:"notes"`
}

type vaultRecent struct {
	Path      string    `json:"path"`
	SizeBytes int64     `json:"size_bytes"`
	Modified  time.Time `json:"modified"`
}

type vaultStatsOut struct {
	TotalNotes     int           `json:"total_notes"`
	TotalFolders   int           `json:"total_folders"`
	TotalSizeBytes int64         `json:"total_size_bytes"`
	TotalTags      int           `json:"total_tags"`
	TotalLinks     int           `json:"total_links"`
	BrokenLinks    int           `json:"broken_links"`
	RecentFiles    []vaultRecent `json:"recent_files"`
}

func (t *tools) registerVaultTools(s *mcp.Server) {
	add(t, s, "vault",
		"Shared markdown knowledge base on the host (no workspace needed): notes with YAML frontmatter, "+
			"#tags and [[wikilinks]]. Actions: read, write, search (substring or RE2 regex), list, delete "+
			"(confirm=true), frontmatter (get/set/delete), tags (list/add/remove), replace, move, batch_read "+
			"(up to 10 paths), stats. Paths are relative to the vault root.",
		func(in vaultIn) string { return in.Action + " " + in.Path },
		func(ctx context.Context, req *mcp.CallToolRequest, in vaultIn) (any, error) {
			if t.d.Vault == nil {
				return nil, errdefs.Unavailablef("vault: disabled in the daemon's configuration ([vault] enabled = false)")
			}
			v := t.d.Vault
			switch in.Action {
			case "read":
				return vaultRead(ctx, v, in)
			case "write":
				return vaultWrite(ctx, v, in)
			case "search":
				return vaultSearch(ctx, v, in)
			case "list":
				return vaultList(ctx, v, in)
			case "delete":
				if !in.Confirm {
					return nil, errdefs.Invalidf("confirm: must be true to delete a note (deletion cannot be undone)")
				}
				if err := v.Delete(ctx, in.Path); err != nil {
					return nil, err
				}
				return &vaultDeleteOut{Path: in.Path, Deleted: true}, nil
			case "frontmatter":
				return vaultFrontmatter(ctx, v, req, in)
			case "tags":
				return vaultTags(ctx, v, in)
			case "replace":
				if in.NewString == nil {
					return nil, errdefs.Invalidf("new_string: required for replace (it may be empty)")
				}
				n, err := v.Replace(ctx, in.Path, in.OldString, *in.NewString, in.Regex)
				if err != nil {
					return nil, err
				}
				return &vaultReplaceOut{Path: in.Path, Replacements: n}, nil
			case "move":
				res, err := v.Move(ctx, in.Path, in.NewPath, in.Overwrite)
				if err != nil {
					return nil, err
				}
				return &vaultMoveOut{Moved: true, From: res.From, To: res.To, Backlinks: res.Backlinks}, nil
			case "batch_read":
				return vaultBatchRead(ctx, v, in)
			case "stats":
				return vaultStats(ctx, v, in)
			case "":
				return nil, errdefs.Invalidf("action: required: one of read, write, search, list, delete, frontmatter, tags, replace, move, batch_read, stats")
			}
			return nil, errdefs.Invalidf("action: must be one of read, write, search, list, delete, frontmatter, tags, replace, move, batch_read, stats")
		})
}

func vaultRead(ctx context.Context, v Vault, in vaultIn) (any, error) {
	switch in.Format {
	case "", "markdown", "json":
	default:
		return nil, errdefs.Invalidf("format: must be markdown or json")
	}
	n, err := v.Read(ctx, in.Path)
	if err != nil {
		return nil, err
	}
	base := vaultNoteOut{Path: n.Path, Format: "markdown", Content: string(n.Content), Size: n.Size, Modified: n.ModTime.UTC()}
	if in.Format != "json" {
		return &base, nil
	}
	base.Format = "json"
	out := &vaultNoteJSONOut{vaultNoteOut: base}
	d := vault.ParseDocument(n.Content)
	out.Body = string(d.Body())
	if fm, err := d.Frontmatter(); err != nil {
		out.FrontmatterError = errdefs.Public(err)
		out.Tags = d.InlineTags()
	} else {
		out.Frontmatter = fm
		tags, _ := d.Tags()
		out.Tags = tags.All()
	}
	if out.Links, err = v.Links(ctx, n.Path); err != nil {
		return nil, err
	}
	if out.Backlinks, err = v.Backlinks(ctx, n.Path); err != nil {
		return nil, err
	}
	return out, nil
}

func vaultWrite(ctx context.Context, v Vault, in vaultIn) (any, error) {
	if in.Content == nil {
		return nil, errdefs.Invalidf("content: required for write (it may be empty)")
	}
	mode := vault.WriteMode(in.Mode)
	if in.Mode == "" {
		mode = vault.Overwrite
	}
	res, err := v.Write(ctx, in.Path, []byte(*in.Content), mode)
	if err != nil {
		return nil, err
	}
	return &vaultWriteOut{Path: res.Path, Mode: string(mode), BytesWritten: len(*in.Content), Size: res.Size, Created: res.Created}, nil
}

func vaultSearch(ctx context.Context, v Vault, in vaultIn) (any, error) {
	res, err := v.Search(ctx, vault.SearchQuery{
		Query: in.Query, Regex: in.Regex, PathPrefix: in.PathPrefix, Tag: in.Tag, MaxResults: in.MaxResults,
	})
	if err != nil {
		return nil, err
	}
	return &vaultSearchOut{
		Query: in.Query, Regex: in.Regex, ResultCount: len(res.Hits), Results: res.Hits,
		Truncated: res.Truncated, TimedOut: res.TimedOut, NotesSearched: res.NotesSearched,
	}, nil
}

func vaultList(ctx context.Context, v Vault, in vaultIn) (any, error) {
	dir := in.Path
	if dir == "" {
		dir = in.PathPrefix
	}
	l, err := v.List(ctx, dir, in.Recursive)
	if err != nil {
		return nil, err
	}
	return &vaultListOut{Path: dir, Recursive: in.Recursive, Count: len(l.Entries), Entries: l.Entries, Truncated: l.Truncated}, nil
}

func vaultFrontmatter(ctx context.Context, v Vault, req *mcp.CallToolRequest, in vaultIn) (any, error) {
	switch in.FrontmatterAction {
	case "get":
		fm, err := v.Frontmatter(ctx, in.Path)
		if err != nil {
			return nil, err
		}
		return &vaultFrontmatterOut{Path: in.Path, Frontmatter: fm}, nil
	case "set":
		if !hasArgument(req, "value") {
			return nil, errdefs.Invalidf("value: required for frontmatter set (null is a value)")
		}
		if _, err := v.SetFrontmatter(ctx, in.Path, in.Key, in.Value); err != nil {
			return nil, err
		}
		fm, err := v.Frontmatter(ctx, in.Path)
		if err != nil {
			return nil, err
		}
		return &vaultFrontmatterSetOut{Path: in.Path, Key: in.Key, Value: fm[in.Key], Frontmatter: fm}, nil
	case "delete":
		deleted, err := v.DeleteFrontmatter(ctx, in.Path, in.Key)
		if err != nil {
			return nil, err
		}
		return &vaultFrontmatterDeleteOut{Path: in.Path, Key: in.Key, Deleted: deleted}, nil
	}
	return nil, errdefs.Invalidf("frontmatter_action: must be get, set or delete")
}

func vaultTags(ctx context.Context, v Vault, in vaultIn) (any, error) {
	var changed bool
	var err error
	switch in.TagsAction {
	case "list":
		tags, err := v.Tags(ctx, in.Path)
		if err != nil {
			return nil, err
		}
		return &vaultTagsOut{Path: in.Path, All: tags.All(), Tags: tags}, nil
	case "add":
		changed, err = v.AddTag(ctx, in.Path, in.Tag)
	case "remove":
		changed, err = v.RemoveTag(ctx, in.Path, in.Tag)
	default:
		return nil, errdefs.Invalidf("tags_action: must be list, add or remove")
	}
	if err != nil {
		return nil, err
	}
	tags, err := v.Tags(ctx, in.Path)
	if err != nil {
		return nil, err
	}
	out := &vaultTagChangeOut{Path: in.Path, Tag: in.Tag, Tags: tags.All()}
	if in.TagsAction == "add" {
		out.Added = &changed
	} else {
		out.Removed = &changed
	}
	return out, nil
}

func vaultBatchRead(ctx context.Context, v Vault, in vaultIn) (any, error) {
	switch {
	case len(in.Paths) == 0:
		return nil, errdefs.Invalidf("paths: required for batch_read: 1 to %d note paths", maxBatchRead)
	case len(in.Paths) > maxBatchRead:
		return nil, errdefs.Invalidf("paths: at most %d per batch_read, got %d", maxBatchRead, len(in.Paths))
	}
	withContent := in.IncludeContent == nil || *in.IncludeContent
	withFM := in.IncludeFrontmatter == nil || *in.IncludeFrontmatter
	out := &vaultBatchOut{Count: len(in.Paths), Notes: make([]vaultBatchNote, 0, len(in.Paths))}
	for _, p := range in.Paths {
		item := vaultBatchNote{Path: p}
		n, err := v.Read(ctx, p)
		if err != nil {
			item.Error = errdefs.Public(err)
			out.Notes = append(out.Notes, item)
			continue
		}
		item.Path = n.Path
		if withContent {
			s := string(n.Content)
			item.Content = &s
		}
		if withFM {
			fm, err := vault.ParseDocument(n.Content).Frontmatter()
			if err != nil {
				item.Error = errdefs.Public(err)
			}
			item.Frontmatter = fm
		}
		out.Notes = append(out.Notes, item)
	}
	return out, nil
}

func vaultStats(ctx context.Context, v Vault, in vaultIn) (any, error) {
	n := in.RecentCount
	switch {
	case n == 0:
		n = defaultRecentNote
	case n < 0 || n > maxRecentNotes:
		return nil, errdefs.Invalidf("recent_count: must be 1..%d", maxRecentNotes)
	}
	st, err := v.Stats(ctx, n)
	if err != nil {
		return nil, err
	}
	out := &vaultStatsOut{
		TotalNotes: st.Notes, TotalFolders: st.Folders, TotalSizeBytes: st.SizeBytes, TotalTags: st.Tags,
		TotalLinks: st.Links, BrokenLinks: st.Broken, RecentFiles: make([]vaultRecent, 0, len(st.Recent)),
	}
	for _, e := range st.Recent {
		out.RecentFiles = append(out.RecentFiles, vaultRecent{Path: e.Path, SizeBytes: e.Size, Modified: e.ModTime})
	}
	return out, nil
}

// hasArgument reports whether the call's arguments hold the key name, so a
// JSON null can be told from an absent parameter.
func hasArgument(req *mcp.CallToolRequest, name string) bool {
	if req == nil || req.Params == nil {
		return false
	}
	var args map[string]json.RawMessage
	if json.Unmarshal(req.Params.Arguments, &args) != nil {
		return false
	}
	_, ok := args[name]
	return ok
}
