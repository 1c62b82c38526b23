package presencehttp

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"unicode/utf8"
)

func TestDecodeRequest(t *testing.T) {
	req, err := decodeRequest([]byte(" \n{\"room\":\"a:b\\n\",\"session\":\"s-1\",\"user\":\"u_2.x\",\"meta\":[ 1, {\"k\" : \"v\"} ],\"extra\":true}"))
	if err != nil {
		t.Fatal(err)
	}
	want := request{Room: "a:b\n", Session: "s-1", User: "u_2.x", Meta: []byte(`[1,{"k":"v"}]`), SetMeta: true}
	if !equalRequest(req, want) {
		t.Fatalf("got %+v, want %+v", req, want)
	}
	req, err = decodeRequest([]byte(`{"room":"r","session":"s","meta":null}`))
	if err != nil || !req.SetMeta || req.Meta != nil {
		t.Fatalf("null meta: got %+v, %v; want SetMeta and nil Meta", req, err)
	}
	if _, err := decodeRequest([]byte("{\"room\":\"r\",\"session\":\"s\",\"meta\":\"\xff\"}")); !errors.Is(err, ErrBadRequest) {
		t.Fatalf("invalid UTF-8 in meta: got %v, want ErrBadRequest", err)
	}
	req, err = decodeRequest([]byte(`{"room":"r","session":"s"}`))
	if err != nil || req.SetMeta || req.User != "" {
		t.Fatalf("no meta: got %+v, %v", req, err)
	}
}

func equalRequest(a, b request) bool {
	return a.Room == b.Room && a.Session == b.Session && a.User == b.User &&
		a.SetMeta == b.SetMeta && bytes.Equal(a.Meta, b.Meta) && (a.Meta == nil) == (b.Meta == nil)
}

// FuzzDecodeRequest checks that decoding never panics, that every error
// wraps ErrBadRequest, and that what decodes is well-formed and survives a
// round trip.
func FuzzDecodeRequest(f *testing.F) {
	for _, s := range []string{
		`{"room":"r","session":"s","user":"u"}`,
		`{"room":"r","session":"s","user":"u","meta":{"name":"Ada","c":"#f00"}}`,
		`{"room":"r","session":"s","meta":null}`,
		`{"room":"\u0000\ud800","session":"s"}`,
		`{"Room":"r","ROOM":"q","session":"s"}`,
		`{"room":"r","session":"s","meta":1e999}`,
		`null`, `[]`, `{}`, `"x"`, ``, `{"room":"r"} x`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := decodeRequest(data)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("error %v does not wrap ErrBadRequest", err)
			}
			return
		}
		if req.Room == "" || !utf8.ValidString(req.Room) {
			t.Fatalf("room %q", req.Room)
		}
		if !validClientID(req.Session) || !utf8.ValidString(req.User) {
			t.Fatalf("session %q user %q", req.Session, req.User)
		}
		if req.Meta != nil {
			if !req.SetMeta || !json.Valid(req.Meta) || !utf8.Valid(req.Meta) || bytes.Equal(req.Meta, []byte("null")) {
				t.Fatalf("meta %q", req.Meta)
			}
			var buf bytes.Buffer
			if json.Compact(&buf, req.Meta); !bytes.Equal(buf.Bytes(), req.Meta) {
				t.Fatalf("meta %q is not compact", req.Meta)
			}
		}
		// Encoding what was decoded decodes to the same request.
		body := map[string]any{"room": req.Room, "session": req.Session}
		if req.User != "" {
			body["user"] = req.User
		}
		if req.SetMeta {
			body["meta"] = json.RawMessage(req.Meta)
			if req.Meta == nil {
				body["meta"] = nil
			}
		}
		// Without HTML escaping, as json.Marshal would turn "&" in the
		// metadata into "\u0026" (testdata/fuzz found it).
		var again bytes.Buffer
		enc := json.NewEncoder(&again)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(body); err != nil {
			t.Fatal(err)
		}
		req2, err := decodeRequest(again.Bytes())
		if err != nil {
			t.Fatalf("re-decoding %s: %v", again.Bytes(), err)
		}
		if !equalRequest(req, req2) {
			t.Fatalf("round trip: %+v became %+v", req, req2)
		}
	})
}
