package privilege

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

const passwd = `root:x:0:0:root:/root:/bin/bash
# a comment
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
app:x:1000:1000::/home/app:/bin/sh
+nis
`

const group = `root:x:0:
nogroup:x:65534:
app:x:1000:
media:x:2000:app,www
www:x:33:app
`

func files(t *testing.T) (string, string) {
	dir := t.TempDir()
	p, g := filepath.Join(dir, "passwd"), filepath.Join(dir, "group")
	os.WriteFile(p, []byte(passwd), 0o644)
	os.WriteFile(g, []byte(group), 0o644)
	return p, g
}

func TestResolve(t *testing.T) {
	p, g := files(t)
	for spec, want := range map[string]User{
		"app":         {Name: "app", UID: 1000, GID: 1000, Groups: []int{1000, 2000, 33}, Home: "/home/app"},
		"1000":        {Name: "app", UID: 1000, GID: 1000, Groups: []int{1000, 2000, 33}, Home: "/home/app"},
		"nobody":      {Name: "nobody", UID: 65534, GID: 65534, Groups: []int{65534}, Home: "/nonexistent"},
		"app:media":   {Name: "app", UID: 1000, GID: 2000, Groups: []int{2000, 33}, Home: "/home/app"},
		"4242:4242":   {UID: 4242, GID: 4242, Groups: []int{4242}},
		"65534:65534": {Name: "nobody", UID: 65534, GID: 65534, Groups: []int{65534}, Home: "/nonexistent"},
	} {
		got, err := Resolve(spec, p, g)
		if err != nil {
			t.Errorf("%s: %v", spec, err)
			continue
		}
		slices.Sort(got.Groups)
		slices.Sort(want.Groups)
		if got.Name != want.Name || got.UID != want.UID || got.GID != want.GID || got.Home != want.Home || !slices.Equal(got.Groups, want.Groups) {
			t.Errorf("%s: got %+v, want %+v", spec, got, want)
		}
	}
	for spec, want := range map[string]string{
		"ghost": "unknown", "4242": "give its group", "app:ghosts": "unknown", "": "want name", "app:": "want name", ":1": "want name",
	} {
		_, err := Resolve(spec, p, g)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", spec, err, want)
		}
	}
	if _, err := Resolve("ghost", p, g); !errors.Is(err, ErrUnknown) {
		t.Errorf("ghost: %v is not ErrUnknown", err)
	}
}

func TestAllowed(t *testing.T) {
	u := User{Name: "app", UID: 1000, GID: 1000}
	if Allowed(0, u) != nil || Allowed(1000, u) != nil {
		t.Errorf("root or the user itself refused")
	}
	if err := Allowed(33, u); !errors.Is(err, ErrNotRoot) || !strings.Contains(err.Error(), "uid 33") {
		t.Errorf("uid 33 becoming app: %v", err)
	}
}

func TestChown(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatalf("these tests run as root")
	}
	dir := t.TempDir()
	media := filepath.Join(dir, "media")
	os.Mkdir(media, 0o755)
	os.WriteFile(filepath.Join(media, "old"), nil, 0o644)
	u := User{Name: "app", UID: 1000, GID: 2000, Groups: []int{2000}}
	notes, err := Chown([]string{media}, u)
	if err != nil || len(notes) != 0 {
		t.Fatalf("%v %v", notes, err)
	}
	st, _ := os.Stat(media)
	if s := st.Sys().(*syscall.Stat_t); s.Uid != 1000 || s.Gid != 2000 {
		t.Errorf("owner %d:%d", s.Uid, s.Gid)
	}
	st, _ = os.Stat(filepath.Join(media, "old"))
	if s := st.Sys().(*syscall.Stat_t); s.Uid != 0 {
		t.Errorf("chown was recursive")
	}
	for _, bad := range []string{filepath.Join(dir, "missing"), filepath.Join(media, "old")} {
		if _, err := Chown([]string{bad}, u); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

func TestWritable(t *testing.T) {
	u := User{UID: 1000, GID: 1000, Groups: []int{1000, 2000}}
	for _, c := range []struct {
		mode     os.FileMode
		uid, gid uint32
		want     bool
	}{
		{0o755, 1000, 0, true}, {0o555, 1000, 0, false}, {0o775, 0, 2000, true},
		{0o755, 0, 2000, false}, {0o777, 0, 0, true}, {0o1777, 0, 0, true}, {0o775, 0, 0, false},
	} {
		if got := writable(c.mode, &syscall.Stat_t{Uid: c.uid, Gid: c.gid}, u); got != c.want {
			t.Errorf("%o %d:%d: %v, want %v", c.mode, c.uid, c.gid, got, c.want)
		}
	}
}

// TestDrop drops privileges in a child copy of the test binary: a process
// cannot get them back.
func TestDrop(t *testing.T) {
	if os.Getenv("PRIVILEGE_TEST_DROP") == "1" {
		u := User{UID: 65534, GID: 65534, Groups: []int{65534}}
		if err := Drop(u); err != nil {
			os.Stdout.WriteString("error: " + err.Error())
			os.Exit(1)
		}
		b, _ := os.ReadFile("/proc/self/status")
		os.Stdout.Write(b)
		os.Exit(0)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestDrop$")
	cmd.Env = append(os.Environ(), "PRIVILEGE_TEST_DROP=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	for _, want := range []string{"Uid:\t65534\t65534\t65534\t65534", "Gid:\t65534\t65534\t65534\t65534", "Groups:\t65534"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("no %q in\n%s", want, out)
		}
	}
}
