package readiness

import (
	"context"
	"fmt"
	"slices"

	"crypto/tls"
	"crypto/x509"
	"errors"
	"github.com/entry-dev/entry/internal/redact"
	"github.com/jackc/pgx/v5/pgconn"
	"io"
	"net"
	"strings"
	"syscall"
)

// PermanentError is a failure that waiting will not fix: a wrong password, a
// missing database or vhost, a malformed URL. Wait stops at the first one.
// Hint, when set, tells the operator what to change.
type PermanentError struct {
	Err  error
	Hint string
}

func (e *PermanentError) Error() string {
	if e.Hint == "" {
		return e.Err.Error()
	}
	return e.Err.Error() + " (hint: " + e.Hint + ")"
}

func (e *PermanentError) Unwrap() error { return e.Err }

// ErrTimeout is wrapped by the error Wait returns when the deadline passes
// before every dependency is ready.
var ErrTimeout = errors.New("timed out waiting for dependencies")

func permanent(err error, hint string) error {
	return &PermanentError{Err: err, Hint: hint}
}

// notReady is a retryable failure that carries a short, stable description of
// the dependency's state ("57P03 the database system is starting up",
// "LOADING", "HTTP 503 master_not_discovered_exception"). Wait logs a line
// when that description changes, not on every attempt.
type notReady struct {
	state string
	err   error
}

func (e *notReady) Error() string { return e.err.Error() }
func (e *notReady) Unwrap() error { return e.err }

func retry(state string, err error) error { return &notReady{state: state, err: err} }

// State returns a short, stable description of a failed check, suitable for
// a status table or for deciding whether a dependency's state changed: the
// protocol state when the checker knows it, otherwise a network condition
// such as "connection refused", otherwise the (truncated) error text.
func State(err error) string {
	if err == nil {
		return "ready"
	}
	var nr *notReady
	if errors.As(err, &nr) {
		return nr.state
	}
	var pe *PermanentError
	if errors.As(err, &pe) {
		return "refused for good"
	}
	if s := netState(err); s != "" {
		return s
	}
	return truncate(oneLine(err.Error()), 80)
}

// netState names the network condition behind err, or returns "" when err is
// not a recognisable network failure. Every such condition is worth retrying.
func netState(err error) string {
	var dnsErr *net.DNSError
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNABORTED):
		return "connection reset"
	case errors.Is(err, syscall.EPIPE), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, net.ErrClosed):
		return "connection closed"
	case errors.Is(err, syscall.EHOSTUNREACH):
		return "host unreachable"
	case errors.Is(err, syscall.ENETUNREACH):
		return "network unreachable"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "address not available"
	case errors.As(err, &dnsErr):
		if dnsErr.IsNotFound {
			return "host not found"
		}
		return "DNS error"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, syscall.ETIMEDOUT), isTimeout(err):
		return "timeout"
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) {
		return opErr.Op + " error"
	}
	return ""
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// tlsProblem returns a hint when err shows a TLS set-up problem that retrying
// cannot fix (a plaintext server behind a TLS URL, an untrusted certificate).
func tlsProblem(err error) (string, bool) {
	var recErr tls.RecordHeaderError
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var invalid x509.CertificateInvalidError
	var verify *tls.CertificateVerificationError
	switch {
	case errors.As(err, &recErr):
		return "the server does not speak TLS on this port: use the plaintext scheme or the TLS port", true
	case errors.As(err, &unknownCA), errors.As(err, &verify):
		return "the server's certificate is not signed by a trusted CA: provide the CA certificate", true
	case errors.As(err, &hostErr):
		return "the server's certificate does not name this host: connect by the name in the certificate", true
	case errors.As(err, &invalid):
		return "the server's certificate is invalid (expired or not yet valid?)", true
	}
	return "", false
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	// Do not cut a UTF-8 sequence in half.
	for n > 0 && n < len(s) && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n] + "…"
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// shownError is an error whose text was built for printing (one line, no
// control characters) over the driver's error, which it still wraps for
// errors.Is and errors.As.
type shownError struct {
	msg string
	err error
}

func (e *shownError) Error() string { return e.msg }
func (e *shownError) Unwrap() error { return e.err }

// pgText renders a pgx connection error on one line. pgx joins the error of
// each address it tried with "\n\t", and with sslmode=prefer tries each
// address twice (TLS, then plain), so a refused port is reported twice over
// several lines; here each distinct failure appears once, separated by "; ".
// pgx names the user and database, never the password.
func pgText(err error) string {
	var ce *pgconn.ConnectError
	if !errors.As(err, &ce) || ce.Config == nil {
		return redact.Clean(oneLine(err.Error()))
	}
	var parts []string
	inner := ce.Unwrap()
	errs := []error{inner}
	if j, ok := inner.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	for _, e := range errs {
		if e == nil {
			continue
		}
		if t := oneLine(e.Error()); !slices.Contains(parts, t) {
			parts = append(parts, t)
		}
	}
	return redact.Clean(fmt.Sprintf("failed to connect to `user=%s database=%s`: %s",
		ce.Config.User, ce.Config.Database, strings.Join(parts, "; ")))
}
