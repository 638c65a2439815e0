package proctest

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// TestMain: with PROCTEST_CHILD set, the test binary prints the launcher's
// variables it got, then "ready", then sleeps if PROCTEST_CHILD is "sleep".
func TestMain(m *testing.M) {
	if mode := os.Getenv("PROCTEST_CHILD"); mode != "" {
		for _, k := range launcherVars {
			if v, ok := os.LookupEnv(k); ok {
				fmt.Printf("%s=%s\n", k, v)
			}
		}
		fmt.Fprintln(os.Stderr, "ready")
		if mode == "sleep" {
			time.Sleep(time.Minute)
		}
		os.Exit(3)
	}
	os.Exit(m.Run())
}

func TestStart(t *testing.T) {
	t.Setenv("RE2G_DIST_BACKEND", "nccl") // not inherited
	ps := Start(t, Job{World: 3, Ranks: []int{0, 2}, Env: []string{"PROCTEST_CHILD=print"}})
	Wait(t, ps, time.Minute)
	for _, p := range ps {
		out := p.Output()
		for _, want := range []string{fmt.Sprintf("RANK=%d\n", p.Rank), fmt.Sprintf("LOCAL_RANK=%d\n", p.Rank), "WORLD_SIZE=3\n",
			"LOCAL_WORLD_SIZE=3\n", "MASTER_ADDR=127.0.0.1\n", "MASTER_PORT=", "ready\n"} {
			if !strings.Contains(out, want) {
				t.Errorf("rank %d: no %q in\n%s", p.Rank, want, out)
			}
		}
		if strings.Contains(out, "RE2G_DIST_BACKEND") || p.ExitCode() != 3 || p.Err() == nil {
			t.Errorf("rank %d: exit %d (%v)\n%s", p.Rank, p.ExitCode(), p.Err(), out)
		}
	}

	ps = Start(t, Job{World: 2, StoreFile: "/tmp/store", Env: []string{"PROCTEST_CHILD=print"}})
	Wait(t, ps, time.Minute)
	if out := ps[1].Output(); !strings.Contains(out, "RE2G_DIST_STORE_FILE=/tmp/store\n") || strings.Contains(out, "MASTER_") {
		t.Errorf("file store: %s", out)
	}

	alone := Start(t, Job{World: 1, Env: []string{"PROCTEST_CHILD=print"}})
	if code := alone[0].Wait(t, time.Minute); code != 3 || alone[0].Output() != "ready\n" {
		t.Errorf("one rank: exit %d, output %q", code, alone[0].Output())
	}
}

func TestWaitForAndKill(t *testing.T) {
	ps := Start(t, Job{World: 2, Env: []string{"PROCTEST_CHILD=sleep"}})
	if l := ps[1].WaitFor(t, "read", time.Minute); l != "ready" {
		t.Errorf("WaitFor: %q", l)
	}
	ps[1].Cmd.Process.Kill()
	if code := ps[1].Wait(t, time.Minute); code != -1 || !strings.Contains(ps[1].Err().Error(), "killed") {
		t.Errorf("killed: exit %d, %v", code, ps[1].Err())
	}
	select {
	case <-ps[0].Done():
		t.Error("rank 0 ended")
	default:
	}
}
