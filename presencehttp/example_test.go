package presencehttp_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/presence-go/presence"
	"github.com/presence-go/presence/memstore"
	"github.com/presence-go/presence/presencehttp"
)

// A host mounts the handler under /presence/ and lets its own
// authentication decide who a user is. Pages then load the client with
//
//	import { join } from "/presence/client.js";
func Example() {
	p := presence.New(memstore.New())
	defer p.Close()

	h := presencehttp.New(p,
		presencehttp.WithTTL(15*time.Second),
		presencehttp.WithIdentity(func(r *http.Request) (string, error) {
			c, err := r.Cookie("user") // a real host verifies a session here
			if err != nil {
				return "", errors.New("not signed in")
			}
			return c.Value, nil
		}),
	)
	mux := http.NewServeMux()
	mux.Handle("/presence/", http.StripPrefix("/presence", h))
	// http.ListenAndServe("127.0.0.1:8080", mux)

	req := httptest.NewRequest("POST", "/presence/heartbeat", strings.NewReader(`{"room":"doc-1","session":"tab-1"}`))
	req.AddCookie(&http.Cookie{Name: "user", Value: "ada"})
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, req)
	fmt.Print(w.Code, " ", w.Body.String())

	w = httptest.NewRecorder()
	mux.ServeHTTP(w, httptest.NewRequest("GET", "/presence/viewers?room=doc-1", nil))
	fmt.Print(w.Code, " ", w.Body.String())
	// Output:
	// 200 {"user":"ada","count":1,"ttl_ms":15000,"interval_ms":5000}
	// 401 {"error":"unauthorized"}
}
