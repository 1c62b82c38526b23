package presencehttp

import (
	"encoding/json"
	"time"

	"github.com/presence-go/presence"
)

// viewerJSON is a presence.Viewer as the handler sends it.
type viewerJSON struct {
	User      string          `json:"user"`
	FirstSeen jsonTime        `json:"first_seen"`
	LastSeen  jsonTime        `json:"last_seen"`
	Deadline  jsonTime        `json:"deadline"`
	Sessions  int             `json:"sessions"`
	Meta      json.RawMessage `json:"meta,omitempty"`
}

// roomJSON is the answer of /viewers, and the data of snapshot and resync
// events (which also carry Time).
type roomJSON struct {
	Room    string       `json:"room"`
	Time    *jsonTime    `json:"time,omitempty"`
	Count   int          `json:"count"`
	Viewers []viewerJSON `json:"viewers"`
}

// changeJSON is the data of join, update and leave events.
type changeJSON struct {
	Room   string     `json:"room"`
	Time   jsonTime   `json:"time"`
	Viewer viewerJSON `json:"viewer"`
	Reason string     `json:"reason,omitempty"`
}

// heartbeatJSON is the answer of /heartbeat.
type heartbeatJSON struct {
	User       string `json:"user"`
	Count      int    `json:"count"`
	TTLMillis  int64  `json:"ttl_ms"`
	IntervalMS int64  `json:"interval_ms"`
}

type errorJSON struct {
	Error string `json:"error"`
}

// jsonTime marshals as RFC 3339 in UTC with millisecond precision, the
// precision of every time a Presence reports.
type jsonTime time.Time

func (t jsonTime) MarshalJSON() ([]byte, error) {
	return time.Time(t).UTC().AppendFormat([]byte{'"'}, `2006-01-02T15:04:05.000Z07:00"`), nil
}

func encodeViewer(v presence.Viewer) viewerJSON {
	return viewerJSON{
		User:      v.UserID,
		FirstSeen: jsonTime(v.FirstSeen),
		LastSeen:  jsonTime(v.LastSeen),
		Deadline:  jsonTime(v.Deadline),
		Sessions:  v.Sessions,
		Meta:      encodeMeta(v.Meta),
	}
}

func encodeViewers(vs []presence.Viewer) []viewerJSON {
	out := make([]viewerJSON, len(vs))
	for i, v := range vs {
		out[i] = encodeViewer(v)
	}
	return out
}

// encodeMeta returns meta as a JSON value: itself when it is valid JSON,
// which is all the handler stores, or a JSON string when a host stored
// something else through the Presence directly.
func encodeMeta(meta []byte) json.RawMessage {
	switch {
	case len(meta) == 0:
		return nil
	case json.Valid(meta):
		return meta
	}
	s, _ := json.Marshal(string(meta)) // a string always marshals
	return s
}

// encodeEvent returns the SSE event name and data of ev.
func encodeEvent(ev presence.Event) (name string, data any) {
	switch ev.Kind {
	case presence.Snapshot, presence.Resync:
		t := jsonTime(ev.Time)
		return ev.Kind.String(), roomJSON{Room: ev.Room, Time: &t, Count: len(ev.Viewers), Viewers: encodeViewers(ev.Viewers)}
	case presence.Leave:
		return ev.Kind.String(), changeJSON{Room: ev.Room, Time: jsonTime(ev.Time), Viewer: encodeViewer(ev.Viewer), Reason: ev.Reason.String()}
	default:
		return ev.Kind.String(), changeJSON{Room: ev.Room, Time: jsonTime(ev.Time), Viewer: encodeViewer(ev.Viewer)}
	}
}
