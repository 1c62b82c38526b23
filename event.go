package presence

import (
	"bytes"
	"cmp"
	"fmt"
	"slices"
	"time"
)

// Viewer is one user present in a room.
type Viewer struct {
	UserID    string
	FirstSeen time.Time // when the user joined, by its first live session
	LastSeen  time.Time // the user's most recent heartbeat
	Deadline  time.Time // when the user's last live session expires
	Sessions  int       // live sessions (tabs, devices) of the user
	Meta      []byte    // opaque metadata from the latest heartbeat that set it
}

// SortViewers puts viewers in the order [Presence.List] documents: by
// FirstSeen, then by UserID byte order. Stores need not sort; the Presence
// does.
func SortViewers(vs []Viewer) {
	slices.SortFunc(vs, func(a, b Viewer) int {
		if c := a.FirstSeen.Compare(b.FirstSeen); c != 0 {
			return c
		}
		return cmp.Compare(a.UserID, b.UserID)
	})
}

// EventKind says what an [Event] reports.
type EventKind uint8

const (
	// Snapshot is the first event of every watch: Viewers holds the room's
	// viewers, in List order.
	Snapshot EventKind = iota + 1
	// Join reports a user becoming present. Viewer is the new viewer.
	Join
	// Update reports a present user's metadata changing. Viewer holds the
	// new metadata.
	Update
	// Leave reports a user's departure, with its Reason. Viewer is the
	// user's last known state.
	Leave
	// Resync replaces the watcher's state after a gap in which changes may
	// have been missed (a lagging watcher, a dropped connection). Viewers
	// holds the room's viewers, in List order. A Store sends it with no
	// viewers; the Presence fills them in before a watcher sees it.
	Resync
)

var kindNames = [...]string{"", "snapshot", "join", "update", "leave", "resync"}

// String returns the kind's lower-case name, as used by presencehttp.
func (k EventKind) String() string {
	if int(k) < len(kindNames) && k != 0 {
		return kindNames[k]
	}
	return fmt.Sprintf("EventKind(%d)", k)
}

// Reason says why a user left.
type Reason uint8

const (
	// Left means the user's last session ended by an explicit leave.
	Left Reason = iota + 1
	// Expired means the user's last session reached its deadline.
	Expired
)

// String returns "left" or "expired".
func (r Reason) String() string {
	switch r {
	case Left:
		return "left"
	case Expired:
		return "expired"
	}
	return fmt.Sprintf("Reason(%d)", r)
}

// Event is one change in a room, or a full state for Snapshot and Resync.
// Its Meta slices are shared with the store and with other watchers: read
// them, never modify them.
type Event struct {
	Kind    EventKind
	Room    string
	Time    time.Time // when the change took effect, by the Presence's clock
	Viewer  Viewer    // Join, Update, Leave
	Reason  Reason    // Leave only
	Viewers []Viewer  // Snapshot, Resync
}

// sameViewer reports whether a watcher that knows a must be told about b.
// Refreshes change LastSeen, Deadline and Sessions without an event, so
// only identity and metadata count.
func sameViewer(a, b Viewer) bool {
	return a.UserID == b.UserID && bytes.Equal(a.Meta, b.Meta)
}
