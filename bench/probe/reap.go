package main

import (
	"fmt"
	"io"
	"time"

	"golang.org/x/sys/unix"
)

// reapCmd times how long a namespace's init takes to reap orphaned zombies and exit.
// ARGV's main process must fork its zombies, print "ready" and exit when it reads a line:
// its zombies then pass to the init at once. From the write of that line to the init's exit
// (its pidfd turns readable, after the kernel has torn the namespace down).
func reapCmd(args []string, stdout io.Writer) error {
	fs := flags("reap")
	runs := fs.Int("runs", 10, "number of runs")
	want := fs.Int("status", 0, "exit status every run must end with")
	if err := fs.Parse(args); err != nil {
		return err
	}
	for i := 0; i < *runs; i++ {
		d, err := reapOnce(fs.Args(), *want)
		if err != nil {
			return fmt.Errorf("run %d: %w", i+1, err)
		}
		fmt.Fprintf(stdout, "%.3f\n", ms(d))
	}
	return nil
}

func reapOnce(argv []string, want int) (time.Duration, error) {
	r, err := startNS(argv, nil)
	if err != nil {
		return 0, err
	}
	fail := func(err error) (time.Duration, error) {
		r.abort()
		<-r.exited
		return 0, fmt.Errorf("%w%s", err, r.output())
	}
	if err := r.waitLine(r.stdout, func(l string) bool { return l == "ready" }, time.Minute); err != nil {
		return fail(err)
	}
	pid, err := r.pid1(readyTimeout)
	if err != nil {
		return fail(err)
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return fail(fmt.Errorf("pidfd_open %d: %w", pid, err))
	}
	defer unix.Close(fd)
	start := time.Now()
	if _, err := io.WriteString(r.stdin, "go\n"); err != nil {
		return fail(err)
	}
	if err := pollIn(fd, start.Add(exitTimeout)); err != nil {
		return fail(fmt.Errorf("init %d did not exit: %w", pid, err))
	}
	d := time.Since(start)
	status, err := r.status(readyTimeout)
	if err != nil {
		return 0, fmt.Errorf("%w%s", err, r.output())
	}
	if status != want {
		return 0, fmt.Errorf("exit status %d, want %d%s", status, want, r.output())
	}
	return d, nil
}
