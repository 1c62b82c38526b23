package presencehttp_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/presence-go/presence"
	"github.com/presence-go/presence/memstore"
	"github.com/presence-go/presence/presencehttp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var start = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

type fixture struct {
	t     *testing.T
	clock *clock.Mock
	p     *presence.Presence
	h     http.Handler
}

func newFixture(t *testing.T, store presence.Store, opts ...presencehttp.Option) *fixture {
	t.Helper()
	mock := clock.NewMock()
	mock.Set(start)
	if store == nil {
		store = memstore.New()
	}
	p := presence.New(store, presence.WithClock(mock))
	t.Cleanup(func() { p.Close() })
	opts = append([]presencehttp.Option{presencehttp.WithClock(mock)}, opts...)
	return &fixture{t: t, clock: mock, p: p, h: presencehttp.New(p, opts...)}
}

// do serves one request and returns the recorded response.
func (f *fixture) do(method, target, body string, header ...string) *httptest.ResponseRecorder {
	f.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, target, r)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, req)
	return w
}

func (f *fixture) list(room string) []presence.Viewer {
	f.t.Helper()
	vs, err := f.p.List(context.Background(), room)
	require.NoError(f.t, err)
	return vs
}

func decode[T any](t *testing.T, w *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &v), w.Body.String())
	return v
}

func requireError(t *testing.T, w *httptest.ResponseRecorder, status int, contains string) {
	t.Helper()
	require.Equal(t, status, w.Code, w.Body.String())
	require.Equal(t, "application/json", w.Header().Get("Content-Type"))
	e := decode[struct{ Error string }](t, w)
	require.Contains(t, e.Error, contains)
}

func TestHeartbeat(t *testing.T) {
	f := newFixture(t, nil, presencehttp.WithTTL(9*time.Second))
	w := f.do("POST", "/heartbeat", `{"room":"r","session":"s1","user":"ada","meta":{ "name" : "Ada" },"ttl":1}`)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	require.JSONEq(t, `{"user":"ada","count":1,"ttl_ms":9000,"interval_ms":3000}`, w.Body.String())

	vs := f.list("r")
	require.Len(t, vs, 1)
	v := vs[0]
	assert.Equal(t, "ada", v.UserID)
	assert.Equal(t, `{"name":"Ada"}`, string(v.Meta), "metadata is compacted")
	assert.Equal(t, start.Add(9*time.Second), v.Deadline.UTC(), "the server, not the client, sets the TTL")

	// A second tab of the same user: one viewer, two sessions.
	w = f.do("POST", "/heartbeat", `{"room":"r","session":"s2","user":"ada"}`)
	require.Equal(t, http.StatusOK, w.Code)
	require.JSONEq(t, `{"user":"ada","count":1,"ttl_ms":9000,"interval_ms":3000}`, w.Body.String())
	vs = f.list("r")
	require.Equal(t, 2, vs[0].Sessions)
	require.Equal(t, `{"name":"Ada"}`, string(vs[0].Meta), "absent meta keeps it")

	w = f.do("POST", "/heartbeat", `{"room":"r","session":"s2","user":"ada","meta":null}`)
	require.Equal(t, http.StatusOK, w.Code)
	require.Empty(t, f.list("r")[0].Meta, "null meta clears it")

	f.clock.Add(9 * time.Second)
	require.Empty(t, f.list("r"), "expired at the server's deadline")
}

// A TTL beyond the Presence's limits is brought within them, rather than
// failing every heartbeat.
func TestTTLWithinLimits(t *testing.T) {
	f := newFixture(t, nil, presencehttp.WithTTL(2*time.Hour))
	w := f.do("POST", "/heartbeat", `{"room":"r","session":"s","user":"ada"}`)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	require.Equal(t, time.Hour.Milliseconds(), decode[struct {
		TTLMs int64 `json:"ttl_ms"`
	}](t, w).TTLMs)
	require.True(t, f.list("r")[0].Deadline.Equal(f.clock.Now().Add(time.Hour)))
}

func TestLeave(t *testing.T) {
	f := newFixture(t, nil)
	for _, s := range []string{"s1", "s2"} {
		require.Equal(t, http.StatusOK, f.do("POST", "/heartbeat", `{"room":"r","session":"`+s+`","user":"ada"}`).Code)
	}
	require.Equal(t, http.StatusOK, f.do("POST", "/heartbeat", `{"room":"r","session":"b1","user":"bob"}`).Code)

	// navigator.sendBeacon with a string sends text/plain.
	w := f.do("POST", "/leave", `{"room":"r","session":"s1","user":"ada"}`, "Content-Type", "text/plain;charset=UTF-8")
	require.Equal(t, http.StatusNoContent, w.Code, w.Body.String())
	require.Empty(t, w.Body.String())
	vs := f.list("r")
	require.Len(t, vs, 2, "ada's other tab keeps her present")
	require.Equal(t, 1, vs[0].Sessions)

	// Leaving needs the session: a client cannot end another user's
	// presence knowing only the user ID.
	w = f.do("POST", "/leave", `{"room":"r","user":"bob"}`)
	requireError(t, w, http.StatusBadRequest, "session is required")
	require.Equal(t, http.StatusNoContent, f.do("POST", "/leave", `{"room":"r","session":"s2","user":"bob"}`).Code)
	require.Len(t, f.list("r"), 2, "ada's session s2 is not bob's")

	// A Blob of JSON may carry any type.
	w = f.do("POST", "/leave", `{"room":"r","session":"s2","user":"ada"}`, "Content-Type", "application/json")
	require.Equal(t, http.StatusNoContent, w.Code)
	vs = f.list("r")
	require.Len(t, vs, 1)
	require.Equal(t, "bob", vs[0].UserID)

	w = f.do("POST", "/leave", `{"room":"r","session":"s2","user":"ada"}`)
	require.Equal(t, http.StatusNoContent, w.Code, "leaving when absent is not an error")
}

func TestViewers(t *testing.T) {
	f := newFixture(t, nil)
	require.Equal(t, http.StatusOK, f.do("POST", "/heartbeat", `{"room":"a:b","session":"s","user":"ada","meta":{"name":"Ada"}}`).Code)
	f.clock.Add(1500 * time.Millisecond)
	require.Equal(t, http.StatusOK, f.do("POST", "/heartbeat", `{"room":"a:b","session":"s","user":"bob"}`).Code)

	w := f.do("GET", "/viewers?room=a%3Ab", "")
	require.Equal(t, http.StatusOK, w.Code)
	require.Equal(t, "no-store", w.Header().Get("Cache-Control"))
	require.JSONEq(t, `{"room":"a:b","count":2,"viewers":[
		{"user":"ada","first_seen":"2025-03-01T12:00:00.000Z","last_seen":"2025-03-01T12:00:00.000Z",
		 "deadline":"2025-03-01T12:00:15.000Z","sessions":1,"meta":{"name":"Ada"}},
		{"user":"bob","first_seen":"2025-03-01T12:00:01.500Z","last_seen":"2025-03-01T12:00:01.500Z",
		 "deadline":"2025-03-01T12:00:16.500Z","sessions":1}]}`, w.Body.String())

	w = f.do("GET", "/viewers?room=empty", "")
	require.JSONEq(t, `{"room":"empty","count":0,"viewers":[]}`, w.Body.String())

	require.Equal(t, http.StatusOK, f.do("HEAD", "/viewers?room=r", "").Code)
}

func TestNonJSONMetaIsAString(t *testing.T) {
	f := newFixture(t, nil)
	require.NoError(t, f.p.Heartbeat(context.Background(), "r", "u", time.Second, presence.WithMeta([]byte("plain"))))
	w := f.do("GET", "/viewers?room=r", "")
	require.Contains(t, w.Body.String(), `"meta":"plain"`)
}

func TestStripPrefix(t *testing.T) {
	f := newFixture(t, nil)
	mux := http.NewServeMux()
	mux.Handle("/presence/", http.StripPrefix("/presence", f.h))
	for _, target := range []string{"/presence/viewers?room=r", "/presence/client.js"} {
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, httptest.NewRequest("GET", target, nil))
		require.Equal(t, http.StatusOK, w.Code, target)
	}
	// With the trailing slash stripped too, paths have no leading slash.
	w := httptest.NewRecorder()
	http.StripPrefix("/presence/", f.h).ServeHTTP(w, httptest.NewRequest("GET", "/presence/viewers?room=r", nil))
	require.Equal(t, http.StatusOK, w.Code)
}

func TestErrors(t *testing.T) {
	big := strings.Repeat("x", presencehttp.DefaultMaxBodyBytes)
	tests := []struct {
		name, method, target, body string
		header                     []string
		status                     int
		contains                   string
	}{
		{"unknown route", "GET", "/nope", "", nil, 404, "not found"},
		{"root", "GET", "/", "", nil, 404, "not found"},
		{"GET heartbeat", "GET", "/heartbeat", "", nil, 405, "method not allowed"},
		{"POST viewers", "POST", "/viewers?room=r", "{}", nil, 405, "method not allowed"},
		{"PUT leave", "PUT", "/leave", "{}", nil, 405, "method not allowed"},
		{"DELETE events", "DELETE", "/events?room=r", "", nil, 405, "method not allowed"},
		{"empty body", "POST", "/heartbeat", "", nil, 400, "JSON object"},
		{"not JSON", "POST", "/heartbeat", "room=r", nil, 400, "JSON object"},
		{"array", "POST", "/heartbeat", `[{"room":"r"}]`, nil, 400, "JSON object"},
		{"truncated", "POST", "/heartbeat", `{"room":"r"`, nil, 400, "bad request"},
		{"trailing data", "POST", "/heartbeat", `{"room":"r","session":"s","user":"u"} {}`, nil, 400, "bad request"},
		{"wrong type", "POST", "/heartbeat", `{"room":1,"session":"s","user":"u"}`, nil, 400, "bad request"},
		{"no room", "POST", "/heartbeat", `{"session":"s","user":"u"}`, nil, 400, "room is required"},
		{"no session", "POST", "/heartbeat", `{"room":"r","user":"u"}`, nil, 400, "session is required"},
		{"bad session", "POST", "/heartbeat", `{"room":"r","session":"a b","user":"u"}`, nil, 400, "session must be"},
		{"no user", "POST", "/heartbeat", `{"room":"r","session":"s"}`, nil, 400, "user must be"},
		{"bad user", "POST", "/heartbeat", `{"room":"r","session":"s","user":"ü"}`, nil, 400, "user must be"},
		{"long user", "POST", "/heartbeat", `{"room":"r","session":"s","user":"` + strings.Repeat("u", 65) + `"}`, nil, 400, "user must be"},
		{"bad meta", "POST", "/heartbeat", `{"room":"r","session":"s","user":"u","meta":{"a":}}`, nil, 400, "bad request"},
		{"long room", "POST", "/heartbeat", `{"room":"` + strings.Repeat("r", 257) + `","session":"s","user":"u"}`, nil, 400, "invalid room ID"},
		{"large meta", "POST", "/heartbeat", `{"room":"r","session":"s","user":"u","meta":"` + strings.Repeat("m", 4096) + `"}`, nil, 400, "metadata too large"},
		{"body too large", "POST", "/heartbeat", `{"room":"r","session":"s","user":"u","meta":"` + big + `"}`, nil, 413, "body larger than 8192 bytes"},
		{"leave too large", "POST", "/leave", `{"room":"r","session":"s","user":"u","x":"` + big + `"}`, nil, 413, "body larger"},
		{"cross-origin", "POST", "/heartbeat", `{"room":"r","session":"s","user":"u"}`, []string{"Sec-Fetch-Site", "cross-site"}, 403, "forbidden"},
		{"cross-origin leave", "POST", "/leave", `{"room":"r","session":"s","user":"u"}`, []string{"Origin", "https://evil.example"}, 403, "forbidden"},
		{"viewers without room", "GET", "/viewers", "", nil, 400, "invalid room ID: empty"},
		{"events without room", "GET", "/events", "", nil, 400, "invalid room ID: empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, nil)
			w := f.do(tt.method, tt.target, tt.body, tt.header...)
			requireError(t, w, tt.status, tt.contains)
			if tt.status == 405 {
				require.NotEmpty(t, w.Header().Get("Allow"))
			}
			require.Empty(t, f.list("r"), "a bad request changes nothing")
		})
	}
}

func TestMaxBodyBytes(t *testing.T) {
	f := newFixture(t, nil, presencehttp.WithMaxBodyBytes(64))
	body := `{"room":"r","session":"s","user":"u"}`
	require.Equal(t, http.StatusOK, f.do("POST", "/heartbeat", body).Code)
	body = `{"room":"r","session":"s","user":"u","pad":"` + strings.Repeat(" ", 64) + `"}`
	requireError(t, f.do("POST", "/heartbeat", body), 413, "body larger than 64 bytes")
	requireError(t, f.do("POST", "/leave", body), 413, "body larger than 64 bytes")
	require.Len(t, f.list("r"), 1, "the oversized leave changed nothing")
}

func TestCrossOriginProtection(t *testing.T) {
	cop := http.NewCrossOriginProtection()
	require.NoError(t, cop.AddTrustedOrigin("https://app.example"))
	f := newFixture(t, nil, presencehttp.WithCrossOriginProtection(cop))
	body := `{"room":"r","session":"s","user":"u"}`
	require.Equal(t, http.StatusOK, f.do("POST", "/heartbeat", body, "Origin", "https://app.example").Code)
	require.Equal(t, http.StatusOK, f.do("POST", "/heartbeat", body, "Sec-Fetch-Site", "same-origin").Code)
	requireError(t, f.do("POST", "/heartbeat", body, "Origin", "https://other.example"), 403, "forbidden")

	f = newFixture(t, nil, presencehttp.WithCrossOriginProtection(nil))
	require.Equal(t, http.StatusOK, f.do("POST", "/heartbeat", body, "Sec-Fetch-Site", "cross-site").Code)
}

// failing is a Store whose every call fails.
type failing struct{ presence.Store }

var errDown = errors.New("store down")

func (failing) Heartbeat(context.Context, presence.Beat) error { return errDown }
func (failing) Leave(context.Context, string, string, string, time.Time) error {
	return errDown
}
func (failing) List(context.Context, string, time.Time) ([]presence.Viewer, error) {
	return nil, errDown
}
func (failing) Count(context.Context, string, time.Time) (int, error) { return 0, errDown }

func TestStoreFailure(t *testing.T) {
	var logs strings.Builder
	f := newFixture(t, failing{memstore.New()}, presencehttp.WithLogger(slogTo(&logs)))
	body := `{"room":"r","session":"s","user":"u"}`
	requireError(t, f.do("POST", "/heartbeat", body), 503, "presence unavailable")
	requireError(t, f.do("POST", "/leave", body), 503, "presence unavailable")
	requireError(t, f.do("GET", "/viewers?room=r", ""), 503, "presence unavailable")
	require.Contains(t, logs.String(), "store down", "the cause is logged, not told")
	// Validation still comes first.
	requireError(t, f.do("POST", "/heartbeat", `{"room":"","session":"s","user":"u"}`), 400, "room is required")
}

func TestClosed(t *testing.T) {
	f := newFixture(t, nil)
	require.NoError(t, f.p.Close())
	requireError(t, f.do("POST", "/heartbeat", `{"room":"r","session":"s","user":"u"}`), 503, "presence unavailable")
	requireError(t, f.do("GET", "/events?room=r", ""), 503, "presence unavailable")
}

func TestTooManyWatchers(t *testing.T) {
	mock := clock.NewMock()
	p := presence.New(memstore.New(), presence.WithClock(mock), presence.WithMaxWatchers(1))
	defer p.Close()
	f := &fixture{t: t, clock: mock, p: p, h: presencehttp.New(p, presencehttp.WithClock(mock))}
	s := f.stream("r")
	s.next() // retry
	s.nextEvent("snapshot")
	w := f.do("GET", "/events?room=r", "")
	requireError(t, w, 503, "too many watchers")
	require.Equal(t, "5", w.Header().Get("Retry-After"))
	require.Equal(t, http.StatusOK, f.do("GET", "/viewers?room=r", "").Code)
}

func TestRoomFull(t *testing.T) {
	p := presence.New(memstore.New(), presence.WithMaxViewers(1))
	defer p.Close()
	f := &fixture{t: t, p: p, h: presencehttp.New(p)}
	require.Equal(t, http.StatusOK, f.do("POST", "/heartbeat", `{"room":"r","session":"s","user":"ada"}`).Code)
	w := f.do("POST", "/heartbeat", `{"room":"r","session":"s","user":"bob"}`)
	requireError(t, w, 503, "room full")
	require.Equal(t, "5", w.Header().Get("Retry-After"))
	require.Equal(t, http.StatusOK, f.do("POST", "/heartbeat", `{"room":"r","session":"t","user":"ada"}`).Code)
	require.Len(t, f.list("r"), 1)
}

func TestEventsUnsupported(t *testing.T) {
	f := newFixture(t, failing{memstore.New()})
	requireError(t, f.do("GET", "/events?room=r", ""), 501, "cannot be watched")
}

func TestIdentity(t *testing.T) {
	identity := func(r *http.Request) (string, error) {
		switch tok := r.Header.Get("Authorization"); tok {
		case "":
			return "", errors.New("no token: secret detail")
		case "banned":
			return "", fmt.Errorf("user banned: %w", presencehttp.ErrForbidden)
		case "empty":
			return "", nil
		default:
			return tok, nil
		}
	}
	f := newFixture(t, nil, presencehttp.WithIdentity(identity))

	// The body's user is ignored: the hook decides.
	w := f.do("POST", "/heartbeat", `{"room":"r","session":"s","user":"mallory"}`, "Authorization", "alice")
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	require.Contains(t, w.Body.String(), `"user":"alice"`)
	w = f.do("POST", "/heartbeat", `{"room":"r","session":"s"}`, "Authorization", "bob")
	require.Equal(t, http.StatusOK, w.Code, "no body user is needed")

	for _, target := range []string{"/heartbeat", "/leave", "/viewers?room=r", "/events?room=r"} {
		method := "GET"
		if !strings.Contains(target, "?") {
			method = "POST"
		}
		body := `{"room":"r","session":"s"}`
		w := f.do(method, target, body)
		requireError(t, w, 401, "unauthorized")
		require.NotContains(t, w.Body.String(), "secret")
		requireError(t, f.do(method, target, body, "Authorization", "empty"), 401, "unauthorized")
		requireError(t, f.do(method, target, body, "Authorization", "banned"), 403, "forbidden")
	}
	// Unauthenticated requests are refused before their body is read.
	requireError(t, f.do("POST", "/heartbeat", "junk"), 401, "unauthorized")

	// Mallory cannot end alice's session, even knowing its ID.
	require.Equal(t, http.StatusNoContent, f.do("POST", "/leave", `{"room":"r","session":"s","user":"alice"}`, "Authorization", "mallory").Code)
	vs := f.list("r")
	require.Len(t, vs, 2)
	require.Equal(t, http.StatusNoContent, f.do("POST", "/leave", `{"room":"r","session":"s"}`, "Authorization", "alice").Code)
	vs = f.list("r")
	require.Len(t, vs, 1)
	require.Equal(t, "bob", vs[0].UserID)

	w = f.do("GET", "/viewers?room=r", "", "Authorization", "bob")
	require.Equal(t, http.StatusOK, w.Code)
	require.Equal(t, http.StatusOK, f.do("GET", "/client.js", "").Code, "the client needs no identity")
}

func TestAccess(t *testing.T) {
	access := func(r *http.Request, user, room string) error {
		switch {
		case room == "secret" && user != "ada":
			return errors.New("members only")
		case room == "login":
			return presencehttp.ErrUnauthorized
		}
		return nil
	}
	f := newFixture(t, nil, presencehttp.WithAccess(access))
	require.Equal(t, http.StatusOK, f.do("POST", "/heartbeat", `{"room":"secret","session":"s","user":"ada"}`).Code)
	requireError(t, f.do("POST", "/heartbeat", `{"room":"secret","session":"s","user":"bob"}`), 403, "forbidden")
	requireError(t, f.do("POST", "/leave", `{"room":"secret","session":"s","user":"bob"}`), 403, "forbidden")
	requireError(t, f.do("POST", "/heartbeat", `{"room":"login","session":"s","user":"ada"}`), 401, "unauthorized")
	// Anonymous readers have no user: the hook refuses them the room.
	requireError(t, f.do("GET", "/viewers?room=secret", ""), 403, "forbidden")
	requireError(t, f.do("GET", "/events?room=secret", ""), 403, "forbidden")
	require.Equal(t, http.StatusOK, f.do("GET", "/viewers?room=open", "").Code)
	vs := f.list("secret")
	require.Len(t, vs, 1)
	require.Equal(t, "ada", vs[0].UserID)
}

// A hook that accepts the client's metadata keeps it when a heartbeat
// carries none.
func TestMetaHookKeepsMetaWhenAbsent(t *testing.T) {
	accept := func(r *http.Request, user string, client []byte) ([]byte, error) { return client, nil }
	f := newFixture(t, nil, presencehttp.WithMeta(accept))
	require.Equal(t, http.StatusOK, f.do("POST", "/heartbeat", `{"room":"r","session":"s","user":"u","meta":{"n":1}}`).Code)
	require.Equal(t, http.StatusOK, f.do("POST", "/heartbeat", `{"room":"r","session":"s","user":"u"}`).Code)
	require.Equal(t, `{"n":1}`, string(f.list("r")[0].Meta))
	require.Equal(t, http.StatusOK, f.do("POST", "/heartbeat", `{"room":"r","session":"s","user":"u","meta":null}`).Code)
	require.Empty(t, f.list("r")[0].Meta, "null clears")
}

// With an identity hook the client's "user" is ignored, whatever it holds.
func TestIdentityIgnoresClientUser(t *testing.T) {
	f := newFixture(t, nil, presencehttp.WithIdentity(func(*http.Request) (string, error) { return "ada", nil }))
	w := f.do("POST", "/heartbeat", `{"room":"r","session":"s","user":"not a valid id ü"}`)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	vs := f.list("r")
	require.Len(t, vs, 1)
	require.Equal(t, "ada", vs[0].UserID)
}

func TestMetaHook(t *testing.T) {
	names := map[string]string{"alice": "Alice A."}
	hook := func(r *http.Request, user string, client []byte) ([]byte, error) {
		switch string(client) {
		case `"bad"`:
			return nil, fmt.Errorf("%w: no such colour", presencehttp.ErrBadRequest)
		case `"deny"`:
			return nil, presencehttp.ErrForbidden
		case `"fail"`:
			return nil, errors.New("database down")
		}
		return json.Marshal(map[string]any{"name": names[user], "client": json.RawMessage(client)})
	}
	f := newFixture(t, nil,
		presencehttp.WithIdentity(func(r *http.Request) (string, error) { return "alice", nil }),
		presencehttp.WithMeta(hook))

	w := f.do("POST", "/heartbeat", `{"room":"r","session":"s","meta":{"name":"Fake"}}`)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	require.Equal(t, `{"client":{"name":"Fake"},"name":"Alice A."}`, string(f.list("r")[0].Meta))
	w = f.do("POST", "/heartbeat", `{"room":"r","session":"s"}`)
	require.Equal(t, http.StatusOK, w.Code)
	require.Equal(t, `{"client":null,"name":"Alice A."}`, string(f.list("r")[0].Meta), "the hook sees nil for no meta")

	requireError(t, f.do("POST", "/heartbeat", `{"room":"x","session":"s","meta":"bad"}`), 400, "no such colour")
	requireError(t, f.do("POST", "/heartbeat", `{"room":"x","session":"s","meta":"deny"}`), 403, "forbidden")
	w = f.do("POST", "/heartbeat", `{"room":"x","session":"s","meta":"fail"}`)
	requireError(t, w, 500, "internal error")
	require.NotContains(t, w.Body.String(), "database")
	require.Empty(t, f.list("x"), "a refused heartbeat changes nothing")
}

func TestClientJS(t *testing.T) {
	f := newFixture(t, nil)
	w := f.do("GET", "/client.js", "")
	require.Equal(t, http.StatusOK, w.Code)
	require.Equal(t, "text/javascript; charset=utf-8", w.Header().Get("Content-Type"))
	require.Contains(t, w.Body.String(), "export function join(")
	etag := w.Header().Get("ETag")
	require.NotEmpty(t, etag)

	w = f.do("GET", "/client.js", "", "If-None-Match", etag)
	require.Equal(t, http.StatusNotModified, w.Code)
	w = f.do("HEAD", "/client.js", "")
	require.Equal(t, http.StatusOK, w.Code)
	requireError(t, f.do("POST", "/client.js", "{}"), 405, "method not allowed")
}
