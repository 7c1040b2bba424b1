package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// Problem is one thing wrong with a configuration, placed where an administrator fixes it:
// the file and line (0 when the setting is not in the file: a default, a flag) and the key.
type Problem struct {
	File string
	Line int
	Key  string // dotted, as in the file ("queue.workers"); empty when no one key is at fault
	Msg  string // what is wrong, with the "did you mean" of an unknown key
}

func (p Problem) String() string {
	var b strings.Builder
	if p.File != "" {
		b.WriteString(p.File)
		if p.Line > 0 {
			b.WriteString(":" + strconv.Itoa(p.Line))
		}
		b.WriteString(": ")
	}
	if p.Key != "" && !strings.HasPrefix(p.Msg, p.Key) {
		b.WriteString(p.Key + ": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// FileError is what Load found wrong with the file itself: TOML syntax, a value of the wrong
// type, unknown keys.
type FileError struct{ Problems []Problem }

func (e *FileError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		where := "configuration file " + p.File
		if p.Line > 0 {
			where += ", line " + strconv.Itoa(p.Line)
		}
		lines[i] = where + ": " + Problem{Key: p.Key, Msg: p.Msg}.String()
	}
	return strings.Join(lines, "\n")
}

// decodeFile applies the TOML text src (from the file path) to c and returns every problem
// with its line: the decoder stops at the first syntax or type error; unknown keys are all
// reported, each with the nearest known key of its table.
func decodeFile(path, src string, c *Config) error {
	md, err := toml.Decode(src, c)
	if err != nil {
		return &FileError{Problems: []Problem{decodeProblem(path, err)}}
	}
	if len(c.Listeners) > 0 && !md.IsDefined("listen") {
		c.Listen = Listen{} // [[listener]] replaces the default [listen] addresses
	}
	lines := keyLines(src)
	var probs []Problem
	var reported []string
	for _, k := range md.Undecoded() {
		key := k.String()
		// Under an unknown table every key is unknown too: name the table once.
		if slices.ContainsFunc(reported, func(r string) bool { return strings.HasPrefix(key, r+".") }) {
			continue
		}
		reported = append(reported, key)
		msg := "unknown key"
		if s := suggest(k); s != "" {
			msg += "; did you mean " + s + "?"
		}
		probs = append(probs, Problem{File: path, Line: lines[key], Key: key, Msg: msg})
	}
	if len(probs) > 0 {
		return &FileError{Problems: probs}
	}
	return nil
}

// typeErr matches the decoder's words for a value of the wrong type, which it does not return
// as a toml.ParseError.
var typeErr = regexp.MustCompile(`^toml: line (\d+) \(last key "([^"]*)"\): (.*)$`)

func decodeProblem(path string, err error) Problem {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		return Problem{File: path, Line: pe.Position.Line, Key: pe.LastKey, Msg: pe.Message}
	}
	if m := typeErr.FindStringSubmatch(err.Error()); m != nil {
		n, _ := strconv.Atoi(m[1]) // digits by the pattern
		return Problem{File: path, Line: n, Key: m[2], Msg: m[3]}
	}
	return Problem{File: path, Msg: strings.TrimPrefix(err.Error(), "toml: ")}
}

// keyLines maps every key and table the TOML text sets to the line where it is set: "queue"
// and "queue.workers", and for an array of tables both "milter[1].name" and, for its first
// element that has it, "milter.name" (the decoder names keys without the index). It reads the
// lines the way tern's files are written (bare keys, one per line); anything it cannot place
// gets no line, never a wrong one, as long as the decoder accepted the file.
func keyLines(src string) map[string]int {
	lines := map[string]int{}
	set := func(k string, n int) {
		if _, ok := lines[k]; !ok {
			lines[k] = n
		}
	}
	table, plain := "", "" // the current table, with and without the array index
	counts := map[string]int{}
	inString := "" // the delimiter of a multi-line string being skipped
	brackets := 0  // open brackets of a multi-line array being skipped
	for i, line := range strings.Split(src, "\n") {
		n := i + 1
		if inString != "" {
			if strings.Count(line, inString)%2 == 1 {
				inString = ""
			}
			continue
		}
		if brackets > 0 {
			brackets += strings.Count(line, "[") - strings.Count(line, "]")
			continue
		}
		t := strings.TrimSpace(line)
		switch {
		case t == "" || t[0] == '#':
			continue
		case strings.HasPrefix(t, "[["):
			name := strings.TrimSpace(strings.Trim(strings.SplitN(t, "]]", 2)[0], "[ "))
			table = name + "[" + strconv.Itoa(counts[name]) + "]"
			plain = name
			counts[name]++
			set(table, n)
			set(name, n)
			continue
		case t[0] == '[':
			table = strings.TrimSpace(strings.Trim(strings.SplitN(t, "]", 2)[0], "[ "))
			plain = table
			set(table, n)
			continue
		}
		k, v, ok := strings.Cut(t, "=")
		if !ok {
			continue
		}
		k = strings.TrimSpace(k)
		v = strings.TrimSpace(v)
		if table != "" {
			set(table+"."+k, n)
			set(plain+"."+k, n)
		} else {
			set(k, n)
		}
		for _, q := range []string{`"""`, `'''`} {
			if strings.Count(v, q)%2 == 1 {
				inString = q
			}
		}
		if strings.HasPrefix(v, "[") {
			brackets = strings.Count(v, "[") - strings.Count(v, "]")
		}
	}
	return lines
}

// suggest returns the known key of k's table nearest to k's last part, or "" when none is
// near (at most a third of the name's letters differ).
func suggest(k toml.Key) string {
	known := knownKeys(reflect.TypeFor[Config](), k[:len(k)-1])
	name := k[len(k)-1]
	best, bestD := "", len(name)/3+1
	for _, c := range known {
		if d := editDistance(name, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// knownKeys lists the keys of the table at path in the configuration type t.
func knownKeys(t reflect.Type, path []string) []string {
	for _, p := range path {
		f, ok := fieldByKey(t, p)
		if !ok {
			return nil
		}
		t = f.Type
		for t.Kind() == reflect.Slice || t.Kind() == reflect.Map {
			t = t.Elem()
		}
	}
	if t.Kind() != reflect.Struct {
		return nil
	}
	var keys []string
	for i := range t.NumField() {
		if k := t.Field(i).Tag.Get("toml"); k != "" {
			keys = append(keys, k)
		}
	}
	return keys
}

func fieldByKey(t reflect.Type, key string) (reflect.StructField, bool) {
	if t.Kind() != reflect.Struct {
		return reflect.StructField{}, false
	}
	for i := range t.NumField() {
		if t.Field(i).Tag.Get("toml") == key {
			return t.Field(i), true
		}
	}
	return reflect.StructField{}, false
}

// editDistance is Levenshtein's distance between a and b, in bytes (keys are ASCII).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// settingKey matches the key a problem of Validate starts with ("queue.workers must...",
// "listen.smtp (--smtp) ...", "milter \"spam\": ...").
var settingKey = regexp.MustCompile(`^([a-z_]+(?:\.[a-z_0-9]+)?)(?: "([^"]*)")?`)

// Locate places each problem of err (what Validate, Load or the server's own checks of the
// files returned) in the file path: its key and line. The problems of Validate name their key
// first, which is how they are placed; one that names none is reported without a line.
func Locate(path string, err error) []Problem {
	if err == nil {
		return nil
	}
	var fe *FileError
	if errors.As(err, &fe) {
		return fe.Problems
	}
	var lines map[string]int
	if path != "" {
		if b, rerr := os.ReadFile(path); rerr == nil {
			lines = keyLines(string(b))
		}
	}
	var probs []Problem
	for _, e := range flatten(err) {
		p := Problem{File: path, Msg: e.Error()}
		if m := settingKey.FindStringSubmatch(p.Msg); m != nil && isKnown(m[1]) {
			p.Key = m[1]
			p.Line = lines[m[1]]
			if m[2] != "" && strings.HasPrefix(p.Msg, m[1]+" \"") {
				p.Line = elementLine(path, lines, m[1], m[2])
			}
		}
		probs = append(probs, p)
	}
	return probs
}

// flatten lists the problems in err: those of an InvalidError, each of a join.
func flatten(err error) []error {
	if ie, ok := err.(*InvalidError); ok {
		return ie.Problems
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}

// isKnown says whether key is a table or key of the configuration.
func isKnown(key string) bool {
	parts := strings.Split(key, ".")
	_, ok := fieldByKey(reflect.TypeFor[Config](), parts[0])
	if !ok || len(parts) == 1 {
		return ok
	}
	return slices.Contains(knownKeys(reflect.TypeFor[Config](), parts[:1]), parts[1])
}

// elementLine is the line of the element of the array of tables key (a [[milter]]) that has
// a value name (its name or its address, as the problem quotes it); the first element's line
// when none has.
func elementLine(path string, lines map[string]int, key, name string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return lines[key]
	}
	var doc map[string]any
	if _, err := toml.Decode(string(b), &doc); err != nil {
		return lines[key]
	}
	elems, _ := doc[key].([]map[string]any)
	for i, e := range elems {
		for _, v := range e {
			if v == name {
				return lines[fmt.Sprintf("%s[%d]", key, i)]
			}
		}
	}
	return lines[key]
}

// Located returns err (from Validate, Load or the server's checks of the files) with each
// problem placed in the file path as Locate places it, for serve to say what config check
// says; without a file, err as it is.
func Located(path string, err error) error {
	if path == "" || err == nil {
		return err
	}
	var fe *FileError
	if errors.As(err, &fe) {
		return err
	}
	probs := Locate(path, err)
	errs := make([]error, len(probs))
	for i, p := range probs {
		errs[i] = errors.New(p.String())
	}
	return &InvalidError{Problems: errs}
}
