package api

import (
	"context"
	"net/http"
	"time"

	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/vault"
)

// Vault is the part of the knowledge base the vault routes call.
type Vault interface {
	Read(ctx context.Context, p string) (*vault.Note, error)
	Write(ctx context.Context, p string, content []byte, mode vault.WriteMode) (*vault.WriteResult, error)
	Search(ctx context.Context, q vault.SearchQuery) (*vault.SearchResult, error)
	List(ctx context.Context, dir string, recursive bool) (*vault.Listing, error)
	Delete(ctx context.Context, p string) error
	Links(ctx context.Context, p string) ([]vault.Link, error)
	Backlinks(ctx context.Context, p string) ([]vault.Backlink, error)
}

// The vault is shared by every agent: its routes need an administrator,
// which every login of the dashboard and root on the CLI socket is.
func (a *API) vaultRoutes() {
	a.handle("GET /api/v1/vault/notes", "", a.vaultList)
	a.handle("GET /api/v1/vault/note", "", a.vaultRead)
	a.handle("PUT /api/v1/vault/note", "vault", a.vaultWrite)
	a.handle("DELETE /api/v1/vault/note", "vault", a.vaultDelete)
	a.handle("GET /api/v1/vault/search", "", a.vaultSearch)
}

func (a *API) vault(r *http.Request) (Vault, error) {
	if a.o.Vault == nil {
		return nil, errdefs.Unavailablef("the vault is not enabled on this server")
	}
	if !caller(r).Admin {
		return nil, errdefs.PermissionDeniedf("the vault is for administrators here; agents use the vault tool")
	}
	return a.o.Vault, nil
}

// VaultListing is the answer of GET /vault/notes.
type VaultListing struct {
	Path      string        `json:"path"`
	Entries   []vault.Entry `json:"entries"`
	Truncated bool          `json:"truncated"`
}

func (a *API) vaultList(_ http.ResponseWriter, r *http.Request) (any, error) {
	v, err := a.vault(r)
	if err != nil {
		return nil, err
	}
	q := r.URL.Query()
	l, err := v.List(r.Context(), q.Get("path"), q.Get("recursive") == "true")
	if err != nil {
		return nil, err
	}
	out := &VaultListing{Path: q.Get("path"), Entries: l.Entries, Truncated: l.Truncated}
	if out.Entries == nil {
		out.Entries = []vault.Entry{}
	}
	return out, nil
}

// VaultNote is a note as the dashboard's editor shows it: the text, and
// what the vault makes of it.
type VaultNote struct {
	Path     string    `json:"path"`
	Content  string    `json:"content"`
	Size     int64     `json:"size"`
	Modified time.Time `json:"modified"`
	// Frontmatter is the parsed YAML block; FrontmatterError says why it
	// did not parse.
	Frontmatter      map[string]any   `json:"frontmatter"`
	FrontmatterError string           `json:"frontmatter_error,omitempty"`
	Tags             []string         `json:"tags"`
	Links            []vault.Link     `json:"links"`
	Backlinks        []vault.Backlink `json:"backlinks"`
}

func (a *API) vaultRead(_ http.ResponseWriter, r *http.Request) (any, error) {
	v, err := a.vault(r)
	if err != nil {
		return nil, err
	}
	n, err := v.Read(r.Context(), r.URL.Query().Get("path"))
	if err != nil {
		return nil, err
	}
	out := &VaultNote{Path: n.Path, Content: string(n.Content), Size: n.Size, Modified: n.ModTime.UTC()}
	d := vault.ParseDocument(n.Content)
	if fm, err := d.Frontmatter(); err != nil {
		out.FrontmatterError = errdefs.Public(err)
		out.Tags = d.InlineTags()
	} else {
		out.Frontmatter = fm
		tags, _ := d.Tags()
		out.Tags = tags.All()
	}
	if out.Tags == nil {
		out.Tags = []string{}
	}
	if out.Links, err = v.Links(r.Context(), n.Path); err != nil {
		return nil, err
	}
	if out.Backlinks, err = v.Backlinks(r.Context(), n.Path); err != nil {
		return nil, err
	}
	return out, nil
}

// VaultWrite is the body of PUT /vault/note: the whole new text.
type VaultWrite struct {
	Path    string `json:"path"`
	Content string `json:"content"`
}

// VaultWritten answers PUT /vault/note.
type VaultWritten struct {
	Path    string `json:"path"`
	Size    int64  `json:"size"`
	Created bool   `json:"created"`
}

func (a *API) vaultWrite(_ http.ResponseWriter, r *http.Request) (any, error) {
	v, err := a.vault(r)
	if err != nil {
		return nil, err
	}
	var in VaultWrite
	if err := decode(r, &in); err != nil {
		return nil, err
	}
	res, err := v.Write(r.Context(), in.Path, []byte(in.Content), vault.Overwrite)
	if err != nil {
		return nil, err
	}
	return &VaultWritten{Path: res.Path, Size: res.Size, Created: res.Created}, nil
}

// VaultDeleted answers DELETE /vault/note.
type VaultDeleted struct {
	Path    string `json:"path"`
	Deleted bool   `json:"deleted"`
}

func (a *API) vaultDelete(_ http.ResponseWriter, r *http.Request) (any, error) {
	v, err := a.vault(r)
	if err != nil {
		return nil, err
	}
	p := r.URL.Query().Get("path")
	if err := v.Delete(r.Context(), p); err != nil {
		return nil, err
	}
	return &VaultDeleted{Path: p, Deleted: true}, nil
}

// VaultSearch is the answer of GET /vault/search.
type VaultSearch struct {
	Query     string            `json:"query"`
	Results   []vault.SearchHit `json:"results"`
	Truncated bool              `json:"truncated"`
}

func (a *API) vaultSearch(_ http.ResponseWriter, r *http.Request) (any, error) {
	v, err := a.vault(r)
	if err != nil {
		return nil, err
	}
	q := r.URL.Query()
	n, err := intParam(q.Get("max_results"), "max_results", 50, 1, 1000)
	if err != nil {
		return nil, err
	}
	res, err := v.Search(r.Context(), vault.SearchQuery{Query: q.Get("q"), Tag: q.Get("tag"), PathPrefix: q.Get("path_prefix"), MaxResults: n})
	if err != nil {
		return nil, err
	}
	out := &VaultSearch{Query: q.Get("q"), Results: res.Hits, Truncated: res.Truncated}
	if out.Results == nil {
		out.Results = []vault.SearchHit{}
	}
	return out, nil
}
