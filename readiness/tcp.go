package readiness

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// TCP is ready when a TCP connection to its address can be opened. It proves
// that something listens, not that the service behind it works: prefer a
// protocol checker when there is one.
type TCP struct {
	addr string
}

// NewTCP accepts "host:port", "[::1]:port" or "tcp://host:port".
func NewTCP(addr string) (*TCP, error) {
	quoted := fmt.Sprintf(" %q", addr)
	if strings.Contains(addr, "@") {
		quoted = "" // user info has no place here, and may hold a password
	}
	a := strings.TrimPrefix(addr, "tcp://")
	a = strings.TrimSuffix(a, "/")
	host, port, err := net.SplitHostPort(a)
	switch {
	case err != nil:
		return nil, fmt.Errorf("invalid TCP address%s: want host:port", quoted)
	case host == "":
		return nil, fmt.Errorf("invalid TCP address%s: missing host", quoted)
	case strings.ContainsAny(host, "/@?# "):
		return nil, fmt.Errorf("invalid TCP address%s: bad host", quoted)
	}
	if err := checkPort(port); err != nil {
		return nil, fmt.Errorf("invalid TCP address%s: %v", quoted, err)
	}
	return &TCP{addr: net.JoinHostPort(host, port)}, nil
}

func checkPort(port string) error {
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port %q is not a number from 1 to 65535", port)
	}
	return nil
}

func (t *TCP) String() string { return "tcp " + t.addr }

// Check opens a connection and closes it again.
func (t *TCP) Check(ctx context.Context) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", t.addr)
	if err != nil {
		return err
	}
	return conn.Close()
}
