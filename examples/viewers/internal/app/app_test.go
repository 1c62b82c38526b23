package app_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/presence-go/presence"
	"github.com/presence-go/presence/examples/viewers/internal/app"
	"github.com/presence-go/presence/memstore"
	"github.com/stretchr/testify/require"
)

func TestApp(t *testing.T) {
	p := presence.New(memstore.New())
	defer p.Close()
	h := app.New(p, 5*time.Second)
	get := func(target string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", target, nil))
		return w
	}

	w := get("/")
	require.Equal(t, http.StatusFound, w.Code)
	require.Equal(t, "/room/lobby", w.Header().Get("Location"))
	w = get("/?room=a%2Fb&user=x")
	require.Equal(t, "/room/a%2Fb?user=x", w.Header().Get("Location"))

	w = get("/room/" + `</script><b>"x"`)
	require.Equal(t, http.StatusOK, w.Code)
	body := w.Body.String()
	require.Contains(t, body, `const room = "\u003c/script\u003e\u003cb\u003e\"x\"";`, "the room is escaped for JS")
	require.NotContains(t, body, "</script><b>")
	require.Contains(t, body, `id="count"`)

	w = get("/presence/client.js")
	require.Equal(t, http.StatusOK, w.Code)
	require.True(t, strings.HasPrefix(w.Header().Get("Content-Type"), "text/javascript"))

	w = httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("POST", "/presence/heartbeat",
		strings.NewReader(`{"room":"lobby","session":"s","user":"u"}`)))
	require.Equal(t, http.StatusOK, w.Code)
	require.Contains(t, w.Body.String(), `"ttl_ms":5000`)
}
