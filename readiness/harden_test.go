package readiness

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/entry-dev/entry/internal/redact"
	"github.com/entry-dev/entry/internal/throwaway"
)

// TestPostgresPasswordShapedLikeTheMessage: a password equal to the user and
// database name, or to a piece of the address, must leave the error text and
// its diagnosis intact (before, "user=xxxxx database=xxxxx" and a TLS hint;
// "xxxxx.0.0.1").
func TestPostgresPasswordShapedLikeTheMessage(t *testing.T) {
	t.Parallel()
	pg := throwaway.NewPostgres(t, throwaway.PostgresOptions{Password: "the-Right-pw-7"})
	pg.StartAndWait()
	for _, pw := range []string{"postgres", "127", "a", "refused", "failed"} {
		t.Run(pw, func(t *testing.T) {
			c, err := NewPostgres(pg.URL("postgres", pw, "postgres") + "&sslmode=prefer")
			if err != nil {
				t.Fatal(err)
			}
			pe := permanentWithin(t, c, 5*time.Second, "wrong password")
			text := pe.Error()
			if strings.Contains(text, redact.Mask) || !strings.Contains(text, `user "postgres"`) || !strings.Contains(text, "28P01") {
				t.Errorf("error text %q: want the server's words, unmasked", text)
			}
		})
	}
}

// TestPostgresDialErrorOnce: pgx reports a refused port once per TLS mode,
// over several lines; entry shows it once, on one line, with the address
// intact even when the password is "127".
func TestPostgresDialErrorOnce(t *testing.T) {
	t.Parallel()
	port := throwaway.FreePort(t)
	c, err := NewPostgres("postgres://app:127@127.0.0.1:" + strconv.Itoa(port) + "/app?sslmode=prefer")
	if err != nil {
		t.Fatal(err)
	}
	err = c.Check(context.Background())
	if err == nil {
		t.Fatal("Check on a closed port succeeded")
	}
	text := err.Error()
	if n := strings.Count(text, "connection refused"); n != 1 || strings.ContainsAny(text, "\n\t") ||
		!strings.Contains(text, "127.0.0.1:"+strconv.Itoa(port)) || strings.Contains(text, redact.Mask) {
		t.Errorf("error text %q: want one line, the refusal once, the address intact", text)
	}
	if State(err) != "connection refused" {
		t.Errorf("State = %q", State(err))
	}
}

// TestRedissAgainstPlaintextRedis: rediss:// to a plaintext Redis fails at
// once with a TLS hint, as amqps:// and https:// do, instead of waiting out
// every attempt.
func TestRedissAgainstPlaintextRedis(t *testing.T) {
	t.Parallel()
	rd := throwaway.NewRedis(t, throwaway.RedisOptions{})
	rd.StartAndWait()
	c := mustRedis(t, "rediss://"+rd.Addr()+"/0")
	permanentWithin(t, c, 3*time.Second, "does not speak TLS")
}

// TestServerTextsHaveNoControlCharacters: a NUL, CR or LF in a server's reply
// reaches no error text raw.
func TestServerTextsHaveNoControlCharacters(t *testing.T) {
	r := mustRedis(t, "redis://:pw@cache:6379/0")
	err := r.classify("AUTH", "ERR bad\x00thing\r\nforged line\x1b[31m")
	if text := err.Error(); strings.ContainsAny(text, "\x00\r\n\x1b") {
		t.Errorf("redis error text %q carries control characters", text)
	}

	// A server that answers the Postgres startup with a NUL-laden error.
	ln, lerr := net.Listen("tcp", "127.0.0.1:0")
	if lerr != nil {
		t.Fatal(lerr)
	}
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			buf := make([]byte, 1024)
			_, _ = conn.Read(buf) // the startup message
			msg := "SFATAL\x00C08P01\x00Mbad\r\nforged\x1b[2J\x00\x00"
			pkt := []byte{'E', 0, 0, 0, 0}
			n := len(msg) + 4
			pkt[1], pkt[2], pkt[3], pkt[4] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
			_, _ = conn.Write(append(pkt, msg...))
			conn.Close()
		}
	}()
	c, err := NewPostgres("postgres://app:pw@" + ln.Addr().String() + "/app?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	err = c.Check(context.Background())
	if err == nil {
		t.Fatal("Check succeeded against a fake server")
	}
	if text := err.Error() + State(err); strings.ContainsAny(text, "\x00\r\n\x1b") {
		t.Errorf("postgres error text %q carries control characters", text)
	}
	if !errors.As(err, new(*notReady)) {
		t.Errorf("08P01 should be retried: %v", err)
	}
}
