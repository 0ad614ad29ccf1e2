package main

import (
	"context"
	"os"
	"os/exec"
	"strings"

	"github.com/entry-dev/entry/supervise"
	"golang.org/x/sys/unix"
)

// procfile supervises the plan's Procfile processes.
func (e *entry) procfile(ctx context.Context, reaper *supervise.Reaper, sigs <-chan os.Signal) int {
	env := childEnv(e.environ)
	var procs []supervise.Process
	for _, pr := range e.plan.Processes {
		argv := pr.Argv
		procs = append(procs, supervise.Process{
			Name: pr.Name,
			Type: pr.Type,
			Cmd: func() *exec.Cmd {
				cmd := exec.Command(argv[0], argv[1:]...)
				cmd.Env = env
				return cmd
			},
			Stop:  supervise.StopPolicy{Signal: pr.Stop, Timeout: pr.StopTimeout},
			Group: pr.Group,
		})
	}
	r := e.plan.Restart
	opt := supervise.GroupOptions{
		Restart:       supervise.Restart{Policy: r.Policy, Limit: r.Limit, Window: r.Window},
		ShutdownDelay: e.plan.Stop.Delay,
		Output:        e.out,
		Health:        e.health,
		Log:           e.log,
		Incidents:     e.ops.incidents,
	}
	stop := e.singletons(ctx, &opt)
	defer stop()
	return supervise.RunGroup(ctx, reaper, procs, sigs, opt)
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
