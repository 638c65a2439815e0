package neural

import (
	"context"
	"fmt"

	"github.com/re2g/re2g/model"
	"github.com/re2g/re2g/model/bert"
	"github.com/re2g/re2g/model/rag"
	"github.com/re2g/re2g/tokenizer"
	"github.com/re2g/re2g/torch"
)

// Encoder embeds questions or passages with a DPR encoder (or a plain
// BertModel, whose [CLS] vector is used).
type Encoder struct {
	dpr *bert.DPR
	enc *bert.Encoder
	tok *tokenizer.Tokenizer
	opt Options
	pad int64
	// Question reports whether the checkpoint is a DPR question encoder.
	Question bool
}

// LoadEncoder loads an encoder directory: DPRQuestionEncoder,
// DPRContextEncoder or BertModel; or a RAG directory, whose question encoder
// it loads (tokenizer from its question_encoder_tokenizer/). Any other model
// (a reranker, a generator) is refused, saying what it is.
func LoadEncoder(dir string, opt Options) (*Encoder, error) {
	k, err := checkModel(dir, "an encoder", opt, bert.DPRRole, bert.EncoderRole, rag.Role)
	if err != nil {
		return nil, err
	}
	if k.ModelType == "rag" {
		return loadRAGEncoder(dir, opt)
	}
	tok, err := loadTokenizer(dir, opt)
	if err != nil {
		return nil, err
	}
	e := &Encoder{tok: tok, opt: opt}
	mo := model.Options{Device: opt.Device, DType: opt.DType}
	switch {
	case !bert.EncoderRole.Fits(k): // DPR by its config
		if e.dpr, err = bert.LoadDPR(dir, mo); err != nil {
			return nil, err
		}
	case !bert.DPRRole.Fits(k): // BertModel by its config
		if e.enc, err = bert.LoadEncoder(dir, mo); err != nil {
			return nil, err
		}
	default: // a config that says neither: DPR if its tensors are DPR's
		d, derr := bert.LoadDPR(dir, mo)
		if derr == nil {
			e.dpr = d
			break
		}
		if e.enc, err = bert.LoadEncoder(dir, mo); err != nil {
			return nil, fmt.Errorf("%w (as DPR: %v)", err, derr)
		}
	}
	if e.dpr != nil {
		e.Question = e.dpr.Question
	}
	cfg := e.cfg()
	if e.opt.MaxLength <= 0 || int64(e.opt.MaxLength) > cfg.MaxPositionEmbeddings {
		e.opt.MaxLength = int(min(cfg.MaxPositionEmbeddings, 512))
	}
	if p, ok := tok.PadID(); ok {
		e.pad = int64(p)
	} else {
		e.pad = cfg.PadTokenID
	}
	return e, nil
}

func loadRAGEncoder(dir string, opt Options) (*Encoder, error) {
	qdir, _ := rag.TokenizerDirs(dir)
	tok, err := loadTokenizerIn(dir, qdir, opt)
	if err != nil {
		return nil, err
	}
	d, _, err := rag.LoadQuestionEncoder(dir, model.Options{Device: opt.Device, DType: opt.DType})
	if err != nil {
		return nil, err
	}
	if opt.MaxLength > 0 && int64(opt.MaxLength) > d.Cfg.MaxPositionEmbeddings {
		opt.MaxLength = 0
	}
	return NewEncoder(d, tok, opt), nil
}

// NewEncoder wraps an encoder already in memory (e.g. during training).
func NewEncoder(d *bert.DPR, tok *tokenizer.Tokenizer, opt Options) *Encoder {
	if opt.MaxLength <= 0 {
		opt.MaxLength = int(min(d.Cfg.MaxPositionEmbeddings, 512))
	}
	pad := d.Cfg.PadTokenID
	if p, ok := tok.PadID(); ok {
		pad = int64(p)
	}
	return &Encoder{dpr: d, tok: tok, opt: opt, pad: pad, Question: d.Question}
}

func (e *Encoder) cfg() *bert.Config {
	if e.dpr != nil {
		return e.dpr.Cfg
	}
	return e.enc.Cfg
}

// Dim is the embedding size.
func (e *Encoder) Dim() int {
	if e.dpr != nil {
		return int(e.dpr.Dim())
	}
	return int(e.enc.Cfg.HiddenSize)
}

// Tokenizer is the encoder's tokenizer.
func (e *Encoder) Tokenizer() *tokenizer.Tokenizer { return e.tok }

// MaxLength is the number of tokens texts are cut to.
func (e *Encoder) MaxLength() int { return e.opt.MaxLength }

// Options is how the encoder runs, with the batch size, sort window and
// token limit in effect (defaults filled in).
func (e *Encoder) Options() Options {
	o := e.opt
	o.BatchSize, o.SortWindow = o.batch(), o.sortWindow()
	return o
}

// Close frees the weights.
func (e *Encoder) Close() {
	if e.dpr != nil {
		e.dpr.Close()
	}
	if e.enc != nil {
		e.enc.Close()
	}
}

// Forward embeds a tokenized batch in s (for training and for callers that
// keep tensors on the device).
func (e *Encoder) Forward(s *torch.Scope, in bert.Inputs, train bool) *torch.Tensor {
	if e.dpr != nil {
		return e.dpr.Encode(s, in, train)
	}
	return s.Select(e.enc.Forward(s, in, train), 1, 0)
}

// Tokenize encodes texts (pairs when Pair is set) into device tensors in s.
func (e *Encoder) Tokenize(ctx context.Context, s *torch.Scope, inputs []tokenizer.Input) (bert.Inputs, error) {
	encs, err := e.tok.EncodeBatch(ctx, inputs, tokenizer.Options{MaxLength: e.opt.MaxLength, Truncation: tokenizer.LongestFirst})
	if err != nil {
		return bert.Inputs{}, err
	}
	ids, types, mask := batchTensors(s, encs, e.pad, e.opt.Device)
	return bert.Inputs{IDs: ids, TypeIDs: types, Mask: mask}, s.Err()
}

// Passage is a passage to embed: encoded as the pair (title, text), as
// Hugging Face's DPR context tokenizer does, or text alone without a title.
type Passage struct {
	Title, Text string
}

// EncodeQueries embeds questions.
func (e *Encoder) EncodeQueries(ctx context.Context, texts []string) ([][]float32, error) {
	in := make([]tokenizer.Input, len(texts))
	for i, t := range texts {
		in[i] = tokenizer.Input{A: t}
	}
	return e.encode(ctx, in)
}

// EncodePassages embeds passages.
func (e *Encoder) EncodePassages(ctx context.Context, ps []Passage) ([][]float32, error) {
	return e.encode(ctx, passageInputs(ps))
}

// passageInputs is DPR's passage input: title and text as a pair, or the
// text alone.
func passageInputs(ps []Passage) []tokenizer.Input {
	in := make([]tokenizer.Input, len(ps))
	for i, p := range ps {
		if p.Title == "" {
			in[i] = tokenizer.Input{A: p.Text}
		} else {
			in[i] = tokenizer.Input{A: p.Title, B: p.Text, Pair: true}
		}
	}
	return in
}

// encode embeds inputs in length-sorted batches (runByLength), results in
// input order.
func (e *Encoder) encode(ctx context.Context, in []tokenizer.Input) ([][]float32, error) {
	dim := e.Dim()
	tokenize := func(ctx context.Context, lo, hi int) ([]tokenizer.Encoding, error) {
		return e.tok.EncodeBatch(ctx, in[lo:hi], tokenizer.Options{MaxLength: e.opt.MaxLength, Truncation: tokenizer.LongestFirst})
	}
	return runByLength(ctx, len(in), e.opt, tokenize, func(encs []tokenizer.Encoding) ([][]float32, error) {
		vs, err := e.forwardEncodings(encs)
		if err != nil {
			return nil, err
		}
		out := make([][]float32, len(encs))
		for i := range out {
			out[i] = vs[i*dim : (i+1)*dim : (i+1)*dim]
		}
		return out, nil
	})
}

func (e *Encoder) forwardEncodings(encs []tokenizer.Encoding) ([]float32, error) {
	s := torch.NewScope().NoGrad()
	defer s.Close()
	ids, types, mask := batchTensors(s, encs, e.pad, e.opt.Device)
	v := e.Forward(s, bert.Inputs{IDs: ids, TypeIDs: types, Mask: mask}, false)
	if err := s.Err(); err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	return v.Float32s()
}
