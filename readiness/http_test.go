package readiness

import (
	"context"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	esMasterNotDiscovered = `{"error":{"root_cause":[{"type":"master_not_discovered_exception","reason":null}],"type":"master_not_discovered_exception","reason":null},"status":503}`
	esUnauthenticated     = `{"error":{"root_cause":[{"type":"security_exception","reason":"missing authentication credentials for REST request [/_cluster/health]"}],"type":"security_exception","reason":"unable to authenticate user [elastic] for REST request [/_cluster/health]"},"status":401}`
	esHealthRed           = `{"cluster_name":"docker-cluster","status":"red","timed_out":true,"number_of_nodes":1}`
	esHealthYellow        = `{"cluster_name":"docker-cluster","status":"yellow","timed_out":false,"number_of_nodes":1}`
)

type response struct {
	code int
	body string
}

// scripted serves the responses in order, repeating the last one, and
// records the requests' basic-auth credentials.
type scripted struct {
	mu    sync.Mutex
	resps []response
	n     int
	auth  []string
}

func (s *scripted) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	r0 := s.resps[min(s.n, len(s.resps)-1)]
	s.n++
	u, p, _ := r.BasicAuth()
	s.auth = append(s.auth, u+":"+p)
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if r0.code == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="security" charset="UTF-8"`)
	}
	w.WriteHeader(r0.code)
	_, _ = w.Write([]byte(r0.body))
}

func esServer(t *testing.T, resps ...response) (*httptest.Server, *scripted) {
	t.Helper()
	s := &scripted{resps: resps}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return srv, s
}

func withCreds(t *testing.T, raw, user, pass, pathQuery string) string {
	t.Helper()
	u, err := url.Parse(raw + pathQuery)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		u.User = url.UserPassword(user, pass)
	}
	return u.String()
}

func mustHTTP(t *testing.T, raw string) *HTTP {
	t.Helper()
	h, err := NewHTTP(raw, HTTPOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

const healthPath = "/_cluster/health?wait_for_status=yellow&timeout=5s"

func TestHTTPElasticsearchStartup(t *testing.T) {
	srv, s := esServer(t,
		response{503, esMasterNotDiscovered},
		response{503, esMasterNotDiscovered},
		response{200, esHealthYellow})
	h := mustHTTP(t, withCreds(t, srv.URL, "elastic", "Es-pw-123", healthPath))
	rec := &recorder{}
	if err := Wait(context.Background(), []Checker{h}, fastOptions(rec, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	if s.n != 3 {
		t.Errorf("requests = %d, want 3", s.n)
	}
	if s.auth[0] != "elastic:Es-pw-123" {
		t.Errorf("basic auth = %q", s.auth[0])
	}
	if st := rec.states(); len(st) != 1 || st[0] != "HTTP 503 master_not_discovered_exception" {
		t.Errorf("states = %q", st)
	}
	noSecrets(t, rec.text()+h.String(), "Es-pw-123")
}

func TestHTTPRequestTimeoutMeansWait(t *testing.T) {
	srv, _ := esServer(t, response{408, esHealthRed}, response{408, esHealthRed}, response{200, esHealthYellow})
	rec := &recorder{}
	if err := Wait(context.Background(), []Checker{mustHTTP(t, srv.URL+healthPath)}, fastOptions(rec, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	if st := rec.states(); len(st) != 1 || st[0] != "HTTP 408 cluster red" {
		t.Errorf("states = %q", st)
	}
	// And a server that never gets there times out naming the state.
	srv2, _ := esServer(t, response{408, esHealthRed})
	opt := fastOptions(&recorder{}, 300*time.Millisecond)
	err := Wait(context.Background(), []Checker{mustHTTP(t, srv2.URL+healthPath)}, opt)
	if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "HTTP 408 Request Timeout: cluster status red (timed out)") {
		t.Errorf("err = %v", err)
	}
}

func TestHTTPPermanent(t *testing.T) {
	for _, tc := range []struct {
		name       string
		resp       response
		user, pass string
		hint       string
	}{
		{"401 with credentials", response{401, esUnauthenticated}, "elastic", "Wrong-pw-1", "rejected the credentials"},
		{"403 with credentials", response{403, `{"error":{"type":"security_exception","reason":"action [cluster:monitor/health] is unauthorized"},"status":403}`}, "app", "App-pw-1", "monitor"},
		{"401 without credentials", response{401, esUnauthenticated}, "", "", "requires credentials"},
		{"404", response{404, `{"error":"no handler found for uri [/_cluster/healt] and method [GET]"}`}, "", "", "wrong path"},
		{"400", response{400, `{"error":{"type":"illegal_argument_exception","reason":"bad wait_for_status"}}`}, "", "", "will not change"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, s := esServer(t, tc.resp)
			h := mustHTTP(t, withCreds(t, srv.URL, tc.user, tc.pass, healthPath))
			pe := permanentWithin(t, h, time.Second, tc.hint, tc.pass)
			if s.n != 1 {
				t.Errorf("requests = %d, want 1", s.n)
			}
			if !strings.Contains(pe.Err.Error(), "HTTP ") {
				t.Errorf("error lacks the status: %v", pe.Err)
			}
		})
	}
}

func TestHTTPTimeoutExceedsServerWait(t *testing.T) {
	h := mustHTTP(t, "http://es:9200/_cluster/health?wait_for_status=yellow&timeout=50s")
	if got := h.MinAttemptTimeout(); got <= 50*time.Second {
		t.Errorf("MinAttemptTimeout = %v, want more than ES's 50s", got)
	}
	for _, tc := range []struct {
		query string
		want  time.Duration
	}{
		{"", 0},
		{"timeout=5s", 0}, // no wait_for_*: ES answers at once
		{"wait_for_status=green", 30 * time.Second},
		{"wait_for_status=green&timeout=5s", 5 * time.Second},
		{"wait_for_nodes=3&timeout=2m", 2 * time.Minute},
		{"wait_for_status=green&timeout=500ms&master_timeout=10s", 10 * time.Second},
		{"wait_for_status=green&timeout=99999d", time.Hour},
		{"wait_for_status=green&timeout=bogus", 30 * time.Second},
	} {
		q, _ := url.ParseQuery(tc.query)
		if got := esServerWait(q); got != tc.want {
			t.Errorf("esServerWait(%q) = %v, want %v", tc.query, got, tc.want)
		}
	}
	// The attempt really is given that long: a server that holds the
	// request for longer than AttemptTimeout still answers.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(300 * time.Millisecond)
		w.Write([]byte(esHealthYellow))
	}))
	defer srv.Close()
	hs := mustHTTP(t, srv.URL+"/_cluster/health?wait_for_status=yellow&timeout=1s")
	res := Probe(context.Background(), []Checker{hs}, 100*time.Millisecond)
	if res[0].Err != nil {
		t.Errorf("probe with a server-side wait: %v", res[0].Err)
	}
}

func TestHTTPConnectionErrorsWait(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := srv.URL
	srv.Close()
	res := Probe(context.Background(), []Checker{mustHTTP(t, addr+"/")}, time.Second)
	var pe *PermanentError
	if res[0].Err == nil || errors.As(res[0].Err, &pe) || res[0].State != "connection refused" {
		t.Errorf("closed port: %+v", res[0])
	}
}

func TestHTTPTLS(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(esHealthYellow))
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // handshake failures are the point
	srv.StartTLS()
	defer srv.Close()
	// Untrusted certificate: permanent, with a hint.
	permanentWithin(t, mustHTTP(t, srv.URL+"/"), time.Second, "CA")
	// Trusted through CAFile.
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(caFile, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, opt := range []HTTPOptions{{CAFile: caFile}, {Insecure: true}} {
		h, err := NewHTTP(srv.URL+"/", opt)
		if err != nil {
			t.Fatal(err)
		}
		if res := Probe(context.Background(), []Checker{h}, time.Second); res[0].Err != nil {
			t.Errorf("%+v: %v", opt, res[0].Err)
		}
	}
	// Plain HTTP URL against the TLS port: the server answers 400.
	plain := strings.Replace(srv.URL, "https://", "http://", 1)
	res := Probe(context.Background(), []Checker{mustHTTP(t, plain+"/")}, time.Second)
	var pe *PermanentError
	if !errors.As(res[0].Err, &pe) {
		t.Errorf("http:// to a TLS port: %v", res[0].Err)
	}
	if _, err := NewHTTP(srv.URL, HTTPOptions{CAFile: filepath.Join(t.TempDir(), "missing.pem")}); err == nil {
		t.Error("missing CA file accepted")
	}
}

func TestNewHTTP(t *testing.T) {
	for _, tc := range []struct{ in, target string }{
		{"http://es:9200/_cluster/health?wait_for_status=yellow&timeout=5s", "http://es:9200/_cluster/health?timeout=5s&wait_for_status=yellow"},
		{"https://elastic:Pw-123@es:9200/", "https://elastic@es:9200/"},
		{"http://[::1]:8080/healthz?token=Tok-123#frag", "http://[::1]:8080/healthz?token=xxxxx"},
	} {
		h, err := NewHTTP(tc.in, HTTPOptions{})
		if err != nil {
			t.Errorf("NewHTTP(%q): %v", tc.in, err)
			continue
		}
		if h.String() != tc.target {
			t.Errorf("NewHTTP(%q).String() = %q, want %q", tc.in, h.String(), tc.target)
		}
		if strings.Contains(h.url.String(), "@") || h.url.Fragment != "" {
			t.Errorf("request URL keeps user info or fragment: %s", h.url)
		}
	}
	for _, in := range []string{"ftp://es", "http://", "http://es:0/", "http://es:http/", "es:9200", "http://a:Secret-pw@es:99999/", "http://a:Secret/pw@es/"} {
		_, err := NewHTTP(in, HTTPOptions{})
		if err == nil {
			t.Errorf("NewHTTP(%q) accepted", in)
			continue
		}
		noSecrets(t, err.Error(), "Secret-pw", "Secret/pw")
	}
}

func TestBodySnippet(t *testing.T) {
	for _, tc := range []struct{ body, snippet, kind string }{
		{esMasterNotDiscovered, "master_not_discovered_exception:", "master_not_discovered_exception"},
		{esHealthRed, "cluster status red (timed out)", "cluster red"},
		{`{"error":"no handler found"}`, "no handler found", ""},
		{"<html>\n<body>Bad   Gateway</body></html>", "<html> <body>Bad Gateway</body></html>", ""},
		{strings.Repeat("x", 500), strings.Repeat("x", 120) + "…", ""},
		{"", "", ""},
	} {
		if got := bodySnippet([]byte(tc.body)); strings.TrimSpace(got) != strings.TrimSpace(tc.snippet) {
			t.Errorf("bodySnippet(%.30q) = %q, want %q", tc.body, got, tc.snippet)
		}
		if got := bodyKind([]byte(tc.body)); got != tc.kind {
			t.Errorf("bodyKind(%.30q) = %q, want %q", tc.body, got, tc.kind)
		}
	}
}
