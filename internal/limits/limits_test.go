package limits

import (
	"runtime"
	"strings"
	"testing"
)

func TestCheckThreads(t *testing.T) {
	if MaxThreads() != 4*runtime.NumCPU() {
		t.Fatalf("MaxThreads %d with %d CPUs", MaxThreads(), runtime.NumCPU())
	}
	for _, n := range []int{0, 1, MaxThreads()} {
		if err := CheckThreads(n); err != nil {
			t.Errorf("CheckThreads(%d): %v", n, err)
		}
	}
	for _, n := range []int{-1, MaxThreads() + 1, 100000} {
		err := CheckThreads(n)
		if err == nil || !strings.Contains(err.Error(), MaxThreadsNote()) {
			t.Errorf("CheckThreads(%d): %v, want an error saying %q", n, err, MaxThreadsNote())
		}
	}
}
