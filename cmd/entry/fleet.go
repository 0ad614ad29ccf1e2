package main

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/entry-dev/entry/internal/plan"
	"github.com/entry-dev/entry/singleton"
	"github.com/entry-dev/entry/supervise"
)

// singletons starts the manager of the plan's singleton locks, when there are any, and
// sets opt to hold their types in standby. The returned stop ends it: call it only once
// the group has returned, so that every lock outlives its process.
func (e *entry) singletons(ctx context.Context, opt *supervise.GroupOptions) (stop func()) {
	s := e.plan.Singleton
	if s == nil {
		return func() {}
	}
	// Only the types this replica runs (ENTRY_PROCESSES may leave some out): a lock taken
	// for a type with no process would only make the replica that runs it wait.
	var types []string
	for _, t := range s.Types {
		if slices.ContainsFunc(e.plan.Processes, func(p plan.Process) bool { return p.Type == t }) {
			types = append(types, t)
		}
	}
	// The session's bound must hold the longest grace of the types it locks: each has
	// its own (ENTRY_STOP_TIMEOUT_<TYPE>, else ENTRY_STOP_TIMEOUT).
	var grace time.Duration
	for _, p := range e.plan.Processes {
		if slices.Contains(types, p.Type) {
			grace = max(grace, p.StopTimeout)
		}
	}
	if len(types) == 0 {
		return func() {}
	}
	leases := make(chan supervise.Lease)
	opt.Standby, opt.Leases = types, leases
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		err := singleton.Run(ctx, singleton.Options{
			DSN:            s.DSN,
			Key:            s.Key,
			Types:          types,
			Grace:          grace,
			AppName:        strings.TrimSpace("entry singleton " + hostname()),
			Backoff:        e.plan.Wait.Options.Backoff,
			AttemptTimeout: e.plan.Wait.Options.AttemptTimeout,
			Log:            e.log,
		}, leases)
		if err != nil {
			// The plan has built a checker from the same string: not reached in practice.
			e.log.Error(err.Error())
		}
	}()
	return func() {
		cancel()
		wg.Wait()
	}
}
