package config

import (
	"bytes"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
)

// Example renders the defaults as an annotated TOML file: every key with its doc comment and
// its default value. docs/config.toml is this output (a test keeps the two the same).
func Example() string {
	var b strings.Builder
	b.WriteString("# tern configuration (tern serve --config FILE). Every key is optional;\n")
	b.WriteString("# the values shown are the defaults. Flags override the file.\n")
	for i, t := range tables() {
		if i > 0 {
			fmt.Fprintf(&b, "\n[%s]\n", t.name)
		}
		for _, k := range t.keys {
			for _, line := range wrap(k.doc, 96) {
				fmt.Fprintf(&b, "# %s\n", line)
			}
			fmt.Fprintf(&b, "%s = %s\n", k.name, k.value)
		}
	}
	return b.String()
}

// table is one table of the configuration as Example and Reference show it: its keys in the
// order of the fields, with their doc and default.
type table struct {
	name string // "" for the top level
	keys []key
}

type key struct{ name, doc, value string }

// tables walks the defaults: the top level first, then each table in the order of its field.
func tables() []table {
	var out []table
	var walk func(v reflect.Value, name string)
	walk = func(v reflect.Value, name string) {
		t := v.Type()
		tb := table{name: name}
		var sub []int
		for i := range t.NumField() {
			f := t.Field(i)
			if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeFor[Duration]() {
				sub = append(sub, i)
				continue
			}
			doc := f.Tag.Get("doc")
			switch doc { // too long for a tag that stays readable
			case "<milterDoc>":
				doc = milterDoc
			case "<listenerDoc>":
				doc = listenerDoc
			}
			tb.keys = append(tb.keys, key{name: f.Tag.Get("toml"), doc: doc, value: tomlValue(v.Field(i).Interface())})
		}
		out = append(out, tb)
		for _, i := range sub {
			walk(v.Field(i), t.Field(i).Tag.Get("toml"))
		}
	}
	walk(reflect.ValueOf(Default()), "")
	return out
}

// tomlValue renders one value the way the TOML encoder would (maps as inline tables, which
// the encoder writes as [sections] instead).
func tomlValue(x any) string {
	if v := reflect.ValueOf(x); v.Kind() == reflect.Slice && v.Len() == 0 {
		return "[]"
	}
	if m, ok := x.(map[string]string); ok {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var parts []string
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf("%q = %q", k, m[k]))
		}
		return "{" + strings.Join(parts, ", ") + "}"
	}
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(map[string]any{"k": x}); err != nil {
		return fmt.Sprintf("%q", fmt.Sprint(x))
	}
	s := strings.TrimSpace(buf.String())
	return strings.TrimSpace(strings.TrimPrefix(s, "k ="))
}

func wrap(s string, width int) []string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(s) {
		if line != "" && len(line)+1+len(w) > width {
			lines = append(lines, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += w
	}
	if line != "" {
		lines = append(lines, line)
	}
	return lines
}
