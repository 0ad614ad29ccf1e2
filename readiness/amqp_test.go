package readiness

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/entry-dev/entry/internal/throwaway"
	amqp "github.com/rabbitmq/amqp091-go"
)

func mustAMQP(t *testing.T, url string) *AMQP {
	t.Helper()
	c, err := NewAMQP(url)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestRabbitMQServer(t *testing.T) {
	t.Parallel()
	const pass = "Mq-pw-123"
	mq := throwaway.NewRabbitMQ(t, throwaway.RabbitOptions{User: "app", Password: pass})

	ok := t.Run("started after Wait begins", func(t *testing.T) {
		c := mustAMQP(t, mq.URL("app", pass, "/"))
		if got := c.String(); got != "amqp app@"+mq.Addr()+"/%2F" {
			t.Errorf("String() = %q", got)
		}
		rec := &recorder{}
		wait := waitAsync(c, fastOptions(rec, 60*time.Second))
		time.Sleep(100 * time.Millisecond)
		t0 := time.Now()
		mq.Start()
		if err := wait(); err != nil {
			t.Fatal(err)
		}
		t.Logf("ready %v after start; states %q", time.Since(t0).Round(time.Millisecond), rec.states())
		if st := rec.states(); len(st) == 0 || st[0] != "connection refused" {
			t.Errorf("states = %q", st)
		}
	})
	if !ok {
		t.FailNow()
	}
	t.Run("missing vhost", func(t *testing.T) {
		t.Parallel()
		permanentWithin(t, mustAMQP(t, mq.URL("app", pass, "novhost")), 2*time.Second, `vhost "novhost" does not exist`, pass)
	})
	t.Run("wrong password", func(t *testing.T) {
		t.Parallel()
		t0 := time.Now()
		pe := permanentWithin(t, mustAMQP(t, mq.URL("app", "Wrong-pw-9", "/")), 5*time.Second, "password", "Wrong-pw-9", pass)
		if d := time.Since(t0); d < 2*time.Second {
			t.Errorf("refused after %v: before the broker's silent close?", d)
		}
		if !strings.Contains(pe.Hint, "RABBITMQ_DEFAULT_PASS") {
			t.Errorf("hint lacks the first-boot note: %q", pe.Hint)
		}
	})
	t.Run("short attempts confirm by repetition", func(t *testing.T) {
		t.Parallel()
		c := mustAMQP(t, mq.URL("nobody", "Nobody-pw-1", "/"))
		check := func() error {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			return c.Check(ctx)
		}
		var pe *PermanentError
		first := check()
		if first == nil || errors.As(first, &pe) {
			t.Fatalf("first refusal under a 1s deadline: %v, want a retryable error", first)
		}
		if !strings.Contains(State(first), "unconfirmed") {
			t.Errorf("state = %q", State(first))
		}
		if second := check(); !errors.As(second, &pe) {
			t.Fatalf("second refusal: %v, want permanent", second)
		}
	})
	t.Run("guest hint", func(t *testing.T) {
		t.Parallel()
		c := mustAMQP(t, strings.Replace(mq.URL("guest", "guest", "/"), "127.0.0.1", "localhost", 1))
		pe := permanentWithin(t, c, 5*time.Second, "password")
		if strings.Contains(pe.Hint, "loopback") {
			t.Errorf("guest over loopback does not need the loopback hint: %q", pe.Hint)
		}
	})
}

func TestAMQPCredentialsRule(t *testing.T) {
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ctxFar, cancel := context.WithDeadline(context.Background(), time.Now().Add(time.Hour))
	defer cancel()
	isPermanent := func(err error) bool {
		var pe *PermanentError
		return errors.As(err, &pe)
	}
	newA := func(now time.Time) *AMQP {
		a := mustAMQP(t, "amqp://app:pw@mq:5672/")
		a.now = func() time.Time { return now }
		return a
	}

	// The broker closed the socket ~3s after the dial, well before our
	// deadline: its silent close. Permanent at once.
	a := newA(base.Add(3 * time.Second))
	if err := a.classify(ctxFar, amqp.ErrCredentials, base); !isPermanent(err) {
		t.Errorf("silent close after 3s: %v, want permanent", err)
	}

	// Dropped after 0.5s: unconfirmed; a second time in a row: permanent.
	a = newA(base.Add(500 * time.Millisecond))
	if err := a.classify(ctxFar, amqp.ErrCredentials, base); isPermanent(err) {
		t.Errorf("early drop: %v, want retry", err)
	}
	if err := a.classify(ctxFar, amqp.ErrCredentials, base); !isPermanent(err) {
		t.Errorf("second early drop: %v, want permanent", err)
	}

	// Any other outcome in between resets the count.
	a = newA(base.Add(500 * time.Millisecond))
	_ = a.classify(ctxFar, amqp.ErrCredentials, base)
	_ = a.classify(ctxFar, refused(), time.Time{})
	if err := a.classify(ctxFar, amqp.ErrCredentials, base); isPermanent(err) {
		t.Errorf("after a reset: %v, want retry", err)
	}

	// Our own deadline ended the handshake, however late: unconfirmed.
	a = newA(base.Add(4 * time.Second))
	ctxPast, cancel2 := context.WithDeadline(context.Background(), base.Add(4*time.Second))
	defer cancel2()
	if err := a.classify(ctxPast, amqp.ErrCredentials, base); isPermanent(err) {
		t.Errorf("our deadline: %v, want retry", err)
	}

	// Cancelled: never counted, never permanent.
	a = newA(base.Add(4 * time.Second))
	ctxCancelled, cancel3 := context.WithCancel(context.Background())
	cancel3()
	for range 3 {
		if err := a.classify(ctxCancelled, amqp.ErrCredentials, base); isPermanent(err) {
			t.Errorf("cancelled: %v, want not permanent", err)
		}
	}
}

func TestAMQPClassifyServerErrors(t *testing.T) {
	a := mustAMQP(t, "amqp://app:pw@mq:5672/app")
	for _, tc := range []struct {
		err       error
		permanent bool
		hint      string
	}{
		{&amqp.Error{Code: 530, Reason: "NOT_ALLOWED - vhost app not found", Server: true}, true, "does not exist"},
		{&amqp.Error{Code: 530, Reason: "NOT_ALLOWED - access to vhost 'app' refused for user 'app'", Server: true}, true, "set_permissions"},
		{&amqp.Error{Code: 530, Reason: "NOT_ALLOWED - access to vhost 'app' refused for user 'app': connection limit (10) is reached", Server: true}, false, ""},
		{&amqp.Error{Code: 320, Reason: "CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'", Server: true}, false, ""},
		{&amqp.Error{Code: 403, Reason: "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN", Server: true}, true, "password"},
		{&amqp.Error{Code: 501, Reason: "read tcp 127.0.0.1:1->127.0.0.1:2: i/o timeout"}, false, ""},
		{amqp.ErrVhost, false, ""},
		{amqp.ErrSASL, true, "PLAIN"},
	} {
		err := a.classify(context.Background(), tc.err, time.Time{})
		var pe *PermanentError
		if errors.As(err, &pe) != tc.permanent {
			t.Errorf("%v: permanent = %v", tc.err, !tc.permanent)
			continue
		}
		if tc.permanent && !strings.Contains(pe.Hint, tc.hint) {
			t.Errorf("%v: hint %q lacks %q", tc.err, pe.Hint, tc.hint)
		}
	}
	if State(a.classify(context.Background(), &amqp.Error{Code: 501, Reason: "read tcp: i/o timeout"}, time.Time{})) != "AMQP handshake timeout" {
		t.Error("silent port: wrong state")
	}
	g := mustAMQP(t, "amqp://guest:guest@rabbitmq:5672/")
	var pe *PermanentError
	if err := g.classify(context.Background(), &amqp.Error{Code: 403, Server: true}, time.Time{}); !errors.As(err, &pe) || !strings.Contains(pe.Hint, "localhost") {
		t.Errorf("guest from afar: %v", err)
	}
}

func TestNewAMQP(t *testing.T) {
	for _, tc := range []struct{ in, target string }{
		{"amqp://app:pw@mq:5672/app", "amqp app@mq:5672/app"},
		{"amqp://mq", "amqp guest@mq:5672/%2F"},
		{"amqp://app:pw@mq/%2F", "amqp app@mq:5672/%2F"},
		{"amqps://app:pw@mq/vh", "amqps app@mq:5671/vh"},
		{"amqp://app:pw@[::1]:5673/", "amqp app@[::1]:5673/%2F"},
	} {
		a, err := NewAMQP(tc.in)
		if err != nil {
			t.Errorf("NewAMQP(%q): %v", tc.in, err)
			continue
		}
		if a.String() != tc.target {
			t.Errorf("NewAMQP(%q).String() = %q, want %q", tc.in, a.String(), tc.target)
		}
	}
	for _, in := range []string{"pyamqp://app:Secret-pw@mq//", "amqp://app:Secret/pw@mq/", "amqp://app:Secret-pw@mq:port/", "amqp://app:Secret pw@mq/", "http://mq"} {
		_, err := NewAMQP(in)
		if err == nil {
			t.Errorf("NewAMQP(%q) accepted", in)
			continue
		}
		noSecrets(t, err.Error(), "Secret-pw", "Secret/pw", "Secret pw")
	}
}
