package app

import (
	"runtime"
	"testing"
)

// TestMoreProcs: twice Go's default without the environment variable, however often it is
// called; the variable's value untouched when it is set.
func TestMoreProcs(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	runtime.SetDefaultGOMAXPROCS()
	def := runtime.GOMAXPROCS(0)
	unset := func(string) string { return "" }
	for range 2 {
		if n, chosen := moreProcs(unset); n != 2*def || !chosen || runtime.GOMAXPROCS(0) != 2*def {
			t.Errorf("without GOMAXPROCS: %d (chosen %v), runtime %d; want %d", n, chosen, runtime.GOMAXPROCS(0), 2*def)
		}
	}
	runtime.GOMAXPROCS(3)
	set := func(k string) string {
		if k == "GOMAXPROCS" {
			return "3"
		}
		return ""
	}
	if n, chosen := moreProcs(set); n != 3 || chosen {
		t.Errorf("with GOMAXPROCS=3: %d (chosen %v), want 3 and not chosen", n, chosen)
	}
}
