package train

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"github.com/re2g/re2g/internal/atomicfile"
	"github.com/re2g/re2g/model"
	"github.com/re2g/re2g/model/bart"
	"github.com/re2g/re2g/model/bert"
	"github.com/re2g/re2g/neural"
	"github.com/re2g/re2g/tokenizer"
	"github.com/re2g/re2g/torch"
)

// bertConfig is a from-scratch BERT of the given shape over the tokenizer's
// vocabulary; labels > 0 makes it a cross-encoder with that many logits.
func (e *env) bertConfig(labels int) *bert.Config {
	s := e.cfg.BERT
	c := &bert.Config{ModelType: "bert", VocabSize: int64(e.tok.VocabSize()), HiddenSize: s.Hidden, NumHiddenLayers: s.Layers,
		NumAttentionHeads: s.Heads, IntermediateSize: s.FFN, HiddenAct: "gelu", HiddenDropoutProb: e.cfg.Dropout,
		AttentionProbsDropoutProb: e.cfg.Dropout, MaxPositionEmbeddings: s.MaxPos, TypeVocabSize: 2, LayerNormEps: 1e-12,
		PadTokenID: e.padID()}
	if labels > 0 {
		c.ID2Label = map[string]string{}
		for i := 0; i < labels; i++ {
			c.ID2Label[fmt.Sprint(i)] = fmt.Sprintf("LABEL_%d", i)
		}
	}
	return c
}

func (e *env) padID() int64 {
	if p, ok := e.tok.PadID(); ok {
		return int64(p)
	}
	id, _ := e.tok.TokenToID("[PAD]")
	return int64(id)
}

func (e *env) special(tok string) int64 {
	id, _ := e.tok.TokenToID(tok)
	return int64(id)
}

// bartConfig is a from-scratch BART over the BERT WordPiece vocabulary:
// [CLS] plays <s> (bos, forced first token), [SEP] plays </s> (eos and
// decoder start), [PAD] is padding, so that an answer's BERT encoding
// "[CLS] answer [SEP]" is exactly BART's label layout "<s> answer </s>".
func (e *env) bartConfig() *bart.Config {
	s := e.cfg.BART
	cls, sep := e.special("[CLS]"), e.special("[SEP]")
	return &bart.Config{ModelType: "bart", VocabSize: int64(e.tok.VocabSize()), DModel: s.Hidden, EncoderLayers: s.Layers,
		DecoderLayers: s.Layers, EncoderAttentionHeads: s.Heads, DecoderAttentionHeads: s.Heads, EncoderFFNDim: s.FFN,
		DecoderFFNDim: s.FFN, ActivationFunction: "gelu", Dropout: e.cfg.Dropout, MaxPositionEmbeddings: s.MaxPos, InitStd: 0.02,
		PadTokenID: e.padID(), BOSTokenID: cls, EOSTokenID: sep, DecoderStartTokenID: sep, ForcedBOSTokenID: &cls,
		ForcedEOSTokenID: &sep}
}

func (e *env) genConfig(m *bart.Model) *bart.GenerationConfig {
	g := bart.DefaultGenerationConfig(m.Cfg)
	g.MaxLength = e.cfg.AnswerLen
	return g
}

// saveTokenizer copies the tokenizer into a model directory, with the
// tokenizer_config.json that lets transformers' AutoTokenizer load it.
func (e *env) saveTokenizer(dir string) error {
	b, err := os.ReadFile(e.tokPath)
	if err != nil {
		return fmt.Errorf("copy tokenizer: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, "tokenizer.json"), b, 0o644); err != nil {
		return err
	}
	tc := map[string]any{"tokenizer_class": "BertTokenizerFast", "do_lower_case": true, "model_max_length": e.cfg.BERT.MaxPos,
		"cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token": "[PAD]", "unk_token": "[UNK]", "mask_token": "[MASK]"}
	b, _ = json.MarshalIndent(tc, "", "  ")
	return atomicfile.WriteFile(filepath.Join(dir, "tokenizer_config.json"), append(b, '\n'), 0o644)
}

func (e *env) saveDPR(dir string, d *bert.DPR) error {
	if err := d.Save(dir); err != nil {
		return err
	}
	return e.saveTokenizer(dir)
}

func (e *env) saveCross(dir string, c *bert.CrossEncoder) error {
	if err := c.Save(dir); err != nil {
		return err
	}
	return e.saveTokenizer(dir)
}

func (e *env) saveBART(dir string, m *bart.Model) error {
	if err := m.Save(dir, e.genConfig(m)); err != nil {
		return err
	}
	return e.saveTokenizer(dir)
}

func (e *env) loadDPR(dir string) (*bert.DPR, error) {
	return bert.LoadDPR(dir, modelOptions(e.dev))
}

// encoders wrap a DPR model for questions and for passages.
func (e *env) queryEncoder(d *bert.DPR) *neural.Encoder {
	return neural.NewEncoder(d, e.tok, neural.Options{Device: e.dev, MaxLength: e.cfg.QueryLen, BatchSize: 64})
}

func (e *env) passageEncoder(d *bert.DPR) *neural.Encoder {
	return neural.NewEncoder(d, e.tok, neural.Options{Device: e.dev, MaxLength: e.cfg.PassageLen, BatchSize: 64})
}

func passageInput(title, text string) tokenizer.Input {
	if title == "" {
		return tokenizer.Input{A: text}
	}
	return tokenizer.Input{A: title, B: text, Pair: true}
}

// encodeQuestions embeds question texts in s (with gradients when s records them).
func (e *env) encodeQuestions(ctx context.Context, s *torch.Scope, q *bert.DPR, texts []string, train bool) (*torch.Tensor, error) {
	in := make([]tokenizer.Input, len(texts))
	for i, t := range texts {
		in[i] = tokenizer.Input{A: t}
	}
	b, err := e.queryEncoder(q).Tokenize(ctx, s, in)
	if err != nil {
		return nil, err
	}
	return q.Encode(s, b, train), s.Err()
}

// encodePassageRows embeds passages (by index) in s.
func (e *env) encodePassageRows(ctx context.Context, s *torch.Scope, c *bert.DPR, rows []int, train bool) (*torch.Tensor, error) {
	in := make([]tokenizer.Input, len(rows))
	for i, j := range rows {
		p := e.d.Passages[j]
		in[i] = passageInput(p.Title, p.Text)
	}
	b, err := e.passageEncoder(c).Tokenize(ctx, s, in)
	if err != nil {
		return nil, err
	}
	return c.Encode(s, b, train), s.Err()
}

// denseIndex is a fixed matrix of passage embeddings [N, D] on the device.
type denseIndex struct {
	s    *torch.Scope
	m    *torch.Tensor
	rows []int     // row → passage index
	flat []float32 // the same vectors on the host, row-major
	dim  int
}

func (d *denseIndex) close() { d.s.Close() }

// buildIndex embeds the passages rows (nil: all) with the context encoder.
func (e *env) buildIndex(ctx context.Context, c *bert.DPR, rows []int) (*denseIndex, error) {
	if rows == nil {
		rows = make([]int, len(e.d.Passages))
		for i := range rows {
			rows[i] = i
		}
	}
	ps := make([]neural.Passage, len(rows))
	for i, j := range rows {
		ps[i] = neural.Passage{Title: e.d.Passages[j].Title, Text: e.d.Passages[j].Text}
	}
	vecs, err := e.passageEncoder(c).EncodePassages(ctx, ps)
	if err != nil {
		return nil, fmt.Errorf("encode passages: %w", err)
	}
	dim := int(c.Dim())
	flat := make([]float32, 0, len(vecs)*dim)
	for _, v := range vecs {
		flat = append(flat, v...)
	}
	s := torch.NewScope().NoGrad()
	m := s.To(s.FromFloat32(flat, int64(len(vecs)), int64(dim)), e.dev)
	if err := s.Err(); err != nil {
		s.Close()
		return nil, err
	}
	return &denseIndex{s: s, m: m, rows: rows, flat: flat, dim: dim}, nil
}

// scores are q [B, D] · index [N, D]ᵀ → [B, N].
func (d *denseIndex) scores(s *torch.Scope, q *torch.Tensor) *torch.Tensor {
	return s.Matmul(q, s.Transpose(d.m, 0, 1))
}

// search returns each question's top k passage indices and scores (exact inner product).
func (e *env) denseSearch(ctx context.Context, q *bert.DPR, ix *denseIndex, qs []Question, k int) ([][]int, [][]float64, error) {
	k = min(k, len(ix.rows))
	out := make([][]int, 0, len(qs))
	sc := make([][]float64, 0, len(qs))
	for lo := 0; lo < len(qs); lo += 128 {
		hi := min(len(qs), lo+128)
		texts := make([]string, hi-lo)
		for i := range texts {
			texts[i] = qs[lo+i].Text
		}
		s := torch.NewScope().NoGrad()
		qv, err := e.encodeQuestions(ctx, s, q, texts, false)
		if err != nil {
			s.Close()
			return nil, nil, err
		}
		vals, idx := s.TopK(ix.scores(s, qv), int64(k), 1)
		iv, err1 := idx.Int64s()
		fv, err2 := vals.Float64s()
		s.Close()
		if err := firstErr(err1, err2); err != nil {
			return nil, nil, err
		}
		for i := 0; i < hi-lo; i++ {
			row := make([]int, k)
			srow := make([]float64, k)
			for j := 0; j < k; j++ {
				row[j] = ix.rows[iv[i*k+j]]
				srow[j] = fv[i*k+j]
			}
			out = append(out, row)
			sc = append(sc, srow)
		}
	}
	return out, sc, nil
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func modelOptions(dev torch.Device) model.Options { return model.Options{Device: dev} }

// zeroCLS zeroes the [CLS] word embedding, the position embeddings and
// (types) the token-type embeddings of a from-scratch BERT, so that the [CLS] vector starts as an
// attention-weighted mean of the other tokens rather than a constant shared
// by every input: from-scratch DPR and cross-encoders otherwise start with
// pooled vectors that hardly depend on the text, and in-batch training
// collapses to the uniform distribution.
func (e *env) zeroCLS(m *bert.Model, types bool) error {
	s := torch.NewScope().NoGrad()
	defer s.Close()
	h := m.Cfg.HiddenSize
	zero := s.Zeros(torch.Float32, e.dev, h)
	if err := m.Embeddings.Position.Weight.CopyFrom(zero); err != nil {
		return err
	}
	rows := []*torch.Tensor{s.Select(m.Embeddings.Word.Weight, 0, e.special("[CLS]"))}
	if types {
		rows = append(rows, s.Select(m.Embeddings.TokenType.Weight, 0, 0), s.Select(m.Embeddings.TokenType.Weight, 0, 1))
	}
	for _, row := range rows {
		if err := row.CopyFrom(zero); err != nil {
			return err
		}
	}
	return s.Err()
}

// scaleOutput sets the gain of a from-scratch DPR encoder's last LayerNorm
// so that initial inner products are O(1) (hidden·gain² = 4) rather than
// O(hidden): with logits of ±100 the in-batch loss starts in the tens and
// the fastest way down is to collapse every vector onto one direction.
func scaleOutput(m *bert.Model) error {
	s := torch.NewScope().NoGrad()
	defer s.Close()
	g := m.Layers[len(m.Layers)-1].OutNorm.Weight
	return g.CopyFrom(s.Full(math.Sqrt(4/float64(m.Cfg.HiddenSize)), torch.Float32, g.Device(), g.Shape()...))
}
