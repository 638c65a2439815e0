// Package procstat reads a process's memory figures from Linux's
// /proc/PID/status.
package procstat

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Memory is a process's resident memory, in KiB.
type Memory struct {
	Peak    int64 // VmHWM: the resident set's high-water mark
	RSS     int64 // VmRSS
	Anon    int64 // RssAnon: anonymous pages (heaps, stacks)
	FileRSS int64 // RssFile: mapped files (libraries, mmapped index files)
}

// Read reads process pid's memory figures (pid 0: this process).
func Read(pid int) (Memory, error) {
	path := "/proc/self/status"
	if pid != 0 {
		path = fmt.Sprintf("/proc/%d/status", pid)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return Memory{}, err
	}
	var m Memory
	fields := map[string]*int64{"VmHWM:": &m.Peak, "VmRSS:": &m.RSS, "RssAnon:": &m.Anon, "RssFile:": &m.FileRSS}
	found := 0
	for _, l := range strings.Split(string(b), "\n") {
		key, v, ok := strings.Cut(l, "\t")
		if !ok {
			continue
		}
		if dst, ok := fields[key]; ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return Memory{}, fmt.Errorf("%s: %s %q: %w", path, key, v, err)
			}
			*dst = kb
			found++
		}
	}
	if found != len(fields) {
		return Memory{}, fmt.Errorf("%s: %d of VmHWM, VmRSS, RssAnon and RssFile", path, found)
	}
	return m, nil
}
