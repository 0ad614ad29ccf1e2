package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"strings"

	"github.com/entry-dev/entry/procfile"
	"github.com/entry-dev/entry/supervise"
	"golang.org/x/sys/unix"
)

// readProcfile parses ENTRY_PROCFILE. A missing file is an error only when it is needed.
func (c *config) readProcfile(required bool) ([]procfile.Entry, error) {
	f, err := os.Open(c.Procfile)
	if err != nil {
		if !required && errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		if required && errors.Is(err, fs.ErrNotExist) {
			return nil, badVar("ENTRY_PROCFILE", "%s: no such file (give a command, or a Procfile with \"type: command\" lines)", c.Procfile)
		}
		return nil, badVar("ENTRY_PROCFILE", "%s: %v", c.Procfile, err)
	}
	defer f.Close()
	entries, err := procfile.Parse(f)
	if err != nil {
		return nil, badVar("ENTRY_PROCFILE", "%s: %v", c.Procfile, err)
	}
	known := map[string]bool{}
	for _, e := range entries {
		known[e.Type] = true
	}
	for _, p := range c.processes {
		if !known[p] {
			return nil, badVar("ENTRY_PROCESSES", "%s has no process type %q", c.Procfile, p)
		}
	}
	for t := range c.formation {
		if t != "all" && !known[t] {
			return nil, badVar("ENTRY_FORMATION", "%s has no process type %q", c.Procfile, t)
		}
	}
	if required && len(c.selected(entries)) == 0 {
		return nil, badVar("ENTRY_PROCFILE", "%s: no process to run (only release, or all excluded by ENTRY_PROCESSES/ENTRY_FORMATION)", c.Procfile)
	}
	return entries, nil
}

// instance is one process to run: web.1, worker.2...
type instance struct {
	name, typ, command string
}

// selected expands the formation over the types ENTRY_PROCESSES names (default: all but
// release, which runs in the release phase).
func (c *config) selected(entries []procfile.Entry) []instance {
	want := map[string]bool{}
	for _, p := range c.processes {
		want[p] = true
	}
	var out []instance
	for _, e := range entries {
		if e.Type == "release" || len(want) > 0 && !want[e.Type] {
			continue
		}
		for i := 1; i <= procfile.Count(c.formation, e.Type); i++ {
			out = append(out, instance{name: fmt.Sprintf("%s.%d", e.Type, i), typ: e.Type, command: e.Command})
		}
	}
	return out
}

func (e *entry) procfile(ctx context.Context, reaper *supervise.Reaper, sigs <-chan os.Signal, entries []procfile.Entry) int {
	env := childEnv(os.Environ())
	var procs []supervise.Process
	for _, in := range e.cfg.selected(entries) {
		sig, err := e.cfg.stopSignal(e.getenv, in.typ)
		if err != nil {
			e.log.Error(err.Error())
			return exitConfig
		}
		argv, group := procfile.Argv(in.command)
		procs = append(procs, supervise.Process{
			Name: in.name,
			Type: in.typ,
			Cmd: func() *exec.Cmd {
				cmd := exec.Command(argv[0], argv[1:]...)
				cmd.Env = env
				return cmd
			},
			Stop:  supervise.StopPolicy{Signal: sig, Timeout: e.cfg.StopTimeout},
			Group: group,
		})
	}
	e.out.KeepLines(e.ops.incidents)
	return supervise.RunGroup(ctx, reaper, procs, sigs, supervise.GroupOptions{
		Restart: supervise.Restart{
			Policy: e.cfg.Restart,
			Limit:  e.cfg.RestartLimit,
			Window: e.cfg.RestartWindow,
		},
		StopTimeout: e.cfg.StopTimeout,
		Output:      e.out,
		Health:      e.health,
		Log:         e.log,
		Incidents:   e.ops.incidents,
	})
}

// childEnv is entry's environment for the Procfile's children, plus PYTHONUNBUFFERED=1
// unless set: their output goes through pipes, where Python would otherwise hold it back in
// 8 KiB blocks and `docker logs` would show it late or, on a crash, never.
func childEnv(env []string) []string {
	for _, kv := range env {
		if strings.HasPrefix(kv, "PYTHONUNBUFFERED=") {
			return env
		}
	}
	return append(env[:len(env):len(env)], "PYTHONUNBUFFERED=1")
}

func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
