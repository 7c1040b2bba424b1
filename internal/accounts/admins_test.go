package accounts

import (
	"errors"
	"strings"
	"testing"
)

func TestNormalizeAdmin(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		bad      bool
	}{
		{in: "alice", want: "alice"},
		{in: "Ops-Team_1.x", want: "ops-team_1.x"},
		{in: "", bad: true},
		{in: "a b", bad: true},
		{in: "bob@example.test", bad: true},
		{in: "é", bad: true},
		{in: "x\n", bad: true},
		{in: strings.Repeat("a", 64), want: strings.Repeat("a", 64)},
		{in: strings.Repeat("a", 65), bad: true},
	} {
		got, err := NormalizeAdmin(tc.in)
		if tc.bad {
			if !errors.Is(err, ErrBadAdmin) {
				t.Errorf("NormalizeAdmin(%q) = %q, %v; want ErrBadAdmin", tc.in, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("NormalizeAdmin(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}
