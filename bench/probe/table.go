package main

import (
	"bufio"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// summary is the median, minimum and maximum of some samples.
type summary struct {
	median, min, max float64
	n                int
}

func summarize(v []float64) summary {
	if len(v) == 0 {
		return summary{median: math.NaN(), min: math.NaN(), max: math.NaN()}
	}
	s := slices.Clone(v)
	slices.Sort(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return summary{median: m, min: s[0], max: s[len(s)-1], n: len(s)}
}

// row is one line of a table: a name and the summary of each column of its samples.
type row struct {
	name string
	cols []summary
}

// tableCmd prints a markdown table from sample files given as NAME=FILE, one sample per
// line, one whitespace-separated field per column. One column: median, min, max and the
// ratio of the medians to -ref's. Several: "median (min–max) ×ratio" in each cell.
func tableCmd(args []string, stdout io.Writer) error {
	fs := flags("table")
	label := fs.String("label", "", "header of the first column")
	cols := fs.String("cols", "", "headers of the sample columns, comma separated (one column if empty)")
	unit := fs.String("unit", "", "unit shown in the headers of a one-column table")
	metric := fs.String("metric", "", "what a one-column table measures, shown before \"median\"")
	ref := fs.String("ref", "", "row the ratios are taken against")
	floor := fs.String("floor", "", "row whose median is subtracted in an extra column")
	if err := fs.Parse(args); err != nil {
		return err
	}
	headers := []string{""}
	if *cols != "" {
		headers = strings.Split(*cols, ",")
	}
	var rows []row
	for _, a := range fs.Args() {
		name, file, ok := strings.Cut(a, "=")
		if !ok {
			return fmt.Errorf("%q: want NAME=FILE", a)
		}
		samples, err := readSamples(file, len(headers))
		if err != nil {
			return err
		}
		r := row{name: name}
		for _, s := range samples {
			r.cols = append(r.cols, summarize(s))
		}
		rows = append(rows, r)
	}
	if *metric != "" {
		headers[0] = *metric + ", "
	}
	return writeTable(stdout, *label, headers, *unit, *ref, *floor, rows)
}

func writeTable(w io.Writer, label string, headers []string, unit, ref, floor string, rows []row) error {
	find := func(name string) *row {
		for i := range rows {
			if rows[i].name == name {
				return &rows[i]
			}
		}
		return nil
	}
	refRow, floorRow := find(ref), find(floor)
	if ref != "" && refRow == nil {
		return fmt.Errorf("-ref %q is not a row", ref)
	}
	if floor != "" && floorRow == nil {
		return fmt.Errorf("-floor %q is not a row", floor)
	}
	ratio := func(r row, c int) string {
		if refRow == nil {
			return ""
		}
		d := refRow.cols[c].median
		if d == 0 || math.IsNaN(d) || math.IsNaN(r.cols[c].median) {
			return "–"
		}
		return "×" + strconv.FormatFloat(r.cols[c].median/d, 'f', 2, 64)
	}
	u := ""
	if unit != "" {
		u = " (" + unit + ")"
	}
	var b strings.Builder
	if len(headers) == 1 {
		h := []string{label, headers[0] + "median" + u, "min" + u, "max" + u, "runs"}
		if floorRow != nil {
			h = append(h, "− "+floor+u)
		}
		if refRow != nil {
			h = append(h, "× "+ref)
		}
		line(&b, h)
		for _, r := range rows {
			s := r.cols[0]
			c := []string{r.name, num(s.median), num(s.min), num(s.max), strconv.Itoa(s.n)}
			if floorRow != nil {
				c = append(c, num(s.median-floorRow.cols[0].median))
			}
			if refRow != nil {
				c = append(c, ratio(r, 0))
			}
			line(&b, c)
		}
	} else {
		line(&b, append([]string{label}, headers...))
		for _, r := range rows {
			c := []string{r.name}
			for i, s := range r.cols {
				cell := fmt.Sprintf("%s (%s–%s)", num(s.median), num(s.min), num(s.max))
				if x := ratio(r, i); x != "" {
					cell += " " + x
				}
				c = append(c, cell)
			}
			line(&b, c)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// line writes one markdown row, and the separator after the header.
func line(b *strings.Builder, cells []string) {
	header := b.Len() == 0
	b.WriteString("| " + strings.Join(cells, " | ") + " |\n")
	if header {
		sep := make([]string, len(cells))
		sep[0] = "---"
		for i := 1; i < len(sep); i++ {
			sep[i] = "--:"
		}
		b.WriteString("|" + strings.Join(sep, "|") + "|\n")
	}
}

// num prints a figure with about three significant digits.
func num(v float64) string {
	a := math.Abs(v)
	switch {
	case math.IsNaN(v):
		return "n/a"
	case a >= 100 || a == math.Trunc(a):
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case a >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	default:
		return strconv.FormatFloat(v, 'f', 3, 64)
	}
}

// readSamples reads cols columns of numbers, one sample per line.
func readSamples(file string, cols int) ([][]float64, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := make([][]float64, cols)
	s := bufio.NewScanner(f)
	for n := 1; s.Scan(); n++ {
		fields := strings.Fields(s.Text())
		if len(fields) == 0 {
			continue
		}
		if len(fields) < cols {
			return nil, fmt.Errorf("%s:%d: %d fields, want %d", file, n, len(fields), cols)
		}
		for i := 0; i < cols; i++ {
			v, err := strconv.ParseFloat(fields[i], 64)
			if err != nil {
				return nil, fmt.Errorf("%s:%d: %w", file, n, err)
			}
			out[i] = append(out[i], v)
		}
	}
	return out, s.Err()
}

// hyperfineCmd writes the run times of each command of a hyperfine JSON export to
// DIR/NAME.txt in milliseconds, NAME being the command's name (hyperfine -n).
func hyperfineCmd(args []string, stdout io.Writer) error {
	fs := flags("hyperfine")
	dir := fs.String("dir", ".", "where the sample files go")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("want one JSON file")
	}
	b, err := os.ReadFile(fs.Arg(0))
	if err != nil {
		return err
	}
	var export struct {
		Results []struct {
			Command string    `json:"command"`
			Times   []float64 `json:"times"`
		} `json:"results"`
	}
	if err := json.Unmarshal(b, &export); err != nil {
		return fmt.Errorf("%s: %w", fs.Arg(0), err)
	}
	for _, r := range export.Results {
		if strings.ContainsAny(r.Command, "/ ") {
			return fmt.Errorf("command %q: name each command with hyperfine -n", r.Command)
		}
		var s strings.Builder
		for _, t := range r.Times {
			fmt.Fprintf(&s, "%.4f\n", t*1000)
		}
		if err := os.WriteFile(filepath.Join(*dir, r.Command+".txt"), []byte(s.String()), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// elfCmd prints whether an executable needs a program interpreter (the dynamic loader).
func elfCmd(args []string, stdout io.Writer) error {
	if len(args) != 1 {
		return errors.New("want one file")
	}
	f, err := elf.Open(args[0])
	if err != nil {
		return err
	}
	defer f.Close()
	kind := "static"
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			kind = "dynamic"
		}
	}
	_, err = fmt.Fprintln(stdout, kind)
	return err
}

// statsCmd prints, for each sample file (one number per line, first field), its median,
// sample count, minimum, maximum and the count of negative samples.
func statsCmd(args []string, stdout io.Writer) error {
	for _, f := range args {
		cols, err := readSamples(f, 1)
		if err != nil {
			return err
		}
		neg := 0
		for _, v := range cols[0] {
			if v < 0 {
				neg++
			}
		}
		s := summarize(cols[0])
		fmt.Fprintf(stdout, "%.3f %d %.3f %.3f %d\n", s.median, s.n, s.min, s.max, neg)
	}
	return nil
}
