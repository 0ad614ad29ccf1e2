package procfile

import (
	"os/exec"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func TestArgv(t *testing.T) {
	sh := func(script string) []string { return []string{Shell, "-c", script} }
	tests := []struct {
		in        string
		want      []string
		wantShell bool
	}{
		{"", nil, false},
		{"gunicorn config.wsgi", []string{"gunicorn", "config.wsgi"}, false},
		{"  gunicorn\tconfig.wsgi  -b 0.0.0.0:8000 ", []string{"gunicorn", "config.wsgi", "-b", "0.0.0.0:8000"}, false},
		{`python -c 'print("a b")'`, []string{"python", "-c", `print("a b")`}, false},
		{`echo "a b" 'c'"d"e ''`, []string{"echo", "a b", "cde", ""}, false},
		{`echo 'it''s $HOME; | &'`, []string{"echo", "its $HOME; | &"}, false},
		{"celery -A proj worker --loglevel=info", []string{"celery", "-A", "proj", "worker", "--loglevel=info"}, false},
		{"exec gunicorn app", []string{"gunicorn", "app"}, false},

		// The shell is needed only for expansion or redirection: exec.
		{"gunicorn $APP", sh("exec gunicorn $APP"), false},
		{"gunicorn app 2>&1", sh("exec gunicorn app 2>&1"), false},
		{"gunicorn app >>log 2>&1", sh("exec gunicorn app >>log 2>&1"), false},
		{`echo "$HOME"`, sh(`exec echo "$HOME"`), false},
		{`echo a\ b`, sh(`exec echo a\ b`), false},
		{"ls *.py", sh("exec ls *.py"), false},
		{"~/bin/run", sh("exec ~/bin/run"), false},
		{"echo `date`", sh("exec echo `date`"), false},
		{"run # comment", sh("exec run # comment"), false},
		{"DEBUG=1 python manage.py runserver", sh("DEBUG=1 exec python manage.py runserver"), false},
		{`A=1 B="x y" run $X`, sh(`A=1 B="x y" exec run $X`), false},
		{">log run", sh("exec >log run"), false},
		{"> log run", sh("exec > log run"), false},
		{"exec gunicorn $APP", sh("exec gunicorn $APP"), false},
		{"exec -a name run", sh("exec -a name run"), false},
		{"A=1", sh("A=1"), false},
		{`echo "unterminated`, sh(`exec echo "unterminated`), false},

		// Compound: the shell stays.
		{"./manage.py migrate && gunicorn app", sh("./manage.py migrate && gunicorn app"), true},
		{"a || b", sh("a || b"), true},
		{"a; b", sh("a; b"), true},
		{"a | b", sh("a | b"), true},
		{"a &", sh("a &"), true},
		{"(a)", sh("(a)"), true},
		{"run $(cat args)", sh("run $(cat args)"), true},
		{"cd /app", sh("cd /app"), true},
		{"if true", sh("if true"), true},
		{"export A=1", sh("export A=1"), true},
		{">log A=1 run", sh(">log A=1 run"), true},
	}
	for _, tt := range tests {
		got, gotShell := Argv(tt.in)
		if !reflect.DeepEqual(got, tt.want) || gotShell != tt.wantShell {
			t.Errorf("Argv(%q): got %q, %v, want %q, %v", tt.in, got, gotShell, tt.want, tt.wantShell)
		}
	}
}

// TestArgvLikeSh checks that a directly executed command gets the same words
// sh would have given it.
func TestArgvLikeSh(t *testing.T) {
	for _, in := range []string{
		`echo a  b`,
		`echo 'a b' "c d"`,
		`echo 'x'"y"z'' ""`,
		`echo a=b --x=y,z:1 @%^+-./`,
		`echo "it's"`,
		`echo 'say "hi"'`,
	} {
		got, shell := Argv(in)
		if shell || got[0] == Shell {
			t.Errorf("Argv(%q) = %q, want a direct argv", in, got)
			continue
		}
		if want := shWords(t, in); !reflect.DeepEqual(got, want) {
			t.Errorf("Argv(%q): got %q, want %q (as sh splits it)", in, got, want)
		}
	}
}

// shWords asks /bin/sh how it splits command into words.
func shWords(t *testing.T, command string) []string {
	t.Helper()
	out, err := exec.Command(Shell, "-c", `set -- `+command+`; printf '%s\0' "$@"`).Output()
	if err != nil {
		t.Fatalf("sh splitting %q: %v", command, err)
	}
	return strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
}

// TestArgvExecReplacesShell runs the exec'd form and checks that the program
// replaced the shell, so it gets the stop signal itself.
func TestArgvExecReplacesShell(t *testing.T) {
	argv, shell := Argv(`X=1 exec_check=$X /bin/sh -c 'echo $$ $PPID' 2>&1`)
	if shell {
		t.Fatalf("got shell true for a simple command")
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(out))
	if len(f) != 2 {
		t.Fatalf("got output %q", out)
	}
	if want := cmd.Process.Pid; f[0] != strconv.Itoa(want) {
		t.Errorf("got program pid %s, want the started pid %d (exec did not replace the shell)", f[0], want)
	}
}

func FuzzArgv(f *testing.F) {
	for _, s := range []string{
		"gunicorn app", `a 'b c' "d"`, "a && b", "A=1 run >log", "> x", `"`, `'`, `\`, "exec", "exec -a",
		"2>&1", "a | b", "$(x)", "` `", "cd", "A=1 >x", "\t", "''",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		argv, shell := Argv(s)
		if strings.TrimSpace(s) == "" {
			if argv != nil {
				t.Fatalf("Argv(%q) = %q, want nil", s, argv)
			}
			return
		}
		if len(argv) == 0 {
			t.Fatalf("Argv(%q): empty argv", s)
		}
		if shell && argv[0] != Shell {
			t.Fatalf("Argv(%q) = %q, shell but not run by %s", s, argv, Shell)
		}
	})
}
