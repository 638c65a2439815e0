package neural

import (
	"context"
	"fmt"

	"github.com/re2g/re2g/model"
	"github.com/re2g/re2g/model/bert"
	"github.com/re2g/re2g/tokenizer"
	"github.com/re2g/re2g/torch"
)

// Reranker scores (query, passage) pairs with a BERT cross-encoder: input
// [CLS] query [SEP] passage [SEP], the passage alone truncated.
type Reranker struct {
	m   *bert.CrossEncoder
	tok *tokenizer.Tokenizer
	opt Options
	pad int64
}

// LoadReranker loads a BertForSequenceClassification directory (1 or 2
// labels). Any other model (an encoder, a generator) is refused, saying
// what it is.
func LoadReranker(dir string, opt Options) (*Reranker, error) {
	if _, err := checkModel(dir, bert.CrossEncoderRole.Name, opt, bert.CrossEncoderRole); err != nil {
		return nil, err
	}
	tok, err := loadTokenizer(dir, opt)
	if err != nil {
		return nil, err
	}
	m, err := bert.LoadCrossEncoder(dir, model.Options{Device: opt.Device, DType: opt.DType})
	if err != nil {
		return nil, err
	}
	return NewReranker(m, tok, opt), nil
}

// NewReranker wraps a cross-encoder already in memory.
func NewReranker(m *bert.CrossEncoder, tok *tokenizer.Tokenizer, opt Options) *Reranker {
	if opt.MaxLength <= 0 {
		opt.MaxLength = 128
	}
	opt.MaxLength = int(min(int64(opt.MaxLength), m.Cfg.MaxPositionEmbeddings))
	pad := m.Cfg.PadTokenID
	if p, ok := tok.PadID(); ok {
		pad = int64(p)
	}
	return &Reranker{m: m, tok: tok, opt: opt, pad: pad}
}

// Close frees the weights.
func (r *Reranker) Close() { r.m.Close() }

// Model is the cross-encoder.
func (r *Reranker) Model() *bert.CrossEncoder { return r.m }

// Pair is one (query, passage) input.
type Pair struct{ Query, Passage string }

// Tokenize encodes pairs into device tensors in s; when the query alone
// leaves no room for the passage, the query is truncated too.
func (r *Reranker) Tokenize(ctx context.Context, s *torch.Scope, pairs []Pair) (bert.Inputs, error) {
	in := make([]tokenizer.Input, len(pairs))
	for i, p := range pairs {
		in[i] = tokenizer.Input{A: p.Query, B: p.Passage, Pair: true}
	}
	encs, err := r.tok.EncodeBatch(ctx, in, tokenizer.Options{MaxLength: r.opt.MaxLength, Truncation: tokenizer.OnlySecond})
	if err != nil {
		// only_second fails when the query alone is too long: cut both then.
		encs, err = r.tok.EncodeBatch(ctx, in, tokenizer.Options{MaxLength: r.opt.MaxLength, Truncation: tokenizer.LongestFirst})
		if err != nil {
			return bert.Inputs{}, err
		}
	}
	ids, types, mask := batchTensors(s, encs, r.pad, r.opt.Device)
	return bert.Inputs{IDs: ids, TypeIDs: types, Mask: mask}, s.Err()
}

// Score returns each pair's relevance logit.
func (r *Reranker) Score(ctx context.Context, pairs []Pair) ([]float64, error) {
	out := make([]float64, 0, len(pairs))
	err := inBatches(ctx, len(pairs), r.opt.batch(), func(lo, hi int) error {
		s := torch.NewScope().NoGrad()
		defer s.Close()
		in, err := r.Tokenize(ctx, s, pairs[lo:hi])
		if err != nil {
			return err
		}
		sc := r.m.Scores(s, in, false)
		if err := s.Err(); err != nil {
			return fmt.Errorf("rerank: %w", err)
		}
		v, err := sc.Float64s()
		if err != nil {
			return err
		}
		out = append(out, v...)
		return nil
	})
	return out, err
}
