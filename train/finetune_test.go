package train

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/re2g/re2g/data"
	"github.com/re2g/re2g/indexdir"
	"github.com/re2g/re2g/model/bart"
	"github.com/re2g/re2g/model/rag"
	"github.com/re2g/re2g/neural"
	"github.com/re2g/re2g/torch"
)

// The checkpoints made by transformers (scripts/make_hf_fixtures.py), each
// saved as safetensors and as pytorch_model.bin.
const hfFixtures = "../testdata/hf"

// fixture is one model directory of testdata/hf and its architecture.
type fixture struct {
	dir, arch, format string
}

// hfDirs lists the fixture directories by architecture.
func hfDirs(t *testing.T) map[string][]fixture {
	t.Helper()
	cfgs, err := filepath.Glob(filepath.Join(hfFixtures, "*", "*", "config.json"))
	if err != nil || len(cfgs) == 0 {
		t.Fatalf("no transformers fixtures under %s (scripts/make_hf_fixtures.py): %v", hfFixtures, err)
	}
	out := map[string][]fixture{}
	for _, c := range cfgs {
		b, err := os.ReadFile(c)
		if err != nil {
			t.Fatal(err)
		}
		var cfg struct {
			Architectures []string `json:"architectures"`
		}
		if err := json.Unmarshal(b, &cfg); err != nil {
			t.Fatal(err)
		}
		if len(cfg.Architectures) == 0 {
			continue
		}
		dir := filepath.Dir(c)
		out[cfg.Architectures[0]] = append(out[cfg.Architectures[0]], fixture{dir: dir, arch: cfg.Architectures[0], format: filepath.Base(dir)})
	}
	return out
}

// ctxFixture is a context-encoder fixture saved as format whose vectors
// have dimension dim: the DPR context encoder (which has a 16-d
// projection), else the plain BERT, else (qdir's dimension matching
// neither) a copy of the question encoder qdir saved as a DPR context
// encoder.
func ctxFixture(t *testing.T, all map[string][]fixture, format, qdir string) string {
	dim := encoderDim(t, qdir)
	t.Helper()
	for _, arch := range []string{"DPRContextEncoder", "BertModel"} {
		for _, f := range all[arch] {
			if f.format != format {
				continue
			}
			enc, err := neural.LoadEncoder(f.dir, neural.Options{})
			if err != nil {
				t.Fatal(err)
			}
			d := enc.Dim()
			enc.Close()
			if int64(d) == dim {
				return f.dir
			}
		}
	}
	e := fixtureEnv(t, "")
	q, err := e.loadBiEncoder(qdir, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	q.m.Question = false
	dir := filepath.Join(t.TempDir(), "ctx")
	if err := e.saveDPR(dir, q); err != nil {
		t.Fatal(err)
	}
	return dir
}

// encoderDim is the embedding size of an encoder directory.
func encoderDim(t *testing.T, dir string) int64 {
	t.Helper()
	enc, err := neural.LoadEncoder(dir, neural.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	return int64(enc.Dim())
}

// fixtureEnv is an env over the tiny corpus, its index encoded by the
// context encoder ctxDir (BM25 only when ctxDir is "").
func fixtureEnv(t *testing.T, ctxDir string) *env {
	t.Helper()
	ds, ix := tinyDataset(t)
	cfg := tinyConfig(t.TempDir())
	cfg.Init = InitCheckpoint
	cfg.QueryLen, cfg.PassageLen, cfg.PairLen, cfg.SourceLen, cfg.AnswerLen = 32, 64, 64, 64, 12
	if ctxDir != "" {
		e, err := newEnv(cfg, ds, ix)
		if err != nil {
			t.Fatal(err)
		}
		c, err := e.loadBiEncoder(ctxDir, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		ix = filepath.Join(cfg.Out, "index")
		err = e.encodeCorpus(context.Background(), nil, c, ctxDir, ix, false)
		c.Close()
		e.close()
		if err != nil {
			t.Fatal(err)
		}
	}
	e, err := newEnv(cfg, ds, ix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.close)
	return e
}

func noDropoutBERT(b *biEncoder) {
	b.m.Cfg.HiddenDropoutProb, b.m.Cfg.AttentionProbsDropoutProb = 0, 0
}

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol*math.Max(1, math.Abs(b)) }

// TestDPRFineTuneStartsFromCheckpoint: for every question-encoder layout
// (DPR, BertModel, RAG; safetensors and pytorch_model.bin), the DPR phase's
// first training loss equals the loss computed by inference code (neural)
// from the checkpoints on the same batch, and the models saved before any
// update encode exactly as the checkpoints do.
func TestDPRFineTuneStartsFromCheckpoint(t *testing.T) {
	all := hfDirs(t)
	var qs []fixture
	for _, a := range []string{"DPRQuestionEncoder", "DPRContextEncoder", "BertModel", "RagTokenForGeneration", "RagSequenceForGeneration"} {
		qs = append(qs, all[a]...)
	}
	if len(qs) < 6 {
		t.Fatalf("%d question-encoder fixtures", len(qs))
	}
	for _, qf := range qs {
		cdir := ctxFixture(t, all, qf.format, qf.dir)
		t.Run(qf.arch+"/"+qf.format, func(t *testing.T) {
			ctx := context.Background()
			e := fixtureEnv(t, "")
			q, err := e.loadBiEncoder(qf.dir, true, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer q.Close()
			c, err := e.loadBiEncoder(cdir, false, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			noDropoutBERT(q)
			noDropoutBERT(c)
			ranked, err := e.bm25(ctx, e.trainQ, 8)
			if err != nil {
				t.Fatal(err)
			}
			exs, err := e.hardNegatives(e.trainQ, ranked, 1)
			if err != nil {
				t.Fatal(err)
			}
			task, err := e.dprTask("dpr", q, c, exs, nil)
			if err != nil {
				t.Fatal(err)
			}
			task.Eval = nil
			// 0 updates: what is saved encodes as the checkpoint does.
			zero := filepath.Join(t.TempDir(), "zero")
			if err := task.Save(zero); err != nil {
				t.Fatal(err)
			}
			refQ, err := neural.LoadEncoder(qf.dir, neural.Options{MaxLength: e.cfg.QueryLen})
			if err != nil {
				t.Fatal(err)
			}
			defer refQ.Close()
			refC, err := neural.LoadEncoder(cdir, neural.Options{MaxLength: e.cfg.PassageLen})
			if err != nil {
				t.Fatal(err)
			}
			defer refC.Close()
			savedQ, err := neural.LoadEncoder(filepath.Join(zero, "question_encoder"), neural.Options{MaxLength: e.cfg.QueryLen})
			if err != nil {
				t.Fatal(err)
			}
			defer savedQ.Close()
			texts := []string{e.trainQ[0].Text, e.trainQ[1].Text}
			a, err1 := refQ.EncodeQueries(ctx, texts)
			b, err2 := savedQ.EncodeQueries(ctx, texts)
			if err := firstErr(err1, err2); err != nil {
				t.Fatal(err)
			}
			for i := range a {
				if !slices.Equal(a[i], b[i]) {
					t.Fatalf("saved question encoder differs from the checkpoint on %q", texts[i])
				}
			}
			// The first loss under training = the loss from inference code.
			const seed = 5
			r, err := Run(ctx, task, Opt{MaxSteps: 1, BatchSize: 2, Accum: 1, LR: 1e-9}, seed, t.TempDir(), RunOptions{})
			if err != nil {
				t.Fatal(err)
			}
			idx := batchAt(seed, len(exs), 2, 0)
			var bq []string
			var ps []neural.Passage
			at := map[string]int{}
			var pos []int
			add := func(p data.Passage) int {
				if k, ok := at[p.ID]; ok {
					return k
				}
				at[p.ID] = len(ps)
				ps = append(ps, neural.Passage{Title: p.Title, Text: p.Text})
				return at[p.ID]
			}
			for _, k := range idx {
				bq = append(bq, exs[k].q.Text)
				pos = append(pos, add(exs[k].pos))
			}
			for _, k := range idx {
				if exs[k].hasNeg {
					add(exs[k].neg)
				}
			}
			qv, err1 := refQ.EncodeQueries(ctx, bq)
			pv, err2 := refC.EncodePassages(ctx, ps)
			if err := firstErr(err1, err2); err != nil {
				t.Fatal(err)
			}
			want := 0.0
			for i := range qv {
				scores := make([]float64, len(pv))
				for j := range pv {
					for d := range pv[j] {
						scores[j] += float64(qv[i][d]) * float64(pv[j][d])
					}
				}
				want += logSumExp(scores) - scores[pos[i]]
			}
			want /= float64(len(qv))
			if got := r.Loss[0].Value; !near(got, want, 1e-5) {
				t.Fatalf("first training loss %.7f, inference loss from the checkpoint %.7f", got, want)
			}
		})
	}
}

func logSumExp(x []float64) float64 {
	m := math.Inf(-1)
	for _, v := range x {
		m = max(m, v)
	}
	s := 0.0
	for _, v := range x {
		s += math.Exp(v - m)
	}
	return m + math.Log(s)
}

// TestRerankerFineTuneStartsFromCheckpoint: the same for the 1- and
// 2-label cross-encoders in both formats.
func TestRerankerFineTuneStartsFromCheckpoint(t *testing.T) {
	all := hfDirs(t)
	fs := all["BertForSequenceClassification"]
	if len(fs) < 2 {
		t.Fatalf("%d cross-encoder fixtures", len(fs))
	}
	for _, f := range fs {
		t.Run(filepath.Base(filepath.Dir(f.dir))+"/"+f.format, func(t *testing.T) {
			ctx := context.Background()
			e := fixtureEnv(t, "")
			c, err := e.loadReranker(f.dir)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.m.Cfg.HiddenDropoutProb, c.m.Cfg.AttentionProbsDropoutProb = 0, 0
			c.m.Cfg.ClassifierDropout = nil
			hs, err := e.bm25(ctx, e.trainQ, 4)
			if err != nil {
				t.Fatal(err)
			}
			var ls lists
			for _, h := range hs {
				ls = append(ls, hitIDs(h))
			}
			trainQ, trL, _ := withGold(e.trainQ, ls)
			task, err := e.rerankTask(c, trainQ, trL, nil)
			if err != nil {
				t.Fatal(err)
			}
			task.Eval = nil
			zero := filepath.Join(t.TempDir(), "zero")
			if err := task.Save(zero); err != nil {
				t.Fatal(err)
			}
			ref, err := neural.LoadReranker(f.dir, neural.Options{MaxLength: e.cfg.PairLen})
			if err != nil {
				t.Fatal(err)
			}
			defer ref.Close()
			saved, err := neural.LoadReranker(filepath.Join(zero, "reranker"), neural.Options{MaxLength: e.cfg.PairLen})
			if err != nil {
				t.Fatal(err)
			}
			defer saved.Close()
			const seed = 6
			r, err := Run(ctx, task, Opt{MaxSteps: 1, BatchSize: 2, Accum: 1, LR: 1e-9}, seed, t.TempDir(), RunOptions{})
			if err != nil {
				t.Fatal(err)
			}
			fm := neural.DefaultSourceFormat()
			want, n := 0.0, 0
			for _, k := range batchAt(seed, len(trainQ), 2, 0) {
				ps, err := e.fill(trL[k])
				if err != nil {
					t.Fatal(err)
				}
				pairs := make([]neural.Pair, len(ps))
				for i, p := range ps {
					pairs[i] = neural.Pair{Query: trainQ[k].Text, Passage: fm.Passage(p.Title, p.Text)}
				}
				z, err1 := ref.Score(ctx, pairs)
				z0, err2 := saved.Score(ctx, pairs)
				if err := firstErr(err1, err2); err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(z, z0) {
					t.Fatalf("reranker saved after 0 updates scores %v, the checkpoint %v", z0, z)
				}
				lse := logSumExp(z)
				for i, p := range ps {
					if trainQ[k].isGold(p.ID) {
						want += lse - z[i]
					}
				}
				n++
			}
			want /= float64(n)
			if got := r.Loss[0].Value; !near(got, want, 1e-5) {
				t.Fatalf("first training loss %.7f, inference loss from the checkpoint %.7f", got, want)
			}
		})
	}
}

// TestGeneratorFineTuneStartsFromCheckpoint: for BART (byte-level BPE) and
// RAG token/sequence directories in both formats, the generation phase's
// first loss equals RAG-Sequence's loss computed from the checkpoints by
// inference code (question encoder through neural, retrieval through the
// index, the generator's forward pass without gradients), RAG directories
// keep RAG's source layout, and the generator saved before any update
// generates exactly what the checkpoint does.
func TestGeneratorFineTuneStartsFromCheckpoint(t *testing.T) {
	all := hfDirs(t)
	var gs []fixture
	for _, a := range []string{"BartForConditionalGeneration", "RagTokenForGeneration", "RagSequenceForGeneration"} {
		gs = append(gs, all[a]...)
	}
	if len(gs) < 3 {
		t.Fatalf("%d generator fixtures", len(gs))
	}
	for _, gf := range gs {
		t.Run(gf.arch+"/"+gf.format, func(t *testing.T) {
			ctx := context.Background()
			qdir := gf.dir
			if gf.arch == "BartForConditionalGeneration" {
				qdir = ""
				for _, f := range all["DPRQuestionEncoder"] {
					if f.format == gf.format {
						qdir = f.dir
					}
				}
			}
			cdir := ctxFixture(t, all, gf.format, qdir)
			e := fixtureEnv(t, cdir)
			q, err := e.loadBiEncoder(qdir, true, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer q.Close()
			noDropoutBERT(q)
			g, err := e.loadGenerator(gf.dir)
			if err != nil {
				t.Fatal(err)
			}
			defer g.Close()
			if (gf.arch != "BartForConditionalGeneration") != (g.format.Layout == neural.PassageFirst) {
				t.Fatalf("%s: source layout %s", gf.arch, g.format.Layout)
			}
			g.m.Cfg.Dropout, g.m.Cfg.AttentionDropout, g.m.Cfg.ActivationDropout = 0, 0, 0
			e.cfg.Generator.K = 2
			zero := filepath.Join(t.TempDir(), "zero")
			save := func(dir string) error {
				ragDir := ""
				if g.rag != nil {
					ragDir = filepath.Join(dir, "rag")
				}
				return e.saveGenerator(filepath.Join(dir, "generator"), g, q, ragDir)
			}
			task, err := e.ragTask(q, g, e.trainQ, e.devQ, save)
			if err != nil {
				t.Fatal(err)
			}
			task.Eval = nil
			if err := task.Save(zero); err != nil {
				t.Fatal(err)
			}
			// 0 updates: the saved generator generates what the checkpoint does.
			ref, err := neural.LoadGenerator(gf.dir, neural.Options{MaxLength: e.cfg.SourceLen})
			if err != nil {
				t.Fatal(err)
			}
			defer ref.Close()
			saved, err := neural.LoadGenerator(filepath.Join(zero, "generator"), neural.Options{MaxLength: e.cfg.SourceLen})
			if err != nil {
				t.Fatal(err)
			}
			defer saved.Close()
			if saved.Format != ref.Format {
				t.Fatalf("saved source layout %+v, checkpoint's %+v", saved.Format, ref.Format)
			}
			src := []string{ref.Format.Source("Who founded Rome?", "Rome", tinyPassages[4].Text)}
			gc := *ref.Config
			gc.MaxLength, gc.MaxNewTokens, gc.NumBeams, gc.NumReturnSequences = 8, 0, 2, 2
			o1, err1 := ref.Generate(ctx, src, &gc)
			o2, err2 := saved.Generate(ctx, src, &gc)
			if err := firstErr(err1, err2); err != nil {
				t.Fatal(err)
			}
			for i := range o1[0] {
				if !slices.Equal(o1[0][i].IDs, o2[0][i].IDs) || o1[0][i].Score != o2[0][i].Score {
					t.Fatalf("generation after 0 updates: %v %v, checkpoint %v %v", o2[0][i].IDs, o2[0][i].Score, o1[0][i].IDs, o1[0][i].Score)
				}
			}
			if g.rag != nil {
				if !rag.IsDir(filepath.Join(zero, "rag")) {
					t.Fatal("no RAG directory saved")
				}
				rq, err := neural.LoadEncoder(filepath.Join(zero, "rag"), neural.Options{MaxLength: e.cfg.QueryLen})
				if err != nil {
					t.Fatal(err)
				}
				rq.Close()
			}
			// The first loss = RAG-Sequence's loss from inference code.
			const seed = 8
			r, err := Run(ctx, task, Opt{MaxSteps: 1, BatchSize: 2, Accum: 1, LR: 1e-9}, seed, t.TempDir(), RunOptions{})
			if err != nil {
				t.Fatal(err)
			}
			refQ, err := neural.LoadEncoder(qdir, neural.Options{MaxLength: e.cfg.QueryLen})
			if err != nil {
				t.Fatal(err)
			}
			defer refQ.Close()
			var qs []Question
			var texts []string
			for _, k := range batchAt(seed, len(e.trainQ), 2, 0) {
				qs = append(qs, e.trainQ[k])
				texts = append(texts, e.trainQ[k].Text)
			}
			qv, err := refQ.EncodeQueries(ctx, texts)
			if err != nil {
				t.Fatal(err)
			}
			hits, err := e.ix.DenseSearch(ctx, qv, 2, 0)
			if err != nil {
				t.Fatal(err)
			}
			m, err := bart.Load(gf.dir, e.modelOptions())
			if err != nil && rag.IsDir(gf.dir) {
				m, _, err = rag.LoadGenerator(gf.dir, e.modelOptions())
			}
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			s := torch.NewScope().NoGrad()
			defer s.Close()
			var srcs, answers []string
			doc := make([]float32, 0, 4)
			for i, q := range qs {
				answers = append(answers, q.Answers[0])
				for _, h := range hits[i] {
					srcs = append(srcs, ref.Source(q.Text, h.Title, h.Text))
					doc = append(doc, float32(h.Score))
				}
			}
			gen := neural.NewGenerator(m, ref.Tokenizer(), ref.Config, neural.Options{MaxLength: e.cfg.SourceLen})
			ids, mask, err := gen.Tokenize(ctx, s, srcs)
			if err != nil {
				t.Fatal(err)
			}
			lab, err := e.labels(ctx, s, ref.Tokenizer(), answers, m.Cfg.MaxPositionEmbeddings)
			if err != nil {
				t.Fatal(err)
			}
			labK := s.RepeatInterleave(lab, 2, 0)
			dec := bart.ShiftRight(s, labK, m.Cfg.PadTokenID, m.Cfg.DecoderStartTokenID)
			logits := m.Decode(s, dec, m.Encode(s, ids, mask, false), mask, nil, false)
			ll := s.View(SequenceLogLik(s, logits, labK), 2, 2)
			want, err := RAGSequenceLoss(s, s.FromFloat32(doc, 2, 2), ll).Item()
			if err != nil {
				t.Fatal(err)
			}
			if got := r.Loss[0].Value; !near(got, want, 1e-5) {
				t.Fatalf("first training loss %.7f, inference loss from the checkpoint %.7f", got, want)
			}
		})
	}
}

// realKILT writes a real KILT task with page + paragraph provenance from
// SQuADShifts New Wiki (articles as pages, paragraphs as IBM-style passages
// "page::[i,i]") and its BM25 index; nTrain/nDev questions.
func realKILT(t *testing.T, nTrain, nDev int) (trainPath, devPath, index string) {
	t.Helper()
	sq, err := data.LoadSQuAD("../../shared/data/squadshifts/new_wiki_v1.0.json", nil)
	if err != nil {
		t.Fatal(err)
	}
	d, err := SplitSQuAD(sq, DefaultDevArticles, 1)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	para := map[string]int{}
	var lines [][]byte
	count := map[string]int{}
	pageOf := func(pid string) string { return filepath.ToSlash(article(pid)) }
	for _, p := range sq.Passages {
		pg := pageOf(p.ID)
		para[p.ID] = count[pg]
		b, _ := json.Marshal(map[string]string{"pid": pageID(pg) + "::[" + strconv.Itoa(count[pg]) + "," + strconv.Itoa(count[pg]) + "]", "title": p.Title, "text": p.Text})
		lines = append(lines, b)
		count[pg]++
	}
	corpus := filepath.Join(dir, "passages.jsonl")
	writeLines(t, corpus, lines)
	task := func(path string, qs []Question, n int) {
		qs = sample(qs, n, 3)
		var out [][]byte
		for _, q := range qs {
			b, _ := json.Marshal(map[string]any{"id": q.ID, "input": q.Text, "output": []any{
				map[string]any{"answer": q.Answers[0]},
				map[string]any{"provenance": []any{map[string]any{"wikipedia_id": pageID(pageOf(q.Gold[0])), "title": article(q.Gold[0]),
					"start_paragraph_id": para[q.Gold[0]], "end_paragraph_id": para[q.Gold[0]]}}}}})
			out = append(out, b)
		}
		writeLines(t, path, out)
	}
	trainPath, devPath = filepath.Join(dir, "train.jsonl"), filepath.Join(dir, "dev.jsonl")
	task(trainPath, d.Train, nTrain)
	task(devPath, d.Dev, nDev)
	index = filepath.Join(dir, "index")
	if _, err := indexdir.Build(context.Background(), corpus, indexdir.Options{Out: index, Progress: nopWriter{}}); err != nil {
		t.Fatal(err)
	}
	return trainPath, devPath, index
}

// pageID is a page id without spaces (KILT's are numbers).
func pageID(title string) string {
	b := []byte(title)
	for i, c := range b {
		if c == ' ' || c == ':' {
			b[i] = '_'
		}
	}
	return string(b)
}

func writeLines(t *testing.T, path string, lines [][]byte) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range lines {
		f.Write(append(l, '\n'))
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func meanLoss(ps []Point) float64 {
	s := 0.0
	for _, p := range ps {
		s += p.Value
	}
	return s / float64(len(ps))
}

// TestFineTuneRealKILT fine-tunes each phase from the transformers
// fixtures (DPR from safetensors, BertModel from pytorch_model.bin, the
// 1-label cross-encoder from both, the 2-label one from safetensors, BART
// from pytorch_model.bin, RAG-Token from safetensors) on a real
// KILT task (SQuADShifts, page + paragraph provenance) over a real index:
// every phase's loss falls and its dev metrics are reported.
func TestFineTuneRealKILT(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	needTokenizer(t)
	all := hfDirs(t)
	pick := func(arch, format string) string {
		for _, f := range all[arch] {
			if f.format == format {
				return f.dir
			}
		}
		t.Fatalf("no %s fixture saved as %s", arch, format)
		return ""
	}
	tr, dv, ix := realKILT(t, 200, 40)
	ctx := context.Background()
	ds, err := OpenDataset(ctx, tr, dv, ix)
	if err != nil {
		t.Fatal(err)
	}
	if ds.Stats[0].NoPositive != 0 || len(ds.Train) != 200 {
		t.Fatalf("provenance → passages: %+v", ds.Stats[0])
	}
	cfg := FinetuneConfig()
	cfg.Out, cfg.Threads, cfg.Quiet, cfg.MaxDev = t.TempDir(), 2, true, 40
	cfg.QueryLen, cfg.PassageLen, cfg.PairLen, cfg.SourceLen, cfg.AnswerLen = 32, 96, 96, 96, 12
	set := func(o *Opt, n, batch int, lr float64) {
		o.MaxSteps, o.BatchSize, o.Accum, o.LR, o.Warmup, o.EvalEvery, o.CheckpointEvery = n, batch, 1, lr, 0, 0, 0
	}
	set(&cfg.DPR.Stage1, 40, 8, 1e-3)
	set(&cfg.Generator.Opt, 40, 4, 1e-3)
	set(&cfg.Reranker.Opt, 60, 8, 3e-4)
	set(&cfg.E2E.Opt, 10, 2, 1e-3)
	cfg.Reranker.DenseK, cfg.Reranker.SparseK, cfg.Generator.K = 4, 4, 2
	cfg.E2E.DenseK, cfg.E2E.SparseK, cfg.E2E.K = 3, 3, 2
	falls := func(name string, r PhaseReport, loss []Point) {
		t.Helper()
		first, last := meanLoss(loss[:10]), meanLoss(loss[len(loss)-10:])
		t.Logf("%s: loss first 10 updates %.4f, last 10 %.4f; dev %v", name, first, last, r.Metrics)
		if !(last < first) {
			t.Errorf("%s: loss did not fall: %.4f → %.4f", name, first, last)
		}
		if len(r.Metrics) == 0 {
			t.Errorf("%s: no dev metrics", name)
		}
	}
	history := func(dir string) []Point {
		b, err := os.ReadFile(filepath.Join(dir, "history.json"))
		if err != nil {
			t.Fatal(err)
		}
		var st State
		if err := json.Unmarshal(b, &st); err != nil {
			t.Fatal(err)
		}
		return st.Loss
	}
	for _, run := range []struct{ q, c string }{
		{pick("DPRQuestionEncoder", "safetensors"), pick("BertModel", "safetensors")},
		{pick("BertModel", "bin"), pick("BertModel", "bin")},
	} {
		out, reps, err := TrainDPR(ctx, cfg, ds, DPRInput{QueryEncoder: run.q, CtxEncoder: run.c, Index: ix}, filepath.Join(cfg.Out, "dpr-"+filepath.Base(filepath.Dir(run.q))), RunOptions{})
		if err != nil {
			t.Fatal(err)
		}
		falls("dpr from "+run.q, reps[0], history(reps[0].Dir))
		if run.q == pick("BertModel", "bin") {
			continue
		}
		for _, rr := range all["BertForSequenceClassification"] {
			if rr.format != "safetensors" && !strings.Contains(rr.dir, "-1") {
				continue // 2 labels from safetensors, 1 label from both
			}
			_, rep, err := TrainReranker(ctx, cfg, ds, RerankerInput{QueryEncoder: out.QueryEncoder, Reranker: rr.dir, Index: out.Index}, filepath.Join(cfg.Out, "reranker-"+filepath.Base(filepath.Dir(rr.dir))+"-"+rr.format), RunOptions{})
			if err != nil {
				t.Fatal(err)
			}
			falls("reranker from "+rr.dir, rep, history(rep.Dir))
		}
		for _, g := range []struct{ q, g string }{
			{out.QueryEncoder, pick("BartForConditionalGeneration", "bin")},
			{pick("RagTokenForGeneration", "safetensors"), pick("RagTokenForGeneration", "safetensors")},
		} {
			o, rep, err := TrainGenerator(ctx, cfg, ds, GeneratorInput{QueryEncoder: g.q, Generator: g.g, Index: out.Index}, filepath.Join(cfg.Out, "generator-"+filepath.Base(filepath.Dir(g.g))), RunOptions{})
			if err != nil {
				t.Fatal(err)
			}
			falls("generator from "+g.g, rep, history(rep.Dir))
			if _, err := neural.LoadGenerator(o.Generator, neural.Options{}); err != nil {
				t.Fatal(err)
			}
			if o.RAG != "" {
				if _, err := neural.LoadGenerator(o.RAG, neural.Options{}); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	keys := make([]string, 0, len(all))
	for k := range all {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	t.Logf("fixture architectures: %v", keys)
}
