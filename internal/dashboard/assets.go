package dashboard

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"
)

// dist is the front end built from web/ (`npm run build` there). Only a
// placeholder is committed: a binary built without running npm still
// builds, and its page says the assets are missing.
//
//go:embed dist
var dist embed.FS

// Assets returns the embedded front end.
func Assets() fs.FS {
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		panic(err) // the directory is embedded; it cannot be missing
	}
	return sub
}

// missingAssetsPage is served when the binary was built without the
// front end. It has no script, like everything under the CSP.
const missingAssetsPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>agentiso dashboard: assets missing</title></head>
<body><h1>agentiso dashboard</h1>
<p>The dashboard's front-end assets are missing from this agentiso binary: it was built without them.</p>
<p>Build them and then agentiso: <code>cd web &amp;&amp; npm ci &amp;&amp; npm run build</code>, then
<code>go build ./cmd/agentiso</code> (scripts/install.sh does both). The REST API under /api/v1/ works without them.</p>
</body></html>
`

// static serves the front end. Hashed asset files may be cached for good;
// the page itself is always revalidated.
func (s *Server) static() http.Handler {
	h := s.staticFiles()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !safeMethod(r.Method) {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func (s *Server) staticFiles() http.Handler {
	if _, err := fs.Stat(s.o.Assets, "index.html"); err != nil {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/" {
				http.NotFound(w, r)
				return
			}
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Header().Set("Cache-Control", "no-cache")
			w.WriteHeader(http.StatusOK)
			w.Write([]byte(missingAssetsPage))
		})
	}
	files := http.FileServerFS(s.o.Assets)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/assets/") {
			w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		} else {
			w.Header().Set("Cache-Control", "no-cache")
		}
		files.ServeHTTP(w, r)
	})
}
