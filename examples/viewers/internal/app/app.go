// Package app is the viewers example's web app: an event-feed page with a
// live "N watching" badge and a face pile of the room's viewers, served
// beside the presencehttp handler. It is a package of its own so that the
// browser test can build the same server in-process.
package app

import (
	_ "embed"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/presence-go/presence"
	"github.com/presence-go/presence/presencehttp"
)

//go:embed page.html
var pageHTML string

var page = template.Must(template.New("page").Parse(pageHTML))

// New returns the app's handler over p. Rooms are named by the path,
// /room/NAME, or by the query, /?room=NAME; / alone shows the room "lobby".
// Heartbeats carry ttl as their TTL. Viewers are anonymous: each browser
// profile keeps a random user ID, unless the page's URL has ?user=ID.
func New(p *presence.Presence, ttl time.Duration, opts ...presencehttp.Option) http.Handler {
	opts = append([]presencehttp.Option{presencehttp.WithTTL(ttl)}, opts...)
	mux := http.NewServeMux()
	mux.Handle("/presence/", http.StripPrefix("/presence", presencehttp.New(p, opts...)))
	mux.HandleFunc("GET /room/{name...}", func(w http.ResponseWriter, r *http.Request) {
		servePage(w, r.PathValue("name"))
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		room := r.URL.Query().Get("room")
		if room == "" {
			room = "lobby"
		}
		q := r.URL.Query()
		q.Del("room")
		target := "/room/" + url.PathEscape(room)
		if len(q) > 0 {
			target += "?" + q.Encode()
		}
		http.Redirect(w, r, target, http.StatusFound)
	})
	return mux
}

func servePage(w http.ResponseWriter, room string) {
	room = strings.TrimSpace(room)
	if room == "" || len(room) > 128 {
		http.Error(w, "room names are 1 to 128 bytes", http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_ = page.Execute(w, struct{ Room string }{room})
}
