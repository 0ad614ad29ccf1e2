package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// usage is what /proc says about one process at one moment.
type usage struct {
	ticks   int64 // utime+stime from /proc/PID/stat, in clock ticks (all threads)
	ns      int64 // time on CPU from /proc/PID/task/*/schedstat, summed over threads
	ctxsw   int64 // voluntary+nonvoluntary context switches, summed over threads
	rss     int64 // VmRSS, KiB
	hwm     int64 // VmHWM, KiB
	threads int
}

// clockTick is USER_HZ, the unit of utime and stime in /proc/PID/stat: 100 on Linux.
const clockTick = 10 * time.Millisecond

// idleCmd starts ARGV (unshare ... INIT CHILD...), waits until the init has a child called
// -child, lets it settle, and prints what the init used over -window: CPU milliseconds
// from utime+stime, CPU microseconds from schedstat, context switches, and at the end
// VmRSS and VmHWM in KiB and its thread count.
func idleCmd(args []string, stdout io.Writer) error {
	fs := flags("idle")
	window := fs.Duration("window", 10*time.Second, "how long the init is watched")
	settle := fs.Duration("settle", time.Second, "pause between the child's start and the first sample")
	child := fs.String("child", "sleep", "command name (comm) of the init's descendants to wait for")
	count := fs.Int("count", 1, "how many of them")
	if err := fs.Parse(args); err != nil {
		return err
	}
	r, err := startNS(fs.Args(), nil)
	if err != nil {
		return err
	}
	defer func() {
		r.abort()
		<-r.exited
	}()
	pid, err := r.pid1(readyTimeout)
	if err != nil {
		return err
	}
	if err := r.waitComm(pid, *child, *count, readyTimeout); err != nil {
		return fmt.Errorf("%w%s", err, r.output())
	}
	time.Sleep(*settle)
	a, err := sample(pid)
	if err != nil {
		return err
	}
	select {
	case <-time.After(*window):
	case <-r.exited:
		return fmt.Errorf("exited during the window%s", r.output())
	}
	b, err := sample(pid)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d %.1f %d %d %d %d\n",
		(b.ticks-a.ticks)*int64(clockTick/time.Millisecond), float64(b.ns-a.ns)/1e3,
		b.ctxsw-a.ctxsw, b.rss, b.hwm, b.threads)
	return nil
}

func sample(pid int) (usage, error) {
	var u usage
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return u, err
	}
	if u.ticks, err = statTicks(stat); err != nil {
		return u, err
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return u, err
	}
	u.rss = field(status, "VmRSS:")
	u.hwm = field(status, "VmHWM:")
	u.threads = int(field(status, "Threads:"))
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*", pid))
	if err != nil {
		return u, err
	}
	for _, t := range tasks {
		// A thread that exits between Glob and here is simply not counted.
		if b, err := os.ReadFile(t + "/schedstat"); err == nil {
			if f := strings.Fields(string(b)); len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				u.ns += n
			}
		}
		if b, err := os.ReadFile(t + "/status"); err == nil {
			u.ctxsw += field(b, "voluntary_ctxt_switches:") + field(b, "nonvoluntary_ctxt_switches:")
		}
	}
	return u, nil
}

// statTicks returns utime+stime (fields 14 and 15) of a /proc/PID/stat line. The command
// name may hold spaces and parentheses, so fields are counted from the last ')'.
func statTicks(stat []byte) (int64, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed stat line")
	}
	f := strings.Fields(string(stat[i+1:])) // f[0] is field 3, the state
	if len(f) < 13 {
		return 0, fmt.Errorf("malformed stat line")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("malformed stat line")
	}
	return ut + st, nil
}

// field returns the number after key at the start of a line of a /proc status file.
func field(status []byte, key string) int64 {
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, key); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n
			}
		}
	}
	return 0
}
