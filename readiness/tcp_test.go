package readiness

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/entry-dev/entry/internal/throwaway"
)

func TestTCP(t *testing.T) {
	// A free port, which Wait must find once it listens.
	addr := throwaway.FreeAddr(t)
	c, err := NewTCP("tcp://" + addr)
	if err != nil {
		t.Fatal(err)
	}
	if c.String() != "tcp "+addr {
		t.Errorf("String() = %q", c.String())
	}
	rec := &recorder{}
	wait := waitAsync(c, fastOptions(rec, 10*time.Second))
	time.Sleep(50 * time.Millisecond)
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	if st := rec.states(); len(st) != 1 || st[0] != "connection refused" {
		t.Errorf("states = %q", st)
	}
}

func TestTCPIPv6(t *testing.T) {
	l, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Logf("no IPv6 loopback here (%v); checking parsing only", err)
		if _, err := NewTCP("[::1]:5432"); err != nil {
			t.Fatal(err)
		}
		return
	}
	defer l.Close()
	c, err := NewTCP(l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := c.Check(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestNewTCP(t *testing.T) {
	for _, in := range []string{"db:5432", "[::1]:5432", "tcp://db:5432", "tcp://db:5432/", "10.0.0.1:1"} {
		if _, err := NewTCP(in); err != nil {
			t.Errorf("NewTCP(%q): %v", in, err)
		}
	}
	for _, in := range []string{"", "db", ":5432", "db:0", "db:65536", "db:http", "::1:5432", "a b:1", "tcp://u:Secret-pw@db:5432"} {
		_, err := NewTCP(in)
		if err == nil {
			t.Errorf("NewTCP(%q) accepted", in)
			continue
		}
		if strings.Contains(err.Error(), "Secret-pw") {
			t.Errorf("NewTCP error leaks: %v", err)
		}
	}
}
