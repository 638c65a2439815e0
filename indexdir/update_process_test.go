package indexdir

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/re2g/re2g/bm25"
	"github.com/re2g/re2g/data"
	"github.com/re2g/re2g/internal/dirtest"
	"github.com/re2g/re2g/neural"
)

// updateHelper runs the helper processes of the update tests:
//
//	update OP DIR ARG ENCODER KILL: run OP (add, replace, delete or compact)
//	  on the index in DIR (ARG: the corpus to add, or the ids to delete,
//	  comma-separated; ENCODER: the context encoder or "-"), killing itself
//	  with SIGKILL when the update reaches step KILL ("-": never); prints
//	  "done" when the update is committed
//	reader DIR: open the index, print "open", and search it (BM25, dense,
//	  passages) until stdin closes; then print "searches N errors E FIRST"
//	reopener DIR: the same, opening and closing the index for each search
func updateHelper(mode string, args []string) (bool, error) {
	ctx := context.Background()
	switch mode {
	case "update":
		op, dir, arg, encDir, kill := args[0], args[1], args[2], args[3], args[4]
		if kill != "-" {
			stepHook = func(s string) {
				if s == kill {
					syscall.Kill(os.Getpid(), syscall.SIGKILL)
					time.Sleep(time.Minute)
				}
			}
		}
		o := UpdateOptions{Progress: io.Discard, LockTimeout: 10 * time.Second}
		if encDir != "-" {
			enc, err := neural.LoadEncoder(encDir, neural.Options{MaxLength: 64})
			if err != nil {
				return true, err
			}
			defer enc.Close()
			o.Encoder, o.EncoderDir = enc, encDir
		}
		if err := runUpdate(ctx, op, dir, arg, o); err != nil {
			return true, err
		}
		fmt.Println("done")
		return true, nil
	case "reader", "reopener":
		dir := args[0]
		var ix *Index
		if mode == "reader" {
			var err error
			if ix, err = Open(ctx, dir); err != nil {
				return true, err
			}
			defer ix.Close()
		}
		fmt.Println("open")
		stop := make(chan struct{})
		go func() { io.Copy(io.Discard, os.Stdin); close(stop) }()
		n, bad := 0, 0
		first := "-"
		for {
			select {
			case <-stop:
				fmt.Printf("searches %d errors %d %s\n", n, bad, first)
				return true, nil
			default:
			}
			err := func() error {
				x := ix
				if x == nil {
					var err error
					if x, err = Open(ctx, dir); err != nil {
						return err
					}
					defer x.Close()
				}
				return searchOnce(ctx, x, n)
			}()
			n++
			if err != nil {
				if bad == 0 {
					first = strconv.Quote(err.Error())
				}
				bad++
			}
		}
	}
	return false, nil
}

// searchOnce runs one BM25 search, one dense search and the passage
// lookups of their hits; i varies the queries.
func searchOnce(ctx context.Context, ix *Index, i int) error {
	hs, err := ix.SparseSearch(ctx, updateQueries[i%len(updateQueries)], 10, bm25.Params{})
	if err != nil {
		return err
	}
	if ix.HasDense() {
		rng := rand.New(rand.NewPCG(uint64(i), 1))
		q := make([]float32, ix.Dim())
		for j := range q {
			q[j] = float32(rng.NormFloat64())
		}
		ds, err := ix.DenseSearch(ctx, [][]float32{q}, 10, 0)
		if err != nil {
			return err
		}
		if len(ds[0]) != 10 {
			return fmt.Errorf("%d dense hits", len(ds[0]))
		}
		hs = append(hs, ds[0]...)
	}
	for _, h := range hs {
		p, ok, err := ix.Passage(h.ID)
		if err != nil {
			return err
		}
		if !ok || p.Text != h.Text {
			return fmt.Errorf("hit %s: its passage %v %q", h.ID, ok, p.Text)
		}
		ix.Page(h.ID)
	}
	return nil
}

// runUpdate runs one update as the helper names it.
func runUpdate(ctx context.Context, op, dir, arg string, o UpdateOptions) error {
	switch op {
	case "add":
		_, err := Add(ctx, dir, arg, o)
		return err
	case "replace":
		o.Replace = true
		_, err := Add(ctx, dir, arg, o)
		return err
	case "delete":
		_, err := Delete(ctx, dir, strings.Split(arg, ","), o)
		return err
	case "compact":
		_, err := Compact(ctx, dir, o)
		return err
	}
	return fmt.Errorf("unknown update %q", op)
}

// runHelperToEnd runs a helper process and returns its output and how it
// ended.
func runHelperToEnd(t *testing.T, mode string, args ...string) (string, error) {
	t.Helper()
	out, err := helperCmd(mode, args...).CombinedOutput()
	return string(out), err
}

func killed(err error) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// onlyNamedFiles fails unless dir holds exactly the files its manifest
// names, the manifest itself, and nothing a writer left behind.
func onlyNamedFiles(t *testing.T, dir string) {
	t.Helper()
	m, err := readManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	named := map[string]bool{manifestFile: true}
	for _, f := range m.Files {
		named[f.Path] = true
	}
	for _, f := range files(t, dir) {
		if !named[f] {
			t.Fatalf("%s is in the index, its manifest does not name it", f)
		}
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			t.Fatalf("%s left in the index", e.Name())
		}
	}
}

// TestKillAtEveryStep kills an update (add, add with replace, delete,
// compact, in turn) with SIGKILL at each of its steps, in another process:
// the index then opens, and answers exactly as before the update or as
// after it, never a mix (before it until the manifest is committed, after
// it from then on; a compaction answers alike before and after, so its
// generation tells them apart), and running the update again finishes it,
// leaving the index as the uninterrupted update leaves it, with nothing
// else in it.
// Kills at random moments of an add do the same.
func TestKillAtEveryStep(t *testing.T) {
	ctx := context.Background()
	cur, ps, o := updateIndex(t, 50, 30)
	encDir := o.EncoderDir
	changed := ps[7]
	changed.Text = "Zanzibar quokka xylophone: a replaced passage."
	ops := []struct{ op, arg string }{
		{"add", kiltFile(t, ps[30:45])},
		{"replace", kiltFile(t, []data.Passage{changed, ps[45], ps[46]})},
		{"delete", strings.Join([]string{ps[2].ID, ps[33].ID, ps[45].ID}, ",")},
		{"compact", ""},
	}
	outer := t
	for _, op := range ops {
		t.Run(op.op, func(t *testing.T) {
			old := openState(t, cur)
			next := dirtest.Copy(outer, cur)
			var steps []string
			stepHook = func(s string) { steps = append(steps, s) }
			err := runUpdate(ctx, op.op, next, op.arg, o)
			stepHook = nil
			if err != nil {
				t.Fatal(err)
			}
			want := openState(t, next)
			if old.Generation == want.Generation {
				t.Fatal("the update committed nothing")
			}
			committed := false
			check := func(t *testing.T, dir, when string, mustBe string) {
				t.Helper()
				got := openState(t, dir)
				isOld, isNew := reflect.DeepEqual(got, old), reflect.DeepEqual(got, want)
				switch {
				case !isOld && !isNew:
					sameState(t, "killed "+when+": neither the old state nor the new one", got, want)
					t.Fatalf("killed %s: neither state", when)
				case mustBe == "old" && !isOld, mustBe == "new" && !isNew:
					t.Fatalf("killed %s: want the %s state", when, mustBe)
				}
				rerun := runUpdate(ctx, op.op, dir, op.arg, o)
				if isOld && rerun != nil {
					t.Fatalf("killed %s: running the update again: %v", when, rerun)
				}
				sameState(t, "killed "+when+", then run again", openState(t, dir), want)
				onlyNamedFiles(t, dir)
				if _, err := VerifyIndex(ctx, dir); err != nil {
					t.Fatal(err)
				}
			}
			for _, s := range steps {
				if s == "committed" {
					committed = true
				}
				dir := dirtest.Copy(t, cur)
				out, err := runHelperToEnd(t, "update", op.op, dir, orDash(op.arg), encDir, s)
				if !killed(err) {
					t.Fatalf("step %s: the helper was not killed: %v\n%s", s, err, out)
				}
				mustBe := "old"
				if committed {
					mustBe = "new"
				}
				check(t, dir, "at "+s, mustBe)
			}
			t.Logf("%s: killed at each of %d steps: %v", op.op, len(steps), steps)
			if op.op == "add" {
				rng := rand.New(rand.NewPCG(5, 6))
				olds, news := 0, 0
				for range 6 {
					dir := dirtest.Copy(t, cur)
					cmd := helperCmd("update", op.op, dir, op.arg, encDir, "-")
					if err := cmd.Start(); err != nil {
						t.Fatal(err)
					}
					time.Sleep(time.Duration(200+rng.IntN(1500)) * time.Millisecond)
					cmd.Process.Kill()
					cmd.Wait()
					if reflect.DeepEqual(openState(t, dir), old) {
						olds++
					} else {
						news++
					}
					check(t, dir, "at random", "")
				}
				t.Logf("add killed at random moments: %d left the old state, %d the new", olds, news)
			}
			cur = next
		})
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// TestReadersAnswerDuringUpdates: while one process keeps an index open
// and searches it, and another opens, searches and closes it in a loop,
// this one adds passages, deletes some, compacts (which removes the files
// of every earlier generation: the first reader's among them) and adds
// again. Both readers answer every search, without one error; the writer
// is not held up by the first reader's open BM25 store (bleve's lock is on
// a generation's own root.bolt, and the writer writes a new generation).
func TestReadersAnswerDuringUpdates(t *testing.T) {
	ctx := context.Background()
	dir, ps, o := updateIndex(t, 70, 30)
	o.LockTimeout = time.Second
	var readers []*helperProc
	for _, mode := range []string{"reader", "reopener"} {
		h := startHelper(t, nil, mode, dir)
		if got := h.line(t); got != "open" {
			t.Fatalf("%s: %q", mode, got)
		}
		readers = append(readers, h)
	}
	var mu sync.Mutex
	took := map[string]time.Duration{}
	run := func(name string, f func() error) {
		start := time.Now()
		if err := f(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		mu.Lock()
		took[name] = time.Since(start)
		mu.Unlock()
		time.Sleep(300 * time.Millisecond) // let the readers search this generation
	}
	run("add", func() error { _, err := Add(ctx, dir, kiltFile(t, ps[30:50]), o); return err })
	run("delete", func() error { _, err := Delete(ctx, dir, []string{ps[1].ID, ps[31].ID}, o); return err })
	run("compact", func() error { _, err := Compact(ctx, dir, o); return err })
	run("add again", func() error { _, err := Add(ctx, dir, kiltFile(t, ps[50:70]), o); return err })
	for i, h := range readers {
		h.stdin.Close()
		got := h.line(t)
		var n, bad int
		var first string
		if _, err := fmt.Sscanf(got, "searches %d errors %d %s", &n, &bad, &first); err != nil {
			t.Fatalf("reader %d: %q", i, got)
		}
		if bad != 0 || n < 10 {
			t.Fatalf("reader %d: %d errors in %d searches: %s", i, bad, n, got)
		}
		t.Logf("reader %d: %d searches, 0 errors", i, n)
		h.finish(t)
	}
	for name, d := range took {
		if d > 30*time.Second {
			t.Errorf("%s took %v while readers had the index open", name, d)
		}
	}
	t.Logf("updates with two readers: %v", took)
	if m, err := readManifest(dir); err != nil || m.Passages != 68 || m.Generation != 4 {
		t.Fatalf("manifest: %+v %v", m, err)
	}
	onlyNamedFiles(t, dir)
}
