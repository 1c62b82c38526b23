package presencehttp_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/presence-go/presence"
	"github.com/presence-go/presence/memstore"
	"github.com/presence-go/presence/presencehttp"
	"github.com/stretchr/testify/require"
)

func slogTo(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }

// sse is one message of an event stream: an event, or a comment.
type sse struct {
	event, data, comment string
}

// stream reads an /events response in the background.
type stream struct {
	t    *testing.T
	resp *http.Response
	msgs chan sse
}

func (f *fixture) stream(room string) *stream {
	f.t.Helper()
	srv := httptest.NewServer(f.h)
	f.t.Cleanup(srv.Close)
	ctx, cancel := context.WithCancel(context.Background())
	f.t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, "GET", srv.URL+"/events?room="+room, nil)
	require.NoError(f.t, err)
	resp, err := srv.Client().Do(req)
	require.NoError(f.t, err)
	f.t.Cleanup(func() { resp.Body.Close() })
	require.Equal(f.t, http.StatusOK, resp.StatusCode)
	require.Equal(f.t, "text/event-stream", resp.Header.Get("Content-Type"))

	s := &stream{t: f.t, resp: resp, msgs: make(chan sse, 100)}
	go func() {
		defer close(s.msgs)
		sc := bufio.NewScanner(resp.Body)
		var m sse
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if m != (sse{}) {
					s.msgs <- m
				}
				m = sse{}
			case strings.HasPrefix(line, ":"):
				m.comment = strings.TrimSpace(line[1:])
			case strings.HasPrefix(line, "event: "):
				m.event = line[len("event: "):]
			case strings.HasPrefix(line, "data: "):
				m.data = line[len("data: "):]
			case strings.HasPrefix(line, "retry: "):
				m.comment = line
			}
		}
	}()
	return s
}

// next returns the next message, failing if none comes within a generous
// real-time bound (a guard against hangs, not a wait for time to pass: the
// stream's time is the mock clock's).
func (s *stream) next() sse {
	s.t.Helper()
	select {
	case m, ok := <-s.msgs:
		require.True(s.t, ok, "stream ended")
		return m
	case <-time.After(10 * time.Second):
		s.t.Fatal("no event")
		return sse{}
	}
}

func (s *stream) nextEvent(name string) map[string]any {
	s.t.Helper()
	m := s.next()
	require.Equal(s.t, name, m.event, "message %+v", m)
	var data map[string]any
	require.NoError(s.t, json.Unmarshal([]byte(m.data), &data))
	return data
}

// ended waits for the stream to end.
func (s *stream) ended() {
	s.t.Helper()
	for {
		select {
		case _, ok := <-s.msgs:
			if !ok {
				return
			}
		case <-time.After(10 * time.Second):
			s.t.Fatal("stream did not end")
		}
	}
}

func TestEvents(t *testing.T) {
	f := newFixture(t, nil, presencehttp.WithTTL(15*time.Second), presencehttp.WithPingInterval(20*time.Second))
	beat := func(body string) {
		t.Helper()
		require.Equal(t, http.StatusOK, f.do("POST", "/heartbeat", body).Code)
	}
	beat(`{"room":"r","session":"s","user":"ada","meta":{"name":"Ada"}}`)

	s := f.stream("r")
	require.Equal(t, "retry: 2000", s.next().comment)
	snap := s.nextEvent("snapshot")
	require.Equal(t, "r", snap["room"])
	require.Equal(t, "2025-03-01T12:00:00.000Z", snap["time"])
	require.EqualValues(t, 1, snap["count"])
	viewers := snap["viewers"].([]any)
	require.Len(t, viewers, 1)
	require.Equal(t, map[string]any{
		"user": "ada", "first_seen": "2025-03-01T12:00:00.000Z", "last_seen": "2025-03-01T12:00:00.000Z",
		"deadline": "2025-03-01T12:00:15.000Z", "sessions": 1.0, "meta": map[string]any{"name": "Ada"},
	}, viewers[0])

	f.clock.Add(time.Second)
	beat(`{"room":"r","session":"b","user":"bob"}`)
	join := s.nextEvent("join")
	require.Equal(t, "bob", join["viewer"].(map[string]any)["user"])
	require.Equal(t, "2025-03-01T12:00:01.000Z", join["time"])
	require.NotContains(t, join, "reason")

	beat(`{"room":"r","session":"b","user":"bob"}`) // a refresh sends nothing
	beat(`{"room":"r","session":"b","user":"bob","meta":{"name":"Bob"}}`)
	update := s.nextEvent("update")
	require.Equal(t, map[string]any{"name": "Bob"}, update["viewer"].(map[string]any)["meta"])

	require.Equal(t, http.StatusNoContent, f.do("POST", "/leave", `{"room":"r","session":"b","user":"bob"}`, "Content-Type", "text/plain").Code)
	leave := s.nextEvent("leave")
	require.Equal(t, "left", leave["reason"])
	require.Equal(t, "bob", leave["viewer"].(map[string]any)["user"])

	// Ada's deadline is 12:00:15: the mock clock reaching it expires her.
	f.clock.Add(14 * time.Second)
	leave = s.nextEvent("leave")
	require.Equal(t, "expired", leave["reason"])
	require.Equal(t, "ada", leave["viewer"].(map[string]any)["user"])
	require.Equal(t, "2025-03-01T12:00:15.000Z", leave["time"])

	// Idle for the ping interval (20s since the stream began): a comment.
	f.clock.Add(5 * time.Second)
	require.Equal(t, sse{comment: "ping"}, s.next())

	// Closing the Presence ends the stream.
	require.NoError(t, f.p.Close())
	s.ended()
}

func TestEventsEndWhenClientGoesAway(t *testing.T) {
	f := newFixture(t, nil)
	srv := httptest.NewServer(f.h)
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", srv.URL+"/events?room=r", nil)
	require.NoError(t, err)
	resp, err := srv.Client().Do(req)
	require.NoError(t, err)
	br := bufio.NewReader(resp.Body)
	for {
		line, err := br.ReadString('\n')
		require.NoError(t, err)
		if strings.HasPrefix(line, "event: snapshot") {
			break
		}
	}
	cancel()
	resp.Body.Close()
	// goleak in TestMain proves the handler's goroutine and its watch
	// ended; srv.Close waits for the handler to return.
}

// resyncing is a memstore whose subscriptions the test can push a Resync
// into, as a store does after losing its connection.
type resyncing struct {
	*memstore.Store
	mu  sync.Mutex
	fns []func(presence.Event)
}

func (r *resyncing) Subscribe(ctx context.Context, room string, fn func(presence.Event)) (func(), error) {
	r.mu.Lock()
	r.fns = append(r.fns, fn)
	r.mu.Unlock()
	return r.Store.Subscribe(ctx, room, fn)
}

func (r *resyncing) resync(room string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, fn := range r.fns {
		fn(presence.Event{Kind: presence.Resync, Room: room})
	}
}

func TestEventsResync(t *testing.T) {
	store := &resyncing{Store: memstore.New()}
	f := newFixture(t, store)
	s := f.stream("r")
	s.next() // retry
	require.EqualValues(t, 0, s.nextEvent("snapshot")["count"])

	// A change the subscription missed, then the store's resync.
	require.NoError(t, store.Heartbeat(context.Background(), presence.Beat{
		Room: "r", UserID: "ghost", Now: start, Deadline: start.Add(time.Minute),
	}))
	s.nextEvent("join") // memstore reported it; the resync restates it
	store.resync("r")
	res := s.nextEvent("resync")
	require.EqualValues(t, 1, res["count"])
	require.Equal(t, "ghost", res["viewers"].([]any)[0].(map[string]any)["user"])
}
