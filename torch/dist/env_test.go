package dist

import (
	"errors"
	"strings"
	"testing"
)

func lookupMap(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestParseEnv(t *testing.T) {
	torchrun := map[string]string{
		"RANK": "1", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2",
		"MASTER_ADDR": "node0", "MASTER_PORT": "29500", "TORCHELASTIC_RUN_ID": "x",
		"TORCHELASTIC_USE_AGENT_STORE": "True", "TORCHELASTIC_RESTART_COUNT": "2",
	}
	e, err := ParseEnv(lookupMap(torchrun))
	if err != nil {
		t.Fatal(err)
	}
	want := Env{Rank: 1, WorldSize: 4, LocalRank: 1, LocalWorldSize: 2, MasterAddr: "node0", MasterPort: 29500,
		AgentStore: true, RestartCount: 2, Launcher: "torchrun"}
	if e != want {
		t.Errorf("torchrun: got %+v, want %+v", e, want)
	}

	slurm := map[string]string{"SLURM_PROCID": "3", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1",
		"SLURM_NTASKS_PER_NODE": "4", "MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "1234"}
	e, err = ParseEnv(lookupMap(slurm))
	if err != nil {
		t.Fatal(err)
	}
	want = Env{Rank: 3, WorldSize: 8, LocalRank: 1, LocalWorldSize: 4, MasterAddr: "10.0.0.1", MasterPort: 1234, Launcher: "slurm"}
	if e != want {
		t.Errorf("slurm: got %+v, want %+v", e, want)
	}
	// RANK and WORLD_SIZE win over SLURM's; an uneven SLURM_NTASKS_PER_NODE is ignored.
	slurm["SLURM_NTASKS_PER_NODE"] = "2(x3)"
	delete(slurm, "SLURM_LOCALID")
	if e, err = ParseEnv(lookupMap(slurm)); err != nil || e.LocalWorldSize != 1 || e.LocalRank != 0 {
		t.Errorf("slurm, uneven tasks per node: %+v, %v", e, err)
	}

	for _, m := range []map[string]string{{}, {"WORLD_SIZE": "1", "RANK": "0"}, {"SLURM_PROCID": "0", "SLURM_NTASKS": "1"}} {
		e, err := ParseEnv(lookupMap(m))
		if err != nil || !e.Alone() || e.WorldSize != 1 {
			t.Errorf("%v: got %+v, %v; want alone", m, e, err)
		}
	}
	file := map[string]string{"RANK": "0", "WORLD_SIZE": "2", "RE2G_DIST_STORE_FILE": "/tmp/s"}
	if e, err := ParseEnv(lookupMap(file)); err != nil || e.StoreFile != "/tmp/s" {
		t.Errorf("file store: %+v, %v", e, err)
	}
}

func TestParseEnvErrors(t *testing.T) {
	base := func(kv ...string) map[string]string {
		m := map[string]string{"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == "-" {
				delete(m, kv[i])
			} else {
				m[kv[i]] = kv[i+1]
			}
		}
		return m
	}
	cases := []struct {
		env       map[string]string
		variable  string
		wantInMsg string
	}{
		{base("RANK", "2"), "RANK", `RANK="2": want 0 to 1 (WORLD_SIZE=2)`},
		{base("RANK", "7", "WORLD_SIZE", "4"), "RANK", "want 0 to 3"},
		{base("RANK", "-1"), "RANK", "want 0 or more"},
		{base("RANK", "one"), "RANK", "not a whole number"},
		{base("WORLD_SIZE", "0"), "WORLD_SIZE", "want 1 or more"},
		{base("WORLD_SIZE", "-"), "WORLD_SIZE", "is not set (RANK is)"},
		{base("RANK", "-"), "RANK", "is not set (WORLD_SIZE is)"},
		{base("MASTER_ADDR", "-"), "MASTER_ADDR", "is not set"},
		{base("MASTER_ADDR", " "), "MASTER_ADDR", "is not set"},
		{base("MASTER_PORT", "-"), "MASTER_PORT", "is not set"},
		{base("MASTER_PORT", "http"), "MASTER_PORT", "want a TCP port, 1 to 65535"},
		{base("MASTER_PORT", "70000"), "MASTER_PORT", "want a TCP port"},
		{base("MASTER_PORT", "0"), "MASTER_PORT", "want a TCP port"},
		{base("LOCAL_RANK", "x1"), "LOCAL_RANK", `LOCAL_RANK="x1": not a whole number`},
		{base("LOCAL_RANK", "2", "LOCAL_WORLD_SIZE", "2"), "LOCAL_RANK", "want 0 to 1 (LOCAL_WORLD_SIZE=2)"},
		{base("LOCAL_WORLD_SIZE", "many"), "LOCAL_WORLD_SIZE", "not a whole number"},
		{base("TORCHELASTIC_USE_AGENT_STORE", "maybe"), "TORCHELASTIC_USE_AGENT_STORE", "want True or False"},
		{map[string]string{"SLURM_PROCID": "1"}, "SLURM_NTASKS", "is not set (SLURM_PROCID is)"},
		{map[string]string{"SLURM_PROCID": "2", "SLURM_NTASKS": "2", "MASTER_ADDR": "a", "MASTER_PORT": "1"}, "SLURM_PROCID", "want 0 to 1 (SLURM_NTASKS=2)"},
		{map[string]string{"SLURM_PROCID": "0", "SLURM_NTASKS": "2"}, "MASTER_ADDR", "scontrol show hostnames"},
	}
	for _, c := range cases {
		_, err := ParseEnv(lookupMap(c.env))
		var ee *EnvError
		if !errors.As(err, &ee) {
			t.Errorf("%v: got %v, want an *EnvError", c.env, err)
			continue
		}
		if ee.Var != c.variable || !strings.Contains(err.Error(), c.wantInMsg) || !strings.HasPrefix(err.Error(), "dist: environment: "+c.variable) {
			t.Errorf("%v: got %q (var %s), want var %s and %q", c.env, err, ee.Var, c.variable, c.wantInMsg)
		}
	}
	if _, err := envTimeout(lookupMap(map[string]string{"RE2G_DIST_TIMEOUT": "soon"})); err == nil || !strings.Contains(err.Error(), "RE2G_DIST_TIMEOUT") {
		t.Errorf("RE2G_DIST_TIMEOUT=soon: %v", err)
	}
	if _, err := envBackend(lookupMap(map[string]string{"RE2G_DIST_BACKEND": "mpi"})); err == nil || !strings.Contains(err.Error(), "RE2G_DIST_BACKEND") {
		t.Errorf("RE2G_DIST_BACKEND=mpi: %v", err)
	}
}
