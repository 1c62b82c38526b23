package presencehttp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
	"unicode/utf8"
)

// maxClientIDLen bounds the client-chosen IDs: sessions, and users in
// anonymous mode.
const maxClientIDLen = 64

// request is a decoded POST body.
type request struct {
	Room    string
	Session string
	User    string // the client's own ID; only used in anonymous mode
	Meta    []byte // compact JSON, or nil to clear; only when SetMeta
	SetMeta bool   // the body held "meta"
}

// errBodyTimeout reports a body that did not arrive in time.
var errBodyTimeout = errors.New("body not received in time")

// readRequest reads and decodes r's body, reading at most limit bytes
// within timeout. Its errors wrap ErrBadRequest or errBodyTimeout, or are
// an *http.MaxBytesError.
func readRequest(w http.ResponseWriter, r *http.Request, limit int64, timeout time.Duration) (request, error) {
	rc := http.NewResponseController(w)
	deadline := rc.SetReadDeadline(time.Now().Add(timeout)) == nil
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err == nil && deadline {
		// On failure the deadline stays, so that the server, which may
		// try to drain the body, gives up on the connection at once.
		rc.SetReadDeadline(time.Time{})
	}
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return request{}, err
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return request{}, fmt.Errorf("%w: %v", errBodyTimeout, timeout)
		}
		return request{}, fmt.Errorf("%w: reading body: %v", ErrBadRequest, err)
	}
	return decodeRequest(data)
}

// decodeRequest is the one place a POST body is parsed and its fields
// checked for form. It never panics; its errors wrap ErrBadRequest. It does
// not apply the Presence's limits (ID and metadata sizes): the Presence
// does, and its errors say which limit was exceeded.
func decodeRequest(data []byte) (request, error) {
	var body struct {
		Room    *string         `json:"room"`
		Session *string         `json:"session"`
		User    *string         `json:"user"`
		Meta    json.RawMessage `json:"meta"`
	}
	// encoding/json would turn invalid UTF-8 into U+FFFD, making distinct
	// byte strings one ID: refuse it instead.
	if !utf8.Valid(data) {
		return request{}, fmt.Errorf("%w: body is not valid UTF-8", ErrBadRequest)
	}
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return request{}, fmt.Errorf("%w: body must be a JSON object", ErrBadRequest)
	}
	if err := json.Unmarshal(trimmed, &body); err != nil {
		return request{}, fmt.Errorf("%w: body: %v", ErrBadRequest, err)
	}
	var req request
	if body.Room == nil || *body.Room == "" {
		return request{}, fmt.Errorf("%w: room is required", ErrBadRequest)
	}
	req.Room = *body.Room
	if body.Session == nil {
		return request{}, fmt.Errorf("%w: session is required", ErrBadRequest)
	}
	req.Session = *body.Session
	if !validClientID(req.Session) {
		return request{}, fmt.Errorf("%w: session must be 1 to %d letters, digits, '-', '_' or '.'", ErrBadRequest, maxClientIDLen)
	}
	if body.User != nil {
		req.User = *body.User // checked by the handler, in anonymous mode only
	}
	if body.Meta != nil {
		req.SetMeta = true
		if !bytes.Equal(body.Meta, []byte("null")) {
			var buf bytes.Buffer
			// Compacting makes equal metadata equal bytes, so a client
			// resending it causes no update.
			if err := json.Compact(&buf, body.Meta); err != nil {
				return request{}, fmt.Errorf("%w: meta: %v", ErrBadRequest, err)
			}
			req.Meta = buf.Bytes()
		}
	}
	return req, nil
}

// validClientID reports whether id is an acceptable client-chosen ID.
func validClientID(id string) bool {
	if id == "" || len(id) > maxClientIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		switch c := id[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_', c == '.':
		default:
			return false
		}
	}
	return true
}
