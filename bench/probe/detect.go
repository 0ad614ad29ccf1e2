package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// detectCmd measures detection latency: how long after a dependency became ready each
// waiter started its child. Waiters are given as NAME=COMMAND; "{port}" in COMMAND is the
// dependency's port, and the command's child must print a line "go" when it starts. In each
// run every waiter starts against a closed port, the dependency starts after a random delay
// in [-min, -max), and the moment it became ready is taken from the server itself: for
// "tcp" when listen(2) returned, for "postgres" when the postmaster logged "database system
// is ready to accept connections" (it does so once it admits sessions; before that it
// answers 57P03). It appends one latency in ms per run to
// DIR/NAME.txt; a negative latency is a child started before the dependency was ready.
func detectCmd(args []string, stdout io.Writer) error {
	fs := flags("detect")
	server := fs.String("server", "tcp", "dependency: tcp, or postgres (a real server started from -pgdata)")
	runs := fs.Int("runs", 10, "number of runs")
	minDelay := fs.Duration("min", 200*time.Millisecond, "shortest delay before the dependency starts")
	maxDelay := fs.Duration("max", 3500*time.Millisecond, "longest delay before the dependency starts")
	dir := fs.String("dir", ".", "directory of the sample files")
	pgBin := fs.String("pgbin", "", "directory of the postgres binary")
	pgData := fs.String("pgdata", "", "an initdb'd data directory, owned by -pguser")
	pgUser := fs.String("pguser", "postgres", "system account the server runs as")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *server != "tcp" && *server != "postgres" {
		return fmt.Errorf("-server %q: want tcp or postgres", *server)
	}
	if *maxDelay <= *minDelay {
		return errors.New("-max must be above -min")
	}
	var names, cmds []string
	for _, a := range fs.Args() {
		n, c, ok := strings.Cut(a, "=")
		if !ok || n == "" || c == "" {
			return fmt.Errorf("waiter %q: want NAME=COMMAND", a)
		}
		names, cmds = append(names, n), append(cmds, c)
	}
	if len(names) == 0 {
		return errors.New("no waiter given")
	}
	for i := 0; i < *runs; i++ {
		port, err := closedPort()
		if err != nil {
			return err
		}
		var dep dependency
		switch *server {
		case "tcp":
			dep = &tcpDep{port: port}
		case "postgres":
			dep = &pgDep{port: port, bin: *pgBin, data: *pgData, user: *pgUser}
		}
		lat, err := detectOnce(dep, port, cmds, *minDelay+rand.N(*maxDelay-*minDelay))
		if err != nil {
			return fmt.Errorf("run %d: %w", i+1, err)
		}
		for j, n := range names {
			f, err := os.OpenFile(filepath.Join(*dir, n+".txt"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
			if err != nil {
				return err
			}
			fmt.Fprintf(f, "%.3f\n", ms(lat[j]))
			f.Close()
		}
	}
	return nil
}

// dependency is a server that becomes ready some time after start.
type dependency interface {
	start() error
	ready(ctx context.Context) (time.Time, error) // the moment it became ready
	stop()
}

func detectOnce(dep dependency, port int, cmds []string, delay time.Duration) ([]time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	type started struct {
		i   int
		at  time.Time
		err error
	}
	got := make(chan started, len(cmds))
	var procs []*exec.Cmd
	defer func() {
		for _, c := range procs {
			_ = syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
			_ = c.Wait()
		}
	}()
	for i, c := range cmds {
		cmd := exec.Command("/bin/sh", "-c", strings.ReplaceAll(c, "{port}", strconv.Itoa(port)))
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		out, err := cmd.StdoutPipe()
		if err != nil {
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		procs = append(procs, cmd)
		go func() {
			s := bufio.NewScanner(out)
			for s.Scan() {
				if strings.TrimSpace(s.Text()) == "go" {
					got <- started{i: i, at: time.Now()}
					break
				}
			}
			_, _ = io.Copy(io.Discard, out)
			got <- started{i: i, err: errors.New("exited without starting its child")}
		}()
	}
	time.Sleep(delay)
	if err := dep.start(); err != nil {
		return nil, err
	}
	defer dep.stop()
	up, err := dep.ready(ctx)
	if err != nil {
		return nil, err
	}
	lat := make([]time.Duration, len(cmds))
	seen := make([]bool, len(cmds))
	for n := 0; n < len(cmds); {
		select {
		case s := <-got:
			if seen[s.i] {
				continue
			}
			if s.err != nil {
				return nil, fmt.Errorf("%q: %w", cmds[s.i], s.err)
			}
			seen[s.i], lat[s.i] = true, s.at.Sub(up)
			n++
		case <-ctx.Done():
			return nil, errors.New("a waiter never started its child")
		}
	}
	return lat, nil
}

type tcpDep struct {
	port int
	ln   net.Listener
	up   time.Time
}

func (d *tcpDep) start() error {
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(d.port)))
	if err != nil {
		return err
	}
	d.ln, d.up = ln, time.Now()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return nil
}

func (d *tcpDep) ready(context.Context) (time.Time, error) { return d.up, nil }
func (d *tcpDep) stop()                                    { d.ln.Close() }

type pgDep struct {
	port            int
	bin, data, user string
	cmd             *exec.Cmd
	up              chan time.Time // when the postmaster said it is ready
	exited          chan struct{}
}

func (d *pgDep) start() error {
	u, err := user.Lookup(d.user)
	if err != nil {
		return err
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	d.cmd = exec.Command(filepath.Join(d.bin, "postgres"), "-D", d.data, "-p", strconv.Itoa(d.port),
		"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=",
		"-c", "fsync=off", "-c", "full_page_writes=off", "-c", "synchronous_commit=off",
		"-c", "shared_buffers=16MB", "-c", "max_connections=50")
	d.cmd.Dir = filepath.Dir(d.data)
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, Setpgid: true, Pdeathsig: syscall.SIGKILL}
	logs, err := d.cmd.StderrPipe()
	if err != nil {
		return err
	}
	if err := d.cmd.Start(); err != nil {
		return err
	}
	d.up = make(chan time.Time, 1)
	go func() {
		s := bufio.NewScanner(logs)
		for s.Scan() {
			if strings.Contains(s.Text(), "database system is ready to accept connections") {
				d.up <- time.Now()
			}
		}
	}()
	d.exited = make(chan struct{})
	go func() {
		_ = d.cmd.Wait()
		close(d.exited)
	}()
	return nil
}

func (d *pgDep) ready(ctx context.Context) (time.Time, error) {
	select {
	case t := <-d.up:
		return t, nil
	case <-d.exited:
		return time.Time{}, errors.New("postgres exited before it was ready")
	case <-ctx.Done():
		return time.Time{}, ctx.Err()
	}
}

// stop shuts the server down (fast shutdown) and waits for it.
func (d *pgDep) stop() {
	_ = d.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-d.exited:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
		<-d.exited
	}
}
