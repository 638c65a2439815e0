// Package proctest runs the test binary itself as other processes: the
// ranks of a distributed job, with the environment a launcher (torchrun)
// gives them on one machine (real processes meeting on 127.0.0.1), or a
// helper process that a test drives, its TestMain acting on a variable.
package proctest

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Self returns a command that runs the test binary with env added to this
// process's environment, running none of its tests: only its TestMain,
// which acts on env.
func Self(env ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env...)
	return cmd
}

// FreePort returns a TCP port on 127.0.0.1 that nothing listened on a moment
// ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// launcherVars are the variables of a launcher and of torch/dist's
// configuration: a rank inherits none of them from the test's environment
// (which may itself run under a launcher), only those its Job gives it.
var launcherVars = []string{"RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
	"SLURM_PROCID", "TORCHELASTIC_RUN_ID", "RE2G_DIST_STORE_FILE", "RE2G_DIST_BACKEND", "RE2G_DIST_TIMEOUT",
	"GLOO_SOCKET_IFNAME"}

// Job is a distributed job to start.
type Job struct {
	// World is the number of ranks. A world of 1 is a plain process,
	// without a launcher's variables.
	World int
	// Ranks are the ranks to start (nil: every rank).
	Ranks []int
	// Args gives rank r's arguments to the test binary (nil: none of its
	// tests, only its TestMain).
	Args func(r int) []string
	// Env is added to every rank's environment.
	Env []string
	// StoreFile, when set, is where the ranks meet (RE2G_DIST_STORE_FILE);
	// otherwise at a free TCP port on 127.0.0.1 (MASTER_ADDR, MASTER_PORT).
	StoreFile string
}

// Proc is a started process, its standard output and error read together.
type Proc struct {
	Rank int
	Cmd  *exec.Cmd

	mu      sync.Mutex
	lines   []string
	more    chan struct{}
	done    chan struct{}
	err     error
	started time.Time
	ended   time.Time
}

// Start starts the job's ranks; each is killed, if still running, when the
// test ends.
func Start(t testing.TB, j Job) []*Proc {
	t.Helper()
	ranks := j.Ranks
	if ranks == nil {
		for r := range j.World {
			ranks = append(ranks, r)
		}
	}
	var base []string
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); !slices.Contains(launcherVars, k) {
			base = append(base, kv)
		}
	}
	base = append(base, j.Env...)
	var launcher []string
	if j.World > 1 {
		launcher = []string{"WORLD_SIZE=" + strconv.Itoa(j.World), "LOCAL_WORLD_SIZE=" + strconv.Itoa(j.World)}
		if j.StoreFile != "" {
			launcher = append(launcher, "RE2G_DIST_STORE_FILE="+j.StoreFile)
		} else {
			launcher = append(launcher, "MASTER_ADDR=127.0.0.1", "MASTER_PORT="+strconv.Itoa(FreePort(t)))
		}
	}
	var ps []*Proc
	t.Cleanup(func() {
		for _, p := range ps {
			p.Cmd.Process.Kill()
			<-p.done
		}
	})
	for _, r := range ranks {
		args := []string{"-test.run=^$"}
		if j.Args != nil {
			args = j.Args(r)
		}
		cmd := exec.Command(os.Args[0], args...)
		cmd.Env = slices.Clone(base)
		if launcher != nil {
			cmd.Env = append(append(cmd.Env, launcher...), "RANK="+strconv.Itoa(r), "LOCAL_RANK="+strconv.Itoa(r))
		}
		ps = append(ps, start(t, r, cmd))
	}
	return ps
}

// start starts cmd, reading its output until it ends.
func start(t testing.TB, rank int, cmd *exec.Cmd) *Proc {
	t.Helper()
	p := &Proc{Rank: rank, Cmd: cmd, more: make(chan struct{}, 1), done: make(chan struct{})}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	p.started = time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<16), 1<<22)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			p.mu.Unlock()
			select {
			case p.more <- struct{}{}:
			default:
			}
		}
		p.err = cmd.Wait()
		p.ended = time.Now()
		close(p.done)
	}()
	return p
}

// Output is what the process has written so far, a newline after each line.
func (p *Proc) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var b strings.Builder
	for _, l := range p.lines {
		b.WriteString(l + "\n")
	}
	return b.String()
}

// Done is closed once the process has ended and its output is read.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Err is how the process ended (cmd.Wait's error), once Done is closed.
func (p *Proc) Err() error { return p.err }

// ExitCode is the process's exit status once Done is closed: -1 if a
// signal ended it.
func (p *Proc) ExitCode() int { return p.Cmd.ProcessState.ExitCode() }

// Ended is when the process was seen to end, once Done is closed.
func (p *Proc) Ended() time.Time { return p.ended }

// Elapsed is how long the process ran, once Done is closed.
func (p *Proc) Elapsed() time.Duration { return p.ended.Sub(p.started) }

// Wait waits for the process to end, failing the test if it runs past
// limit, and returns its exit status.
func (p *Proc) Wait(t testing.TB, limit time.Duration) int {
	t.Helper()
	Wait(t, []*Proc{p}, limit)
	return p.ExitCode()
}

// WaitFor waits for a line of the process's output that contains s and
// returns it, failing the test if the process ends or limit passes first.
func (p *Proc) WaitFor(t testing.TB, s string, limit time.Duration) string {
	t.Helper()
	deadline := time.After(limit)
	for seen := 0; ; {
		p.mu.Lock()
		for ; seen < len(p.lines); seen++ {
			if strings.Contains(p.lines[seen], s) {
				l := p.lines[seen]
				p.mu.Unlock()
				return l
			}
		}
		p.mu.Unlock()
		select {
		case <-p.more:
		case <-p.done:
			p.mu.Lock()
			rest := len(p.lines) - seen
			p.mu.Unlock()
			if rest == 0 {
				t.Fatalf("rank %d ended (%v) without a line containing %q:\n%s", p.Rank, p.err, s, p.Output())
			}
		case <-deadline:
			t.Fatalf("rank %d: no line containing %q after %v:\n%s", p.Rank, s, limit, p.Output())
		}
	}
}

// Wait waits for every process, failing the test (with each one's output)
// if one runs past limit: a hang.
func Wait(t testing.TB, ps []*Proc, limit time.Duration) {
	t.Helper()
	timer := time.NewTimer(limit)
	defer timer.Stop()
	for _, p := range ps {
		select {
		case <-p.done:
		case <-timer.C:
			for _, q := range ps {
				t.Logf("rank %d output:\n%s", q.Rank, q.Output())
			}
			t.Fatalf("rank %d still running after %v: a hang", p.Rank, limit)
		}
	}
}
