package readiness

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/entry-dev/entry/internal/redact"
)

// Redis is ready when it answers PING after AUTH and SELECT, spoken in a
// minimal RESP exchange. LOADING, BUSY, MASTERDOWN and TRYAGAIN mean wait;
// NOPERM on PING means ready (the user is authenticated, just not allowed
// to ping); NOAUTH, WRONGPASS and AUTH against a server without a password
// are permanent, as they are for redis-py in the application.
type Redis struct {
	addr      string
	tls       *tls.Config // nil for redis://
	user      string
	pass      string
	auth      bool
	db        int
	target    string
	urlHasPwd bool
}

// NewRedis accepts redis-py's URL forms: redis://[[user]:[password]@]host[:port][/db],
// rediss:// for TLS (?ssl_cert_reqs=none disables certificate checks, as in
// redis-py), and ?db=N.
func NewRedis(rawURL string) (*Redis, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, badURL("Redis")
	}
	if strayAt(rawURL) {
		return nil, ambiguousURL("Redis")
	}
	user, pass, hasPass := userinfo(u)
	// The arguments are the scheme, the port and the path: never the user information.
	fail := func(format string, args ...any) (*Redis, error) {
		return nil, errors.New(redact.Clean("invalid Redis URL: " + fmt.Sprintf(format, args...)))
	}
	r := &Redis{user: user, pass: pass, urlHasPwd: hasPass && pass != ""}
	switch u.Scheme {
	case "redis":
	case "rediss":
		r.tls = &tls.Config{MinVersion: tls.VersionTLS12}
	default:
		return fail("scheme must be redis or rediss")
	}
	host, port := u.Hostname(), u.Port()
	if host == "" {
		host = "localhost"
	}
	if port == "" {
		port = "6379"
	}
	if err := checkPort(port); err != nil {
		return fail("%v", err)
	}
	r.addr = net.JoinHostPort(host, port)
	if r.tls != nil {
		r.tls.ServerName = host
	}
	q := u.Query()
	dbText := strings.Trim(u.Path, "/")
	if dbText == "" {
		dbText = q.Get("db")
	}
	if dbText != "" {
		n, err := strconv.Atoi(dbText)
		if err != nil || n < 0 {
			return fail("database %q is not a non-negative number", dbText)
		}
		r.db = n
	}
	switch strings.ToLower(q.Get("ssl_cert_reqs")) {
	case "", "required", "cert_required":
	case "none", "cert_none", "optional", "cert_optional":
		if r.tls != nil {
			r.tls.InsecureSkipVerify = true
		}
	default:
		return fail("ssl_cert_reqs must be none, optional or required")
	}
	// redis-py sends AUTH when a user name or a password is present:
	// AUTH user password with a user name, AUTH password without.
	r.auth = user != "" || pass != ""
	who := ""
	switch {
	case user != "" && !hasPass:
		// redis://SECRET@host is a common slip for redis://:SECRET@host:
		// a lone user name may well be a password, so it is not shown.
		who = redact.Mask + "@"
	case user != "":
		who = user + "@"
	}
	r.target = fmt.Sprintf("%s %s%s/%d", u.Scheme, who, r.addr, r.db)
	return r, nil
}

func (r *Redis) String() string { return r.target }

// Check sends AUTH (if any), SELECT (if db > 0) and PING in one write and
// reads the replies in order; the first error reply decides.
func (r *Redis) Check(ctx context.Context) error {
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", r.addr)
	if err != nil {
		return err
	}
	defer raw.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = raw.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = raw.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	conn := raw
	if r.tls != nil {
		tc, err := r.handshake(ctx, raw)
		if err != nil {
			return err
		}
		conn = tc
	}

	var cmds [][]string
	if r.auth {
		if r.user != "" {
			cmds = append(cmds, []string{"AUTH", r.user, r.pass})
		} else {
			cmds = append(cmds, []string{"AUTH", r.pass})
		}
	}
	if r.db != 0 {
		cmds = append(cmds, []string{"SELECT", strconv.Itoa(r.db)})
	}
	cmds = append(cmds, []string{"PING"})

	var out []byte
	for _, c := range cmds {
		out = appendCommand(out, c)
	}
	if _, err := conn.Write(out); err != nil {
		return r.connErr(err)
	}
	br := bufio.NewReaderSize(conn, 4096)
	for _, c := range cmds {
		msg, isErr, err := readReply(br)
		if err != nil {
			return r.connErr(err)
		}
		if isErr {
			return r.classify(c[0], msg)
		}
	}
	return nil
}

// tlsSilence is how long a TLS handshake may go without a byte from the
// server before entry asks, on a second connection, whether a plaintext Redis
// listens there. A plaintext Redis reads the ClientHello as an inline command
// that never ends (there is rarely a newline in it) and answers nothing, so
// the handshake would otherwise last the whole attempt, every attempt.
const tlsSilence = 500 * time.Millisecond

// errPlaintextRedis is the cause of a handshake stopped for that reason.
var errPlaintextRedis = errors.New("TLS handshake: the server answers plaintext Redis commands")

func (r *Redis) handshake(ctx context.Context, raw net.Conn) (*tls.Conn, error) {
	rc := &readCounter{Conn: raw}
	hctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	probe := time.AfterFunc(tlsSilence, func() {
		if rc.n.Load() == 0 && r.plaintextRedis(hctx) {
			cancel(errPlaintextRedis)
		}
	})
	defer probe.Stop()
	tc := tls.Client(rc, r.tls)
	err := tc.HandshakeContext(hctx)
	if err == nil {
		return tc, nil
	}
	if errors.Is(context.Cause(hctx), errPlaintextRedis) {
		return nil, permanent(errPlaintextRedis, "the server does not speak TLS on this port: use redis:// or the TLS port")
	}
	if hint, ok := tlsProblem(err); ok {
		return nil, permanent(err, hint)
	}
	if s := netState(err); s != "" {
		return nil, retry(s, err)
	}
	return nil, err
}

// plaintextRedis reports whether a plaintext Redis answers PING at r.addr.
// Any RESP reply counts, an error too (NOAUTH): only a Redis speaks so.
func (r *Redis) plaintextRedis(ctx context.Context) bool {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", r.addr)
	if err != nil {
		return false
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	line, err := readLine(bufio.NewReaderSize(c, 512))
	return err == nil && line != "" && strings.IndexByte("+-", line[0]) >= 0
}

// readCounter counts the bytes read through a connection.
type readCounter struct {
	net.Conn
	n atomic.Int64
}

func (c *readCounter) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func (r *Redis) connErr(err error) error {
	var pe *protocolError
	if errors.As(err, &pe) {
		return retry("not a Redis reply", err)
	}
	if s := netState(err); s != "" {
		return retry(s, err)
	}
	return err
}

// classify sorts an error reply to cmd (AUTH, SELECT or PING).
func (r *Redis) classify(cmd, msg string) error {
	code, _, _ := strings.Cut(msg, " ")
	// The reply is the server's text: it never holds what AUTH sent, and is
	// not searched for it (see package redact).
	err := errors.New(truncate(redact.Clean(oneLine(msg)), 200))
	switch code {
	case "LOADING", "BUSY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN":
		return retry(code, err)
	case "NOPERM":
		if cmd == "PING" {
			return nil // authenticated; the ACL merely forbids PING
		}
	case "NOAUTH":
		if !r.auth {
			return permanent(err, "the server requires a password and the URL has none: use redis://:PASSWORD@host:port/db")
		}
	case "WRONGPASS":
		h := "wrong password or user name, or the ACL user is disabled"
		if r.user != "" && !r.urlHasPwd {
			h += "; the URL has a user name but no password: a password alone is written redis://:PASSWORD@host"
		}
		return permanent(err, h)
	case "DENIED":
		return permanent(err, "the server runs in protected mode and refuses remote clients: set a password (requirepass) or bind/protected-mode in its configuration")
	}
	lower := strings.ToLower(msg)
	switch {
	case strings.Contains(lower, "max number of clients"):
		return retry("max number of clients reached", err)
	case cmd == "AUTH" && (strings.Contains(lower, "without any password configured") || strings.Contains(lower, "no password is set")):
		return permanent(err, "the URL has a password but the server has none, so the application's AUTH fails too: remove the password from the URL or configure requirepass")
	case cmd == "AUTH":
		return permanent(err, "the server rejected AUTH: check the password (and user name) in the URL")
	case cmd == "SELECT":
		return permanent(err, fmt.Sprintf("cannot select database %d: check the database number in the URL against the server's databases setting", r.db))
	}
	return retry(code, err)
}

// appendCommand encodes a command as a RESP array of bulk strings.
func appendCommand(b []byte, args []string) []byte {
	b = append(b, '*')
	b = strconv.AppendInt(b, int64(len(args)), 10)
	b = append(b, '\r', '\n')
	for _, a := range args {
		b = append(b, '$')
		b = strconv.AppendInt(b, int64(len(a)), 10)
		b = append(b, '\r', '\n')
		b = append(b, a...)
		b = append(b, '\r', '\n')
	}
	return b
}

type protocolError struct{ msg string }

func (e *protocolError) Error() string { return "redis protocol error: " + e.msg }

const (
	maxReplyLine  = 64 << 10
	maxReplyBulk  = 1 << 20
	maxReplyDepth = 4
)

// readReply reads one RESP2 reply. It returns the text of a simple string or
// error reply; other replies are read and discarded.
func readReply(br *bufio.Reader) (msg string, isErr bool, err error) {
	return readReplyDepth(br, 0)
}

func readReplyDepth(br *bufio.Reader, depth int) (string, bool, error) {
	line, err := readLine(br)
	if err != nil {
		return "", false, err
	}
	if line == "" {
		return "", false, &protocolError{"empty reply"}
	}
	switch line[0] {
	case '+':
		return line[1:], false, nil
	case '-':
		return line[1:], true, nil
	case ':':
		return line[1:], false, nil
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n > maxReplyBulk {
			return "", false, &protocolError{"bad bulk length"}
		}
		if n < 0 {
			return "", false, nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(br, buf); err != nil {
			return "", false, err
		}
		return string(buf[:n]), false, nil
	case '*':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n > 1024 || depth >= maxReplyDepth {
			return "", false, &protocolError{"bad array"}
		}
		for range max(n, 0) {
			if _, _, err := readReplyDepth(br, depth+1); err != nil {
				return "", false, err
			}
		}
		return "", false, nil
	}
	return "", false, &protocolError{fmt.Sprintf("unexpected reply type %q", line[0])}
}

func readLine(br *bufio.Reader) (string, error) {
	var sb strings.Builder
	for {
		chunk, err := br.ReadSlice('\n')
		sb.Write(chunk)
		if sb.Len() > maxReplyLine {
			return "", &protocolError{"reply line too long"}
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			return "", err
		}
		s := sb.String()
		if !strings.HasSuffix(s, "\r\n") {
			return "", &protocolError{"line not terminated by CRLF"}
		}
		return s[:len(s)-2], nil
	}
}
