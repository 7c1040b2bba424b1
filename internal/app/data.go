package app

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/tern-mail/tern/internal/config"
)

// ExistingData returns the absolute path of the configured data directory, or an error that says
// where it looked and how to look elsewhere when there is none. Only tern serve and tern user add
// make a data directory; every other command that uses one calls this first, so that a command
// run in the wrong place says so instead of making an empty one.
func ExistingData(cfg config.Config) (string, error) {
	data, err := filepath.Abs(cfg.Data)
	if err != nil {
		return "", err
	}
	fi, err := os.Stat(data)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", errorf(err, "there is no data directory %s (tern serve and tern user add make one): "+
			"give the right one with --data DIR, the TERN_DATA environment variable or the data setting of --config FILE", data)
	case err != nil:
		return "", explainData(data, "cannot use the data directory", err)
	case !fi.IsDir():
		return "", fmt.Errorf("the data directory %s is not a directory: give another with --data DIR or TERN_DATA", data)
	}
	return data, nil
}
