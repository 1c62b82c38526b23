package storetest

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/presence-go/presence"
)

// The model test runs random operations against the stores and against a
// plain reference model of the guarantees, and checks after every step that
// they agree: List and Count after each operation, and every watcher's
// state and departures at checkpoints. A failure prints the seed; setting
// STORETEST_SEED to it replays the same sequence.

var (
	modelRooms    = []string{"r0", "r1:x", "{r2}"}
	modelUsers    = []string{"u0", "u1", "u2", "u3", "u4:a", "*"}
	modelSessions = []string{"", "a", "b"}
	modelTTLs     = []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 3 * time.Second}
	modelMetas    = [][]byte{nil, nil, {}, []byte("red"), []byte("blue")}
)

// refUser and refRoom are the reference model: plain maps, no cleverness.
type refUser struct {
	firstSeen, lastSeen time.Time
	meta                []byte
	sessions            map[string]time.Time // session → deadline
}

type refModel struct {
	rooms    map[string]map[string]*refUser
	departed map[string]int // "room\x00user" → departures so far
}

func (m *refModel) room(r string) map[string]*refUser {
	if m.rooms[r] == nil {
		m.rooms[r] = map[string]*refUser{}
	}
	return m.rooms[r]
}

// expire removes every session due at or before now.
func (m *refModel) expire(now time.Time) {
	for r, users := range m.rooms {
		for id, u := range users {
			for s, d := range u.sessions {
				if !d.After(now) {
					delete(u.sessions, s)
				}
			}
			if len(u.sessions) == 0 {
				delete(users, id)
				m.departed[r+"\x00"+id]++
			}
		}
	}
}

func (m *refModel) heartbeat(room, user, session string, now, deadline time.Time, meta []byte) {
	users := m.room(room)
	u := users[user]
	if u == nil {
		u = &refUser{firstSeen: now, meta: []byte{}, sessions: map[string]time.Time{}}
		users[user] = u
	}
	u.lastSeen = now
	u.sessions[session] = deadline
	if meta != nil {
		u.meta = slices.Clone(meta)
	}
}

func (m *refModel) leave(room, user, session string) {
	u := m.room(room)[user]
	if u == nil {
		return
	}
	if session == "" {
		clear(u.sessions)
	} else {
		delete(u.sessions, session)
	}
	if len(u.sessions) == 0 {
		delete(m.rooms[room], user)
		m.departed[room+"\x00"+user]++
	}
}

// viewers returns the model's view of room in List order.
func (m *refModel) viewers(room string) []presence.Viewer {
	var vs []presence.Viewer
	for id, u := range m.rooms[room] {
		v := presence.Viewer{UserID: id, FirstSeen: u.firstSeen, LastSeen: u.lastSeen, Sessions: len(u.sessions), Meta: u.meta}
		for _, d := range u.sessions {
			if d.After(v.Deadline) {
				v.Deadline = d
			}
		}
		vs = append(vs, v)
	}
	presence.SortViewers(vs)
	return vs
}

// modelWatcher is one watch, checked against the model.
type modelWatcher struct {
	name     string
	room     string
	ch       <-chan presence.Event
	state    map[string][]byte // user → metadata
	departed map[string]int    // user → leaves seen
	resynced bool              // a resync may legitimately hide departures
}

func (w *modelWatcher) apply(t *testing.T, ev presence.Event) {
	t.Helper()
	switch ev.Kind {
	case presence.Snapshot, presence.Resync:
		w.resynced = w.resynced || ev.Kind == presence.Resync
		clear(w.state)
		for _, v := range ev.Viewers {
			w.state[v.UserID] = v.Meta
		}
	case presence.Join:
		if _, ok := w.state[ev.Viewer.UserID]; ok {
			t.Fatalf("%s: join of %q, already present", w.name, ev.Viewer.UserID)
		}
		w.state[ev.Viewer.UserID] = ev.Viewer.Meta
	case presence.Update:
		if _, ok := w.state[ev.Viewer.UserID]; !ok {
			t.Fatalf("%s: update of absent %q", w.name, ev.Viewer.UserID)
		}
		w.state[ev.Viewer.UserID] = ev.Viewer.Meta
	case presence.Leave:
		if _, ok := w.state[ev.Viewer.UserID]; !ok {
			t.Fatalf("%s: leave of absent %q", w.name, ev.Viewer.UserID)
		}
		delete(w.state, ev.Viewer.UserID)
		w.departed[ev.Viewer.UserID]++
	default:
		t.Fatalf("%s: unexpected event kind %v", w.name, ev.Kind)
	}
}

func (w *modelWatcher) matches(m *refModel) bool {
	want := m.rooms[w.room]
	if len(want) != len(w.state) {
		return false
	}
	for id, u := range want {
		meta, ok := w.state[id]
		if !ok || !bytes.Equal(meta, u.meta) {
			return false
		}
	}
	if w.resynced {
		return true
	}
	for _, id := range modelUsers {
		if w.departed[id] != m.departed[w.room+"\x00"+id] {
			return false
		}
	}
	return true
}

// converge reads w's events until its state and departures equal the
// model's, failing if they do not within the timeout.
func (w *modelWatcher) converge(t *testing.T, e *env, m *refModel, step int) {
	t.Helper()
	timeout := time.After(e.suite.Timeout)
	for !w.matches(m) {
		select {
		case ev, ok := <-w.ch:
			if !ok {
				t.Fatalf("step %d: %s: channel closed", step, w.name)
			}
			w.apply(t, ev)
		case <-timeout:
			t.Fatalf("step %d: %s: state %q departures %v, model %v departures %v",
				step, w.name, w.state, w.departed, m.viewers(w.room), m.departed)
		}
	}
}

// testModel runs the model on one Presence and, for a shared store, on
// three Presence instances over one namespace.
func testModel(t *testing.T, e *env) {
	counts := []int{1}
	if e.suite.Shared {
		counts = append(counts, 3)
	}
	for _, n := range counts {
		t.Run(fmt.Sprintf("instances=%d", n), func(t *testing.T) {
			runModel(t, &env{suite: e.suite, ns: fmt.Sprintf("%s-%d", e.ns, n), mock: newMock()}, n)
		})
	}
}

func runModel(t *testing.T, e *env, instances int) {
	seed := e.suite.Seed
	if s := os.Getenv("STORETEST_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	if seed == 0 {
		seed = rand.Uint64()
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("model seed %d: rerun with STORETEST_SEED=%d", seed, seed)
		}
	})
	rng := rand.New(rand.NewPCG(seed, 0))
	steps := e.suite.ModelSteps
	if steps <= 0 {
		steps = 1000
	}
	var ps []*presence.Presence
	var ws []*modelWatcher
	for i := range instances {
		p := e.presence(t)
		ps = append(ps, p)
		for _, room := range modelRooms {
			w := &modelWatcher{
				name:     fmt.Sprintf("instance %d watching %q", i, room),
				room:     room,
				ch:       e.watch(t, p, room),
				state:    map[string][]byte{},
				departed: map[string]int{},
			}
			ws = append(ws, w)
		}
	}
	m := &refModel{rooms: map[string]map[string]*refUser{}, departed: map[string]int{}}
	ctx := context.Background()
	pick := func(xs []string) string { return xs[rng.IntN(len(xs))] }

	for step := range steps {
		p := ps[rng.IntN(len(ps))]
		room, user, session := pick(modelRooms), pick(modelUsers), pick(modelSessions)
		now := time.UnixMilli(e.mock.Now().UnixMilli())
		var op string
		switch k := rng.IntN(20); {
		case k < 11:
			ttl := modelTTLs[rng.IntN(len(modelTTLs))]
			meta := modelMetas[rng.IntN(len(modelMetas))]
			op = fmt.Sprintf("heartbeat(%q, %q, session %q, %v, meta %q)", room, user, session, ttl, meta)
			var opts []presence.HeartbeatOption
			if session != "" {
				opts = append(opts, presence.WithSession(session))
			}
			if meta != nil {
				opts = append(opts, presence.WithMeta(meta))
			}
			if err := p.Heartbeat(ctx, room, user, ttl, opts...); err != nil {
				t.Fatalf("step %d: %s: %v", step, op, err)
			}
			m.expire(now)
			m.heartbeat(room, user, session, now, now.Add(ttl), meta)
		case k < 13:
			op = fmt.Sprintf("leave(%q, %q)", room, user)
			if err := p.Leave(ctx, room, user); err != nil {
				t.Fatalf("step %d: %s: %v", step, op, err)
			}
			m.expire(now)
			m.leave(room, user, "")
		case k < 15 && session != "":
			op = fmt.Sprintf("leaveSession(%q, %q, %q)", room, user, session)
			if err := p.LeaveSession(ctx, room, user, session); err != nil {
				t.Fatalf("step %d: %s: %v", step, op, err)
			}
			m.expire(now)
			m.leave(room, user, session)
		default:
			d := time.Duration(rng.IntN(1500)+1) * time.Millisecond
			op = fmt.Sprintf("advance(%v)", d)
			e.mock.Add(d)
			m.expire(time.UnixMilli(e.mock.Now().UnixMilli()))
		}

		// Reads on any instance agree with the model at once.
		q := ps[rng.IntN(len(ps))]
		vs, err := q.List(ctx, room)
		if err != nil {
			t.Fatalf("step %d: after %s: List: %v", step, op, err)
		}
		if want := m.viewers(room); !sameViewers(vs, want) {
			t.Fatalf("step %d: after %s: List(%q) =\n%s\nmodel:\n%s", step, op, room, fmtViewers(vs), fmtViewers(want))
		}
		n, err := q.Count(ctx, room)
		if err != nil || n != len(vs) {
			t.Fatalf("step %d: after %s: Count(%q) = %d, %v; want %d", step, op, room, n, err, len(vs))
		}
		if step%25 == 24 || step == steps-1 {
			for _, w := range ws {
				w.converge(t, e, m, step)
			}
		}
	}
	for _, w := range ws {
		if w.resynced {
			t.Logf("%s resynchronised during the run", w.name)
		}
	}
}

func sameViewers(got, want []presence.Viewer) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.UserID != w.UserID || !g.FirstSeen.Equal(w.FirstSeen) || !g.LastSeen.Equal(w.LastSeen) ||
			!g.Deadline.Equal(w.Deadline) || g.Sessions != w.Sessions || !bytes.Equal(g.Meta, w.Meta) {
			return false
		}
	}
	return true
}

func fmtViewers(vs []presence.Viewer) string {
	var b bytes.Buffer
	for _, v := range vs {
		fmt.Fprintf(&b, "  %q first %d last %d deadline %d sessions %d meta %q\n", v.UserID,
			v.FirstSeen.UnixMilli(), v.LastSeen.UnixMilli(), v.Deadline.UnixMilli(), v.Sessions, v.Meta)
	}
	return b.String()
}
