package presence

import (
	"context"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/benbjohnson/clock"
)

// Presence tracks who is in which room. Host code holds one per process and
// shares it between goroutines: every method is safe for concurrent use.
//
// A user is present in a room from its first heartbeat until all of its
// sessions have left or reached their deadlines. Deadlines come from the
// Presence's clock, and an expiry timer on that clock removes expired users
// when their deadline passes, so watchers learn of the departure then.
type Presence struct {
	store       Store
	sub         Subscriber // nil when the store cannot be watched
	clock       clock.Clock
	limits      Limits
	log         *slog.Logger
	buffer      int           // events a watcher may queue before it must resync
	maxWatchers int           // watchers per room; 0 is no limit
	maxViewers  int           // viewers per room; 0 is no limit
	retry       time.Duration // pause after a failed Expire or resync

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	closed atomic.Bool

	mu    sync.Mutex // guards rooms, and pairs closing with wg.Add
	rooms map[string]*roomWatch
	wg    sync.WaitGroup // expiry runs and watcher goroutines

	armMu sync.Mutex
	armed atomic.Int64 // Unix ms the timer is set for; 0 when idle
	timer *clock.Timer
}

// Option configures a Presence.
type Option func(*Presence)

// WithClock sets the clock deadlines and expiry are measured by. The default
// is the real clock; tests pass clock.NewMock().
func WithClock(c clock.Clock) Option {
	return func(p *Presence) {
		if c != nil {
			p.clock = c
		}
	}
}

// WithLimits sets the limits on IDs, metadata and TTLs. Zero fields keep
// their defaults.
func WithLimits(l Limits) Option {
	return func(p *Presence) { p.limits = l.withDefaults() }
}

// WithLogger sets where the Presence reports failures it cannot return to a
// caller, such as a failed background expiry. The default discards them.
func WithLogger(l *slog.Logger) Option {
	return func(p *Presence) {
		if l != nil {
			p.log = l
		}
	}
}

// WithWatchBuffer sets how many changes a watcher may fall behind by before
// its queue is dropped and it is resynchronised. The default is 1024.
func WithWatchBuffer(n int) Option {
	return func(p *Presence) {
		if n > 0 {
			p.buffer = n
		}
	}
}

// WithMaxWatchers caps the watchers one room may have on this Presence, so
// that one page opened many times cannot make the process hold unbounded
// streams. Watch beyond the cap returns ErrTooManyWatchers. The default, 0,
// is no cap.
func WithMaxWatchers(n int) Option {
	return func(p *Presence) {
		if n > 0 {
			p.maxWatchers = n
		}
	}
}

// WithMaxViewers caps the users one room may hold. A heartbeat that would
// add a user to a full room returns ErrRoomFull and changes nothing;
// present users keep refreshing and adding sessions. The store enforces it
// atomically, across processes for a shared store. The default, 0, is no
// cap.
func WithMaxViewers(n int) Option {
	return func(p *Presence) {
		if n > 0 {
			p.maxViewers = n
		}
	}
}

// WithRetry sets how long the Presence waits before retrying a failed
// background expiry (measured by the Presence's clock, like every
// deadline) or watcher resync (measured in real time, so that a watcher
// recovers even while a mock clock stands still). The default is one
// second.
func WithRetry(d time.Duration) Option {
	return func(p *Presence) {
		if d > 0 {
			p.retry = d
		}
	}
}

// New returns a Presence over store. The Presence owns the store from then
// on: Close closes it.
func New(store Store, opts ...Option) *Presence {
	p := &Presence{
		store:  store,
		clock:  clock.New(),
		limits: Limits{}.withDefaults(),
		log:    slog.New(slog.DiscardHandler),
		buffer: 1024,
		retry:  time.Second,
		rooms:  make(map[string]*roomWatch),
	}
	p.sub, _ = store.(Subscriber)
	for _, o := range opts {
		o(p)
	}
	if p.limits.MaxTTL < p.limits.MinTTL {
		p.limits.MaxTTL = p.limits.MinTTL
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.timer = p.clock.AfterFunc(math.MaxInt64, p.expire)
	p.timer.Stop()
	return p
}

// Limits returns the limits the Presence enforces, defaults filled in.
func (p *Presence) Limits() Limits {
	return p.limits
}

// HeartbeatOption adds to a heartbeat. WithSession and WithMeta make them.
// It is a plain value rather than a function so that passing options
// allocates nothing.
type HeartbeatOption struct {
	session    string
	meta       []byte
	setSession bool
	setMeta    bool
}

// WithSession names the session (a browser tab, a device) the heartbeat
// keeps alive. A user with several sessions counts once and leaves when its
// last session ends. Without it the heartbeat keeps the user's default
// session alive.
func WithSession(id string) HeartbeatOption {
	return HeartbeatOption{session: id, setSession: true}
}

// WithMeta sets the user's metadata, an opaque payload such as a display
// name or avatar URL. It replaces what an earlier heartbeat set, for all of
// the user's sessions; nil or empty clears it. Without it the metadata is
// kept. A change of metadata is reported to watchers as an Update. The
// Presence does not retain meta after Heartbeat returns.
func WithMeta(meta []byte) HeartbeatOption {
	return HeartbeatOption{meta: meta, setMeta: true}
}

// Heartbeat marks userID present in room until ttl from now. It is
// idempotent: repeating it never adds a second viewer, it moves the
// session's deadline to now+ttl (earlier or later). The first heartbeat of
// an absent user is reported to watchers as a Join; refreshes are not
// reported.
//
// room and userID must be non-empty and at most MaxIDLen bytes; ttl must lie
// within [MinTTL, MaxTTL]. Otherwise Heartbeat returns an error wrapping
// ErrInvalidRoom, ErrInvalidUser, ErrInvalidSession, ErrInvalidTTL or
// ErrMetaTooLarge and changes nothing.
func (p *Presence) Heartbeat(ctx context.Context, room, userID string, ttl time.Duration, opts ...HeartbeatOption) error {
	const op = "heartbeat"
	b := Beat{Room: room, UserID: userID, MaxViewers: p.maxViewers, MaxSessions: p.limits.MaxSessions}
	for _, o := range opts {
		if o.setSession {
			b.SessionID = o.session
		}
		if o.setMeta {
			b.Meta = o.meta
			if b.Meta == nil {
				b.Meta = []byte{}
			}
		}
	}
	if err := p.limits.validate(call{op: op, room: room, user: userID, session: b.SessionID,
		ttl: ttl, meta: b.Meta, checks: checkUser | checkSession | checkTTL | checkMeta}); err != nil {
		return err
	}
	if p.closed.Load() {
		return opError(op, ErrClosed)
	}
	b.Now = p.now()
	b.Deadline = b.Now.Add(ttl.Truncate(time.Millisecond))
	if err := p.store.Heartbeat(ctx, b); err != nil {
		return opError(op, err)
	}
	p.arm(b.Deadline)
	return nil
}

// Leave ends every session of userID in room. If the user was present,
// watchers receive one Leave with reason Left. Leaving when absent is not an
// error.
func (p *Presence) Leave(ctx context.Context, room, userID string) error {
	return p.leave(ctx, "leave", room, userID, "", checkUser)
}

// LeaveSession ends one named session of userID in room, as a closing tab
// does. The user leaves, and watchers receive a Leave with reason Left, only
// if it was the user's last session. sessionID must be non-empty.
func (p *Presence) LeaveSession(ctx context.Context, room, userID, sessionID string) error {
	return p.leave(ctx, "leave session", room, userID, sessionID, checkUser|checkNeedSession)
}

func (p *Presence) leave(ctx context.Context, op, room, userID, sessionID string, checks check) error {
	if err := p.limits.validate(call{op: op, room: room, user: userID, session: sessionID, checks: checks}); err != nil {
		return err
	}
	if p.closed.Load() {
		return opError(op, ErrClosed)
	}
	if err := p.store.Leave(ctx, room, userID, sessionID, p.now()); err != nil {
		return opError(op, err)
	}
	return nil
}

// List returns the users present in room, ordered by FirstSeen and then by
// UserID byte order, so the longest-present viewer comes first and the
// order is stable between calls. An unknown room is empty, not an error.
// The returned Meta slices must not be modified.
func (p *Presence) List(ctx context.Context, room string) ([]Viewer, error) {
	return p.list(ctx, "list", room)
}

func (p *Presence) list(ctx context.Context, op, room string) ([]Viewer, error) {
	if err := p.limits.validate(call{op: op, room: room}); err != nil {
		return nil, err
	}
	if p.closed.Load() {
		return nil, opError(op, ErrClosed)
	}
	vs, err := p.store.List(ctx, room, p.now())
	if err != nil {
		return nil, opError(op, err)
	}
	SortViewers(vs)
	return vs, nil
}

// Count returns the number of users present in room, without building the
// list.
func (p *Presence) Count(ctx context.Context, room string) (int, error) {
	const op = "count"
	if err := p.limits.validate(call{op: op, room: room}); err != nil {
		return 0, err
	}
	if p.closed.Load() {
		return 0, opError(op, ErrClosed)
	}
	n, err := p.store.Count(ctx, room, p.now())
	if err != nil {
		return 0, opError(op, err)
	}
	return n, nil
}

// Close ends every watch (their channels close), stops the expiry timer,
// waits for every goroutine the Presence started, and closes the store.
// Calls after Close return ErrClosed. Close is idempotent.
func (p *Presence) Close() error {
	p.mu.Lock()
	if p.closed.Swap(true) {
		p.mu.Unlock()
		return nil
	}
	rooms := p.rooms
	p.rooms = make(map[string]*roomWatch)
	p.mu.Unlock()

	p.cancel()
	p.armMu.Lock()
	p.timer.Stop()
	p.armMu.Unlock()
	for _, rw := range rooms {
		rw.unsubscribe()
	}
	p.wg.Wait()
	if err := p.store.Close(); err != nil {
		return opError("close", err)
	}
	return nil
}

// now returns the clock's time at the millisecond precision stores keep.
func (p *Presence) now() time.Time {
	return time.UnixMilli(p.clock.Now().UnixMilli())
}

// enter registers a goroutine or background run with Close, reporting false
// once the Presence is closed.
func (p *Presence) enter() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed.Load() {
		return false
	}
	p.wg.Add(1)
	return true
}

// arm makes sure the expiry timer fires no later than deadline. The common
// case, a deadline after the one already set, costs one atomic load.
func (p *Presence) arm(deadline time.Time) {
	ms := deadline.UnixMilli()
	if cur := p.armed.Load(); cur != 0 && cur <= ms {
		return
	}
	p.armMu.Lock()
	defer p.armMu.Unlock()
	if cur := p.armed.Load(); (cur != 0 && cur <= ms) || p.closed.Load() {
		return
	}
	p.armed.Store(ms)
	if d := deadline.Sub(p.clock.Now()); d > 0 {
		p.timer.Reset(d)
		return
	}
	// Already due. A mock clock fires a timer set in the past only when it
	// next moves, which may be never: expire now instead.
	p.timer.Stop()
	if p.enter() {
		go func() {
			defer p.wg.Done()
			p.runExpiry()
		}()
	}
}

// expire runs when the timer fires.
func (p *Presence) expire() {
	if !p.enter() {
		return
	}
	defer p.wg.Done()
	p.runExpiry()
}

// runExpiry removes what has expired and sets the timer for the next
// deadline the store reports.
func (p *Presence) runExpiry() {
	p.armMu.Lock()
	p.armed.Store(0)
	p.armMu.Unlock()

	now := p.now()
	next, err := p.store.Expire(p.ctx, now)
	if err != nil {
		if p.ctx.Err() == nil {
			p.log.Error("presence: expire", "err", err)
		}
		next = now.Add(p.retry)
	}
	if !next.IsZero() {
		p.arm(next)
	}
}
