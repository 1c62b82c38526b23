package presencehttp

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	_ "embed"

	"github.com/benbjohnson/clock"
	"github.com/presence-go/presence"
)

// Errors a hook returns, wrapped or not, to choose the response's status.
var (
	// ErrBadRequest makes a response 400. Every decoding error wraps it.
	ErrBadRequest = errors.New("bad request")
	// ErrUnauthorized makes a response 401: the caller is not
	// authenticated. Any identity hook error that wraps neither this nor
	// ErrForbidden is treated as if it wrapped this.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrForbidden makes a response 403: the caller is known but not
	// allowed. Cross-origin POSTs are answered with it too.
	ErrForbidden = errors.New("forbidden")
)

// Defaults of the options.
const (
	// DefaultTTL is the TTL of heartbeats without WithTTL.
	DefaultTTL = 15 * time.Second
	// DefaultMaxBodyBytes is the limit on POST bodies without
	// WithMaxBodyBytes.
	DefaultMaxBodyBytes = 8 << 10
	// DefaultPingInterval is the ping interval of event streams without
	// WithPingInterval.
	DefaultPingInterval = 15 * time.Second
	// DefaultBodyTimeout bounds reading a POST body without
	// WithBodyTimeout.
	DefaultBodyTimeout = 10 * time.Second
	// DefaultStreamWriteTimeout bounds each write to an event stream
	// without WithStreamWriteTimeout.
	DefaultStreamWriteTimeout = 10 * time.Second
)

//go:embed client.js
var clientJS []byte

// Option configures the handler New returns.
type Option func(*handler)

// WithTTL sets the TTL of every heartbeat the handler makes; the default is
// DefaultTTL. Clients are told to beat every third of it. A TTL outside
// the Presence's limits (presence.Limits MinTTL and MaxTTL) is brought
// within them. Non-positive values keep the default.
func WithTTL(ttl time.Duration) Option {
	return func(h *handler) {
		if ttl > 0 {
			h.ttl = ttl
		}
	}
}

// WithIdentity makes fn decide who the user of every request is (except
// /client.js): fn typically reads a session cookie or a bearer token. An
// error from fn is answered 403 if it wraps ErrForbidden and 401 otherwise,
// and so is an empty user ID; the request then changes nothing. The "user"
// a client sends is ignored.
//
// Without it the handler is anonymous: reading a room is open to anyone,
// and POSTs must carry the client's own "user" ID.
func WithIdentity(fn func(r *http.Request) (userID string, err error)) Option {
	return func(h *handler) { h.identity = fn }
}

// WithAccess makes fn decide whether a user may use a room: it is called on
// every request that names a room, after the identity hook, with the
// user's ID (the client's own in anonymous mode, and "" on reads in
// anonymous mode) and the room. An error from fn is answered 401 if it
// wraps ErrUnauthorized and 403 otherwise; the request then changes
// nothing. Without it every user may use every room.
func WithAccess(fn func(r *http.Request, userID, room string) error) Option {
	return func(h *handler) { h.access = fn }
}

// WithMeta makes fn, not the client, decide a viewer's metadata. On every
// heartbeat fn receives the request, the user ID and the client's "meta"
// (compact JSON, or nil when the client sent none or null), and what it
// returns replaces the viewer's metadata: return the client's to accept it,
// something from the host's records (a display name, an avatar URL) to
// override it, or nil to clear it (nil when the client sent no "meta"
// keeps the metadata, so accepting the client's never clears it). It should return JSON; other bytes reach
// readers as a JSON string. Unchanged metadata causes no update event.
//
// An error from fn is answered 400 if it wraps ErrBadRequest, 403 if it
// wraps ErrForbidden, and 500 otherwise; the heartbeat then changes
// nothing.
//
// Without it, the client's metadata is stored as sent, subject to the
// Presence's size limit.
func WithMeta(fn func(r *http.Request, userID string, clientMeta []byte) ([]byte, error)) Option {
	return func(h *handler) { h.meta = fn }
}

// WithMaxBodyBytes limits the size of POST bodies; larger ones are answered
// 413 and change nothing. The default is DefaultMaxBodyBytes. Non-positive
// values keep the default.
func WithMaxBodyBytes(n int64) Option {
	return func(h *handler) {
		if n > 0 {
			h.maxBody = n
		}
	}
}

// WithBodyTimeout bounds the time a client may take to send a POST body,
// so that a slow or never-ending body cannot hold a handler goroutine: past
// it the request is answered 408 and changes nothing. The deadline is set
// on the connection, whatever timeouts the server has. The default is
// DefaultBodyTimeout. Non-positive values keep the default.
func WithBodyTimeout(d time.Duration) Option {
	return func(h *handler) {
		if d > 0 {
			h.bodyTimeout = d
		}
	}
}

// WithStreamWriteTimeout bounds each write to an event stream, in real
// time: a client that stops reading for that long, once the connection's
// buffers are full, is disconnected and its watcher freed, whatever
// timeouts the server has. The default is DefaultStreamWriteTimeout.
// Non-positive values keep the default.
func WithStreamWriteTimeout(d time.Duration) Option {
	return func(h *handler) {
		if d > 0 {
			h.streamTimeout = d
		}
	}
}

// WithPingInterval sets how often an /events stream sends a ": ping"
// comment line when idle, so that proxies do not close it. The default is
// DefaultPingInterval. Non-positive values keep the default.
func WithPingInterval(d time.Duration) Option {
	return func(h *handler) {
		if d > 0 {
			h.ping = d
		}
	}
}

// WithClock sets the clock that times pings. Heartbeat deadlines come from
// the Presence's own clock. The default is the real clock.
func WithClock(c clock.Clock) Option {
	return func(h *handler) {
		if c != nil {
			h.clock = c
		}
	}
}

// WithLogger sets where the handler reports the failures it answers with a
// 5xx status, whose causes it does not tell clients. The default discards
// them.
func WithLogger(l *slog.Logger) Option {
	return func(h *handler) {
		if l != nil {
			h.log = l
		}
	}
}

// WithCrossOriginProtection sets the check every POST must pass, to add
// trusted origins; a failing POST is answered 403. The default is a zero
// http.CrossOriginProtection, which rejects browser POSTs from other
// origins. nil disables the check.
func WithCrossOriginProtection(c *http.CrossOriginProtection) Option {
	return func(h *handler) { h.cop = c }
}

type handler struct {
	p             *presence.Presence
	ttl           time.Duration
	identity      func(*http.Request) (string, error)
	access        func(r *http.Request, userID, room string) error
	meta          func(*http.Request, string, []byte) ([]byte, error)
	maxBody       int64
	bodyTimeout   time.Duration
	streamTimeout time.Duration
	ping          time.Duration
	clock         clock.Clock
	log           *slog.Logger
	cop           *http.CrossOriginProtection
	etag          string
}

// New returns an http.Handler serving p; see the package documentation for
// its routes. The handler is safe for concurrent use and holds no state
// besides p: several handlers may serve one Presence.
func New(p *presence.Presence, opts ...Option) http.Handler {
	sum := sha256.Sum256(clientJS)
	h := &handler{
		p:             p,
		ttl:           DefaultTTL,
		maxBody:       DefaultMaxBodyBytes,
		bodyTimeout:   DefaultBodyTimeout,
		streamTimeout: DefaultStreamWriteTimeout,
		ping:          DefaultPingInterval,
		clock:         clock.New(),
		log:           slog.New(slog.DiscardHandler),
		cop:           &http.CrossOriginProtection{},
		etag:          `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`,
	}
	for _, o := range opts {
		o(h)
	}
	l := p.Limits()
	h.ttl = min(max(h.ttl, l.MinTTL), l.MaxTTL)
	return h
}

// ServeHTTP routes r by its path, with or without a leading slash.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var serve func(http.ResponseWriter, *http.Request)
	method := http.MethodGet
	switch strings.TrimPrefix(r.URL.Path, "/") {
	case "heartbeat":
		serve, method = h.heartbeat, http.MethodPost
	case "leave":
		serve, method = h.leave, http.MethodPost
	case "viewers":
		serve = h.viewers
	case "events":
		serve = h.events
	case "client.js":
		serve = h.client
	default:
		h.fail(w, http.StatusNotFound, "not found", nil)
		return
	}
	if r.Method != method && !(method == http.MethodGet && r.Method == http.MethodHead) {
		allow := method
		if method == http.MethodGet {
			allow = "GET, HEAD"
		}
		w.Header().Set("Allow", allow)
		h.fail(w, http.StatusMethodNotAllowed, "method not allowed", nil)
		return
	}
	if method == http.MethodPost && h.cop != nil {
		if err := h.cop.Check(r); err != nil {
			h.error(w, fmt.Errorf("%w: %v", ErrForbidden, err))
			return
		}
	}
	serve(w, r)
}

func (h *handler) heartbeat(w http.ResponseWriter, r *http.Request) {
	req, user, err := h.read(w, r)
	if err != nil {
		h.error(w, err)
		return
	}
	opts := []presence.HeartbeatOption{presence.WithSession(req.Session)}
	switch {
	case h.meta != nil:
		var client []byte
		if req.SetMeta {
			client = req.Meta
		}
		meta, err := h.meta(r, user, client)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) && !errors.Is(err, ErrForbidden) {
				h.fail(w, http.StatusInternalServerError, "internal error", fmt.Errorf("presencehttp: meta hook: %w", err))
				return
			}
			h.error(w, err)
			return
		}
		if meta != nil || req.SetMeta {
			opts = append(opts, presence.WithMeta(meta))
		}
	case req.SetMeta:
		opts = append(opts, presence.WithMeta(req.Meta))
	}
	if err := h.p.Heartbeat(r.Context(), req.Room, user, h.ttl, opts...); err != nil {
		h.error(w, err)
		return
	}
	n, err := h.p.Count(r.Context(), req.Room)
	if err != nil {
		h.error(w, err)
		return
	}
	h.json(w, http.StatusOK, heartbeatJSON{
		User:       user,
		Count:      n,
		TTLMillis:  h.ttl.Milliseconds(),
		IntervalMS: (h.ttl / 3).Milliseconds(),
	})
}

func (h *handler) leave(w http.ResponseWriter, r *http.Request) {
	req, user, err := h.read(w, r)
	if err != nil {
		h.error(w, err)
		return
	}
	if err := h.p.LeaveSession(r.Context(), req.Room, user, req.Session); err != nil {
		h.error(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *handler) viewers(w http.ResponseWriter, r *http.Request) {
	room := r.URL.Query().Get("room")
	if err := h.admitReader(r, room); err != nil {
		h.error(w, err)
		return
	}
	vs, err := h.p.List(r.Context(), room)
	if err != nil {
		h.error(w, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	h.json(w, http.StatusOK, roomJSON{Room: room, Count: len(vs), Viewers: encodeViewers(vs)})
}

func (h *handler) events(w http.ResponseWriter, r *http.Request) {
	room := r.URL.Query().Get("room")
	if err := h.admitReader(r, room); err != nil {
		h.error(w, err)
		return
	}
	ctx := r.Context()
	events, err := h.p.Watch(ctx, room)
	if err != nil {
		h.error(w, err)
		return
	}
	// The stream outlives any write timeout the server sets, but each
	// write gets its own: a client that stops reading is let go.
	rc := http.NewResponseController(w)
	deadline := func() { _ = rc.SetWriteDeadline(time.Now().Add(h.streamTimeout)) }
	deadline()
	ticker := h.clock.Ticker(h.ping)
	defer ticker.Stop()

	hdr := w.Header()
	hdr.Set("Content-Type", "text/event-stream")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	// An EventSource that loses the stream reconnects after this delay.
	if _, err := fmt.Fprint(w, "retry: 2000\n\n"); err != nil || rc.Flush() != nil {
		return
	}
	for {
		var err error
		select {
		case ev, ok := <-events:
			deadline()
			if !ok {
				return // the client went away or the Presence closed
			}
			name, data := encodeEvent(ev)
			var b []byte
			b, err = json.Marshal(data)
			if err == nil {
				_, err = fmt.Fprintf(w, "event: %s\ndata: %s\n\n", name, b)
			}
		case <-ticker.C:
			deadline()
			_, err = fmt.Fprint(w, ": ping\n\n")
		}
		if err == nil {
			err = rc.Flush()
		}
		if err != nil {
			return // cancelling ctx ends the watch
		}
	}
}

func (h *handler) client(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("Content-Type", "text/javascript; charset=utf-8")
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("ETag", h.etag)
	http.ServeContent(w, r, "client.js", time.Time{}, strings.NewReader(string(clientJS)))
}

// identify returns the user the identity hook names, or "" in anonymous
// mode. Its errors wrap ErrUnauthorized or ErrForbidden.
func (h *handler) identify(r *http.Request) (string, error) {
	if h.identity == nil {
		return "", nil
	}
	user, err := h.identity(r)
	switch {
	case err != nil && (errors.Is(err, ErrForbidden) || errors.Is(err, ErrUnauthorized)):
		return "", err
	case err != nil:
		return "", fmt.Errorf("%w: %w", ErrUnauthorized, err)
	case user == "":
		return "", fmt.Errorf("%w: no user", ErrUnauthorized)
	}
	return user, nil
}

// read identifies the user of a POST and decodes its body. The user is
// the identity hook's, or the client's own in anonymous mode.
func (h *handler) read(w http.ResponseWriter, r *http.Request) (request, string, error) {
	user, err := h.identify(r)
	if err != nil {
		return request{}, "", err
	}
	req, err := readRequest(w, r, h.maxBody, h.bodyTimeout)
	if err != nil {
		return request{}, "", err
	}
	if h.identity == nil {
		if !validClientID(req.User) {
			return request{}, "", fmt.Errorf("%w: user must be 1 to %d letters, digits, '-', '_' or '.'", ErrBadRequest, maxClientIDLen)
		}
		user = req.User
	}
	if err := h.admit(r, user, req.Room); err != nil {
		return request{}, "", err
	}
	return req, user, nil
}

// admitReader identifies the user of a read of room and checks its access.
func (h *handler) admitReader(r *http.Request, room string) error {
	user, err := h.identify(r)
	if err != nil {
		return err
	}
	return h.admit(r, user, room)
}

// admit runs the access hook, if any.
func (h *handler) admit(r *http.Request, user, room string) error {
	if h.access == nil {
		return nil
	}
	err := h.access(r, user, room)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrUnauthorized), errors.Is(err, ErrForbidden):
		return err
	}
	return fmt.Errorf("%w: %w", ErrForbidden, err)
}

// error answers err with the status it maps to.
func (h *handler) error(w http.ResponseWriter, err error) {
	var tooLarge *http.MaxBytesError
	switch {
	case errors.Is(err, errBodyTimeout):
		h.fail(w, http.StatusRequestTimeout, err.Error(), nil)
	case errors.As(err, &tooLarge):
		h.fail(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", tooLarge.Limit), nil)
	case errors.Is(err, ErrBadRequest),
		errors.Is(err, presence.ErrInvalidRoom),
		errors.Is(err, presence.ErrInvalidUser),
		errors.Is(err, presence.ErrInvalidSession),
		errors.Is(err, presence.ErrInvalidTTL),
		errors.Is(err, presence.ErrMetaTooLarge),
		errors.Is(err, presence.ErrTooManySessions):
		h.fail(w, http.StatusBadRequest, err.Error(), nil)
	case errors.Is(err, ErrForbidden):
		// Hook errors may hold details the client should not see.
		h.fail(w, http.StatusForbidden, "forbidden", nil)
	case errors.Is(err, ErrUnauthorized):
		h.fail(w, http.StatusUnauthorized, "unauthorized", nil)
	case errors.Is(err, presence.ErrTooManyWatchers):
		w.Header().Set("Retry-After", "5")
		h.fail(w, http.StatusServiceUnavailable, "too many watchers in this room", nil)
	case errors.Is(err, presence.ErrRoomFull):
		w.Header().Set("Retry-After", "5")
		h.fail(w, http.StatusServiceUnavailable, "room full", nil)
	case errors.Is(err, presence.ErrWatchUnsupported):
		h.fail(w, http.StatusNotImplemented, "this store cannot be watched", err)
	default:
		h.fail(w, http.StatusServiceUnavailable, "presence unavailable", err)
	}
}

// fail answers with status and message, logging cause if it is not nil.
func (h *handler) fail(w http.ResponseWriter, status int, message string, cause error) {
	if cause != nil {
		h.log.Error("presencehttp", "status", status, "err", cause)
	}
	h.json(w, status, errorJSON{Error: message})
}

func (h *handler) json(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil { // cannot happen with the handler's types
		status, b = http.StatusInternalServerError, []byte(`{"error":"internal error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
