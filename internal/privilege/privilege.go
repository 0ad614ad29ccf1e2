// Package privilege gives directories to a user and makes the whole process
// that user, as gosu does in an entrypoint script: resolve the user from
// /etc/passwd and /etc/group, chown each directory itself (not recursively),
// then set the supplementary groups, the gid and the uid of every thread.
//
// The files are parsed here rather than through os/user: a static binary
// (CGO_ENABLED=0) and a cgo build would otherwise resolve names differently
// (NSS), and an image's user is always in its /etc/passwd.
package privilege

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// User is who entry becomes.
type User struct {
	Name   string // "" when given as a uid that /etc/passwd does not know
	UID    int
	GID    int
	Groups []int  // supplementary groups, the primary one included
	Home   string // from /etc/passwd, "" if unknown
}

func (u User) String() string {
	if u.Name != "" {
		return fmt.Sprintf("%s (uid %d, gid %d)", u.Name, u.UID, u.GID)
	}
	return fmt.Sprintf("uid %d, gid %d", u.UID, u.GID)
}

// ErrUnknown is a user or group that the files do not know.
var ErrUnknown = errors.New("unknown")

// Resolve reads spec, "name", "uid", "name:group" or "uid:gid" (a group by
// name or number), against passwd and group files. A uid that passwd does
// not list needs its gid: "uid:gid".
func Resolve(spec, passwdPath, groupPath string) (User, error) {
	userPart, groupPart, hasGroup := strings.Cut(strings.TrimSpace(spec), ":")
	if userPart == "" || hasGroup && groupPart == "" {
		return User{}, fmt.Errorf("want name, uid or uid:gid, got %q", spec)
	}
	passwd, err := readDB(passwdPath, 7)
	if err != nil {
		return User{}, err
	}
	groups, err := readDB(groupPath, 4)
	if err != nil {
		return User{}, err
	}
	var u User
	found := false
	num, numErr := strconv.Atoi(userPart)
	for _, f := range passwd {
		if f[0] == userPart || numErr == nil && f[2] == userPart {
			uid, err1 := strconv.Atoi(f[2])
			gid, err2 := strconv.Atoi(f[3])
			if err1 != nil || err2 != nil {
				return User{}, fmt.Errorf("%s: malformed entry for %s", passwdPath, f[0])
			}
			u, found = User{Name: f[0], UID: uid, GID: gid, Home: f[5]}, true
			break
		}
	}
	switch {
	case found:
	case numErr == nil && num >= 0 && hasGroup:
		u = User{UID: num}
	case numErr == nil && num >= 0:
		return User{}, fmt.Errorf("uid %d is not in %s: give its group too, as %d:GID", num, passwdPath, num)
	default:
		return User{}, fmt.Errorf("user %q: %w (not in %s)", userPart, ErrUnknown, passwdPath)
	}
	if hasGroup {
		gid, err := lookupGroup(groups, groupPart)
		if err != nil {
			return User{}, fmt.Errorf("group %q: %w (not in %s)", groupPart, err, groupPath)
		}
		u.GID = gid
	}
	u.Groups = []int{u.GID}
	if u.Name != "" {
		for _, f := range groups {
			if slices.Contains(strings.Split(f[3], ","), u.Name) {
				if gid, err := strconv.Atoi(f[2]); err == nil && !slices.Contains(u.Groups, gid) {
					u.Groups = append(u.Groups, gid)
				}
			}
		}
	}
	return u, nil
}

func lookupGroup(groups [][]string, g string) (int, error) {
	if n, err := strconv.Atoi(g); err == nil && n >= 0 {
		return n, nil
	}
	for _, f := range groups {
		if f[0] == g {
			return strconv.Atoi(f[2])
		}
	}
	return 0, ErrUnknown
}

// readDB reads a colon-separated file of at least n fields per line,
// skipping comments, blank lines and NIS "+"/"-" entries.
func readDB(path string, n int) ([][]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out [][]string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == '+' || line[0] == '-' {
			continue
		}
		if fields := strings.Split(line, ":"); len(fields) >= n {
			out = append(out, fields)
		}
	}
	return out, sc.Err()
}

// Check verifies that each directory exists and is a directory.
func Check(dirs []string) error {
	for _, d := range dirs {
		st, err := os.Stat(d)
		if err != nil {
			var pe *fs.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return fmt.Errorf("%s: %w", d, err)
		}
		if !st.IsDir() {
			return fmt.Errorf("%s: not a directory", d)
		}
	}
	return nil
}

// Chown gives each directory itself (not what is in it) to u. A directory
// that cannot be changed (a read-only or NFS root-squashed mount) is
// tolerated when u can already write to it, by owner, group or mode bits,
// and reported in notes; otherwise it is an error.
func Chown(dirs []string, u User) (notes []string, err error) {
	if err := Check(dirs); err != nil {
		return nil, err
	}
	for _, d := range dirs {
		st, _ := os.Stat(d)
		sys, _ := st.Sys().(*syscall.Stat_t)
		if sys != nil && int(sys.Uid) == u.UID && int(sys.Gid) == u.GID {
			continue
		}
		cerr := os.Chown(d, u.UID, u.GID)
		if cerr == nil {
			continue
		}
		var pe *fs.PathError
		if errors.As(cerr, &pe) {
			cerr = pe.Err
		}
		if sys != nil && writable(st.Mode(), sys, u) {
			notes = append(notes, fmt.Sprintf("%s: cannot change its owner (%v), but %s can already write to it", d, cerr, u))
			continue
		}
		return notes, fmt.Errorf("%s: cannot give it to %s: %w", d, u, cerr)
	}
	return notes, nil
}

func writable(mode fs.FileMode, st *syscall.Stat_t, u User) bool {
	switch {
	case int(st.Uid) == u.UID:
		return mode&0o300 == 0o300
	case slices.Contains(u.Groups, int(st.Gid)):
		return mode&0o030 == 0o030
	}
	return mode&0o003 == 0o003
}

// ErrNotRoot is a switch to another user asked of a process that is not root.
var ErrNotRoot = errors.New("not started as root")

// Allowed reports whether a process running as uid can become u: root can
// become anyone, any other uid only itself.
func Allowed(uid int, u User) error {
	if uid == 0 || uid == u.UID {
		return nil
	}
	return fmt.Errorf("%w: entry runs as uid %d and cannot become %s (start the container as root, or drop ENTRY_USER)", ErrNotRoot, uid, u)
}

// Drop makes every thread of the process u: supplementary groups, then gid,
// then uid (after which the others can no longer be changed). Since Go 1.16
// these calls apply to all threads. Nothing to do when the process is u.
func Drop(u User) error {
	if os.Geteuid() == u.UID && os.Getuid() == u.UID && (u.UID != 0 || os.Getgid() == u.GID) {
		return nil // already u; a non-root process could not change its groups anyway
	}
	if err := syscall.Setgroups(u.Groups); err != nil {
		return fmt.Errorf("setgroups %v: %w", u.Groups, err)
	}
	if err := syscall.Setgid(u.GID); err != nil {
		return fmt.Errorf("setgid %d: %w", u.GID, err)
	}
	if err := syscall.Setuid(u.UID); err != nil {
		return fmt.Errorf("setuid %d: %w", u.UID, err)
	}
	if os.Getuid() != u.UID || os.Geteuid() != u.UID {
		return fmt.Errorf("still uid %d after setuid %d", os.Geteuid(), u.UID)
	}
	// A change of credentials makes the process undumpable: its /proc files
	// then belong to root, and ps, docker top or a debugger run as the user
	// cannot see it. With every privilege gone there is nothing to protect.
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl PR_SET_DUMPABLE: %w", err)
	}
	return nil
}
