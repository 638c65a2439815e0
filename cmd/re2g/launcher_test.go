package main

import (
	"strings"
	"testing"
)

// TestCheckLauncher: under a launcher of more than one rank only the
// commands whose ranks split the work run; every other command (which each
// rank would run whole) is refused with the rank and world size named, and
// help is always given. Without a launcher, or with one rank, nothing is
// refused.
func TestCheckLauncher(t *testing.T) {
	env := func(vars map[string]string) func(string) string { return func(k string) string { return vars[k] } }
	two := env(map[string]string{"RANK": "1", "WORLD_SIZE": "2"})
	for _, c := range []struct {
		args   []string
		getenv func(string) string
		refuse string // "" when it runs
	}{
		{[]string{"index", "--corpus", "c.jsonl", "--out", "idx"}, two, ""},
		{[]string{"train", "dpr", "--config", "x"}, two, ""},
		{[]string{"dist", "check", "--bench"}, two, ""},
		{[]string{"encode", "--in", "a", "--out", "b"}, two, "re2g encode runs in one process, and this one is rank 1 of 2"},
		{[]string{"index", "add", "--index", "idx"}, two, "re2g index add runs in one process"},
		{[]string{"index", "merge", "a", "b"}, two, "re2g index merge runs in one process"},
		{[]string{"serve", "--index", "idx"}, two, "re2g serve runs in one process"},
		{[]string{"serve", "--help"}, two, ""},
		{[]string{"serve", "--index", "idx"}, env(map[string]string{"RANK": "0", "WORLD_SIZE": "1"}), ""},
		{[]string{"serve", "--index", "idx"}, env(map[string]string{"WORLD_SIZE": "2"}), ""},
		{[]string{"serve", "--index", "idx"}, env(nil), ""},
	} {
		err := checkLauncher(c.args, c.getenv)
		switch {
		case c.refuse == "" && err != nil:
			t.Errorf("%v: refused: %v", c.args, err)
		case c.refuse != "" && (err == nil || !strings.Contains(err.Error(), c.refuse)):
			t.Errorf("%v: %v, want an error with %q", c.args, err, c.refuse)
		}
	}
}
