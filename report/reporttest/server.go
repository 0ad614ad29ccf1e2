// Package reporttest is a local Sentry: an HTTP server speaking the envelope
// endpoint (/api/<project>/envelope/) that records the events it receives.
package reporttest

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// Key is the public key in the DSN; tests check that it never shows.
const Key = "0123456789abcdef0123456789abcdef"

// Server records every event item of every envelope.
type Server struct {
	srv *httptest.Server

	mu      sync.Mutex
	events  []Event
	bodies  []string
	arrived chan struct{}
}

// Event is one received event, as JSON.
type Event map[string]any

// Tag returns a tag's value.
func (e Event) Tag(k string) string {
	tags, _ := e["tags"].(map[string]any)
	s, _ := tags[k].(string)
	return s
}

// Incident returns the "incident" context.
func (e Event) Incident() map[string]any {
	c, _ := e["contexts"].(map[string]any)
	i, _ := c["incident"].(map[string]any)
	return i
}

// Text is the event's whole JSON, for searching.
func (e Event) Text() string {
	b, _ := json.Marshal(map[string]any(e))
	return string(b)
}

// New starts a Server, closed at the end of the test.
func New(t testing.TB) *Server {
	s := &Server{arrived: make(chan struct{}, 1000)}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	return s
}

// DSN is the DSN pointing at the server, project 42.
func (s *Server) DSN() string {
	return fmt.Sprintf("http://%s@%s/42", Key, strings.TrimPrefix(s.srv.URL, "http://"))
}

// Close stops the server: later sends are refused.
func (s *Server) Close() { s.srv.Close() }

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/api/42/envelope/" {
		http.Error(w, "no such endpoint", http.StatusNotFound)
		return
	}
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	raw, err := io.ReadAll(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	events, err := parse(raw)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.bodies = append(s.bodies, string(raw)+"\n"+r.Header.Get("X-Sentry-Auth"))
	s.events = append(s.events, events...)
	s.mu.Unlock()
	for range events {
		s.arrived <- struct{}{}
	}
	fmt.Fprintln(w, `{"id":"0"}`)
}

// parse reads an envelope: a header line, then items of a header line and a
// payload of the header's length (or up to the newline).
func parse(raw []byte) ([]Event, error) {
	br := bufio.NewReader(bytes.NewReader(raw))
	if _, err := br.ReadBytes('\n'); err != nil {
		return nil, fmt.Errorf("envelope header: %w", err)
	}
	var out []Event
	for {
		line, err := br.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) == 0 {
			if err != nil {
				return out, nil
			}
			continue
		}
		var h struct {
			Type   string `json:"type"`
			Length *int   `json:"length"`
		}
		if err := json.Unmarshal(line, &h); err != nil {
			return nil, fmt.Errorf("item header: %w", err)
		}
		var payload []byte
		if h.Length != nil {
			payload = make([]byte, *h.Length)
			if _, err := io.ReadFull(br, payload); err != nil {
				return nil, fmt.Errorf("item payload: %w", err)
			}
		} else {
			payload, _ = br.ReadBytes('\n')
		}
		if h.Type == "event" {
			var e Event
			if err := json.Unmarshal(payload, &e); err != nil {
				return nil, fmt.Errorf("event: %w", err)
			}
			out = append(out, e)
		}
	}
}

// Events returns what arrived so far.
func (s *Server) Events() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Event(nil), s.events...)
}

// Raw returns every request body and auth header received, for searching.
func (s *Server) Raw() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.bodies, "\n")
}

// Wait waits until n events have arrived in all, or fails the test at timeout.
func (s *Server) Wait(t testing.TB, n int, timeout time.Duration) []Event {
	t.Helper()
	deadline := time.After(timeout)
	for len(s.Events()) < n {
		select {
		case <-s.arrived:
		case <-deadline:
			t.Fatalf("%d events arrived within %s, want %d", len(s.Events()), timeout, n)
		}
	}
	return s.Events()
}
