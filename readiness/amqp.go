package readiness

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/entry-dev/entry/internal/redact"
	amqp "github.com/rabbitmq/amqp091-go"
)

// AMQP is ready when the AMQP handshake completes on the configured vhost
// and a channel opens.
type AMQP struct {
	url    string
	uri    amqp.URI
	target string

	// now is time.Now; tests replace it.
	now func() time.Time
	// credFails counts consecutive unconfirmed login refusals (see classify).
	credFails atomic.Int32
}

// silentCloseDelay is RabbitMQ's SILENT_CLOSE_DELAY: after a failed login the
// broker waits this long, then closes the socket without a word, because
// amqp091-go does not ask for authentication_failure_close.
const silentCloseDelay = 3 * time.Second

// NewAMQP accepts an amqp:// or amqps:// URL (pyamqp:// and librabbitmq://
// must be rewritten by the caller). Missing credentials mean guest:guest and
// an empty path means vhost "/", as in amqp091-go and kombu.
func NewAMQP(rawURL string) (*AMQP, error) {
	_, err := url.Parse(rawURL)
	if err != nil {
		return nil, badURL("AMQP")
	}
	if strayAt(rawURL) {
		return nil, ambiguousURL("AMQP")
	}
	uri, err := amqp.ParseURI(rawURL)
	if err != nil {
		if ue := (*url.Error)(nil); errors.As(err, &ue) {
			return nil, badURL("AMQP") // it quotes the URL, password included
		}
		// amqp091-go's own checks (scheme, whitespace, port) quote no password.
		return nil, fmt.Errorf("invalid AMQP URL: %s", redact.Clean(err.Error()))
	}
	vhost := uri.Vhost
	if vhost == "" {
		vhost = "/"
	}
	target := fmt.Sprintf("%s %s@%s/%s", uri.Scheme, uri.Username,
		net.JoinHostPort(uri.Host, strconv.Itoa(uri.Port)), url.PathEscape(vhost))
	return &AMQP{url: rawURL, uri: uri, target: target, now: time.Now}, nil
}

func (a *AMQP) String() string { return a.target }

// MinAttemptTimeout leaves room for the broker's silent close after a
// refused login, so that a single attempt can tell a wrong password from a
// dropped connection.
func (a *AMQP) MinAttemptTimeout() time.Duration { return silentCloseDelay + 2*time.Second }

// Check dials, completes the handshake, opens a channel and closes all.
// amqp091-go takes no context, so the dial uses ctx, the handshake is
// bounded by ctx's deadline on the socket, and a cancellation expires the
// socket at once.
func (a *AMQP) Check(ctx context.Context) error {
	deadline, hasDeadline := ctx.Deadline()
	var (
		mu     sync.Mutex
		raw    net.Conn
		dialed time.Time
	)
	expire := func() {
		mu.Lock()
		defer mu.Unlock()
		if raw != nil {
			_ = raw.SetDeadline(time.Unix(1, 0))
		}
	}
	stop := context.AfterFunc(ctx, expire)
	defer stop()

	cfg := amqp.Config{
		Properties: amqp.Table{"connection_name": "entry readiness check"},
		Dial: func(network, addr string) (net.Conn, error) {
			var d net.Dialer
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			if hasDeadline {
				_ = c.SetDeadline(deadline)
			}
			mu.Lock()
			raw, dialed = c, a.now()
			mu.Unlock()
			if ctx.Err() != nil {
				expire()
			}
			return c, nil
		},
	}
	conn, err := amqp.DialConfig(a.url, cfg)
	if err != nil {
		mu.Lock()
		t := dialed
		mu.Unlock()
		return a.classify(ctx, err, t)
	}
	// amqp091-go clears the socket deadline after the handshake; restore it
	// so that a broker that never answers channel.open cannot hold us.
	if hasDeadline {
		mu.Lock()
		_ = raw.SetDeadline(deadline)
		mu.Unlock()
	}
	closeBy := a.now().Add(time.Second)
	if hasDeadline && deadline.Before(closeBy) {
		closeBy = deadline
	}
	defer conn.CloseDeadline(closeBy)
	ch, err := conn.Channel()
	if err != nil {
		return a.classify(ctx, err, time.Time{})
	}
	_ = ch.Close()
	a.credFails.Store(0)
	return nil
}

// classify sorts amqp091-go's errors. Broker-sent errors (Server=true) are
// unambiguous. ErrCredentials (403, Server=false) is not: RabbitMQ rejects a
// bad login by closing the socket silently after silentCloseDelay, and any
// other loss of the connection after start-ok (our own deadline, a broker
// going down) produces the same error. The rule:
//
//   - permanent when the socket was closed by the broker (before our
//     deadline) at least 2.5 s after the connection opened: that is the silent
//     close, so the credentials really were refused;
//   - permanent when it happens on two consecutive attempts, whatever the
//     timing (a broker with another delay, an attempt timeout under 3 s);
//   - otherwise retry.
func (a *AMQP) classify(ctx context.Context, err error, dialed time.Time) error {
	if errors.Is(ctx.Err(), context.Canceled) {
		return err // the socket was expired on purpose; nothing to learn
	}
	var aerr *amqp.Error
	if !errors.As(err, &aerr) {
		a.credFails.Store(0)
		if hint, ok := tlsProblem(err); ok {
			return permanent(err, hint)
		}
		if s := netState(err); s != "" {
			return retry(s, err)
		}
		return err
	}
	if aerr.Server {
		// The broker's text, on one line and without control characters.
		err = &shownError{msg: redact.Clean(oneLine(err.Error())), err: err}
	}
	if aerr != amqp.ErrCredentials {
		a.credFails.Store(0)
	}
	switch {
	case aerr == amqp.ErrCredentials:
		now := a.now()
		brokerClosed := !dialed.IsZero() && now.Sub(dialed) >= silentCloseDelay-500*time.Millisecond
		if dl, ok := ctx.Deadline(); ok && !now.Before(dl.Add(-50*time.Millisecond)) {
			brokerClosed = false // our own deadline ended the handshake
		}
		if n := a.credFails.Add(1); brokerClosed || n >= 2 {
			a.credFails.Store(0)
			return permanent(err, a.credentialsHint())
		}
		return retry("AMQP login refused or handshake dropped (unconfirmed)", err)
	case aerr == amqp.ErrSASL:
		return permanent(err, "the broker offers neither PLAIN nor AMQPLAIN authentication")
	case !aerr.Server:
		// Client-side: ErrVhost (socket dropped after connection.open), frame
		// errors, "read tcp …: i/o timeout" from a silent port.
		state := "AMQP handshake failed"
		if strings.Contains(aerr.Reason, "timeout") {
			state = "AMQP handshake timeout"
		}
		return retry(state, err)
	}
	switch aerr.Code {
	case amqp.NotAllowed: // 530
		if strings.Contains(aerr.Reason, "limit") {
			return retry("AMQP 530 connection limit reached", err)
		}
		return permanent(err, a.vhostHint(redact.Clean(oneLine(aerr.Reason))))
	case amqp.AccessRefused: // 403 sent by the broker
		return permanent(err, a.credentialsHint())
	case amqp.ConnectionForced, amqp.InternalError, amqp.ResourceError:
		return retry(fmt.Sprintf("AMQP %d", aerr.Code), err)
	}
	return permanent(err, "the broker refused the connection; this will not change by waiting")
}

func (a *AMQP) credentialsHint() string {
	h := "the broker refused the login (RabbitMQ does not say why): check the user name and password in the URL"
	if a.uri.Username == "guest" && !isLoopback(a.uri.Host) {
		h = "the default user guest may only connect from localhost (RabbitMQ loopback_users): create a user for the application; " + h
	}
	return h + "; RABBITMQ_DEFAULT_USER and RABBITMQ_DEFAULT_PASS only take effect on the first boot of an empty data volume"
}

func (a *AMQP) vhostHint(reason string) string {
	vhost := a.uri.Vhost
	if strings.Contains(reason, "not found") {
		return fmt.Sprintf("vhost %q does not exist: create it (rabbitmqctl add_vhost) or fix the URL path "+
			"(the default vhost / is written %%2F or left empty); RABBITMQ_DEFAULT_VHOST only takes effect on first boot", vhost)
	}
	return fmt.Sprintf("user %q has no access to vhost %q: rabbitmqctl set_permissions -p %s %s '.*' '.*' '.*'",
		a.uri.Username, vhost, vhost, a.uri.Username)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
