package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/re2g/re2g/bm25"
	"github.com/re2g/re2g/dense"
	"github.com/re2g/re2g/indexdir"
	"github.com/re2g/re2g/internal/proctest"
	"github.com/re2g/re2g/internal/tinymodels"
	"github.com/re2g/re2g/neural"
)

// distFixture is a real corpus (ArguAna's first passages), a tiny random
// DPR pair with the bert-base-uncased tokenizer, and 100 ArguAna queries.
type distFixture struct {
	corpus, ctxEnc, qEnc string
	passages             int
	queries              []string
}

const sharedData = "../../../shared/data"

func newDistFixture(t *testing.T, passages int) distFixture {
	t.Helper()
	if testing.Short() {
		t.Skip("multi-process")
	}
	tok, err := os.ReadFile(filepath.Join(sharedData, "tokenizers/bert-base-uncased/tokenizer.json"))
	if err != nil {
		t.Skipf("shared data not available: %v", err)
	}
	f := distFixture{passages: passages}
	lines := gzLines(t, filepath.Join(sharedData, "arguana/corpus.jsonl.gz"), passages)
	f.corpus = filepath.Join(t.TempDir(), "corpus.jsonl")
	if err := os.WriteFile(f.corpus, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, l := range gzLines(t, filepath.Join(sharedData, "arguana/queries.jsonl.gz"), 100) {
		var q struct{ Text string }
		if err := json.Unmarshal([]byte(l), &q); err != nil {
			t.Fatal(err)
		}
		f.queries = append(f.queries, q.Text[:min(len(q.Text), 200)])
	}
	d, err := tinymodels.Write(t.TempDir(), tok, tinymodels.Tiny, 11)
	if err != nil {
		t.Fatal(err)
	}
	f.ctxEnc, f.qEnc = d.CtxEncoder, d.QueryEncoder
	// One OpenMP thread: FAISS adds vectors to an HNSW graph in a fixed order
	// only then, so that two builds of the same vectors are byte-equal.
	t.Setenv("OMP_NUM_THREADS", "1")
	return f
}

func gzLines(t *testing.T, path string, n int) []string {
	t.Helper()
	fh, err := os.Open(path)
	if err != nil {
		t.Skipf("shared data not available: %v", err)
	}
	defer fh.Close()
	zr, err := gzip.NewReader(fh)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(zr)
	sc.Buffer(nil, 1<<20)
	var out []string
	for len(out) < n && sc.Scan() {
		out = append(out, sc.Text())
	}
	if len(out) < n {
		t.Fatalf("%s: %d lines, want %d (%v)", path, len(out), n, sc.Err())
	}
	return out
}

// index is re2g index's arguments for out: small chunks and batches, so
// that a run has many checkpoints and lasts long enough to be killed.
func (f distFixture) index(out string, extra ...string) []string {
	return append([]string{"--progress", "log", "index", "--corpus", f.corpus, "--ctx-encoder", f.ctxEnc, "--out", out,
		"--threads", "1", "--chunk", "32", "--batch-size", "8", "--max-length", "128"}, extra...)
}

// startRanks starts a job of world ranks of re2g on 127.0.0.1, as a
// launcher would (RANK, WORLD_SIZE, MASTER_ADDR, …), rank r with args(r).
func startRanks(t *testing.T, world int, args func(r int) []string) []*proctest.Proc {
	t.Helper()
	return proctest.Start(t, proctest.Job{World: world, Args: args, Env: []string{"RE2G_MAIN=1"}})
}

// runRanks runs a job to its end and returns each rank's exit code.
func runRanks(t *testing.T, world int, args func(r int) []string) ([]int, []*proctest.Proc) {
	t.Helper()
	ps := startRanks(t, world, args)
	proctest.Wait(t, ps, 5*time.Minute)
	codes := make([]int, world)
	for r, p := range ps {
		codes[r] = p.ExitCode()
	}
	return codes, ps
}

func same(args []string) func(int) []string { return func(int) []string { return args } }

// buildOne builds out in one process.
func buildOne(t *testing.T, args []string) {
	t.Helper()
	if code, out := re2g(t, args...); code != 0 {
		t.Fatalf("re2g %v: exit %d\n%s", args, code, out)
	}
}

// buildRanks builds with world ranks, every one of which must succeed.
func buildRanks(t *testing.T, world int, args []string) []*proctest.Proc {
	t.Helper()
	codes, ps := runRanks(t, world, same(args))
	for r, c := range codes {
		if c != 0 {
			t.Fatalf("rank %d of %d: exit %d\n%s", r, world, c, ps[r].Output())
		}
	}
	return ps
}

// sameIndex checks that got is the index want is: the passage store and the
// vector store (vectors, ids, HNSW index) byte for byte, and the dense and
// BM25 top 10 of every query, ids and scores. It returns the hits compared.
func sameIndex(t *testing.T, f distFixture, want, got string) int {
	t.Helper()
	for _, sub := range []string{"passages", "dense"} {
		a, b := dirFiles(t, filepath.Join(want, sub)), dirFiles(t, filepath.Join(got, sub))
		if len(a) == 0 || !reflect.DeepEqual(keys(a), keys(b)) {
			t.Fatalf("%s/%s holds %v, %s/%s %v", want, sub, keys(a), got, sub, keys(b))
		}
		for name, x := range a {
			if !bytes.Equal(x, b[name]) {
				t.Fatalf("%s/%s/%s differs from %s's", got, sub, name, want)
			}
		}
	}
	ctx := context.Background()
	enc, err := neural.LoadEncoder(f.qEnc, neural.Options{MaxLength: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	qv, err := enc.EncodeQueries(ctx, f.queries)
	if err != nil {
		t.Fatal(err)
	}
	var a, b *indexdir.Index
	for _, x := range []struct {
		dir string
		ix  **indexdir.Index
	}{{want, &a}, {got, &b}} {
		if *x.ix, err = indexdir.Open(ctx, x.dir); err != nil {
			t.Fatal(err)
		}
		defer (*x.ix).Close()
	}
	da, err := a.DenseSearch(ctx, qv, 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	db, err := b.DenseSearch(ctx, qv, 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	hits := 0
	for i, q := range f.queries {
		sa, err := a.SparseSearch(ctx, q, 10, bm25.Params{})
		if err != nil {
			t.Fatal(err)
		}
		sb, err := b.SparseSearch(ctx, q, 10, bm25.Params{})
		if err != nil {
			t.Fatal(err)
		}
		if len(da[i]) != 10 || len(sa) != 10 || !reflect.DeepEqual(da[i], db[i]) || !reflect.DeepEqual(sa, sb) {
			t.Fatalf("query %d %.40q: dense %v / %v, bm25 %v / %v", i, q, hitIDs(da[i]), hitIDs(db[i]), hitIDs(sa), hitIDs(sb))
		}
		hits += len(da[i]) + len(sa)
	}
	return hits
}

func hitIDs(hs []indexdir.Hit) []string {
	var ids []string
	for _, h := range hs {
		ids = append(ids, fmt.Sprintf("%s:%.6g", h.ID, h.Score))
	}
	return ids
}

func dirFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		out[rel] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func keys(m map[string][]byte) []string { return slices.Sorted(maps.Keys(m)) }

func worldSize(t *testing.T, dir string) int {
	t.Helper()
	m, err := indexdir.ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	return m.WorldSize
}

// leftovers lists what a finished index directory holds besides the index:
// nothing, once a distributed build is done (no rank stores, job file, lock
// or progress file).
func leftovers(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var extra []string
	for _, e := range ents {
		switch e.Name() {
		case "manifest.json", "passages", "bm25", "dense":
		default:
			extra = append(extra, e.Name())
		}
	}
	return extra
}

// TestDistributedIndexEqualsOneProcess: re2g index on 2 ranks (child
// processes with a launcher's environment, real Gloo on 127.0.0.1) and under
// Debian's torchrun builds the index one process builds: the same passage
// and vector files byte for byte (vectors, ids, HNSW graph), the same dense
// and BM25 top 10 for 100 queries, with "world_size": 2 in the manifest.
func TestDistributedIndexEqualsOneProcess(t *testing.T) {
	f := newDistFixture(t, 1200)
	dir := t.TempDir()
	one, two := filepath.Join(dir, "one"), filepath.Join(dir, "two")
	buildOne(t, f.index(one))
	ps := buildRanks(t, 2, f.index(two))
	if ws := worldSize(t, two); ws != 2 {
		t.Errorf("world_size %d, want 2", ws)
	}
	if ws := worldSize(t, one); ws != 0 {
		t.Errorf("a build of one process records world_size %d", ws)
	}
	if l := leftovers(t, two); len(l) > 0 {
		t.Errorf("the distributed build left %v", l)
	}
	hits := sameIndex(t, f, one, two)
	// rank 1 logs with its rank and shows no progress; rank 0 shows the
	// job's and sums up
	r0, r1 := ps[0].Output(), ps[1].Output()
	if !strings.Contains(r1, `msg="chunks encoded" rank=1`) || strings.Contains(r1, "progress") || strings.Contains(r1, "indexed") {
		t.Errorf("rank 1's output:\n%s", r1)
	}
	if !strings.Contains(r0, `msg="progress finished" task="encode passages" done=1200 total=1200`) || !strings.Contains(r0, "indexed 1200 passages") ||
		!strings.Contains(r0, "on 2 ranks") {
		t.Errorf("rank 0's output:\n%s", r0)
	}
	t.Logf("2 ranks: %d hits of 100 queries identical to one process's; files byte-equal", hits)

	// The same under torchrun.
	out, err := runTorchrun(torchrun(t), []string{"RE2G_DIST_BACKEND=", "RE2G_DIST_TIMEOUT="}, f.index(filepath.Join(dir, "torchrun"))...)
	if err != nil {
		t.Fatalf("torchrun: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "launcher=torchrun") {
		t.Errorf("torchrun's ranks did not say they joined through it:\n%s", out)
	}
	if ws := worldSize(t, filepath.Join(dir, "torchrun")); ws != 2 {
		t.Errorf("torchrun: world_size %d", ws)
	}
	hits = sameIndex(t, f, one, filepath.Join(dir, "torchrun"))
	t.Logf("torchrun, 2 ranks: %d hits identical", hits)
}

// waitChunk waits until rank's vector store under out holds a chunk.
func waitChunk(t *testing.T, out string, rank int, p *proctest.Proc) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		if st, err := dense.Open(filepath.Join(out, ".dense-rank"+strconv.Itoa(rank))); err == nil && len(st.Shards()) > 0 {
			return
		}
		select {
		case <-p.Done():
			t.Fatalf("rank %d ended before its first chunk: %v\n%s", rank, p.Err(), p.Output())
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("rank %d stored no chunk in 2 minutes:\n%s", rank, p.Output())
}

// unfinished checks that dir holds an unfinished build that does not open.
func unfinished(t *testing.T, dir string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(dir, "manifest.json")); err == nil {
		t.Fatal("the failed job wrote a manifest")
	}
	if _, err := os.Stat(filepath.Join(dir, "progress.json")); err != nil {
		t.Fatalf("no progress file to resume from: %v", err)
	}
	if ix, err := indexdir.Open(context.Background(), dir); err == nil {
		ix.Close()
		t.Fatal("the unfinished index opened")
	}
}

// killRank starts a 2-rank build of out (--dist-timeout 60s), kills rank
// victim (SIGKILL) once rank 1 has stored a chunk, and checks that the
// other rank stops at once, saying so, and leaves an unfinished build.
func killRank(t *testing.T, f distFixture, out string, victim int) {
	t.Helper()
	ps := startRanks(t, 2, same(f.index(out, "--dist-timeout", "60s")))
	waitChunk(t, out, 1, ps[1])
	killed := time.Now()
	ps[victim].Cmd.Process.Signal(syscall.SIGKILL)
	other := 1 - victim
	code := ps[other].Wait(t, 2*time.Minute)
	took := time.Since(killed)
	msg := ps[other].Output()
	want := fmt.Sprintf("re2g: index: rank %d of the job went away (it exited or was killed): every rank stops; rerun with --resume to continue: dist: all_reduce on rank %d of 2", victim, other)
	if code == 0 || !strings.Contains(msg, want) {
		t.Fatalf("rank %d after rank %d was killed: exit %d\n%s", other, victim, code, msg)
	}
	if took > 20*time.Second {
		t.Errorf("rank %d took %v to stop", other, took)
	}
	t.Logf("rank %d exited %d %v after the kill: %s", other, code, took.Round(time.Millisecond), lastLine(msg))
	unfinished(t, out)
}

// TestDistributedIndexKillAndResume: rank 1 killed (SIGKILL) in the middle
// of encoding makes rank 0 exit non-zero at once (long before the 60 s
// --dist-timeout) saying so; rerunning with --resume on 3 ranks encodes only
// the missing chunks and gives the uninterrupted index.
func TestDistributedIndexKillAndResume(t *testing.T) {
	f := newDistFixture(t, 1200)
	dir := t.TempDir()
	one, out := filepath.Join(dir, "one"), filepath.Join(dir, "killed")
	buildOne(t, f.index(one))
	killRank(t, f, out, 1)
	for _, name := range []string{".lock", ".job"} {
		if _, err := os.Stat(filepath.Join(out, name)); err == nil {
			t.Errorf("rank 0 left %s", name)
		}
	}
	ps := buildRanks(t, 3, f.index(out, "--resume"))
	if ws := worldSize(t, out); ws != 3 {
		t.Errorf("world_size %d after resuming on 3 ranks", ws)
	}
	var encoded int
	for _, l := range strings.Split(ps[0].Output(), "\n") {
		if strings.Contains(l, `msg="every rank's chunks encoded"`) {
			fmt.Sscanf(l[strings.Index(l, "passages=")+len("passages="):], "%d", &encoded)
		}
	}
	if encoded <= 0 || encoded >= f.passages {
		t.Errorf("the resumed job encoded %d passages of %d, want only those the killed one had not stored:\n%s", encoded, f.passages, ps[0].Output())
	}
	if l := leftovers(t, out); len(l) > 0 {
		t.Errorf("the resumed build left %v", l)
	}
	hits := sameIndex(t, f, one, out)
	t.Logf("resumed on 3 ranks (%d of %d passages left to encode): %d hits identical to one process's", encoded, f.passages, hits)
}

// TestDistributedIndexRank0Killed: rank 0, which holds the lock and hosts
// the store, killed in the middle of encoding makes rank 1 exit non-zero at
// once; --resume on 2 ranks takes over the directory its lock and job file
// were left in, and gives the uninterrupted index.
func TestDistributedIndexRank0Killed(t *testing.T) {
	f := newDistFixture(t, 1200)
	dir := t.TempDir()
	one, out := filepath.Join(dir, "one"), filepath.Join(dir, "killed")
	buildOne(t, f.index(one))
	killRank(t, f, out, 0)
	buildRanks(t, 2, f.index(out, "--resume"))
	if l := leftovers(t, out); len(l) > 0 {
		t.Errorf("the resumed build left %v", l)
	}
	t.Logf("resumed on 2 ranks: %d hits identical", sameIndex(t, f, one, out))
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	return s[strings.LastIndex(s, "\n")+1:]
}

// TestDistributedIndexHoldsTheLock: while a distributed build runs, a plain
// re2g index on its directory and a second distributed job are refused,
// naming rank 0's PID, on every rank; a rank that hangs (SIGSTOP) stops
// rank 0 after --dist-timeout; and one process resumes the build.
func TestDistributedIndexHoldsTheLock(t *testing.T) {
	f := newDistFixture(t, 1200)
	dir := t.TempDir()
	one, out := filepath.Join(dir, "one"), filepath.Join(dir, "locked")
	buildOne(t, f.index(one))
	ps := startRanks(t, 2, same(f.index(out, "--dist-timeout", "25s")))
	waitChunk(t, out, 1, ps[1])
	ps[1].Cmd.Process.Signal(syscall.SIGSTOP) // rank 1 hangs; the job holds the directory
	stopped := time.Now()
	pid := strconv.Itoa(ps[0].Cmd.Process.Pid)
	code, msg := re2g(t, f.index(out, "--resume", "--lock-timeout", "0")...)
	if code != 1 || !strings.Contains(msg, "is in use by PID "+pid) {
		t.Errorf("a plain re2g index on the job's directory: exit %d\n%s", code, msg)
	}
	codes, second := runRanks(t, 2, same(f.index(out, "--resume", "--lock-timeout", "0")))
	for r, c := range codes {
		if c == 0 || !strings.Contains(second[r].Output(), "in use by PID "+pid) {
			t.Errorf("a second job, rank %d: exit %d\n%s", r, c, second[r].Output())
		}
	}
	if !strings.Contains(second[1].Output(), "re2g: index: rank 0 of 2 failed: index "+out+" is in use by PID "+pid) {
		t.Errorf("the second job's rank 1 does not give rank 0's error:\n%s", second[1].Output())
	}
	code = ps[0].Wait(t, 2*time.Minute)
	took := time.Since(stopped)
	if code == 0 || !strings.Contains(ps[0].Output(), "rank 1 of the job stopped answering for 25s (it hangs, or its machine is gone)") {
		t.Errorf("rank 0 with rank 1 stopped: exit %d\n%s", code, ps[0].Output())
	}
	if took < 20*time.Second || took > 90*time.Second {
		t.Errorf("rank 0 stopped %v after rank 1 hung, with --dist-timeout 25s", took)
	}
	t.Logf("rank 0 exited %d %v after rank 1 hung: %s", code, took.Round(time.Millisecond), lastLine(ps[0].Output()))
	ps[1].Cmd.Process.Kill()
	unfinished(t, out)
	buildOne(t, f.index(out, "--resume"))
	if ws := worldSize(t, out); ws != 0 {
		t.Errorf("world_size %d after one process finished the build", ws)
	}
	if l := leftovers(t, out); len(l) > 0 {
		t.Errorf("the resumed build left %v", l)
	}
	hits := sameIndex(t, f, one, out)
	t.Logf("resumed by one process: %d hits identical", hits)
}

// TestDistributedIndexNeedsASharedDirectory: ranks whose --out is not the
// same directory (as on machines without a shared file system) stop at
// once, rank 1 saying why and rank 0 with rank 1's error; and a distributed
// build refuses what it cannot split.
func TestDistributedIndexNeedsASharedDirectory(t *testing.T) {
	f := newDistFixture(t, 100)
	dir := t.TempDir()
	start := time.Now()
	codes, ps := runRanks(t, 2, func(r int) []string {
		return f.index(filepath.Join(dir, "rank"+strconv.Itoa(r)), "--dist-timeout", "5s")
	})
	t.Logf("both ranks ended in %v", time.Since(start).Round(time.Millisecond))
	want := "is not the directory rank 0 builds in (rank 0's job file " + filepath.Join(dir, "rank1", ".job") + ": open " + filepath.Join(dir, "rank1", ".job") + ": no such file or directory)"
	if codes[1] == 0 || !strings.Contains(ps[1].Output(), want) || !strings.Contains(ps[1].Output(), "every rank sees (one machine, or a shared file system)") {
		t.Errorf("rank 1: exit %d\n%s", codes[1], ps[1].Output())
	}
	if codes[0] == 0 || !strings.Contains(ps[0].Output(), "re2g: index: rank 1 of 2 failed: "+filepath.Join(dir, "rank1")+" on rank 1 "+want) {
		t.Errorf("rank 0: exit %d\n%s", codes[0], ps[0].Output())
	}
	if _, err := os.Stat(filepath.Join(dir, "rank1")); err == nil {
		t.Error("rank 1 made its --out")
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{f.index(filepath.Join(dir, "s"), "--shard", "0/2"), "--shard: under a launcher (WORLD_SIZE=2) the ranks split the encoding: drop --shard"},
		{[]string{"index", "--corpus", f.corpus, "--out", filepath.Join(dir, "b")}, "under a launcher (WORLD_SIZE=2) the ranks split the encoding: give --ctx-encoder"},
	} {
		codes, ps := runRanks(t, 2, same(c.args))
		for r := range codes {
			if codes[r] != 1 || !strings.Contains(ps[r].Output(), c.want) {
				t.Errorf("%v, rank %d: exit %d\n%s", c.args, r, codes[r], ps[r].Output())
			}
		}
	}
}
