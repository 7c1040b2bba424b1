package benchplot

import (
	"bytes"
	"encoding/xml"
	"errors"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tern-mail/tern/internal/tools/bench"
)

// results are a run with everything in it, one where nothing got through, and one so short
// that every latency is the same.
func results() map[string]*bench.Result {
	full := &bench.Result{
		Server: "127.0.0.1:25", Started: time.Unix(1e9, 0), Sessions: 20, Size: 5120, Recipients: 1, TLS: "none",
		Elapsed: 2.5, Messages: 2000, Failed: 3, MessagesPerSec: 800, MBPerSec: 4.1, Connections: 2003,
		Latency:  bench.Stats{Count: 2000, P50: 12, P90: 30, P99: 80, Max: 120, Min: 2},
		Commands: []bench.CommandStats{{Command: "MAIL", Stats: bench.Stats{Count: 2000, P50: 1, P90: 2, P99: 3, Max: 4}}},
		Errors:   []bench.ErrorCount{{Kind: "RCPT 450 4.7.1", Count: 3, Example: "RCPT: 450 4.7.1 <try> & later"}},
	}
	for i := range 25 {
		full.Throughput = append(full.Throughput, bench.Point{T: float64(i+1) / 10, Rate: 700 + float64(i*10), Errors: i % 10 / 9})
	}
	for i := range 40 {
		lo := 2 * float64(i+1)
		full.Distribution = append(full.Distribution, bench.Bucket{Lo: lo, Hi: lo + 2, Count: uint64(i * (40 - i))})
	}
	return map[string]*bench.Result{
		"full":  full,
		"empty": {Server: "127.0.0.1:25", Failed: 10, Elapsed: 0.01},
		"flat": {Server: "127.0.0.1:25", Messages: 1, Elapsed: 0.01, Latency: bench.Stats{Count: 1, P50: 5, P90: 5, P99: 5, Max: 5},
			Distribution: []bench.Bucket{{Lo: 5, Hi: 5, Count: 1}}, Throughput: []bench.Point{{T: 0.01, Rate: 100}}},
	}
}

// The page has two well-formed SVG charts, the figures and the escaped error text, and
// nothing that would be fetched.
func TestHTML(t *testing.T) {
	for name, res := range results() {
		t.Run(name, func(t *testing.T) {
			var b bytes.Buffer
			if err := HTML(&b, res, time.Unix(1e9, 0)); err != nil {
				t.Fatal(err)
			}
			page := b.String()
			if n := strings.Count(page, "<svg "); n != 2 {
				t.Fatalf("%d charts, want 2", n)
			}
			for rest := page; strings.Contains(rest, "<svg "); {
				start := strings.Index(rest, "<svg ")
				end := strings.Index(rest, "</svg>") + len("</svg>")
				checkXML(t, rest[start:end])
				rest = rest[end:]
			}
			for _, bad := range []string{"http://", "https://", "<script", "NaN", "Inf"} {
				if strings.Contains(strings.ReplaceAll(page, `xmlns="http://www.w3.org/2000/svg"`, ""), bad) {
					t.Errorf("the page holds %q", bad)
				}
			}
			if name == "full" && (!strings.Contains(page, "&lt;try&gt; &amp; later") || !strings.Contains(page, "p99 80")) {
				t.Errorf("the page lacks the escaped error or the p99 mark:\n%s", page)
			}
		})
	}
}

func checkXML(t *testing.T, s string) {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(s))
	for {
		_, err := d.Token()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatalf("SVG not well-formed: %v\n%s", err, s)
		}
	}
}

// The PNG decodes, at the size drawn.
func TestPNG(t *testing.T) {
	for name, res := range results() {
		t.Run(name, func(t *testing.T) {
			var b bytes.Buffer
			if err := PNG(&b, res); err != nil {
				t.Fatal(err)
			}
			img, err := png.Decode(&b)
			if err != nil {
				t.Fatal(err)
			}
			if r := img.Bounds(); r.Dx() != 960 || r.Dy() != 768 {
				t.Errorf("image %v", r)
			}
		})
	}
}

// WriteFile picks the format by the name's extension and refuses others.
func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	res := results()["full"]
	for _, name := range []string{"run.html", "run.PNG"} {
		path := filepath.Join(dir, name)
		if err := WriteFile(path, res, time.Now()); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		isPNG := bytes.HasPrefix(b, []byte("\x89PNG"))
		if isPNG != strings.HasSuffix(name, ".PNG") {
			t.Errorf("%s: PNG %v", name, isPNG)
		}
	}
	if err := WriteFile(filepath.Join(dir, "run.svg"), res, time.Now()); !errors.Is(err, ErrFormat) {
		t.Errorf("run.svg: %v, want ErrFormat", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "run.svg")); err == nil {
		t.Error("run.svg was made")
	}
}
