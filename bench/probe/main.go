package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
)

// command is one subcommand: it parses its own flags and writes its result to stdout.
type command func(args []string, stdout io.Writer) error

const usageText = `usage: probe COMMAND [flags] [-- ARGV...]

  term       SIGTERM latency of a namespace's PID 1 (ARGV: unshare ... INIT sh -c ...)
  wait       SIGTERM latency of "entry wait" against a refused or a silent dependency
  reap       time for an init to reap the main process's orphaned zombies and exit
  detect     detection latency of waiters for a TCP port or a real Postgres
  stats      median, count, minimum, maximum and negatives of sample files
  idle       CPU time, context switches and memory of an idle init over a window
  write      write numbered lines of 80 bytes to stdout
  listen     supervisord event listener: SIGTERM to supervisord once the programs exited
  window     time from the first writer's start to the last writer's end, writers' CPU
  run        run a command; record its wall and CPU time (with its descendants)
  check      count the intact, lost and cut lines of a log written by "write"
  table      print a markdown table of medians from sample files
  hyperfine  turn hyperfine's JSON export into sample files (milliseconds)
  elf        print "static" or "dynamic" for an executable
  noop       do nothing: the start-up cost of a small static Go program
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	commands := map[string]command{
		"term":      termCmd,
		"wait":      waitCmd,
		"idle":      idleCmd,
		"reap":      reapCmd,
		"detect":    detectCmd,
		"stats":     statsCmd,
		"write":     writeCmd,
		"listen":    listenCmd,
		"check":     checkCmd,
		"window":    windowCmd,
		"run":       runCmd,
		"table":     tableCmd,
		"hyperfine": hyperfineCmd,
		"elf":       elfCmd,
		"noop":      func([]string, io.Writer) error { return nil },
	}
	if len(args) == 0 {
		fmt.Fprint(stderr, usageText)
		return 2
	}
	cmd, ok := commands[args[0]]
	if !ok {
		names := make([]string, 0, len(commands))
		for n := range commands {
			names = append(names, n)
		}
		sort.Strings(names)
		fmt.Fprintf(stderr, "probe: unknown command %q (one of %v)\n", args[0], names)
		return 2
	}
	err := cmd(args[1:], stdout)
	var st exitStatus
	switch {
	case errors.As(err, &st):
		return int(st) // the status of a command run on the caller's behalf
	case err != nil:
		fmt.Fprintf(stderr, "probe %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

// exitStatus is a status to exit with, passed on from a command that ran.
type exitStatus int

func (s exitStatus) Error() string { return fmt.Sprintf("exit status %d", int(s)) }

// flags returns a FlagSet that reports errors instead of exiting.
func flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("probe "+name, flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	return fs
}
