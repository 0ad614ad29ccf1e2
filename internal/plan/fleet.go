package plan

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/entry-dev/entry/procfile"
)

// WaitCommand is ENTRY_WAIT_COMMAND: run after the wait and the release, until it exits 0.
type WaitCommand struct {
	Command string   // as written
	Argv    []string // what is executed: the words, or /bin/sh -c
	Secrets []string // masked in the logged command line
	Timeout time.Duration
	// Lock is the release lock the command never runs under another replica's hold of;
	// nil when no Postgres dependency is known (the command then just retries).
	Lock *Lock
}

// Singleton is ENTRY_SINGLETON: the Procfile types that run in one replica at a time.
type Singleton struct {
	Types  []string
	Key    int64  // the release lock key; each type's lock is derived from it
	DSN    string // the first Postgres dependency's connection string, with credentials
	Target string // the same, redacted
}

// waitCommand reads ENTRY_WAIT_COMMAND. Its lock is the release lock's key and database,
// whether or not this replica runs the release itself (ENTRY_SKIP_RELEASE is its use case).
func (b *builder) waitCommand(deps []Dependency, secrets []string) *WaitCommand {
	line := strings.TrimSpace(b.spec.WaitCommand)
	if line == "" {
		return nil
	}
	if strings.ContainsAny(line, "\n\r") {
		b.errs.add("ENTRY_WAIT_COMMAND", "one command line, got several lines (use sh -c '...; ...' for more)")
		return nil
	}
	argv, _ := procfile.Argv(line)
	w := &WaitCommand{Command: line, Argv: argv, Secrets: secrets, Timeout: b.spec.WaitTimeout}
	if pg := firstPostgres(deps); pg != nil {
		w.Lock = &Lock{Key: b.spec.ReleaseLockKey, DSN: pg.url, Target: pg.Target}
	}
	return w
}

// singleton reads ENTRY_SINGLETON. entries is nil when the Procfile is not read (a command
// is given): the types cannot be checked, and nothing would run them.
func (b *builder) singleton(entries []procfile.Entry, deps []Dependency) (*Singleton, []string) {
	types := splitList(b.spec.Singleton)
	if len(types) == 0 {
		return nil, nil
	}
	s := &Singleton{Key: b.spec.ReleaseLockKey}
	for _, t := range types {
		switch {
		case !procfile.ValidType(t):
			b.errs.add("ENTRY_SINGLETON", "invalid process type %q", t)
		case t == "release":
			b.errs.add("ENTRY_SINGLETON", "release is not a process type that runs (it is the release phase)")
		case entries != nil && !hasExactType(entries, t):
			b.errs.add("ENTRY_SINGLETON", "%s has no process type %q", b.spec.Procfile, t)
		case !slices.Contains(s.Types, t):
			s.Types = append(s.Types, t)
		}
	}
	pg := firstPostgres(deps)
	if pg == nil {
		if !b.errs.has("DATABASE_URL") && !b.errs.has("DATABASE_URL_FILE") && !b.errs.has("ENTRY_WAIT") {
			b.errs.add("ENTRY_SINGLETON", "needs a Postgres dependency for its advisory lock (set DATABASE_URL or add a postgres:// URL to ENTRY_WAIT)")
		}
		return nil, nil
	}
	s.DSN, s.Target = pg.url, pg.Target
	if entries == nil {
		return nil, []string{"ENTRY_SINGLETON is ignored: a command is given, not the Procfile's processes"}
	}
	return s, nil
}

func hasExactType(entries []procfile.Entry, typ string) bool {
	for _, e := range entries {
		if e.Type == typ {
			return true
		}
	}
	return false
}

func firstPostgres(deps []Dependency) *Dependency {
	for i := range deps {
		if deps[i].Kind == Postgres {
			return &deps[i]
		}
	}
	return nil
}

// IsSingleton reports whether processes of typ run under a singleton lock.
func (p *Plan) IsSingleton(typ string) bool {
	return p.Singleton != nil && slices.Contains(p.Singleton.Types, typ)
}

func (s *Singleton) String() string {
	return fmt.Sprintf("%s: one replica at a time, advisory locks derived from key %d on %s", strings.Join(s.Types, ", "), s.Key, s.Target)
}
