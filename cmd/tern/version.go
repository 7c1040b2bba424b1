package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

func newVersionCmd(std stdio) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "print the version, the commit and the Go version tern was built from",
		Long: `Prints the version (make's, or the module's when built with go install tern@VERSION), the
commit (from the build information go build records in a git checkout; "modified" when the
checkout had uncommitted changes) and the Go version and platform.`,
		Example: "  tern version",
		Args:    nargs(0, 0),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, err := fmt.Fprint(std.out, versionText())
			return err
		},
	}
}

// versionText is what tern version prints: the version, the commit and the Go version, one a
// line. They come from the build information go build and go install record, so a binary built
// without make says where it came from too; make's -X main.version wins for the version, and its
// -X main.commit stands in when go build recorded no revision (-buildvcs=false, a git worktree).
func versionText() string {
	v, built, goVersion := version, commit, runtime.Version()
	if built == "" {
		built = "unknown (built without VCS information)"
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
		goVersion = bi.GoVersion
		var rev, modified string
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				modified = s.Value
			}
		}
		if rev != "" {
			built = rev
			if modified == "true" {
				built += " (modified)"
			}
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "tern %s\n", v)
	fmt.Fprintf(&b, "commit: %s\n", built)
	fmt.Fprintf(&b, "go: %s %s/%s\n", goVersion, runtime.GOOS, runtime.GOARCH)
	return b.String()
}
