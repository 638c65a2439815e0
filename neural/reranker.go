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
	encs, err := r.encodePairs(ctx, pairs)
	if err != nil {
		return bert.Inputs{}, err
	}
	ids, types, mask := batchTensors(s, encs, r.pad, r.opt.Device)
	return bert.Inputs{IDs: ids, TypeIDs: types, Mask: mask}, s.Err()
}

// encodePairs tokenizes pairs with only_second truncation; a pair whose
// query alone is too long for it (an error for the whole batch) is cut
// longest_first instead, pair by pair.
func (r *Reranker) encodePairs(ctx context.Context, pairs []Pair) ([]tokenizer.Encoding, error) {
	in := make([]tokenizer.Input, len(pairs))
	for i, p := range pairs {
		in[i] = tokenizer.Input{A: p.Query, B: p.Passage, Pair: true}
	}
	only := tokenizer.Options{MaxLength: r.opt.MaxLength, Truncation: tokenizer.OnlySecond}
	encs, err := r.tok.EncodeBatch(ctx, in, only)
	if err == nil {
		return encs, nil
	}
	encs = make([]tokenizer.Encoding, len(in))
	for i := range in {
		e, err := r.tok.EncodeBatch(ctx, in[i:i+1], only)
		if err != nil {
			e, err = r.tok.EncodeBatch(ctx, in[i:i+1], tokenizer.Options{MaxLength: r.opt.MaxLength, Truncation: tokenizer.LongestFirst})
			if err != nil {
				return nil, err
			}
		}
		encs[i] = e[0]
	}
	return encs, nil
}

// Score returns each pair's relevance logit, computed in length-sorted
// batches (runByLength), in input order.
func (r *Reranker) Score(ctx context.Context, pairs []Pair) ([]float64, error) {
	tokenize := func(ctx context.Context, lo, hi int) ([]tokenizer.Encoding, error) {
		return r.encodePairs(ctx, pairs[lo:hi])
	}
	return runByLength(ctx, len(pairs), r.opt, tokenize, func(encs []tokenizer.Encoding) ([]float64, error) {
		s := torch.NewScope().NoGrad()
		defer s.Close()
		ids, types, mask := batchTensors(s, encs, r.pad, r.opt.Device)
		sc := r.m.Scores(s, bert.Inputs{IDs: ids, TypeIDs: types, Mask: mask}, false)
		if err := s.Err(); err != nil {
			return nil, fmt.Errorf("rerank: %w", err)
		}
		return sc.Float64s()
	})
}
