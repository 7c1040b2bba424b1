package filter

import (
	"bufio"
	"bytes"
	"io"
	"strings"
	"testing"
)

func TestReadHeader(t *testing.T) {
	for _, tc := range []struct {
		name, msg string
		fields    []string // names
		sep       bool
		body      string
	}{
		{"plain", "A: 1\r\nB: 2\r\n folded\r\n\r\nbody\r\n", []string{"A", "B"}, true, "body\r\n"},
		{"no-body", "A: 1\r\n", []string{"A"}, false, ""},
		{"no-line-end", "A: 1", []string{"A"}, false, ""},
		{"non-field-starts-body", "A: 1\r\nnot a field\r\nB: 2\r\n", []string{"A"}, false, "not a field\r\nB: 2\r\n"},
		{"continuation-first", " x\r\nA: 1\r\n", nil, false, " x\r\nA: 1\r\n"},
		{"empty", "", nil, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, body, err := ReadHeader(bufio.NewReader(strings.NewReader(tc.msg)))
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, f := range h.Fields {
				names = append(names, f.Name)
			}
			b, _ := io.ReadAll(body)
			if strings.Join(names, ",") != strings.Join(tc.fields, ",") || h.Sep != tc.sep || string(b) != tc.body {
				t.Errorf("fields %v sep %v body %q", names, h.Sep, b)
			}
			var out bytes.Buffer
			if _, err := h.Write(&out, bytes.NewReader(b)); err != nil {
				t.Fatal(err)
			}
			if want := strings.TrimSuffix(tc.msg, "1") + map[bool]string{true: "1\r\n"}[tc.name == "no-line-end"]; out.String() != want {
				t.Errorf("written back as %q", out.String())
			}
		})
	}
}

func TestFieldValue(t *testing.T) {
	f := Field{Name: "Subject", Raw: "Subject:  a\r\n\tb\r\n"}
	if got := f.Value(); got != "a\n\tb" {
		t.Errorf("Value = %q", got)
	}
}

// A filter's value can never start a field or the body of its own.
func TestNewFieldFolds(t *testing.T) {
	for in, want := range map[string]string{
		"a\nB: injected":      "X: a\r\n\tB: injected\r\n",
		"a\r\n\r\nbody":       "X: a\r\n\tbody\r\n",
		"\tleading":           "X:\tleading\r\n",
		"":                    "X:\r\n",
		"a\r\n continued\r\n": "X: a\r\n continued\r\n",
	} {
		f, err := newField("X", in)
		if err != nil || f.Raw != want {
			t.Errorf("newField(%q) = %q, %v; want %q", in, f.Raw, err, want)
		}
	}
	for _, bad := range []string{"a\rb", "a\x00"} {
		if _, err := newField("X", bad); err == nil {
			t.Errorf("newField(%q) accepted", bad)
		}
	}
	if _, err := newField("Bad Name", "x"); err == nil {
		t.Error("a name with a space accepted")
	}
}

func TestCRLF(t *testing.T) {
	if got := string(CRLF([]byte("a\nb\r\nc\rd\x00"))); got != "a\r\nb\r\ncd\r\n" {
		t.Errorf("CRLF = %q", got)
	}
}

// Whatever the stored message and the edits, the result reads back as a header section whose
// fields are all well formed, and nothing panics.
func FuzzApply(f *testing.F) {
	f.Add([]byte("A: 1\r\nB: 2\r\n\r\nbody\r\n"), "X", "v\nw", 1)
	f.Add([]byte("A: 1\r\n folded\r\n"), "A", "", 0)
	f.Fuzz(func(t *testing.T, msg []byte, name, value string, index int) {
		if bytes.Count(msg, []byte("\n")) != bytes.Count(msg, []byte("\r\n")) || bytes.Count(msg, []byte("\r")) != bytes.Count(msg, []byte("\r\n")) {
			t.Skip("stored messages have CRLF line ends only (smtp.ReadData)")
		}
		h, body, err := ReadHeader(bufio.NewReader(bytes.NewReader(msg)))
		if err != nil {
			t.Fatal(err)
		}
		_, _, _ = Apply(&h, []Edit{
			{Kind: AddHeader, Name: name, Value: value},
			{Kind: InsertHeader, Name: name, Value: value, Index: index},
			{Kind: ChangeHeader, Name: name, Value: value, Index: index},
		})
		var out bytes.Buffer
		if _, err := h.Write(&out, body); err != nil {
			t.Fatal(err)
		}
		for _, fl := range h.Fields {
			if !isFieldStart([]byte(fl.Raw)) || !strings.HasSuffix(fl.Raw, "\r\n") {
				t.Fatalf("bad field %q", fl.Raw)
			}
			for _, line := range strings.Split(strings.TrimSuffix(fl.Raw, "\r\n"), "\r\n")[1:] {
				if line == "" || line[0] != ' ' && line[0] != '\t' {
					t.Fatalf("field %q has a line that is not folded", fl.Raw)
				}
			}
		}
	})
}
