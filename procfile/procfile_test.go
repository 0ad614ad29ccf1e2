package procfile

import (
	"reflect"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name, in string
		want     []Entry
		wantErr  string
	}{
		{"empty", "", nil, ""},
		{"django", "# comment\n\nweb: gunicorn config.wsgi\nworker:celery -A config worker\n  beat:   celery beat  \n",
			[]Entry{
				{"web", "gunicorn config.wsgi", 3},
				{"worker", "celery -A config worker", 4},
				{"beat", "celery beat", 5},
			}, ""},
		{"crlf and bom", "\ufeffweb: run\r\nrelease: migrate\r\n",
			[]Entry{{"web", "run", 1}, {"release", "migrate", 2}}, ""},
		{"colon in command", "web: gunicorn -b 0.0.0.0:8000 app:wsgi",
			[]Entry{{"web", "gunicorn -b 0.0.0.0:8000 app:wsgi", 1}}, ""},
		{"names", "a_B-9: x", []Entry{{"a_B-9", "x", 1}}, ""},
		{"duplicate", "web: a\n\nweb: b\n", nil, "line 3: web already declared on line 1"},
		{"no command", "web: a\nworker:  \n", nil, "line 2: worker has no command"},
		{"bad line", "web: a\ngunicorn app\n", nil, "line 2"},
		{"bad name", "we b: a\n", nil, "line 1"},
		{"dot in name", "web.1: a\n", nil, "line 1"},
	}
	for _, tt := range tests {
		got, err := Parse(strings.NewReader(tt.in))
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: got error %v, want one containing %q", tt.name, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: got error %v", tt.name, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: got %+v, want %+v", tt.name, got, tt.want)
		}
	}
}

func TestParseLongLine(t *testing.T) {
	_, err := Parse(strings.NewReader("web: a\nworker: " + strings.Repeat("x", maxLine) + "\n"))
	if err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("got %v, want an error naming line 2", err)
	}
}

func TestParseFormation(t *testing.T) {
	tests := []struct {
		in      string
		want    map[string]int
		wantErr bool
	}{
		{"", map[string]int{}, false},
		{"web=1,worker=2", map[string]int{"web": 1, "worker": 2}, false},
		{" web=1  worker=0 ,, beat=1\t", map[string]int{"web": 1, "worker": 0, "beat": 1}, false},
		{"all=0,web=1", map[string]int{"all": 0, "web": 1}, false},
		{"web=100", map[string]int{"web": 100}, false},
		{"web=101", nil, true},
		{"web=-1", nil, true},
		{"web=x", nil, true},
		{"web=", nil, true},
		{"web", nil, true},
		{"=1", nil, true},
		{"we.b=1", nil, true},
		{"web=1,web=2", nil, true},
		{"web=1.5", nil, true},
	}
	for _, tt := range tests {
		got, err := ParseFormation(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseFormation(%q): got error %v, want error %v", tt.in, err, tt.wantErr)
			continue
		}
		if !tt.wantErr && !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseFormation(%q): got %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestCount(t *testing.T) {
	tests := []struct {
		f    map[string]int
		typ  string
		want int
	}{
		{nil, "web", 1},
		{map[string]int{"worker": 2}, "web", 1},
		{map[string]int{"worker": 2}, "worker", 2},
		{map[string]int{"all": 0, "web": 1}, "web", 1},
		{map[string]int{"all": 0, "web": 1}, "worker", 0},
		{map[string]int{"all": 3}, "worker", 3},
	}
	for _, tt := range tests {
		if got := Count(tt.f, tt.typ); got != tt.want {
			t.Errorf("Count(%v, %q): got %d, want %d", tt.f, tt.typ, got, tt.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add("web: gunicorn\n# c\nworker: celery\n")
	f.Add("web:\n")
	f.Add("\ufeffa: b\r\n")
	f.Fuzz(func(t *testing.T, s string) {
		entries, err := Parse(strings.NewReader(s))
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, e := range entries {
			if e.Command == "" || e.Line < 1 || seen[e.Type] || !typeName().MatchString(e.Type) {
				t.Fatalf("bad entry %+v from %q", e, s)
			}
			seen[e.Type] = true
		}
	})
}

func FuzzParseFormation(f *testing.F) {
	f.Add("web=1,worker=2")
	f.Add("all=0 web=1")
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseFormation(s)
		if err != nil {
			return
		}
		for k, n := range got {
			if n < 0 || n > MaxInstances || !typeName().MatchString(k) {
				t.Fatalf("bad item %s=%d from %q", k, n, s)
			}
		}
	})
}
