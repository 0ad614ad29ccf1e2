// Package report sends to Sentry what the app's own SDK cannot: entry's incidents
// (a dependency that refused or never came, a failed release step, a lost release
// lock, a crash loop, a process killed by a signal entry did not send). One event
// per incident, sent in the background and flushed within a bound at exit.
package report

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/entry-dev/entry/internal/redact"
	"github.com/getsentry/sentry-go"
)

// DefaultTimeout bounds one send and the flush at exit.
const DefaultTimeout = 2 * time.Second

// MaxLines is how many output lines an event carries at most.
const MaxLines = 50

// Options configures a Reporter. DSN is the app's SENTRY_DSN; Release and
// Environment are SENTRY_RELEASE and SENTRY_ENVIRONMENT, as the app's SDK reads
// them. Secrets are masked wherever they appear in an event, as a last line of
// defence behind the structural masking of URLs.
type Options struct {
	DSN         string
	Release     string
	Environment string
	ServerName  string
	Timeout     time.Duration // DefaultTimeout when 0
	Secrets     []string
	Log         *slog.Logger // receives the one warning when Sentry cannot be reached
}

// Incident kinds, the "incident" tag of an event.
const (
	KindDependency = "dependency" // a dependency refused for good or never came (69)
	KindRelease    = "release"    // a release step failed
	KindLockLost   = "lock-lost"  // the release lock's session ended during a step (75)
	KindCrashLoop  = "crash-loop" // a process exceeded the restart limit
	KindKilled     = "killed"     // a signal entry did not send killed a process
)

// Event is one incident. Cause is the one-line message; Process names the
// process, release step or dependency it is about. Lines are the last lines of
// its output, Exits its last exits (a crash loop).
type Event struct {
	Kind    string
	Phase   string // wait, release, running, stopping
	Process string
	Cause   string
	Status  int // the exit status it caused, 0 if none
	Lines   []string
	Exits   []string
	Tags    map[string]string
}

// Reporter sends events to one Sentry project. A nil *Reporter sends nothing.
type Reporter struct {
	client  *sentry.Client
	timeout time.Duration
	secrets []string
	log     *slog.Logger
	warn    sync.Once
	host    string
}

// ErrDSN is an invalid DSN. Its text never quotes the DSN, which holds the key.
var ErrDSN = errors.New("not a valid Sentry DSN (want https://KEY@HOST/PROJECT_ID)")

// CheckDSN validates a DSN without echoing any part of it.
func CheckDSN(dsn string) error {
	u, err := url.Parse(dsn)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.User == nil || u.User.Username() == "" || u.Hostname() == "" {
		return ErrDSN
	}
	if strings.Trim(u.Path, "/") == "" || strings.HasSuffix(u.Path, "/") {
		return ErrDSN
	}
	return nil
}

// New returns a Reporter for opt.DSN, or nil and no error when DSN is empty.
func New(opt Options) (*Reporter, error) {
	if opt.DSN == "" {
		return nil, nil
	}
	if err := CheckDSN(opt.DSN); err != nil {
		return nil, err
	}
	if opt.Timeout <= 0 {
		opt.Timeout = DefaultTimeout
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	u, _ := url.Parse(opt.DSN)
	r := &Reporter{timeout: opt.Timeout, secrets: opt.Secrets, log: opt.Log, host: u.Host}
	// An empty Release would make the SDK guess one, running git as a child of
	// PID 1; a placeholder stops that and BeforeSend puts back the real value.
	release := opt.Release
	placeholder := release
	if placeholder == "" {
		placeholder = "unset"
	}
	c, err := sentry.NewClient(sentry.ClientOptions{
		Dsn:                  opt.DSN,
		Release:              placeholder,
		Environment:          opt.Environment,
		ServerName:           opt.ServerName,
		HTTPClient:           &http.Client{Transport: &watch{base: http.DefaultTransport, r: r}, Timeout: opt.Timeout},
		DisableClientReports: true,
		SendDefaultPII:       false,
		BeforeSend: func(e *sentry.Event, _ *sentry.EventHint) *sentry.Event {
			e.Release = release
			return e
		},
		// Only the runtime context: the module list and source lines are entry's,
		// not the app's, and say nothing about the incident.
		Integrations: func([]sentry.Integration) []sentry.Integration { return nil },
	})
	if err != nil {
		return nil, ErrDSN
	}
	r.client = c
	return r, nil
}

// Incident queues one event; it never blocks on the network.
func (r *Reporter) Incident(ev Event) {
	if r == nil {
		return
	}
	e := sentry.NewEvent()
	e.Level = sentry.LevelError
	e.Logger = "entry"
	e.Message = r.clean(ev.Cause)
	tags := map[string]string{"phase": ev.Phase, "incident": ev.Kind}
	if ev.Process != "" {
		tags["process"] = r.clean(ev.Process)
	}
	if ev.Status != 0 {
		tags["status"] = fmt.Sprint(ev.Status)
	}
	for k, v := range ev.Tags {
		tags[k] = r.clean(v)
	}
	e.Tags = tags
	// One issue per kind of incident and process, whatever pids or
	// durations the message carries.
	e.Fingerprint = []string{"entry", ev.Kind, ev.Phase, tags["process"]}
	ctx := sentry.Context{"cause": e.Message}
	if ev.Status != 0 {
		ctx["status"] = ev.Status
	}
	if lines := r.lines(ev.Lines); len(lines) > 0 {
		ctx["output"] = lines
	}
	if len(ev.Exits) > 0 {
		ctx["exits"] = r.lines(ev.Exits)
	}
	e.Contexts = map[string]sentry.Context{"incident": ctx}
	r.client.CaptureEvent(e, nil, nil)
}

// Flush waits for the queued events, at most the Reporter's timeout; one
// warning line says when they could not all be sent.
func (r *Reporter) Flush() {
	if r == nil {
		return
	}
	if !r.client.Flush(r.timeout) {
		r.warnOnce("no answer within " + r.timeout.String())
	}
}

func (r *Reporter) lines(in []string) []string {
	if len(in) > MaxLines {
		in = in[len(in)-MaxLines:]
	}
	out := make([]string, len(in))
	for i, l := range in {
		out[i] = r.clean(l)
	}
	return out
}

// clean masks by structure: URL passwords, secret assignments and flags, and each known
// secret where it stands as a whole word.
func (r *Reporter) clean(s string) string {
	return redact.Command(s, r.secrets...)
}

func (r *Reporter) warnOnce(why string) {
	r.warn.Do(func() {
		r.log.Warn("cannot report to Sentry: "+why+"; the incident is in this log only", "host", r.host)
	})
}

// watch turns a failed send into the Reporter's one warning. Its errors never
// carry the DSN: the key travels in a header, and only the host is named.
type watch struct {
	base http.RoundTripper
	r    *Reporter
}

func (w *watch) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := w.base.RoundTrip(req)
	switch {
	case err != nil:
		why := "connection failed"
		if errors.Is(err, context.DeadlineExceeded) {
			why = "timed out"
		}
		w.r.warnOnce(why)
	case resp.StatusCode >= 300:
		w.r.warnOnce("HTTP " + resp.Status)
	}
	return resp, err
}
