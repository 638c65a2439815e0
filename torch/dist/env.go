package dist

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Env is where this process stands in a distributed job, as its launcher
// said through the environment.
//
// torchrun, Kubernetes' PyTorchJob and `python -m torch.distributed.launch`
// set RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR and
// MASTER_PORT. SLURM's srun, without torchrun, sets SLURM_PROCID,
// SLURM_NTASKS and SLURM_LOCALID, read when RANK and WORLD_SIZE are absent;
// MASTER_ADDR and MASTER_PORT are then still needed, e.g. in the batch script:
//
//	export MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
//	export MASTER_PORT=29500
//
// With none of these, or a world size of 1, the process is alone.
type Env struct {
	Rank, WorldSize           int
	LocalRank, LocalWorldSize int
	MasterAddr                string
	MasterPort                int
	// AgentStore: torchrun's agent already hosts the TCP store at
	// MASTER_ADDR:MASTER_PORT (TORCHELASTIC_USE_AGENT_STORE=True), so that
	// every rank, rank 0 included, connects to it as a client.
	AgentStore bool
	// RestartCount is torchrun's TORCHELASTIC_RESTART_COUNT: each restart of
	// the workers keeps its store keys apart.
	RestartCount int
	// StoreFile, from RE2G_DIST_STORE_FILE, replaces the TCP store with a
	// file that every rank can reach (tests; one machine or a shared file
	// system): MASTER_ADDR and MASTER_PORT are then not needed.
	StoreFile string
	// Launcher says which variables were read: "torchrun" (TORCHELASTIC_*
	// present), "env" (RANK and WORLD_SIZE), "slurm", or "" when alone.
	Launcher string
}

// Alone reports whether the process is the whole job (world size 1).
func (e Env) Alone() bool { return e.WorldSize <= 1 }

// EnvError is a launcher variable that is missing or malformed.
type EnvError struct {
	Var, Value string // the variable and its value ("" when unset)
	Msg        string
}

func (e *EnvError) Error() string {
	if e.Value == "" {
		return fmt.Sprintf("dist: environment: %s %s", e.Var, e.Msg)
	}
	return fmt.Sprintf("dist: environment: %s=%q: %s", e.Var, e.Value, e.Msg)
}

// LookupEnv reads the launcher's variables from the process environment.
func LookupEnv() (Env, error) { return ParseEnv(os.LookupEnv) }

// ParseEnv reads the launcher's variables through lookup (os.LookupEnv, or
// a map in tests). Every missing or malformed variable is an *EnvError
// naming it.
func ParseEnv(lookup func(string) (string, bool)) (Env, error) {
	get := func(k string) (string, bool) {
		v, ok := lookup(k)
		v = strings.TrimSpace(v)
		return v, ok && v != ""
	}
	integer := func(k string, min int) (int, bool, error) {
		v, ok := get(k)
		if !ok {
			return 0, false, nil
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			return 0, true, &EnvError{Var: k, Value: v, Msg: "not a whole number"}
		}
		if n < min {
			return 0, true, &EnvError{Var: k, Value: v, Msg: fmt.Sprintf("want %d or more", min)}
		}
		return n, true, nil
	}
	var e Env
	rankVar, worldVar, localVar, localWorldVar := "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"
	_, hasRank := get("RANK")
	_, hasWorld := get("WORLD_SIZE")
	_, hasSlurm := get("SLURM_PROCID")
	switch {
	case hasRank || hasWorld:
		e.Launcher = "env"
		if _, ok := get("TORCHELASTIC_RUN_ID"); ok {
			e.Launcher = "torchrun"
		}
		if !hasRank {
			return Env{}, &EnvError{Var: "RANK", Msg: "is not set (WORLD_SIZE is)"}
		}
		if !hasWorld {
			return Env{}, &EnvError{Var: "WORLD_SIZE", Msg: "is not set (RANK is)"}
		}
	case hasSlurm:
		e.Launcher = "slurm"
		rankVar, worldVar, localVar, localWorldVar = "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", "SLURM_NTASKS_PER_NODE"
		if _, ok := get("SLURM_NTASKS"); !ok {
			return Env{}, &EnvError{Var: "SLURM_NTASKS", Msg: "is not set (SLURM_PROCID is)"}
		}
	default:
		e.WorldSize, e.LocalWorldSize = 1, 1
		return e, nil
	}
	var err error
	var ok bool
	if e.WorldSize, _, err = integer(worldVar, 1); err != nil {
		return Env{}, err
	}
	if e.Rank, _, err = integer(rankVar, 0); err != nil {
		return Env{}, err
	}
	if e.Rank >= e.WorldSize {
		v, _ := get(rankVar)
		return Env{}, &EnvError{Var: rankVar, Value: v, Msg: fmt.Sprintf("want 0 to %d (%s=%d)", e.WorldSize-1, worldVar, e.WorldSize)}
	}
	if e.LocalRank, _, err = integer(localVar, 0); err != nil {
		return Env{}, err
	}
	if e.Launcher == "slurm" {
		// SLURM_NTASKS_PER_NODE is set only with --ntasks-per-node, and may
		// read "2(x3)" on uneven allocations: use it when it is a number.
		if v, has := get(localWorldVar); has {
			if n, err := strconv.Atoi(v); err == nil && n > 0 {
				e.LocalWorldSize = n
			}
		}
	} else if e.LocalWorldSize, ok, err = integer(localWorldVar, 1); err != nil {
		return Env{}, err
	} else if !ok {
		e.LocalWorldSize = 0
	}
	if e.LocalWorldSize == 0 {
		e.LocalWorldSize = max(1, e.LocalRank+1)
	}
	if e.LocalRank >= e.LocalWorldSize {
		v, _ := get(localVar)
		return Env{}, &EnvError{Var: localVar, Value: v, Msg: fmt.Sprintf("want 0 to %d (%s=%d)", e.LocalWorldSize-1, localWorldVar, e.LocalWorldSize)}
	}
	if n, _, err := integer("TORCHELASTIC_RESTART_COUNT", 0); err != nil {
		return Env{}, err
	} else {
		e.RestartCount = n
	}
	if v, ok := get("TORCHELASTIC_USE_AGENT_STORE"); ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return Env{}, &EnvError{Var: "TORCHELASTIC_USE_AGENT_STORE", Value: v, Msg: "want True or False"}
		}
		e.AgentStore = b
	}
	if e.WorldSize == 1 {
		return e, nil
	}
	if v, ok := get("RE2G_DIST_STORE_FILE"); ok {
		e.StoreFile = v
		return e, nil
	}
	var has bool
	if e.MasterAddr, has = get("MASTER_ADDR"); !has {
		hint := ""
		if e.Launcher == "slurm" {
			hint = `; under srun: export MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)`
		}
		return Env{}, &EnvError{Var: "MASTER_ADDR", Msg: fmt.Sprintf("is not set: the address of rank 0's host is needed for a world of %d%s", e.WorldSize, hint)}
	}
	v, has := get("MASTER_PORT")
	if !has {
		return Env{}, &EnvError{Var: "MASTER_PORT", Msg: fmt.Sprintf("is not set: the TCP port of the rendezvous on %s is needed for a world of %d", e.MasterAddr, e.WorldSize)}
	}
	p, err := strconv.Atoi(v)
	if err != nil || p < 1 || p > 65535 {
		return Env{}, &EnvError{Var: "MASTER_PORT", Value: v, Msg: "want a TCP port, 1 to 65535"}
	}
	e.MasterPort = p
	return e, nil
}

// envTimeout reads RE2G_DIST_TIMEOUT (a Go duration such as 90s or 20m).
func envTimeout(lookup func(string) (string, bool)) (time.Duration, error) {
	v, ok := lookup("RE2G_DIST_TIMEOUT")
	if !ok || strings.TrimSpace(v) == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(strings.TrimSpace(v))
	if err != nil || d <= 0 {
		return 0, &EnvError{Var: "RE2G_DIST_TIMEOUT", Value: v, Msg: "want a positive duration such as 90s or 20m"}
	}
	return d, nil
}

// envBackend reads RE2G_DIST_BACKEND.
func envBackend(lookup func(string) (string, bool)) (Backend, error) {
	v, ok := lookup("RE2G_DIST_BACKEND")
	v = strings.ToLower(strings.TrimSpace(v))
	if !ok || v == "" {
		return "", nil
	}
	b, err := ParseBackend(v)
	if err != nil {
		return "", &EnvError{Var: "RE2G_DIST_BACKEND", Value: v, Msg: "want gloo or nccl"}
	}
	return b, nil
}
