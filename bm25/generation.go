package bm25

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/index/scorch"
	"github.com/blevesearch/bleve/v2/index/scorch/mergeplan"
	index "github.com/blevesearch/bleve_index_api"

	"github.com/re2g/re2g/data"
)

// UpdateMergeDocs bounds bleve's background merges in an index opened by
// OpenUpdate: a merge produces segments of at most this many documents, and
// a segment with half as many live documents or more is never rewritten.
// The segments of a bulk build (Optimize: one segment) are far larger at any
// real size, so an update writes new segments beside them and never
// rewrites them; only Optimize does.
const UpdateMergeDocs = 1 << 17

var linkWarn sync.Once

// Clone makes dst a new generation of the index in src, for a writer that
// must not disturb src's readers: dst's segment files (store/*.zap, which
// bleve never changes once written) are hard links of src's, and its
// root.bolt (snapshots, deletions, re2g's statistics) and index_meta.json are
// copies. Opened for writing (OpenUpdate), dst takes the lock of its own
// root.bolt, so readers of src in other processes neither block the writer
// nor see its changes, and a writer that dies leaves src as it was. dst must
// not exist. Where hard links are not possible the segments are copied.
func Clone(ctx context.Context, src, dst string) error {
	if err := checkFiles(src); err != nil {
		return err
	}
	if _, err := os.Lstat(dst); err == nil {
		return fmt.Errorf("bm25: clone %s: %s exists", src, dst)
	}
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(to, 0o755)
		case !d.Type().IsRegular():
			return fmt.Errorf("%s: not a regular file", p)
		case strings.HasSuffix(d.Name(), ".zap"):
			if err := os.Link(p, to); err != nil {
				linkWarn.Do(func() {
					slog.Warn("bm25: cannot hard-link segment files: copying them", "from", p, "err", err)
				})
				return copyFile(p, to)
			}
			return nil
		default:
			return copyFile(p, to)
		}
	})
	if err != nil {
		os.RemoveAll(dst)
		return fmt.Errorf("bm25: clone %s to %s: %w", src, dst, err)
	}
	return nil
}

// copyFile copies a regular file, synced.
func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// OpenUpdate opens an index for writing, as Open does, with bleve's
// background merges bounded by UpdateMergeDocs: the large segments of a
// bulk build stay as they are (see Clone).
func OpenUpdate(ctx context.Context, dir string) (*Index, error) {
	d := mergeplan.DefaultMergePlanOptions
	plan := map[string]interface{}{
		"MaxSegmentsPerTier": d.MaxSegmentsPerTier, "MaxSegmentSize": UpdateMergeDocs,
		"MaxSegmentFileSize": d.MaxSegmentFileSize, "TierGrowth": d.TierGrowth,
		"SegmentsPerMergeTask": d.SegmentsPerMergeTask, "FloorSegmentSize": d.FloorSegmentSize,
		"ReclaimDeletesWeight": d.ReclaimDeletesWeight,
	}
	return openWith(ctx, dir, false, map[string]interface{}{"scorchMergePlanOptions": plan})
}

// DeletePassages removes passages by id, taking the statistics' lengths
// from the passages given (an Options.ExternalText index keeps no text: the
// caller's store has it), which must be the title and text indexed. Ids not
// in the index are skipped; it returns how many were removed.
func (ix *Index) DeletePassages(ctx context.Context, ps []data.Passage) (int, error) {
	ids := make([]string, len(ps))
	for i, p := range ps {
		ids[i] = p.ID
	}
	return ix.deleteIDs(ctx, ids, func(r index.IndexReader, i int, delta map[string]fieldStats) (bool, error) {
		iid, err := r.InternalID(ps[i].ID)
		if err != nil {
			return false, fmt.Errorf("bm25: passage %s: %w", ps[i].ID, err)
		}
		if iid == nil {
			return false, nil
		}
		ix.subtract(ps[i], delta)
		return true, nil
	})
}

// openWith opens dir's bleve index with a runtime configuration (for
// writing only).
func openWith(ctx context.Context, dir string, readOnly bool, config map[string]interface{}) (*Index, error) {
	if readOnly || config == nil {
		return open(ctx, dir, readOnly)
	}
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("bm25: open: %w", err)
	}
	if err := checkFiles(dir); err != nil {
		return nil, err
	}
	bi, err := bleveOpen(dir, config)
	if err != nil {
		return nil, openError(dir, err)
	}
	return finishOpen(ctx, bi, dir, false)
}

// bleveOpen opens dir's bleve index (config nil: bleve's defaults). bleve
// panics on some damaged segment files while it loads them (zapx slices
// past a section's end); the panic is returned as ErrDamaged. What the
// half-opened index holds (its root.bolt's file and lock) is not released
// then: an open that failed this way leaks one file descriptor.
func bleveOpen(dir string, config map[string]interface{}) (bi bleve.Index, err error) {
	defer func() {
		if r := recover(); r != nil {
			bi, err = nil, fmt.Errorf("%w: %s: %v", ErrDamaged, dir, r)
		}
	}()
	if config == nil {
		return bleve.Open(dir)
	}
	return bleve.OpenUsing(dir, config)
}

// ErrDamaged reports a panic inside bleve's code during a search, turned
// into an error: a damaged segment file (in an index opened without reading
// every byte) must not take the process down.
var ErrDamaged = errors.New("bm25: the index could not be read (damaged? re2g index verify checks every file)")

// Segments reports how many segments the index's current snapshot has,
// and how many deleted documents they still hold.
func (ix *Index) Segments() (segments int, deleted uint64, err error) {
	r, err := ix.adv.Reader()
	if err != nil {
		return 0, 0, fmt.Errorf("bm25: %w", err)
	}
	defer r.Close()
	snap, ok := r.(*scorch.IndexSnapshot)
	if !ok {
		return 0, 0, errors.New("bm25: not a scorch index")
	}
	for _, ss := range snap.Segments() {
		deleted += ss.Segment().Count() - ss.Count()
	}
	return len(snap.Segments()), deleted, nil
}

// Compact merges the index into one segment without its deleted
// documents. bleve merges two segments or more: when the index is one
// segment that holds deleted documents, Compact first indexes p again
// (a live passage, with its indexed title and text: the statistics do not
// change), which puts it in a second segment.
func (ix *Index) Compact(ctx context.Context, p data.Passage) error {
	if ix.readOnly {
		return ErrReadOnly
	}
	segs, deleted, err := ix.Segments()
	if err != nil {
		return err
	}
	if segs == 1 && deleted > 0 {
		n, err := ix.DeletePassages(ctx, []data.Passage{p})
		if err != nil {
			return err
		}
		if n != 1 {
			return fmt.Errorf("bm25: compact %s: passage %s is not in the index", ix.dir, p.ID)
		}
		if err := ix.Add(ctx, []data.Passage{p}, nil); err != nil {
			return err
		}
	}
	return ix.Optimize(ctx)
}
