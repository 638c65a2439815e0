package indexdir

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/re2g/re2g/indexdir/pstore"
	"github.com/re2g/re2g/internal/atomicfile"
	"github.com/re2g/re2g/internal/progress"
	"github.com/re2g/re2g/torch/dist"
)

// Distributed builds. Build with Options.Dist, a group of N > 1 ranks
// (re2g index under torchrun, srun, a PyTorchJob), runs on every rank with
// the same options and splits the encoding between the ranks:
//
//  1. Rank 0 takes the directory's lock, reads or starts the build's
//     progress file as a build of one process does, and writes a job token
//     into the directory (.job); the other ranks read it there, which shows
//     that they see the directory rank 0 writes (it must be on one machine
//     or a shared file system) and that they belong to the job holding the
//     lock, which they then use without taking it.
//  2. Rank 0 reads the corpus into the passage store (once: the others wait,
//     however long it takes) and publishes its size and the encoder's
//     settings; the others check theirs against them and open the store.
//  3. Each rank encodes its chunks (chunk c is rank c mod N's, as shard
//     c mod N of `--shard I/N` owns it), each stored atomically as it is
//     done: rank 0 into dense/, rank R into .dense-rankR. Rank 0 builds the
//     BM25 index meanwhile, and shows the job's progress.
//  4. Once every rank has stored its chunks, rank 0 links theirs into
//     dense/ in chunk order, builds the HNSW index and writes the manifest
//     (with "world_size": N); the others exit once rank 0 has finished.
//
// The ranks keep in touch through a monitor (jobMonitor): a rank that
// fails tells the others, which stop with its error; one that dies or is
// killed makes the others stop at once, one that hangs within the group's
// timeout (re2g index --dist-timeout). Nothing is half-written: the
// directory holds an unfinished build, which Build with Resume continues
// with any number of ranks (a chunk counts as encoded in whichever store
// holds it). Once every rank's chunks are stored, rank 0 finishes the index
// even if another rank goes away.

// jobFile is the distributed job's token in the index directory.
const jobFile = ".job"

// longWait bounds the waits of a distributed build for another rank's
// step (the corpus read, every chunk encoded, the index finished), which
// take as long as they take: the monitor, not this, notices a rank that
// went away.
const longWait = 30 * 24 * time.Hour

// The job's keys in the group's store, under the build's prefix (see
// buildPrefix).
const (
	keyJob      = "job"                // rank 0's job token
	keyParams   = "params"             // distParams, once the passage store is written
	keyProgress = "progress"           // passages encoded so far, all ranks
	keyEncoded  = "encoded/"           // + rank: that rank's chunks are stored (its summary)
	keyFailed   = "failed/"            // + rank: that rank's error
	keyToken    = "re2g-index-job-v1 " // the job file's first word
)

// builds numbers the distributed builds made with each group: a group
// that builds several indexes (re2g train re-encodes the corpus after each
// DPR stage) keeps each build's keys apart in the job's store, since a key,
// once set, stays. Every rank makes the same builds in the same order, so
// the numbers agree.
var builds struct {
	sync.Mutex
	n map[*dist.Group]int
}

// buildPrefix is the store prefix of the next distributed build on g.
func buildPrefix(g *dist.Group) string {
	builds.Lock()
	defer builds.Unlock()
	if builds.n == nil {
		builds.n = map[*dist.Group]int{}
	}
	builds.n[g]++
	return fmt.Sprintf("index/%d/", builds.n[g])
}

// distParams is what rank 0 publishes once the passage store is written:
// the other ranks check their encoder against it, which must encode as
// rank 0's does for the index to equal a build of one process.
type distParams struct {
	Passages      int    `json:"passages"`
	Chunk         int    `json:"chunk"`
	Todo          int    `json:"todo"` // passages to encode in this run, all ranks together
	Dim           int    `json:"dim"`
	MaxLength     int    `json:"max_length"`
	BatchSize     int    `json:"batch_size"`
	SortWindow    int    `json:"sort_window"`
	DType         string `json:"dtype"`
	EncoderSHA256 string `json:"encoder_sha256,omitempty"`
}

func encoderParams(o Options) (distParams, error) {
	eo := o.Encoder.Options()
	p := distParams{Chunk: o.Chunk, Dim: o.Encoder.Dim(), MaxLength: eo.MaxLength, BatchSize: eo.BatchSize, SortWindow: eo.SortWindow, DType: eo.DType.String()}
	if o.EncoderDir != "" {
		sum, err := EncoderFingerprint(o.EncoderDir)
		if err != nil {
			return p, fmt.Errorf("index: %w", err)
		}
		p.EncoderSHA256 = sum
	}
	return p, nil
}

// checkDistOptions checks what a distributed build can check before any
// work; every rank checks the same.
func checkDistOptions(o Options) error {
	n := o.Dist.Size()
	switch {
	case o.NumShards > 1:
		return fmt.Errorf("index: --shard %s splits the encoding by hand; under a launcher (world size %d) the ranks split it: drop --shard", o.shardLabel(), n)
	case o.Vectors != "" || o.Encoder == nil:
		return fmt.Errorf("index: a distributed build (world size %d) splits the encoding between its ranks: it needs a context encoder (build a BM25-only index, or one from --vectors, in one process)", n)
	}
	return nil
}

// buildDist is Build on each rank of o.Dist.
func buildDist(ctx context.Context, corpusPath string, o Options) (*Manifest, error) {
	g := o.Dist
	m := startMonitor(ctx, g)
	defer m.stop()
	var man *Manifest
	err := checkDistOptions(o)
	if err == nil {
		if g.IsMain() {
			man, err = leadBuild(m, corpusPath, o)
		} else {
			err = followBuild(m, o)
		}
	}
	if err != nil {
		if cause := m.cause(); cause != nil {
			return nil, cause // another rank's failure, or a lost rank, that stopped this one
		}
		m.fail(err)
		return nil, err
	}
	if g.IsMain() {
		if err := m.finish(); err != nil {
			slog.Warn("index finished, but a rank went away after its chunks were stored", "dir", o.Out, "err", err)
		}
	}
	return man, nil
}

// leadBuild is rank 0's part.
func leadBuild(m *jobMonitor, corpusPath string, o Options) (*Manifest, error) {
	ctx, g := m.ctx, m.g
	b, err := startBuild(ctx, corpusPath, o)
	if err != nil {
		return nil, err
	}
	defer b.release()
	job := filepath.Join(o.Out, jobFile)
	token, err := newJobToken()
	if err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(job, []byte(keyToken+token+"\n"), 0o644); err != nil {
		return nil, fmt.Errorf("index: %w", err)
	}
	defer os.Remove(job)
	kv := g.Store()
	if err := kv.Set(ctx, m.key(keyJob), []byte(token)); err != nil {
		return nil, err
	}
	params, err := encoderParams(o)
	if err != nil {
		return nil, err
	}
	store, err := b.passageStore(ctx)
	if err != nil {
		return nil, err
	}
	defer store.Close()
	n, size := store.Len(), g.Size()
	done, err := storedChunks(o.Out, n, o.Chunk, params.Dim)
	if err != nil {
		return nil, err
	}
	params.Passages = n
	for c := 0; c*o.Chunk < n; c++ {
		if !done[c] {
			lo, hi := chunkRows(c, o.Chunk, n)
			params.Todo += hi - lo
		}
	}
	pb, _ := json.Marshal(params)
	if err := kv.Set(ctx, m.key(keyParams), pb); err != nil {
		return nil, err
	}
	start := time.Now()

	// BM25 alongside the encoding.
	bctx, stopBM25 := context.WithCancel(ctx)
	defer stopBM25()
	bm25Err := make(chan error, 1)
	if b.pr.BM25Done {
		bm25Err <- nil
	} else {
		quiet := o
		quiet.Progress = io.Discard // the encoding's bar is the job's
		go func() {
			t := time.Now()
			err := buildBM25(bctx, filepath.Join(o.Out, bm25Dir), store, quiet)
			if err == nil {
				slog.Info("bm25 index built", "passages", n, "seconds", time.Since(t).Seconds())
			}
			bm25Err <- err
		}()
	}
	bar := progress.NewTo(o.progressOut(), params.Todo, "encode passages", "passages")
	stopBar := trackProgress(ctx, kv, m.key(keyProgress), bar)
	chunks, rows, err := encodeChunks(ctx, store, rankStoreDir(o.Out, 0), o, 0, size, done, addProgress(ctx, kv, m.key(keyProgress)), nil)
	if err == nil {
		logEncoded(chunks, rows, start)
		err = kv.Set(ctx, m.key(keyEncoded+"0"), nil)
	}
	if err != nil {
		stopBM25()
		<-bm25Err
		stopBar()
		return nil, err
	}
	if err := <-bm25Err; err != nil {
		stopBar()
		return nil, err
	}
	b.pr.BM25Done = true
	if err := b.save(); err != nil {
		stopBar()
		return nil, err
	}
	keys := make([]string, size)
	for r := range size {
		keys[r] = m.key(keyEncoded + strconv.Itoa(r))
	}
	wctx, cancel := context.WithTimeout(ctx, longWait)
	err = kv.Wait(wctx, keys...)
	cancel()
	stopBar()
	if err != nil {
		return nil, err
	}
	if n, err := kv.Add(ctx, m.key(keyProgress), 0); err == nil {
		bar.Set(int(n))
	}
	bar.Finish()
	secs := time.Since(start).Seconds()
	slog.Info("every rank's chunks encoded", "ranks", size, "passages", params.Todo, "seconds", secs, "passages_per_s", float64(params.Todo)/max(secs, 1e-9))

	// Every chunk is stored: finish the index whatever happens to the other
	// ranks now.
	m.detach()
	fctx := m.parent
	st, err := gatherChunks(fctx, o.Out, n, o.Chunk, params.Dim)
	if err != nil {
		return nil, err
	}
	if _, _, err := chunkMap(st, n, o.Chunk); err != nil {
		return nil, fmt.Errorf("index: %w", err)
	}
	dm := &DenseManifest{Encoder: o.EncoderDir, Dim: st.Dim(), Vectors: st.Count(), HNSW: o.HNSW, Chunk: o.Chunk, Extra: o.Extra, MaxLength: params.MaxLength}
	return b.finish(fctx, dm, size)
}

// followBuild is the part of rank R > 0.
func followBuild(m *jobMonitor, o Options) error {
	ctx, g := m.ctx, m.g
	r := g.Rank()
	kv := g.Store()
	wctx, cancel := context.WithTimeout(ctx, longWait)
	defer cancel()
	token, err := kv.Get(wctx, m.key(keyJob))
	if err != nil {
		return err
	}
	job := filepath.Join(o.Out, jobFile)
	var b []byte
	err = whenVisible(ctx, g.Timeout(), func() error {
		b, err = os.ReadFile(job)
		if err == nil && string(b) != keyToken+string(token)+"\n" {
			err = errors.New("holds another job's token")
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("index: %s on rank %d is not the directory rank 0 builds in (rank 0's job file %s: %v): "+
			"the output directory must be on a file system every rank sees (one machine, or a shared file system)", o.Out, r, job, err)
	}
	own, err := encoderParams(o)
	if err != nil {
		return err
	}
	pb, err := kv.Get(wctx, m.key(keyParams))
	if err != nil {
		return err
	}
	var p distParams
	if err := json.Unmarshal(pb, &p); err != nil {
		return fmt.Errorf("index: rank 0's parameters %q: %w", pb, err)
	}
	if err := sameEncoding(p, own); err != nil {
		return fmt.Errorf("index: rank %d encodes otherwise than rank 0: %w: every rank must be started with the same arguments", r, err)
	}
	var store *pstore.Store
	err = whenVisible(ctx, g.Timeout(), func() (err error) {
		store, err = pstore.Open(filepath.Join(o.Out, passagesDir))
		return err
	})
	if err != nil {
		return fmt.Errorf("index: %w", err)
	}
	defer store.Close()
	if store.Len() != p.Passages {
		return fmt.Errorf("index: %s holds %d passages on rank %d, %d on rank 0", store.Dir(), store.Len(), r, p.Passages)
	}
	done, err := storedChunks(o.Out, p.Passages, p.Chunk, p.Dim)
	if err != nil {
		return err
	}
	start := time.Now()
	chunks, rows, err := encodeChunks(ctx, store, rankStoreDir(o.Out, r), o, r, g.Size(), done, addProgress(ctx, kv, m.key(keyProgress)), nil)
	if err != nil {
		return err
	}
	logEncoded(chunks, rows, start)
	if err := kv.Set(ctx, m.key(keyEncoded+strconv.Itoa(r)), nil); err != nil {
		return err
	}
	// Wait for rank 0 to finish the index (or for the job to fail).
	return m.wait()
}

// sameEncoding compares what makes the vectors of a chunk.
func sameEncoding(want, got distParams) error {
	for _, x := range []struct {
		what      string
		want, got any
	}{
		{"--chunk", want.Chunk, got.Chunk}, {"dimension", want.Dim, got.Dim}, {"--max-length", want.MaxLength, got.MaxLength},
		{"--batch-size", want.BatchSize, got.BatchSize}, {"sort window", want.SortWindow, got.SortWindow}, {"--dtype", want.DType, got.DType},
		{"encoder files (SHA-256)", want.EncoderSHA256, got.EncoderSHA256},
	} {
		if x.want != x.got {
			return fmt.Errorf("%s %v, rank 0's %v", x.what, x.got, x.want)
		}
	}
	return nil
}

func newJobToken() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("index: job token: %w", err)
	}
	host, _ := os.Hostname()
	return fmt.Sprintf("%s host=%s pid=%d", hex.EncodeToString(b[:]), host, os.Getpid()), nil
}

// addProgress counts each stored chunk's passages in the job's store.
func addProgress(ctx context.Context, kv *dist.Store, key string) func(rows int) {
	return func(rows int) {
		if _, err := kv.Add(ctx, key, int64(rows)); err != nil {
			slog.Debug("index: counting progress", "err", err)
		}
	}
}

// trackProgress moves bar to the job's count until the returned function
// is called.
func trackProgress(ctx context.Context, kv *dist.Store, key string, bar *progress.Reporter) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			if n, err := kv.Add(ctx, key, 0); err == nil {
				bar.Set(int(n))
			}
			select {
			case <-quit:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return func() {
		select {
		case <-quit:
		default:
			close(quit)
		}
		<-done
	}
}

// logEncoded logs what this process encoded, and how fast.
func logEncoded(chunks, rows int, start time.Time) {
	secs := time.Since(start).Seconds()
	slog.Info("chunks encoded", "chunks", chunks, "passages", rows, "seconds", secs, "passages_per_s", float64(rows)/max(secs, 1e-9))
}

// whenVisible calls read until it succeeds, for at most window (at most a
// minute): on a shared file system, a file another machine has just
// written may take a while to show (NFS caches directory entries for up
// to a minute). It returns read's last error.
func whenVisible(ctx context.Context, window time.Duration, read func() error) error {
	deadline := time.Now().Add(min(window, time.Minute))
	pause := 10 * time.Millisecond
	for {
		err := read()
		if err == nil || !time.Now().Before(deadline) || ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
		case <-time.After(pause):
		}
		pause = min(2*pause, time.Second)
	}
}
