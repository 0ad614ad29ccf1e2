package proctest

import (
	"os"
	"slices"
	"strconv"
	"strings"
)

// Children lists the processes whose parent is pid, from the kernel's
// list for each of its threads (/proc/PID/task/TID/children): cheaper than
// reading every process in /proc, which tests poll in tight loops.
func Children(pid int) []int {
	dir := "/proc/" + strconv.Itoa(pid) + "/task/"
	tasks, _ := os.ReadDir(dir)
	var out []int
	for _, task := range tasks {
		b, err := os.ReadFile(dir + task.Name() + "/children")
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(f); err == nil {
				out = append(out, n)
			}
		}
	}
	return out
}

// Descendants lists every process below pid, each before its own children.
func Descendants(pid int) []int {
	var out []int
	for _, c := range Children(pid) {
		out = append(append(out, c), Descendants(c)...)
	}
	return out
}

// Foreground returns a process below root named comm that is in its
// terminal's foreground process group, or 0.
func Foreground(root int, comm string) int {
	for _, pid := range Descendants(root) {
		// After the name: state ppid pgrp session tty_nr tpgid.
		if c, f := stat(pid); c == comm && len(f) > 5 && f[2] == f[5] {
			return pid
		}
	}
	return 0
}

// ChildWith returns a child of pid whose command line has each of words as
// a whole argument, or 0.
func ChildWith(pid int, words ...string) int {
	for _, c := range Children(pid) {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(c) + "/cmdline")
		if err != nil {
			continue
		}
		argv := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if containsAll(argv, words) {
			return c
		}
	}
	return 0
}

func containsAll(argv, words []string) bool {
	for _, w := range words {
		if !slices.Contains(argv, w) {
			return false
		}
	}
	return true
}

// stat returns a process's command name and the fields of /proc/PID/stat
// after it, or "" and nil if it is gone. The name may hold spaces and
// parentheses, so it ends at the last ')'.
func stat(pid int) (comm string, fields []string) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", nil
	}
	s := string(b)
	open, close := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || close < open {
		return "", nil
	}
	return s[open+1 : close], strings.Fields(s[close+1:])
}
