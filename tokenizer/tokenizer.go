// Package tokenizer implements Hugging Face compatible tokenizers in pure Go:
// BERT WordPiece and byte-level BPE (GPT-2, RoBERTa, BART), with added and
// special tokens, post-processing templates, pair truncation, padding, batch
// encoding on all cores and decoding. Token ids equal those of HF tokenizers
// (see the parity tests against fixtures made with the Rust implementation).
package tokenizer

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
)

func errorf(format string, args ...any) error { return fmt.Errorf("tokenizer: "+format, args...) }

type model interface {
	tokenize(word string, out []int) []int
	idToToken(id int) (string, bool)
	tokenToID(tok string) (int, bool)
	size() int
}

type normalizer interface{ normalize(string) string }

type preTokenizer interface {
	split(s string, emit func(string))
}

type decoder interface{ decode(tokens []string) string }

// Encoding is one encoded input: ids with their type ids, attention mask and
// special-tokens mask, all of the same length.
type Encoding struct {
	IDs               []int
	TypeIDs           []int
	AttentionMask     []int
	SpecialTokensMask []int
}

// Len is the number of tokens, padding included.
func (e *Encoding) Len() int { return len(e.IDs) }

// Truncation names a pair truncation strategy.
type Truncation string

// Truncation strategies, named as in HF.
const (
	LongestFirst Truncation = "longest_first"
	OnlyFirst    Truncation = "only_first"
	OnlySecond   Truncation = "only_second"
)

// Padding says how a batch is padded.
type Padding int

// Padding modes.
const (
	NoPadding    Padding = iota
	PadLongest           // to the longest encoding of the batch
	PadMaxLength         // to Options.MaxLength
)

// Options control one encode call. The zero value adds special tokens and
// neither truncates nor pads (transformers' defaults).
type Options struct {
	MaxLength      int        // > 0: truncate to this many tokens, special tokens included
	Truncation     Truncation // strategy for MaxLength; "" means longest_first
	Padding        Padding
	PadToMultiple  int  // round the padded length up to a multiple of this (0: off)
	NoSpecialToken bool // do not add the template's special tokens
}

// Input is one batch element; B is used when Pair is set.
type Input struct {
	A, B string
	Pair bool
}

// Tokenizer turns text into token ids and back. It is safe for concurrent use.
type Tokenizer struct {
	normalizer   normalizer // may be nil
	preTokenizer preTokenizer
	model        model
	decoder      decoder // may be nil
	template     *template

	added        []*AddedToken
	addedByID    map[int]*AddedToken
	addedByText  map[string]*AddedToken
	rawMatcher   *matcher // tokens matched on the raw text (normalized=false)
	normMatcher  *matcher // tokens matched after normalization
	byteLevelPre bool     // pre-tokens are byte-mapped before the model

	padID    int
	padToken string
	hasPad   bool

	// Defaults read from tokenizer.json (not applied by Encode; see Options).
	DefaultTruncation *Options
	// ModelMaxLength is tokenizer_config.json's model_max_length (0: unknown).
	ModelMaxLength int
}

// template is a post-processing template: pieces for single and pair inputs.
type template struct {
	single, pair []tplPiece
}

type tplPiece struct {
	seq    int   // 0: sequence A, 1: sequence B, -1: special tokens
	ids    []int // special token ids
	typeID int
}

func (t *template) added(pair bool) int {
	if t == nil {
		return 0
	}
	pieces := t.single
	if pair {
		pieces = t.pair
	}
	n := 0
	for _, p := range pieces {
		if p.seq < 0 {
			n += len(p.ids)
		}
	}
	return n
}

// VocabSize is the model's vocabulary size plus added tokens outside it.
func (t *Tokenizer) VocabSize() int {
	n := t.model.size()
	for _, a := range t.added {
		if _, ok := t.model.idToToken(a.ID); !ok {
			n++
		}
	}
	return n
}

// TokenToID returns the id of a token (added tokens included).
func (t *Tokenizer) TokenToID(tok string) (int, bool) {
	if a, ok := t.addedByText[tok]; ok {
		return a.ID, true
	}
	return t.model.tokenToID(tok)
}

// IDToToken returns the token of an id (added tokens included).
func (t *Tokenizer) IDToToken(id int) (string, bool) {
	if a, ok := t.addedByID[id]; ok {
		return a.Content, true
	}
	return t.model.idToToken(id)
}

// PadID returns the padding token id, if the tokenizer has one.
func (t *Tokenizer) PadID() (int, bool) { return t.padID, t.hasPad }

// NumSpecialTokens is the number of special tokens the template adds.
func (t *Tokenizer) NumSpecialTokens(pair bool) int { return t.template.added(pair) }

// tokenize runs added-token matching, normalization, pre-tokenization and
// the model over one sequence, appending ids. With limit > 0 it stops after
// the first word (pre-token or added token) that brings the count to limit,
// as HF tokenizers does when truncation is on; pair truncation depends on
// these partial lengths.
func (t *Tokenizer) tokenize(text string, ids []int, limit int) []int {
	var buf []byte
	start := len(ids)
	full := func() bool { return limit > 0 && len(ids)-start >= limit }
	added := func(a *AddedToken) {
		if !full() {
			ids = append(ids, a.ID)
		}
	}
	model := func(s string) {
		if full() {
			return
		}
		if t.normalizer != nil {
			s = t.normalizer.normalize(s)
		}
		t.normMatcher.split(s, func(seg string) {
			t.preTokenizer.split(seg, func(piece string) {
				if piece == "" || full() {
					return
				}
				if t.byteLevelPre {
					buf = byteMapped(piece, buf)
					ids = t.model.tokenize(string(buf), ids)
					return
				}
				ids = t.model.tokenize(piece, ids)
			})
		}, added)
	}
	t.rawMatcher.split(text, model, added)
	return ids
}

// Encode encodes one text with the template's special tokens.
func (t *Tokenizer) Encode(text string) Encoding {
	e, _ := t.EncodeWith(text, "", false, Options{})
	return e
}

// EncodePair encodes a pair of texts with the template's special tokens.
func (t *Tokenizer) EncodePair(a, b string) Encoding {
	e, _ := t.EncodeWith(a, b, true, Options{})
	return e
}

// EncodeWith encodes a (and b when pair) with truncation and padding options.
// Padding to the longest is a no-op for a single encoding.
func (t *Tokenizer) EncodeWith(a, b string, pair bool, opts Options) (Encoding, error) {
	limit := 0
	if opts.MaxLength > 0 {
		limit = opts.MaxLength
	}
	idsA := t.tokenize(a, nil, limit)
	var idsB []int
	if pair {
		idsB = t.tokenize(b, nil, limit)
	}
	if opts.MaxLength > 0 {
		var err error
		if idsA, idsB, err = t.truncate(idsA, idsB, pair, opts); err != nil {
			return Encoding{}, err
		}
	}
	e := t.postProcess(idsA, idsB, pair, !opts.NoSpecialToken)
	if opts.Padding == PadMaxLength && opts.MaxLength > 0 {
		if err := t.pad(&e, roundUp(opts.MaxLength, opts.PadToMultiple)); err != nil {
			return Encoding{}, err
		}
	}
	return e, nil
}

func roundUp(n, m int) int {
	if m > 0 && n%m != 0 {
		n += m - n%m
	}
	return n
}

// truncate implements HF's strategies; MaxLength counts the special tokens.
func (t *Tokenizer) truncate(a, b []int, pair bool, opts Options) ([]int, []int, error) {
	target := opts.MaxLength
	if !opts.NoSpecialToken {
		n := t.template.added(pair)
		if target < n {
			return nil, nil, errorf("max length %d is shorter than the %d special tokens", opts.MaxLength, n)
		}
		target -= n
	}
	total := len(a) + len(b)
	if total <= target {
		return a, b, nil
	}
	toRemove := total - target
	strategy := opts.Truncation
	if strategy == "" {
		strategy = LongestFirst
	}
	switch strategy {
	case LongestFirst:
		if !pair {
			return a[:target], b, nil
		}
		n1, n2 := len(a), len(b)
		swap := n1 > n2
		if swap {
			n1, n2 = n2, n1
		}
		if n1 > target/2 {
			n1 = target / 2
			n2 = n1 + target%2
		} else {
			n2 = target - n1
		}
		if swap {
			n1, n2 = n2, n1
		}
		return a[:n1], b[:n2], nil
	case OnlyFirst, OnlySecond:
		x := a
		if strategy == OnlySecond {
			if !pair {
				return nil, nil, errorf("truncation only_second needs a pair of texts")
			}
			x = b
		}
		if len(x) <= toRemove {
			return nil, nil, errorf("truncation %s: the sequence to truncate has %d tokens, %d must go (max length %d)", strategy, len(x), toRemove, opts.MaxLength)
		}
		x = x[:len(x)-toRemove]
		if strategy == OnlySecond {
			return a, x, nil
		}
		return x, b, nil
	}
	return nil, nil, errorf("unknown truncation strategy %q (want longest_first, only_first or only_second)", strategy)
}

func (t *Tokenizer) postProcess(a, b []int, pair, special bool) Encoding {
	var e Encoding
	add := func(ids []int, typeID, isSpecial int) {
		for _, id := range ids {
			e.IDs = append(e.IDs, id)
			e.TypeIDs = append(e.TypeIDs, typeID)
			e.SpecialTokensMask = append(e.SpecialTokensMask, isSpecial)
		}
	}
	n := len(a) + len(b) + t.template.added(pair)
	e.IDs = make([]int, 0, n)
	e.TypeIDs = make([]int, 0, n)
	e.SpecialTokensMask = make([]int, 0, n)
	if !special || t.template == nil {
		add(a, 0, 0)
		if pair {
			add(b, 1, 0)
		}
	} else {
		pieces := t.template.single
		if pair {
			pieces = t.template.pair
		}
		for _, p := range pieces {
			switch p.seq {
			case 0:
				add(a, p.typeID, 0)
			case 1:
				add(b, p.typeID, 0)
			default:
				add(p.ids, p.typeID, 1)
			}
		}
	}
	e.AttentionMask = make([]int, len(e.IDs))
	for i := range e.AttentionMask {
		e.AttentionMask[i] = 1
	}
	return e
}

func (t *Tokenizer) pad(e *Encoding, n int) error {
	if len(e.IDs) >= n {
		return nil
	}
	if !t.hasPad {
		return errorf("padding requested but the tokenizer has no padding token")
	}
	for len(e.IDs) < n {
		e.IDs = append(e.IDs, t.padID)
		e.TypeIDs = append(e.TypeIDs, 0)
		e.AttentionMask = append(e.AttentionMask, 0)
		e.SpecialTokensMask = append(e.SpecialTokensMask, 1)
	}
	return nil
}

// EncodeBatch encodes inputs on all cores, in order, then pads as opts say.
func (t *Tokenizer) EncodeBatch(ctx context.Context, inputs []Input, opts Options) ([]Encoding, error) {
	out := make([]Encoding, len(inputs))
	workers := runtime.GOMAXPROCS(0)
	if workers > len(inputs) {
		workers = len(inputs)
	}
	pad := opts.Padding
	opts.Padding = NoPadding
	var next atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	const chunk = 16
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if ctx.Err() != nil {
					return
				}
				lo := int(next.Add(chunk)) - chunk
				if lo >= len(inputs) {
					return
				}
				hi := min(lo+chunk, len(inputs))
				for i := lo; i < hi; i++ {
					in := inputs[i]
					e, err := t.EncodeWith(in.A, in.B, in.Pair, opts)
					if err != nil {
						once.Do(func() { firstErr = fmt.Errorf("input %d: %w", i, err) })
						return
					}
					out[i] = e
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	n := 0
	switch pad {
	case PadLongest:
		for i := range out {
			n = max(n, len(out[i].IDs))
		}
	case PadMaxLength:
		if opts.MaxLength <= 0 {
			return nil, errorf("padding to max length needs a max length")
		}
		n = opts.MaxLength
	}
	if pad != NoPadding {
		n = roundUp(n, opts.PadToMultiple)
		for i := range out {
			if err := t.pad(&out[i], n); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// ErrUnknownID is returned by Decode for an id outside the vocabulary.
var ErrUnknownID = errors.New("tokenizer: unknown token id")

// Decode turns ids back into text, dropping special tokens when skipSpecial.
func (t *Tokenizer) Decode(ids []int, skipSpecial bool) (string, error) {
	toks := make([]string, 0, len(ids))
	for _, id := range ids {
		if a, ok := t.addedByID[id]; ok {
			if skipSpecial && a.Special {
				continue
			}
			toks = append(toks, a.Content)
			continue
		}
		tok, ok := t.model.idToToken(id)
		if !ok {
			return "", fmt.Errorf("%w %d", ErrUnknownID, id)
		}
		toks = append(toks, tok)
	}
	if t.decoder == nil {
		return joinSpace(toks), nil
	}
	return t.decoder.decode(toks), nil
}

func joinSpace(toks []string) string {
	n := 0
	for _, s := range toks {
		n += len(s) + 1
	}
	b := make([]byte, 0, n)
	for i, s := range toks {
		if i > 0 {
			b = append(b, ' ')
		}
		b = append(b, s...)
	}
	return string(b)
}
