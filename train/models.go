package train

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"

	"github.com/re2g/re2g/internal/atomicfile"
	"github.com/re2g/re2g/model"
	"github.com/re2g/re2g/model/bart"
	"github.com/re2g/re2g/model/bert"
	"github.com/re2g/re2g/model/rag"
	"github.com/re2g/re2g/neural"
	"github.com/re2g/re2g/tokenizer"
	"github.com/re2g/re2g/torch"
)

// tokenizerFiles are the files of a Hugging Face tokenizer directory.
var tokenizerFiles = []string{"tokenizer.json", "vocab.txt", "vocab.json", "merges.txt", "encoder.json", "vocab.bpe",
	"tokenizer_config.json", "special_tokens_map.json", "added_tokens.json"}

// tokSource says where a model's tokenizer files come from when it is
// saved: a directory whose files are copied, or (dir "") the scratch
// tokenizer.
type tokSource struct{ dir string }

// biEncoder is a DPR encoder (question or context) with its tokenizer.
type biEncoder struct {
	m     *bert.DPR
	tok   *tokenizer.Tokenizer
	src   tokSource
	close func()
}

func (b *biEncoder) Close() {
	if b.close != nil {
		b.close()
	}
}

// crossEncoder is the reranker with its tokenizer.
type crossEncoder struct {
	m   *bert.CrossEncoder
	tok *tokenizer.Tokenizer
	src tokSource
}

func (c *crossEncoder) Close() { c.m.Close() }

// generatorModel is BART with its tokenizer, generation settings and the
// layout of its sources; rag is the RagConfig when it came from a RAG
// directory (it is then also saved as one).
type generatorModel struct {
	m      *bart.Model
	tok    *tokenizer.Tokenizer
	src    tokSource
	gen    *bart.GenerationConfig
	format neural.SourceFormat
	rag    *rag.Config
	// queryTok, for a RAG generator, is its question tokenizer: RAG's
	// sources hold the question as that tokenizer decodes it.
	queryTok *tokenizer.Tokenizer
}

// source is the generator's input for a question and a passage, exactly
// as neural.Generator.Source lays it out for the same directory.
func (g *generatorModel) source(query, title, text string) string {
	if g.queryTok != nil {
		query = neural.DecodedQuery(g.queryTok, query)
	}
	return g.format.Source(query, title, text)
}

func (g *generatorModel) Close() { g.m.Close() }

func (e *env) modelOptions() model.Options { return model.Options{Device: e.dev} }

// needDir is the error for a phase input that was not given.
func (e *env) needDir(what, flag string) error {
	return fmt.Errorf("train: no %s: give --%s DIR, or --init scratch to train one from scratch", what, flag)
}

// loadBiEncoder loads a question (question true) or context encoder from a
// DPR directory (either side), a BertModel directory (its [CLS] vector),
// or, for the question side, a RAG directory's question encoder. With dir
// "" and Init scratch it makes one (ctx of a Siamese pair: shared != nil).
func (e *env) loadBiEncoder(dir string, question bool, shared *biEncoder) (*biEncoder, error) {
	if dir == "" {
		if e.cfg.Init != InitScratch {
			if question {
				return nil, e.needDir("question encoder", "query-encoder")
			}
			return nil, e.needDir("context encoder", "ctx-encoder")
		}
		if shared != nil {
			d := &bert.DPR{Cfg: shared.m.Cfg, Bert: shared.m.Bert, Proj: shared.m.Proj, Question: false}
			return &biEncoder{m: d, tok: shared.tok}, nil
		}
		tok, err := e.scratchTokenizer()
		if err != nil {
			return nil, err
		}
		d, err := bert.NewDPR(e.bertConfig(tok, 0), question, e.dev)
		if err != nil {
			return nil, err
		}
		if err := e.initScratch(d.Bert, tok, true); err != nil {
			d.Close()
			return nil, err
		}
		return &biEncoder{m: d, tok: tok, close: d.Close}, nil
	}
	opt := e.modelOptions()
	tokDir := dir
	var d *bert.DPR
	var closer func()
	switch {
	case rag.IsDir(dir):
		if !question {
			return nil, fmt.Errorf("train: %s is a RAG directory, which has no context encoder", dir)
		}
		var err error
		if d, _, err = rag.LoadQuestionEncoder(dir, opt); err != nil {
			return nil, err
		}
		tokDir, _ = rag.TokenizerDirs(dir)
		closer = d.Close
	default:
		var derr error
		if d, derr = bert.LoadDPR(dir, opt); derr == nil {
			closer = d.Close
			break
		}
		enc, err := bert.LoadEncoder(dir, opt)
		if err != nil {
			return nil, fmt.Errorf("train: %s is neither a DPR encoder (%v) nor a BertModel: %w", dir, derr, err)
		}
		// A BertModel's [CLS] vector is DPR's embedding; DPR has no pooler.
		enc.Model.Pooler = nil
		d = &bert.DPR{Cfg: enc.Cfg, Bert: enc.Model}
		closer = enc.Close
	}
	d.Question = question
	tok, err := tokenizer.Load(tokDir)
	if err != nil {
		closer()
		return nil, fmt.Errorf("train: tokenizer of %s: %w", dir, err)
	}
	return &biEncoder{m: d, tok: tok, src: tokSource{tokDir}, close: closer}, nil
}

// loadReranker loads a BertForSequenceClassification directory (1 or 2
// labels: the last logit is the score), or makes one from scratch.
func (e *env) loadReranker(dir string) (*crossEncoder, error) {
	if dir == "" {
		if e.cfg.Init != InitScratch {
			return nil, e.needDir("reranker", "reranker")
		}
		tok, err := e.scratchTokenizer()
		if err != nil {
			return nil, err
		}
		c, err := bert.NewCrossEncoder(e.bertConfig(tok, 1), e.dev)
		if err != nil {
			return nil, err
		}
		if err := e.initScratch(c.Bert, tok, false); err != nil {
			c.Close()
			return nil, err
		}
		return &crossEncoder{m: c, tok: tok}, nil
	}
	c, err := bert.LoadCrossEncoder(dir, e.modelOptions())
	if err != nil {
		return nil, err
	}
	tok, err := tokenizer.Load(dir)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("train: tokenizer of %s: %w", dir, err)
	}
	return &crossEncoder{m: c, tok: tok, src: tokSource{dir}}, nil
}

// loadGenerator loads a BartForConditionalGeneration directory or a RAG
// directory's generator (which then keeps RAG's source layout), or makes
// a BART from scratch over the scratch WordPiece vocabulary.
func (e *env) loadGenerator(dir string) (*generatorModel, error) {
	if dir == "" {
		if e.cfg.Init != InitScratch {
			return nil, e.needDir("generator", "generator")
		}
		tok, err := e.scratchTokenizer()
		if err != nil {
			return nil, err
		}
		m, err := bart.New(e.bartConfig(tok), e.dev)
		if err != nil {
			return nil, err
		}
		gen := bart.DefaultGenerationConfig(m.Cfg)
		gen.MaxLength = e.cfg.AnswerLen
		return &generatorModel{m: m, tok: tok, gen: gen, format: neural.DefaultSourceFormat()}, nil
	}
	opt := e.modelOptions()
	if rag.IsDir(dir) {
		m, rc, err := rag.LoadGenerator(dir, opt)
		if err != nil {
			return nil, err
		}
		_, tokDir := rag.TokenizerDirs(dir)
		tok, err := tokenizer.Load(tokDir)
		if err != nil {
			m.Close()
			return nil, fmt.Errorf("train: generator tokenizer of %s: %w", dir, err)
		}
		gen, err := rag.ReadGenerationConfig(dir, rc)
		if err != nil {
			m.Close()
			return nil, err
		}
		qtDir, _ := rag.TokenizerDirs(dir)
		qt, err := tokenizer.Load(qtDir)
		if err != nil {
			m.Close()
			return nil, fmt.Errorf("train: question tokenizer of %s: %w", dir, err)
		}
		return &generatorModel{m: m, tok: tok, src: tokSource{tokDir}, gen: gen, format: neural.RAGFormat(rc), rag: rc, queryTok: qt}, nil
	}
	m, err := bart.Load(dir, opt)
	if err != nil {
		return nil, err
	}
	tok, err := tokenizer.Load(dir)
	if err == nil {
		var gen *bart.GenerationConfig
		if gen, err = bart.ReadGenerationConfig(dir, m.Cfg); err == nil {
			var f neural.SourceFormat
			if f, err = neural.ReadSourceFormat(dir, neural.DefaultSourceFormat()); err == nil {
				return &generatorModel{m: m, tok: tok, src: tokSource{dir}, gen: gen, format: f}, nil
			}
		}
	}
	m.Close()
	return nil, fmt.Errorf("train: generator %s: %w", dir, err)
}

// saveTokenizer writes a model's tokenizer files into dir.
func (e *env) saveTokenizer(dir string, src tokSource) error {
	if src.dir == "" {
		return e.saveScratchTokenizer(dir)
	}
	n := 0
	for _, f := range tokenizerFiles {
		b, err := os.ReadFile(filepath.Join(src.dir, f))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("copy tokenizer: %w", err)
		}
		if err := atomicfile.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			return err
		}
		n++
	}
	if n == 0 {
		return fmt.Errorf("copy tokenizer: no tokenizer files in %s", src.dir)
	}
	return nil
}

func (e *env) saveDPR(dir string, b *biEncoder) error {
	if err := b.m.Save(dir); err != nil {
		return err
	}
	return e.saveTokenizer(dir, b.src)
}

func (e *env) saveCross(dir string, c *crossEncoder) error {
	if err := c.m.Save(dir); err != nil {
		return err
	}
	return e.saveTokenizer(dir, c.src)
}

// saveGenerator writes the generator as a BART directory with its source
// layout recorded; with a question encoder and a generator that came from
// a RAG directory, also the RAG directory ragDir (both models in one, as
// transformers' RagTokenForGeneration saves them).
func (e *env) saveGenerator(dir string, g *generatorModel, q *biEncoder, ragDir string) error {
	if err := g.m.Save(dir, g.gen); err != nil {
		return err
	}
	if err := e.saveTokenizer(dir, g.src); err != nil {
		return err
	}
	if err := neural.WriteSourceFormat(dir, g.format); err != nil {
		return err
	}
	if g.rag == nil || q == nil || ragDir == "" {
		return nil
	}
	if err := rag.Save(ragDir, g.rag, q.m, g.m, g.gen); err != nil {
		return err
	}
	qt, gt := rag.TokenizerDirs(ragDir)
	if err := os.MkdirAll(qt, 0o755); err != nil {
		return err
	}
	if err := os.MkdirAll(gt, 0o755); err != nil {
		return err
	}
	if err := e.saveTokenizer(qt, q.src); err != nil {
		return err
	}
	return e.saveTokenizer(gt, g.src)
}

// The scratch tokenizer: cfg.Tokenizer, a BERT WordPiece vocabulary.
func (e *env) scratchTokenizer() (*tokenizer.Tokenizer, error) {
	if e.scratchTok != nil {
		return e.scratchTok, nil
	}
	if e.cfg.Tokenizer == "" {
		return nil, errors.New("train: --init scratch needs a WordPiece tokenizer (--tokenizer)")
	}
	tok, err := tokenizer.Load(e.cfg.Tokenizer)
	if err != nil {
		return nil, fmt.Errorf("train: tokenizer: %w", err)
	}
	for _, sp := range []string{"[CLS]", "[SEP]", "[PAD]"} {
		if _, ok := tok.TokenToID(sp); !ok {
			return nil, fmt.Errorf("train: tokenizer %s has no %s: a BERT WordPiece tokenizer is needed for models made from scratch", e.cfg.Tokenizer, sp)
		}
	}
	e.scratchTok = tok
	return tok, nil
}

// saveScratchTokenizer copies the scratch tokenizer into a model directory,
// with the tokenizer_config.json that lets transformers' AutoTokenizer load it.
func (e *env) saveScratchTokenizer(dir string) error {
	p := e.cfg.Tokenizer
	if st, err := os.Stat(p); err == nil && st.IsDir() {
		for _, f := range []string{"tokenizer.json", "vocab.txt"} {
			if _, err := os.Stat(filepath.Join(p, f)); err == nil {
				p = filepath.Join(p, f)
				break
			}
		}
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return fmt.Errorf("copy tokenizer: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, filepath.Base(p)), b, 0o644); err != nil {
		return err
	}
	tc := map[string]any{"tokenizer_class": "BertTokenizerFast", "do_lower_case": true, "model_max_length": e.cfg.BERT.MaxPos,
		"cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token": "[PAD]", "unk_token": "[UNK]", "mask_token": "[MASK]"}
	b, _ = json.MarshalIndent(tc, "", "  ")
	return atomicfile.WriteFile(filepath.Join(dir, "tokenizer_config.json"), append(b, '\n'), 0o644)
}

func tokenID(tok *tokenizer.Tokenizer, s string) int64 {
	id, _ := tok.TokenToID(s)
	return int64(id)
}

func padID(tok *tokenizer.Tokenizer) int64 {
	if p, ok := tok.PadID(); ok {
		return int64(p)
	}
	return tokenID(tok, "[PAD]")
}

// bertConfig is a from-scratch BERT of the configured shape over tok's
// vocabulary; labels > 0 makes it a cross-encoder with that many logits.
func (e *env) bertConfig(tok *tokenizer.Tokenizer, labels int) *bert.Config {
	s := e.cfg.BERT
	c := &bert.Config{ModelType: "bert", VocabSize: int64(tok.VocabSize()), HiddenSize: s.Hidden, NumHiddenLayers: s.Layers,
		NumAttentionHeads: s.Heads, IntermediateSize: s.FFN, HiddenAct: "gelu", HiddenDropoutProb: e.cfg.Dropout,
		AttentionProbsDropoutProb: e.cfg.Dropout, MaxPositionEmbeddings: s.MaxPos, TypeVocabSize: 2, LayerNormEps: 1e-12,
		PadTokenID: padID(tok)}
	if labels > 0 {
		c.ID2Label = map[string]string{}
		for i := 0; i < labels; i++ {
			c.ID2Label[fmt.Sprint(i)] = fmt.Sprintf("LABEL_%d", i)
		}
	}
	return c
}

// bartConfig is a from-scratch BART over the WordPiece vocabulary: [CLS]
// plays <s> (bos, forced first token), [SEP] plays </s> (eos and decoder
// start), [PAD] is padding, so that an answer's BERT encoding
// "[CLS] answer [SEP]" is exactly BART's label layout "<s> answer </s>".
func (e *env) bartConfig(tok *tokenizer.Tokenizer) *bart.Config {
	s := e.cfg.BART
	cls, sep := tokenID(tok, "[CLS]"), tokenID(tok, "[SEP]")
	return &bart.Config{ModelType: "bart", VocabSize: int64(tok.VocabSize()), DModel: s.Hidden, EncoderLayers: s.Layers,
		DecoderLayers: s.Layers, EncoderAttentionHeads: s.Heads, DecoderAttentionHeads: s.Heads, EncoderFFNDim: s.FFN,
		DecoderFFNDim: s.FFN, ActivationFunction: "gelu", Dropout: e.cfg.Dropout, MaxPositionEmbeddings: s.MaxPos, InitStd: 0.02,
		PadTokenID: padID(tok), BOSTokenID: cls, EOSTokenID: sep, DecoderStartTokenID: sep, ForcedBOSTokenID: &cls,
		ForcedEOSTokenID: &sep}
}

// initScratch zeroes a from-scratch BERT's [CLS] word embedding, position
// embeddings and (dpr) token-type embeddings, so that the [CLS] vector
// starts as an attention-weighted mean of the other tokens rather than a
// constant shared by every input (from-scratch DPR and cross-encoders
// otherwise collapse to the uniform in-batch loss); for DPR it also sets
// the last LayerNorm's gain so that initial inner products are O(1).
func (e *env) initScratch(m *bert.Model, tok *tokenizer.Tokenizer, dpr bool) error {
	s := torch.NewScope().NoGrad()
	defer s.Close()
	h := m.Cfg.HiddenSize
	zero := s.Zeros(torch.Float32, e.dev, h)
	if err := m.Embeddings.Position.Weight.CopyFrom(s.Zeros(torch.Float32, e.dev, m.Embeddings.Position.Weight.Shape()...)); err != nil {
		return err
	}
	rows := []*torch.Tensor{s.Select(m.Embeddings.Word.Weight, 0, tokenID(tok, "[CLS]"))}
	if dpr {
		rows = append(rows, s.Select(m.Embeddings.TokenType.Weight, 0, 0), s.Select(m.Embeddings.TokenType.Weight, 0, 1))
	}
	for _, row := range rows {
		if err := row.CopyFrom(zero); err != nil {
			return err
		}
	}
	if dpr {
		g := m.Layers[len(m.Layers)-1].OutNorm.Weight
		if err := g.CopyFrom(s.Full(math.Sqrt(4/float64(h)), torch.Float32, g.Device(), g.Shape()...)); err != nil {
			return err
		}
	}
	return s.Err()
}

// fingerprint identifies a model directory's weights (for cache keys): a
// hash of its weight files' contents.
func fingerprint(dir string, h io.Writer) error {
	n := 0
	for _, f := range []string{"model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json"} {
		fh, err := os.Open(filepath.Join(dir, f))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		_, err = io.Copy(h, fh)
		fh.Close()
		if err != nil {
			return err
		}
		n++
	}
	if n == 0 {
		return fmt.Errorf("no weights in %s", dir)
	}
	return nil
}
