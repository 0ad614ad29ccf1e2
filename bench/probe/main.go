package main

import (
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
  idle       CPU time, context switches and memory of an idle init over a window
  write      write numbered lines of 80 bytes to stdout
  listen     supervisord event listener: SIGTERM to supervisord once the programs exited
  check      count the intact, lost and cut lines of a log written by "write"
  table      print a markdown table of medians from sample files
  hyperfine  turn hyperfine's JSON export into sample files (milliseconds)
  elf        print "static" or "dynamic" for an executable
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	commands := map[string]command{
		"term":      termCmd,
		"wait":      waitCmd,
		"idle":      idleCmd,
		"write":     writeCmd,
		"listen":    listenCmd,
		"check":     checkCmd,
		"table":     tableCmd,
		"hyperfine": hyperfineCmd,
		"elf":       elfCmd,
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
	if err := cmd(args[1:], stdout); err != nil {
		fmt.Fprintf(stderr, "probe %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

// flags returns a FlagSet that reports errors instead of exiting.
func flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("probe "+name, flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	return fs
}
