package supervise

import (
	"bytes"
	"context"
	"io"
	"strings"
	"sync"
	"time"
)

// Incident kinds.
const (
	IncidentKilled    = "killed"     // a signal entry did not send killed the process
	IncidentCrashLoop = "crash-loop" // the process exceeded the restart limit
)

// Incident is a death worth reporting beyond the log.
type Incident struct {
	Kind    string
	Process string
	Exit    Exit     // the exit that caused it, with its Cause
	Exits   []Exit   // the process's last exits, oldest first
	Lines   []string // the last lines of its output
	Cause   string   // the one-line cause, as logged
}

// Incidents keeps what a report of a process's death needs: its last exits
// and output lines, and the OOM-kill count when it started. It explains
// SIGKILL deaths entry did not cause through OOM, and hands each incident
// to Report. A nil *Incidents does nothing. GroupOptions.Incidents for a
// group; Output.KeepLines for the lines.
type Incidents struct {
	OOM    *OOMWatch
	Report func(Incident) // called on the group's loop: must not block

	mu    sync.Mutex
	procs map[string]*record
	seen  uint64 // OOM kills explained by an exit or reported by Watch
}

// keptExits and keptLines bound the history of each process.
const (
	keptExits = 6
	keptLines = 30
)

type record struct {
	mark  OOMMark
	exits []Exit
	lines []string
}

func (in *Incidents) rec(name string) *record {
	if in.procs == nil {
		in.procs = make(map[string]*record)
	}
	r := in.procs[name]
	if r == nil {
		r = &record{}
		in.procs[name] = r
	}
	return r
}

// started takes the OOM-kill count before a process (re)starts.
func (in *Incidents) started(name string) {
	if in == nil {
		return
	}
	mark := in.OOM.Snapshot()
	in.mu.Lock()
	defer in.mu.Unlock()
	in.rec(name).mark = mark
}

// exited records an exit, explains a SIGKILL that entry did not send (sent
// is false) and reports a death by a signal entry did not send. It
// returns e with its Cause.
func (in *Incidents) exited(name string, e Exit, sent bool) Exit {
	if in == nil {
		return e
	}
	in.mu.Lock()
	r := in.rec(name)
	if !sent {
		e.Cause = in.explain(e, r.mark)
	}
	r.exits = append(r.exits, e)
	if len(r.exits) > keptExits {
		r.exits = r.exits[len(r.exits)-keptExits:]
	}
	in.mu.Unlock()
	if !sent && (e.Signal != 0 || strings.HasPrefix(e.Cause, "OOM-killed")) {
		in.report(IncidentKilled, name, e, name+" "+e.String())
	}
	return e
}

// Explain is OOMWatch.DeathCause for an exit outside a group (the main process, a
// release step), so that Watch does not report its kill a second time.
func (in *Incidents) Explain(e Exit, m OOMMark) string {
	if in == nil {
		return ""
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.explain(e, m)
}

func (in *Incidents) explain(e Exit, m OOMMark) string {
	why := in.OOM.DeathCause(e, m)
	if strings.HasPrefix(why, "OOM-killed") {
		in.seen = max(in.seen, in.OOM.Snapshot().kills)
	}
	return why
}

// Watch reads the OOM-kill count every interval until ctx ends. Kills that no exit
// explains within settle are a descendant's (a gunicorn or celery worker, whose master
// entry sees survive): f gets how many, and the memory limit. settle must exceed the
// time an exit takes to be reported (its output is drained first). The count at the call is
// the baseline: only later kills are reported. The returned channel is closed once the
// watch has ended.
func (in *Incidents) Watch(ctx context.Context, interval, settle time.Duration, f func(kills uint64, limit int64)) <-chan struct{} {
	done := make(chan struct{})
	if in == nil || in.OOM == nil {
		close(done)
		return done
	}
	in.mu.Lock()
	in.seen = max(in.seen, in.OOM.Snapshot().kills)
	in.mu.Unlock()
	go func() {
		defer close(done)
		in.watch(ctx, interval, settle, f)
	}()
	return done
}

func (in *Incidents) watch(ctx context.Context, interval, settle time.Duration, f func(kills uint64, limit int64)) {
	var since time.Time // when unexplained kills were first seen
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			m := in.OOM.Snapshot()
			in.mu.Lock()
			n := m.kills - min(m.kills, in.seen)
			due := false
			switch {
			case !m.ok || n == 0:
				since = time.Time{}
			case since.IsZero():
				since = now
			case now.Sub(since) >= settle:
				in.seen, since, due = m.kills, time.Time{}, true
			}
			in.mu.Unlock()
			if due {
				_, limit := in.OOM.KilledSince(OOMMark{kills: m.kills - n, ok: true})
				f(n, limit)
			}
		}
	}
}

// crashLoop reports the crash loop that stops the group.
func (in *Incidents) crashLoop(name string, e Exit, cause string) {
	if in != nil {
		in.report(IncidentCrashLoop, name, e, cause)
	}
}

func (in *Incidents) report(kind, name string, e Exit, cause string) {
	if in.Report == nil {
		return
	}
	in.mu.Lock()
	r := in.rec(name)
	inc := Incident{Kind: kind, Process: name, Exit: e, Cause: cause,
		Exits: append([]Exit(nil), r.exits...), Lines: append([]string(nil), r.lines...)}
	in.mu.Unlock()
	in.Report(inc)
}

// line keeps one output line of a process.
func (in *Incidents) line(name string, b []byte) {
	if in == nil {
		return
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	r := in.rec(name)
	r.lines = append(r.lines, string(b))
	if len(r.lines) > keptLines {
		r.lines = append(r.lines[:0], r.lines[len(r.lines)-keptLines:]...)
	}
}

// Lines returns the last output lines kept for name.
func (in *Incidents) Lines(name string) []string {
	if in == nil {
		return nil
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([]string(nil), in.rec(name).lines...)
}

// Writer returns a writer keeping the lines written to it as name's, for
// output that does not go through an Output (a release step's, tee'd).
func (in *Incidents) Writer(name string) io.Writer {
	return &tailWriter{in: in, name: name}
}

type tailWriter struct {
	in      *Incidents
	name    string
	partial []byte
}

func (w *tailWriter) Write(p []byte) (int, error) {
	n := len(p)
	for {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			if len(w.partial)+len(p) <= MaxLine {
				w.partial = append(w.partial, p...)
			}
			return n, nil
		}
		w.in.line(w.name, bytes.TrimSuffix(append(w.partial, p[:i]...), []byte("\r")))
		w.partial, p = w.partial[:0], p[i+1:]
	}
}

// KeepLines makes o hand every line of every process to in as well.
func (o *Output) KeepLines(in *Incidents) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.lines = in
}
