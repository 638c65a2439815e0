// Package bm25 is a BM25 passage index on bleve v2: bleve analyses, stores and
// persists the passages and their postings, and re2g scores them with
// textbook (Lucene-style) BM25 from those postings. bleve's own BM25 scoring
// model is kept as an option for comparison (see README.md).
package bm25

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/analysis"
	"github.com/blevesearch/bleve/v2/document"
	"github.com/blevesearch/bleve/v2/index/scorch"
	"github.com/blevesearch/bleve/v2/index/scorch/mergeplan"
	"github.com/blevesearch/bleve/v2/mapping"
	index "github.com/blevesearch/bleve_index_api"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/re2g/re2g/data"
	"github.com/re2g/re2g/internal/progress"
)

// Field layouts.
const (
	// Flat indexes title and text as one field, "contents" (Anserini "flat").
	Flat = "flat"
	// MultiField indexes title and text as two fields and sums their BM25
	// scores (Anserini "multifield").
	MultiField = "multifield"
)

// Scoring models.
const (
	// Lucene is textbook BM25 as Lucene (and so Anserini) computes it:
	// Σ_t qtf·idf(t)·tf/(tf + k1·(1 − b + b·dl/avgdl)), idf(t) = ln(1 + (N −
	// df + 0.5)/(df + 0.5)), with document lengths rounded as Lucene's
	// one-byte norms round them.
	Lucene = "lucene"
	// LuceneExact is Lucene with exact document lengths.
	LuceneExact = "lucene-exact"
	// Bleve is bleve's own "bm25" scoring model, for comparison.
	Bleve = "bleve"
)

// Defaults are Anserini's.
const (
	DefaultK1 = 0.9
	DefaultB  = 0.4
)

const (
	fieldContents = "contents"
	fieldTitle    = "title"
	fieldText     = "text"
	fieldLen      = "_dl" // stored: the analysed lengths of the indexed fields
	keyConfig     = "re2g.bm25.config"
	keyStats      = "re2g.bm25.stats"
	keyTotal      = "_passages" // in the statistics: the passage count they describe
)

// ErrReadOnly reports a change to an index opened by OpenReadOnly.
var ErrReadOnly = errors.New("bm25: the index was opened read-only")

// ErrExternalText reports what an index made with Options.ExternalText
// cannot do without its passages' text: return a passage, replace or
// delete one (BM25's statistics need the old text), or recount its
// statistics.
var ErrExternalText = errors.New("the index keeps no passage text (Options.ExternalText)")

// Options configure a new index.
type Options struct {
	Fields string // Flat (default) or MultiField
	// ExternalText indexes the passages' titles and texts without storing
	// them, for callers that keep them anyway (re2g's index directories,
	// in their passage store): the index is about a third of the size, but
	// Passage, replacing or deleting a passage, and recounting statistics
	// are ErrExternalText.
	ExternalText bool
}

type config struct {
	Version      int    `json:"version"`
	Fields       string `json:"fields"`
	ExternalText bool   `json:"external_text,omitempty"`
}

// fieldStats are the collection statistics BM25 needs for one field.
type fieldStats struct {
	Docs   int64 `json:"docs"`    // documents with at least one term in the field
	SumLen int64 `json:"sum_len"` // total analysed length
}

// Index is a BM25 passage index. Searches are safe to run concurrently with
// each other and with Add and Delete, which serialise among themselves.
type Index struct {
	bi       bleve.Index
	adv      index.Index
	dir      string
	cfg      config
	fields   []string // indexed fields
	analyzer analysis.Analyzer

	wmu   sync.Mutex // serialises writers
	smu   sync.RWMutex
	stats map[string]fieldStats

	scratch sync.Pool

	genericPostings bool         // tests: score through bleve's term field readers
	exhaustive      bool         // tests, benchmarks: score every posting (no pruning)
	pruneAnyK       bool         // benchmarks: prune above pruneMaxK too
	prunedSearches  atomic.Int64 // searches that skipped postings (tests)
	readOnly        bool         // opened by OpenReadOnly: Add, Delete and Optimize fail

	closeOnce sync.Once
	closeErr  error
}

func (o Options) config() (config, error) {
	c := config{Version: 1, Fields: o.Fields, ExternalText: o.ExternalText}
	if c.Fields == "" {
		c.Fields = Flat
	}
	if c.Fields != Flat && c.Fields != MultiField {
		return c, fmt.Errorf("bm25: fields %q: want %q or %q", o.Fields, Flat, MultiField)
	}
	return c, nil
}

func indexedFields(c config) []string {
	if c.Fields == MultiField {
		return []string{fieldTitle, fieldText}
	}
	return []string{fieldContents}
}

func newMapping(c config) (*mapping.IndexMappingImpl, error) {
	m := bleve.NewIndexMapping()
	if err := addAnalyzer(m); err != nil {
		return nil, fmt.Errorf("bm25: analyzer: %w", err)
	}
	m.DefaultAnalyzer = AnalyzerName
	m.ScoringModel = index.BM25Scoring
	m.StoreDynamic = false
	m.IndexDynamic = false
	m.DocValuesDynamic = false
	dm := bleve.NewDocumentStaticMapping()
	text := func(indexed bool) *mapping.FieldMapping {
		f := bleve.NewTextFieldMapping()
		f.Analyzer = AnalyzerName
		f.Index = indexed
		f.Store = (!indexed || c.Fields == MultiField) && !c.ExternalText
		f.IncludeTermVectors = false
		f.IncludeInAll = false
		f.DocValues = false
		return f
	}
	if c.Fields == MultiField {
		dm.AddFieldMappingsAt(fieldTitle, text(true))
		dm.AddFieldMappingsAt(fieldText, text(true))
	} else {
		dm.AddFieldMappingsAt(fieldContents, text(true))
		dm.AddFieldMappingsAt(fieldTitle, text(false))
		dm.AddFieldMappingsAt(fieldText, text(false))
	}
	m.DefaultMapping = dm
	return m, nil
}

// Create makes a new, empty index in dir, which must not exist.
func Create(dir string, o Options) (*Index, error) {
	c, err := o.config()
	if err != nil {
		return nil, err
	}
	m, err := newMapping(c)
	if err != nil {
		return nil, err
	}
	bi, err := bleve.NewUsing(dir, m, scorch.Name, scorch.Name, nil)
	if err != nil {
		return nil, fmt.Errorf("bm25: create %s: %w", dir, err)
	}
	cb, _ := json.Marshal(c)
	if err := bi.SetInternal([]byte(keyConfig), cb); err != nil {
		bi.Close()
		return nil, fmt.Errorf("bm25: create %s: %w", dir, err)
	}
	return wrap(bi, c, map[string]fieldStats{}, dir)
}

// Open opens an index made by Create for reading and writing. It takes the
// store's exclusive lock, which a reader or writer in another process holds
// against it.
func Open(dir string) (*Index, error) {
	return open(context.Background(), dir, false)
}

// OpenReadOnly opens an index made by Create for searching only: nothing in
// dir is written (it may be on a read-only file system), and any number of
// processes may have it open at once. While a process holds it open for
// writing (Create, Open), OpenReadOnly waits until ctx ends.
func OpenReadOnly(ctx context.Context, dir string) (*Index, error) {
	return open(ctx, dir, true)
}

// openBleve opens dir's bleve index; read-only, it waits for a writer's
// exclusive lock in short steps so that ctx can end the wait.
func openBleve(ctx context.Context, dir string, readOnly bool) (bleve.Index, error) {
	if !readOnly {
		return bleveOpen(dir, nil)
	}
	logged := false
	for {
		bi, err := bleveOpen(dir, map[string]interface{}{"read_only": true, "bolt_timeout": "100ms"})
		if !errors.Is(err, bolterrors.ErrTimeout) {
			return bi, err
		}
		if !logged {
			slog.Info("bm25: waiting for a process that has the index open for writing", "dir", dir)
			logged = true
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("another process has it open for writing: %w", ctx.Err())
		}
	}
}

func open(ctx context.Context, dir string, readOnly bool) (*Index, error) {
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("bm25: open: %w", err)
	}
	if err := checkFiles(dir); err != nil {
		return nil, err
	}
	bi, err := openBleve(ctx, dir, readOnly)
	if err != nil {
		return nil, openError(dir, err)
	}
	return finishOpen(ctx, bi, dir, readOnly)
}

// finishOpen reads the configuration and statistics of an opened bleve
// index and wraps it.
func finishOpen(ctx context.Context, bi bleve.Index, dir string, readOnly bool) (*Index, error) {
	fail := func(err error) (*Index, error) {
		bi.Close()
		return nil, fmt.Errorf("bm25: open %s: %w", dir, err)
	}
	cb, err := bi.GetInternal([]byte(keyConfig))
	if err != nil {
		return fail(err)
	}
	var c config
	if err := json.Unmarshal(cb, &c); err != nil || c.Version != 1 {
		return fail(fmt.Errorf("not a re2g BM25 index (config %q)", cb))
	}
	st := map[string]fieldStats{}
	sb, err := bi.GetInternal([]byte(keyStats))
	if err != nil {
		return fail(err)
	}
	if len(sb) > 0 {
		if err := json.Unmarshal(sb, &st); err != nil {
			return fail(fmt.Errorf("corrupt statistics: %w", err))
		}
	}
	ix, err := wrap(bi, c, st, dir)
	if err != nil {
		return nil, err
	}
	ix.readOnly = readOnly
	n, err := bi.DocCount()
	if err != nil {
		ix.Close()
		return nil, fmt.Errorf("bm25: open %s: %w", dir, err)
	}
	if uint64(st[keyTotal].Docs) != n {
		// A crash between a batch and its statistics: count again (read-only:
		// in memory only).
		slog.Warn("bm25: statistics out of date, recounting", "dir", dir, "passages", n, "recorded", st[keyTotal].Docs)
		if err := ix.recount(ctx); err != nil {
			ix.Close()
			return nil, fmt.Errorf("bm25: open %s: %w", dir, err)
		}
	}
	return ix, nil
}

// recount rebuilds the statistics from the stored passages.
func (ix *Index) recount(ctx context.Context) error {
	if ix.cfg.ExternalText {
		return fmt.Errorf("recounting the statistics: %w: rebuild the index", ErrExternalText)
	}
	ix.wmu.Lock()
	defer ix.wmu.Unlock()
	r, err := ix.adv.Reader()
	if err != nil {
		return err
	}
	defer r.Close()
	dr, err := r.DocIDReaderAll()
	if err != nil {
		return err
	}
	defer dr.Close()
	st := map[string]fieldStats{}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		iid, err := dr.Next()
		if err != nil {
			return err
		}
		if iid == nil {
			break
		}
		id, err := r.ExternalID(iid)
		if err != nil {
			return err
		}
		neg := map[string]fieldStats{}
		if _, err := ix.subtractOld(r, id, neg); err != nil {
			return err
		}
		for f, v := range neg {
			s := st[f]
			s.Docs -= v.Docs
			s.SumLen -= v.SumLen
			st[f] = s
		}
	}
	if ix.readOnly {
		n, err := ix.bi.DocCount()
		if err != nil {
			return err
		}
		st[keyTotal] = fieldStats{Docs: int64(n)}
		ix.smu.Lock()
		ix.stats = st
		ix.smu.Unlock()
		return nil
	}
	ix.smu.Lock()
	ix.stats = map[string]fieldStats{}
	ix.smu.Unlock()
	return ix.commitStats(st)
}

func wrap(bi bleve.Index, c config, st map[string]fieldStats, dir string) (*Index, error) {
	adv, err := bi.Advanced()
	if err != nil {
		bi.Close()
		return nil, fmt.Errorf("bm25: %s: %w", dir, err)
	}
	a := bi.Mapping().AnalyzerNamed(AnalyzerName)
	if a == nil {
		bi.Close()
		return nil, fmt.Errorf("bm25: %s: analyzer %s missing", dir, AnalyzerName)
	}
	return &Index{bi: bi, adv: adv, dir: dir, cfg: c, fields: indexedFields(c), analyzer: a, stats: st}, nil
}

// Close closes the index; closing it again does nothing.
func (ix *Index) Close() error {
	ix.closeOnce.Do(func() { ix.closeErr = ix.bi.Close() })
	return ix.closeErr
}

// Fields is the field layout, Flat or MultiField.
func (ix *Index) Fields() string { return ix.cfg.Fields }

// ExternalText reports whether the index was made with
// Options.ExternalText: it keeps no passage text.
func (ix *Index) ExternalText() bool { return ix.cfg.ExternalText }

// Count is the number of passages.
func (ix *Index) Count() (uint64, error) { return ix.bi.DocCount() }

// AvgLen is the average analysed length of each indexed field.
func (ix *Index) AvgLen() map[string]float64 {
	ix.smu.RLock()
	defer ix.smu.RUnlock()
	out := map[string]float64{}
	for _, f := range ix.fields {
		if s := ix.stats[f]; s.Docs > 0 {
			out[f] = float64(s.SumLen) / float64(s.Docs)
		}
	}
	return out
}

// BatchSize is how many passages Add sends to bleve at a time, at most
// batchBytes of text.
const (
	BatchSize  = 10000
	batchBytes = 64 << 20
)

// maxText bounds a passage's text; longer passages are an error.
const maxText = 8 << 20

// Add indexes passages, replacing any passage with the same id, in batches;
// each batch is durable once written. If w is not nil progress is shown
// there. A passage with an id that cannot go into a TREC run file, no text
// at all or over 8 MiB of text is an error, and nothing of its batch is
// written.
func (ix *Index) Add(ctx context.Context, ps []data.Passage, w io.Writer) error {
	if ix.readOnly {
		return ErrReadOnly
	}
	ix.wmu.Lock()
	defer ix.wmu.Unlock()
	bar := progress.NewTo(w, len(ps), "indexing", "docs")
	defer bar.Finish()
	for start := 0; start < len(ps); {
		if err := ctx.Err(); err != nil {
			return err
		}
		end := min(start+BatchSize, len(ps))
		n, err := ix.addBatch(ps[start:end])
		if err != nil {
			return err
		}
		start += n
		_ = bar.Add(n)
	}
	return nil
}

// addBatch indexes a prefix of ps (stopping before a repeated id) and returns
// its length.
func (ix *Index) addBatch(ps []data.Passage) (int, error) {
	count, err := ix.bi.DocCount()
	if err != nil {
		return 0, fmt.Errorf("bm25: %w", err)
	}
	var reader index.IndexReader
	if count > 0 {
		if reader, err = ix.adv.Reader(); err != nil {
			return 0, fmt.Errorf("bm25: %w", err)
		}
		defer reader.Close()
	}
	b := ix.bi.NewBatch()
	delta := map[string]fieldStats{}
	docs := make([]*document.Document, 0, len(ps))
	seen := make(map[string]bool, len(ps))
	size := 0
	for _, p := range ps {
		if seen[p.ID] || (size > batchBytes && len(docs) > 0) {
			break
		}
		size += len(p.Title) + len(p.Text)
		if err := checkPassage(p); err != nil {
			return 0, err
		}
		seen[p.ID] = true
		if reader != nil {
			if _, err := ix.subtractOld(reader, p.ID, delta); err != nil {
				return 0, err
			}
		}
		d := ix.document(p)
		if err := b.IndexAdvanced(d); err != nil {
			return 0, fmt.Errorf("bm25: passage %s: %w", p.ID, err)
		}
		docs = append(docs, d)
	}
	if err := ix.bi.Batch(b); err != nil {
		return 0, fmt.Errorf("bm25: index batch: %w", err)
	}
	// bleve analysed the fields while indexing; record their lengths.
	for _, d := range docs {
		d.VisitFields(func(fl index.Field) {
			if !fl.Options().IsIndexed() || fl.Name() == "_id" {
				return
			}
			s := delta[fl.Name()]
			s.SumLen += int64(fl.AnalyzedLength())
			if fl.AnalyzedLength() > 0 {
				s.Docs++
			}
			delta[fl.Name()] = s
		})
	}
	return len(docs), ix.commitStats(delta)
}

func checkPassage(p data.Passage) error {
	switch {
	case p.ID == "" || strings.ContainsAny(p.ID, " \t\r\n"):
		return fmt.Errorf("bm25: passage id %q: empty or contains white space", p.ID)
	case strings.TrimSpace(p.Title) == "" && strings.TrimSpace(p.Text) == "":
		return fmt.Errorf("bm25: passage %s: no title or text", p.ID)
	case len(p.Title)+len(p.Text) > maxText:
		return fmt.Errorf("bm25: passage %s: %d bytes of text, over the %d limit", p.ID, len(p.Title)+len(p.Text), maxText)
	}
	return nil
}

// document builds the bleve document for p without going through the
// reflection-based mapping (same fields and options as newMapping).
func (ix *Index) document(p data.Passage) *document.Document {
	d := document.NewDocument(p.ID)
	stored := index.StoreField
	if ix.cfg.ExternalText {
		stored = 0
	}
	if ix.cfg.Fields == MultiField {
		opt := index.IndexField | stored
		d.AddField(document.NewTextFieldCustom(fieldTitle, nil, []byte(p.Title), opt, ix.analyzer))
		d.AddField(document.NewTextFieldCustom(fieldText, nil, []byte(p.Text), opt, ix.analyzer))
		return d
	}
	contents := p.Text
	if p.Title != "" {
		contents = p.Title + " " + p.Text
	}
	d.AddField(document.NewTextFieldCustom(fieldContents, nil, []byte(contents), index.IndexField, ix.analyzer))
	if stored != 0 {
		d.AddField(document.NewTextFieldCustom(fieldTitle, nil, []byte(p.Title), stored, nil))
		d.AddField(document.NewTextFieldCustom(fieldText, nil, []byte(p.Text), stored, nil))
	}
	return d
}

// subtractOld removes from delta the statistics of the stored passage id,
// if there is one, by analysing its stored text again.
func (ix *Index) subtractOld(r index.IndexReader, id string, delta map[string]fieldStats) (bool, error) {
	p, ok, err := passageFrom(r, id)
	if err != nil || !ok {
		return false, err
	}
	if ix.cfg.ExternalText {
		return false, fmt.Errorf("bm25: passage %s is in the index: replacing or deleting it needs its text: %w", id, ErrExternalText)
	}
	ix.subtract(p, delta)
	return true, nil
}

// subtract removes p's lengths from delta, analysing its text again.
func (ix *Index) subtract(p data.Passage, delta map[string]fieldStats) {
	d := ix.document(p)
	d.VisitFields(func(fl index.Field) {
		if !fl.Options().IsIndexed() {
			return
		}
		fl.Analyze()
		s := delta[fl.Name()]
		s.SumLen -= int64(fl.AnalyzedLength())
		if fl.AnalyzedLength() > 0 {
			s.Docs--
		}
		delta[fl.Name()] = s
	})
}

func passageFrom(r index.IndexReader, id string) (data.Passage, bool, error) {
	doc, err := r.Document(id)
	if err != nil {
		return data.Passage{}, false, fmt.Errorf("bm25: passage %s: %w", id, err)
	}
	if doc == nil {
		return data.Passage{}, false, nil
	}
	p := data.Passage{ID: id}
	doc.VisitFields(func(f index.Field) {
		switch f.Name() {
		case fieldTitle:
			p.Title = string(f.Value())
		case fieldText:
			p.Text = string(f.Value())
		}
	})
	return p, true, nil
}

// commitStats adds delta to the statistics and persists them.
func (ix *Index) commitStats(delta map[string]fieldStats) error {
	ix.smu.Lock()
	next := make(map[string]fieldStats, len(ix.stats))
	for k, v := range ix.stats {
		next[k] = v
	}
	for k, v := range delta {
		s := next[k]
		s.Docs += v.Docs
		s.SumLen += v.SumLen
		next[k] = s
	}
	ix.smu.Unlock()
	n, err := ix.bi.DocCount()
	if err != nil {
		return fmt.Errorf("bm25: save statistics: %w", err)
	}
	next[keyTotal] = fieldStats{Docs: int64(n)}
	b, _ := json.Marshal(next)
	if err := ix.bi.SetInternal([]byte(keyStats), b); err != nil {
		return fmt.Errorf("bm25: save statistics: %w", err)
	}
	ix.smu.Lock()
	ix.stats = next
	ix.smu.Unlock()
	return nil
}

// Delete removes passages by id; ids not in the index are ignored. It
// returns how many were removed.
func (ix *Index) Delete(ctx context.Context, ids []string) (int, error) {
	return ix.deleteIDs(ctx, ids, func(r index.IndexReader, i int, delta map[string]fieldStats) (bool, error) {
		return ix.subtractOld(r, ids[i], delta)
	})
}

// deleteIDs removes the passages with the given ids in one batch, each id
// once; subtract takes the i-th one's lengths from delta and says whether
// it is in the index (those not are skipped). It returns how many were
// removed.
func (ix *Index) deleteIDs(ctx context.Context, ids []string, subtract func(r index.IndexReader, i int, delta map[string]fieldStats) (bool, error)) (int, error) {
	if ix.readOnly {
		return 0, ErrReadOnly
	}
	ix.wmu.Lock()
	defer ix.wmu.Unlock()
	r, err := ix.adv.Reader()
	if err != nil {
		return 0, fmt.Errorf("bm25: %w", err)
	}
	defer r.Close()
	delta := map[string]fieldStats{}
	b := ix.bi.NewBatch()
	n := 0
	done := map[string]bool{}
	for i, id := range ids {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		if done[id] {
			continue
		}
		done[id] = true
		ok, err := subtract(r, i, delta)
		if err != nil {
			return 0, err
		}
		if !ok {
			continue
		}
		b.Delete(id)
		n++
	}
	if n == 0 {
		return 0, nil
	}
	if err := ix.bi.Batch(b); err != nil {
		return 0, fmt.Errorf("bm25: delete: %w", err)
	}
	return n, ix.commitStats(delta)
}

// Passage returns the stored passage with the given id.
func (ix *Index) Passage(id string) (data.Passage, bool, error) {
	if ix.cfg.ExternalText {
		return data.Passage{}, false, fmt.Errorf("bm25: passage %s: %w", id, ErrExternalText)
	}
	r, err := ix.adv.Reader()
	if err != nil {
		return data.Passage{}, false, fmt.Errorf("bm25: %w", err)
	}
	defer r.Close()
	return passageFrom(r, id)
}

// Optimize merges the index into one segment, which makes searches faster,
// and waits until that segment is the one on disk; call it after a bulk
// load. (bleve's force merge merges at most 10 segments a task, and returns
// before the merged snapshot is persisted: it runs until both are done.)
func (ix *Index) Optimize(ctx context.Context) error {
	if ix.readOnly {
		return ErrReadOnly
	}
	s, ok := ix.adv.(*scorch.Scorch)
	if !ok {
		return errors.New("bm25: optimize: not a scorch index")
	}
	for {
		// One segment is done: every batch is on disk when Add returns, and
		// an index opened without changes would wait for ever for its
		// background threads (they report busy until they persist a
		// snapshot of their own).
		if n, err := ix.segments(); err != nil {
			return fmt.Errorf("bm25: optimize: %w", err)
		} else if n <= 1 {
			return nil
		}
		if err := s.ForceMerge(ctx, &mergeplan.SingleSegmentMergePlanOptions); err != nil {
			return fmt.Errorf("bm25: optimize: %w", err)
		}
		if err := waitQuiet(ctx, s); err != nil {
			return fmt.Errorf("bm25: optimize: %w", err)
		}
		n, err := ix.segments()
		if err != nil {
			return fmt.Errorf("bm25: optimize: %w", err)
		}
		if n <= 1 {
			return nil
		}
	}
}

// segments is the number of segments of the current snapshot.
func (ix *Index) segments() (int, error) {
	r, err := ix.adv.Reader()
	if err != nil {
		return 0, err
	}
	defer r.Close()
	snap, ok := r.(*scorch.IndexSnapshot)
	if !ok {
		return 0, errors.New("not a scorch snapshot")
	}
	return len(snap.Segments()), nil
}

// waitQuiet waits until scorch has merged and persisted its latest snapshot.
func waitQuiet(ctx context.Context, s *scorch.Scorch) error {
	for {
		if active, _ := s.StatsMap()["index_bgthreads_active"].(bool); !active {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// IDs lists the ids of every stored passage (in the index's internal order).
func (ix *Index) IDs(ctx context.Context) ([]string, error) {
	r, err := ix.adv.Reader()
	if err != nil {
		return nil, fmt.Errorf("bm25: %w", err)
	}
	defer r.Close()
	dr, err := r.DocIDReaderAll()
	if err != nil {
		return nil, fmt.Errorf("bm25: %w", err)
	}
	defer dr.Close()
	var out []string
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		iid, err := dr.Next()
		if err != nil {
			return nil, fmt.Errorf("bm25: %w", err)
		}
		if iid == nil {
			return out, nil
		}
		id, err := r.ExternalID(iid)
		if err != nil {
			return nil, fmt.Errorf("bm25: %w", err)
		}
		out = append(out, id)
	}
}
