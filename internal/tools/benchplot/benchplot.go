// Package benchplot draws a tern bench run: the throughput over time and the distribution of
// message latencies, as a self-contained HTML page (inline SVG written here, no script, nothing
// fetched: it opens offline) or as a PNG image (gonum.org/v1/plot). It only reads a
// bench.Result.
package benchplot

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tern-mail/tern/internal/tools/bench"
)

// ErrFormat: a plot file's name ends neither in .html nor in .png.
var ErrFormat = errors.New("benchplot: the file name must end in .html or .png")

// CheckName says whether name is a file name WriteFile can draw into (by its extension).
func CheckName(name string) error {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".html", ".htm", ".png":
		return nil
	}
	return fmt.Errorf("%s: %w", name, ErrFormat)
}

// WriteFile draws res into name, HTML or PNG by its extension; now dates the page.
func WriteFile(name string, res *bench.Result, now time.Time) (err error) {
	if err := CheckName(name); err != nil {
		return err
	}
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	w := bufio.NewWriter(f)
	if strings.EqualFold(filepath.Ext(name), ".png") {
		err = PNG(w, res)
	} else {
		err = HTML(w, res, now)
	}
	if err != nil {
		return err
	}
	return w.Flush()
}

// title says what was run, in one line.
func title(res *bench.Result) string { return "tern bench " + res.Describe() }
