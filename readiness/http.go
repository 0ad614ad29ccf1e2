package readiness

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/entry-dev/entry/internal/redact"
)

// HTTPOptions configures TLS for NewHTTP.
type HTTPOptions struct {
	CAFile   string // PEM file of extra trusted CAs (Elasticsearch 8 generates its own)
	CA       []byte // the same, already read by the caller; used instead of CAFile
	Insecure bool   // skip certificate verification
}

// HTTP is ready when a GET answers 2xx.
//
// Status policy (Elasticsearch cluster health included):
//   - 2xx: ready.
//   - 408 (health timed out), 429, 502, 503 (master not discovered), 504,
//     other 5xx, 1xx/3xx, and connection errors: wait.
//   - 401 and 403: permanent. With credentials in the URL they were
//     rejected. Without, the server is up but insists on credentials this
//     URL does not carry; waiting cannot change that, and counting it as
//     ready would report a health endpoint that was never consulted.
//   - 404: permanent (wrong path); any other 4xx: permanent.
type HTTP struct {
	url      *url.URL // without user info
	user     string
	pass     string
	hasCreds bool
	client   *http.Client
	target   string
	// serverWait is how long the server may legitimately hold the request
	// (Elasticsearch's wait_for_* with timeout).
	serverWait time.Duration
}

// NewHTTP accepts an http:// or https:// URL; user info becomes basic auth.
func NewHTTP(rawURL string, opt HTTPOptions) (*HTTP, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, badURL("HTTP")
	}
	if strayAt(rawURL) {
		return nil, ambiguousURL("HTTP")
	}
	user, pass, hasPass := userinfo(u)
	// The arguments are the scheme and the port: never the user information.
	fail := func(format string, args ...any) (*HTTP, error) {
		return nil, errors.New(redact.Clean("invalid HTTP URL: " + fmt.Sprintf(format, args...)))
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fail("scheme must be http or https")
	}
	if u.Hostname() == "" {
		return fail("missing host")
	}
	if p := u.Port(); p != "" {
		if err := checkPort(p); err != nil {
			return fail("%v", err)
		}
	}
	h := &HTTP{user: user, pass: pass, hasCreds: user != "" || hasPass, target: redactedURL(u)}
	c := *u
	c.User = nil
	c.Fragment, c.RawFragment = "", ""
	h.url = &c
	h.serverWait = esServerWait(c.Query())

	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: opt.Insecure}
	if opt.CA != nil || opt.CAFile != "" {
		pem := opt.CA
		if pem == nil {
			if pem, err = os.ReadFile(opt.CAFile); err != nil {
				return nil, fmt.Errorf("HTTP CA file: %w", err)
			}
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("HTTP CA file %s: no PEM certificate found", opt.CAFile)
		}
		tlsCfg.RootCAs = pool
	}
	h.client = &http.Client{Transport: &http.Transport{
		// No proxy: dependencies are reached directly, and readiness never
		// reads the environment.
		Proxy:             nil,
		DialContext:       (&net.Dialer{}).DialContext,
		TLSClientConfig:   tlsCfg,
		DisableKeepAlives: true,
		ForceAttemptHTTP2: true,
	}}
	return h, nil
}

func (h *HTTP) String() string { return h.target }

// MinAttemptTimeout exceeds the time the server may hold a cluster-health
// request, so that its 408 arrives instead of our own timeout.
func (h *HTTP) MinAttemptTimeout() time.Duration {
	if h.serverWait == 0 {
		return 0
	}
	return h.serverWait + 3*time.Second
}

// Compiled on first use: package init runs on every start of entry.
var esDuration = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^(\d+)(d|h|m|s|ms|micros|nanos)$`)
})

// esServerWait returns how long Elasticsearch may hold a request with these
// query parameters: with any wait_for_* parameter, its timeout (default 30s)
// or master_timeout, whichever is longer.
func esServerWait(q url.Values) time.Duration {
	waits := false
	for k := range q {
		if strings.HasPrefix(k, "wait_for_") {
			waits = true
		}
	}
	if !waits {
		return 0
	}
	d := 30 * time.Second
	for _, k := range []string{"timeout", "master_timeout"} {
		v := q.Get(k)
		if v == "" {
			continue
		}
		m := esDuration().FindStringSubmatch(v)
		if m == nil {
			continue // unparsable: ES would reject it; keep the default
		}
		n, _ := strconv.ParseInt(m[1], 10, 64)
		unit := map[string]time.Duration{"d": 24 * time.Hour, "h": time.Hour, "m": time.Minute, "s": time.Second,
			"ms": time.Millisecond, "micros": time.Microsecond, "nanos": time.Nanosecond}[m[2]]
		v2 := time.Hour // cap absurd values, and avoid overflow
		if n <= int64(time.Hour)/int64(unit) {
			v2 = time.Duration(n) * unit
		}
		if k == "timeout" {
			d = v2
		} else {
			d = max(d, v2)
		}
	}
	return d
}

// Check sends one GET.
func (h *HTTP) Check(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.url.String(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "entry-readiness")
	req.Header.Set("Accept", "application/json, */*;q=0.5")
	if h.hasCreds {
		req.SetBasicAuth(h.user, h.pass)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return h.transportErr(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	code := resp.StatusCode
	if code >= 200 && code < 300 {
		return nil
	}
	detail := bodySnippet(body)
	msg := fmt.Sprintf("HTTP %d %s", code, http.StatusText(code))
	if detail != "" {
		msg += ": " + detail
	}
	err = errors.New(redact.Clean(msg))
	switch {
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		if h.hasCreds {
			return permanent(err, "the server rejected the credentials in the URL: check user and password"+
				" (for Elasticsearch health, the user needs the monitor cluster privilege)")
		}
		return permanent(err, "the server requires credentials: put them in the URL (https://USER:PASSWORD@host/...)")
	case code == http.StatusNotFound:
		return permanent(err, "wrong path? nothing is served at "+h.url.Path)
	case code == http.StatusRequestTimeout, code == http.StatusTooManyRequests:
	case code >= 400 && code < 500:
		return permanent(err, "the server rejects this request; this will not change by waiting")
	}
	state := fmt.Sprintf("HTTP %d", code)
	if kind := bodyKind(body); kind != "" {
		state += " " + kind
	}
	return retry(state, err)
}

func (h *HTTP) transportErr(err error) error {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err // the URL it quotes may carry secrets in its query
	}
	if hint, ok := tlsProblem(err); ok {
		if h.url.Scheme == "https" {
			return permanent(err, hint+" (HTTPOptions.CAFile, or Insecure)")
		}
		return permanent(err, hint)
	}
	if strings.Contains(err.Error(), "server gave HTTP response to HTTPS client") {
		return permanent(err, "the server speaks plain HTTP: use http://")
	}
	if s := netState(err); s != "" {
		return retry(s, err)
	}
	return err
}

// esBody is the part of an Elasticsearch answer worth quoting: an error
// ({"error":{"type":…,"reason":…},"status":503}) or a cluster health.
type esBody struct {
	Error    json.RawMessage `json:"error"`
	Status   any             `json:"status"`
	TimedOut *bool           `json:"timed_out"`
}

type esError struct {
	Type   string `json:"type"`
	Reason string `json:"reason"`
}

// bodyKind is a short, stable label of a response body for state changes.
func bodyKind(body []byte) string {
	var b esBody
	if json.Unmarshal(body, &b) != nil {
		return ""
	}
	var e esError
	if json.Unmarshal(b.Error, &e) == nil && e.Type != "" {
		return e.Type
	}
	if s, ok := b.Status.(string); ok {
		return "cluster " + s
	}
	return ""
}

// bodySnippet is a one-line excerpt of a response body for error messages.
func bodySnippet(body []byte) string {
	var b esBody
	if json.Unmarshal(body, &b) == nil {
		var e esError
		if json.Unmarshal(b.Error, &e) == nil && e.Type != "" {
			return truncate(oneLine(e.Type+": "+e.Reason), 160)
		}
		var s string
		if json.Unmarshal(b.Error, &s) == nil && s != "" {
			return truncate(oneLine(s), 160)
		}
		if s, ok := b.Status.(string); ok {
			out := "cluster status " + s
			if b.TimedOut != nil && *b.TimedOut {
				out += " (timed out)"
			}
			return out
		}
	}
	text := oneLine(strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return ' '
	}, string(body)))
	return truncate(text, 120)
}
