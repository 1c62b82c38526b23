package presencehttp_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
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

// rawPost sends a POST whose body the caller writes by hand, and returns
// the status line's code.
func rawPost(t *testing.T, addr, head string, body func(net.Conn)) int {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(10*time.Second)))
	_, err = fmt.Fprintf(conn, "POST /heartbeat HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n%s\r\n", addr, head)
	require.NoError(t, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		body(conn)
	}()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	resp.Body.Close()
	conn.Close()
	<-done
	return resp.StatusCode
}

func TestSlowBodyTimesOut(t *testing.T) {
	p := presence.New(memstore.New())
	defer p.Close()
	srv := httptest.NewServer(presencehttp.New(p, presencehttp.WithBodyTimeout(100*time.Millisecond)))
	defer srv.Close()
	addr := srv.Listener.Addr().String()

	// Part of the body, then nothing.
	code := rawPost(t, addr, "Content-Length: 100\r\n", func(c net.Conn) {
		c.Write([]byte(`{"room":"r",`))
	})
	require.Equal(t, http.StatusRequestTimeout, code)

	// A body that never ends, a byte at a time: cut off by the timeout.
	code = rawPost(t, addr, "Transfer-Encoding: chunked\r\n", func(c net.Conn) {
		for i := 0; i < 1000; i++ {
			if _, err := c.Write([]byte("1\r\n \r\n")); err != nil {
				return
			}
			time.Sleep(5 * time.Millisecond) // a trickle, paced by the client
		}
	})
	require.Equal(t, http.StatusRequestTimeout, code)

	// A fast, endless body: cut off by the size limit.
	code = rawPost(t, addr, "Transfer-Encoding: chunked\r\n", func(c net.Conn) {
		chunk := "400\r\n" + strings.Repeat(" ", 0x400) + "\r\n"
		for i := 0; i < 1000; i++ {
			if _, err := c.Write([]byte(chunk)); err != nil {
				return
			}
		}
	})
	require.Equal(t, http.StatusRequestEntityTooLarge, code)

	n, err := p.Count(context.Background(), "r")
	require.NoError(t, err)
	require.Zero(t, n)
}

func TestMalformedBodies(t *testing.T) {
	f := newFixture(t, nil)
	bodies := []string{
		``, `null`, `[]`, `"room"`, `{`, `{"room":`, `{"room":"r","session":"s","user":"u"`,
		`{"room":1,"session":"s","user":"u"}`, `{"room":"r","session":["s"],"user":"u"}`,
		`{"room":"r","session":"s","user":"u","meta":}`,
		`{"room":"r","session":"s","user":"u","meta":"\xff"}`,
		`{"room":"r","session":"s","user":"u"}{"room":"x"}`,
		`{"room":"r","session":"s","user":"` + strings.Repeat("u", 65) + `"}`,
		`{"room":"r","session":"s","user":"u","meta":` + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + `}`,
		`{"room":"` + strings.Repeat("r", 300) + `","session":"s","user":"u"}`,
		"{\"room\":\"r\",\"session\":\"s\",\"user\":\"a\\u0000b\"}",
	}
	for _, b := range bodies {
		w := f.do("POST", "/heartbeat", b)
		require.True(t, w.Code == http.StatusBadRequest || w.Code == http.StatusRequestEntityTooLarge,
			"body %.60q: status %d %s", b, w.Code, w.Body.String())
	}
	require.Empty(t, f.list("r"))
}

// Every byte value in a room ID either works, JSON-escaped, or is refused
// with 400 (raw invalid UTF-8, which JSON would silently replace); the
// rooms never mix.
func TestEveryByteInRoom(t *testing.T) {
	f := newFixture(t, nil)
	for c := 0; c < 256; c++ {
		room := "r" + string([]byte{byte(c)})
		quoted, err := json.Marshal(room)
		require.NoError(t, err)
		if c >= 0x80 {
			quoted = []byte(`"` + room + `"`) // raw, as a hostile client sends it
		}
		w := f.do("POST", "/heartbeat", fmt.Sprintf(`{"room":%s,"session":"s","user":"u%d"}`, quoted, c))
		if c >= 0x80 {
			requireError(t, w, http.StatusBadRequest, "UTF-8")
			require.Empty(t, f.list(room))
			continue
		}
		require.Equal(t, http.StatusOK, w.Code, "room %q: %s", room, w.Body.String())
		vs := f.list(room)
		require.Len(t, vs, 1, "room %q", room)
		require.Equal(t, fmt.Sprintf("u%d", c), vs[0].UserID)
	}
	w := f.do("POST", "/heartbeat", `{"room":"r\u00e9\u0000\n{x}","session":"s","user":"u"}`)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	require.Len(t, f.list("r\u00e9\x00\n{x}"), 1)
}

func TestManyStreamsFromOneClient(t *testing.T) {
	const limit, tries = 20, 200
	p := presence.New(memstore.New(), presence.WithMaxWatchers(limit))
	srv := httptest.NewServer(presencehttp.New(p))
	defer srv.Close()
	defer p.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 0, MaxIdleConnsPerHost: tries}}
	defer client.CloseIdleConnections()
	var mu sync.Mutex
	codes := map[int]int{}
	var bodies []io.Closer
	var wg sync.WaitGroup
	for range tries {
		wg.Go(func() {
			req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/events?room=r", nil)
			resp, err := client.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			codes[resp.StatusCode]++
			if resp.StatusCode == http.StatusOK {
				bodies = append(bodies, resp.Body)
			} else {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
	wg.Wait()
	require.Equal(t, map[int]int{http.StatusOK: limit, http.StatusServiceUnavailable: tries - limit}, codes)
	cancel()
	for _, b := range bodies {
		b.Close()
	}
}

// A client that opens an event stream and never reads it is disconnected
// once its connection is full, which frees its place in the room.
func TestStreamOfNonReaderIsClosed(t *testing.T) {
	p := presence.New(memstore.New(), presence.WithMaxWatchers(1))
	srv := httptest.NewUnstartedServer(presencehttp.New(p, presencehttp.WithStreamWriteTimeout(100*time.Millisecond)))
	srv.Listener = smallBuffers{srv.Listener} // so that a few events fill them
	srv.Start()
	defer srv.Close()
	defer p.Close()
	addr := srv.Listener.Addr().String()

	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.(*net.TCPConn).SetReadBuffer(4096))
	_, err = fmt.Fprintf(conn, "GET /events?room=r HTTP/1.1\r\nHost: %s\r\n\r\n", addr)
	require.NoError(t, err)

	// Fill the stream with joins carrying large metadata until the
	// server gives up on the silent reader and the room's only watcher
	// place is free again.
	ctx := context.Background()
	meta := []byte(`"` + strings.Repeat("x", 4000) + `"`)
	client := srv.Client()
	for i := 0; i < 20_000; i++ {
		require.NoError(t, p.Heartbeat(ctx, "r", fmt.Sprint("u", i), time.Minute, presence.WithMeta(meta)))
		if i%50 != 49 {
			continue
		}
		sctx, cancel := context.WithCancel(ctx)
		req, _ := http.NewRequestWithContext(sctx, "GET", srv.URL+"/events?room=r", nil)
		resp, err := client.Do(req)
		require.NoError(t, err)
		code := resp.StatusCode
		cancel()
		resp.Body.Close()
		if code == http.StatusOK {
			t.Logf("the silent reader was let go after %d joins", i+1)
			return
		}
		require.Equal(t, http.StatusServiceUnavailable, code)
	}
	t.Fatal("the silent reader still holds the room after 20,000 joins of 4 KB")
}

// smallBuffers shrinks the send buffer of every connection it accepts.
type smallBuffers struct{ net.Listener }

func (l smallBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetWriteBuffer(4096)
	}
	return c, err
}
