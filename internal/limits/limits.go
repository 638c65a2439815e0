// Package limits holds the bounds that settings share across packages, so
// that a command-line flag and the library field it sets agree.
package limits

import (
	"fmt"
	"runtime"
)

// ThreadsPerCPU is how many threads per CPU a thread pool may be given.
// More only adds contention (a probe's --threads 100000 ran past 10 minutes
// at load average 78 and did not stop on SIGTERM).
const ThreadsPerCPU = 4

// MaxThreads is the most threads a thread pool may be given: ThreadsPerCPU
// per CPU of this machine.
func MaxThreads() int { return ThreadsPerCPU * runtime.NumCPU() }

// MaxThreadsNote says what MaxThreads is made of, for error messages.
func MaxThreadsNote() string {
	return fmt.Sprintf("%d × %d CPUs", ThreadsPerCPU, runtime.NumCPU())
}

// CheckThreads accepts 0 (the default) to MaxThreads.
func CheckThreads(n int) error {
	if n < 0 || n > MaxThreads() {
		return fmt.Errorf("%d threads: want 0 (the default) to %d (%s)", n, MaxThreads(), MaxThreadsNote())
	}
	return nil
}
