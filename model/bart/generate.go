package bart

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"

	"github.com/re2g/re2g/model"
	"github.com/re2g/re2g/torch"
)

// EarlyStopping is generate()'s early_stopping: true, false or "never".
type EarlyStopping int

// Early-stopping modes.
const (
	EarlyStopFalse EarlyStopping = iota
	EarlyStopTrue
	EarlyStopNever
)

// UnmarshalJSON reads true, false or "never".
func (e *EarlyStopping) UnmarshalJSON(b []byte) error {
	switch string(b) {
	case "true":
		*e = EarlyStopTrue
	case "false", "null":
		*e = EarlyStopFalse
	case `"never"`:
		*e = EarlyStopNever
	default:
		return fmt.Errorf("early_stopping: want true, false or \"never\", got %s", b)
	}
	return nil
}

// MarshalJSON writes true, false or "never".
func (e EarlyStopping) MarshalJSON() ([]byte, error) {
	switch e {
	case EarlyStopTrue:
		return []byte("true"), nil
	case EarlyStopNever:
		return []byte(`"never"`), nil
	}
	return []byte("false"), nil
}

// GenerationConfig holds generate()'s settings, with generation_config.json's names.
type GenerationConfig struct {
	MaxLength           int           `json:"max_length,omitempty"`
	MaxNewTokens        int           `json:"max_new_tokens,omitempty"`
	MinLength           int           `json:"min_length,omitempty"`
	NumBeams            int           `json:"num_beams,omitempty"`
	NumReturnSequences  int           `json:"num_return_sequences,omitempty"`
	LengthPenalty       float64       `json:"length_penalty"`
	EarlyStopping       EarlyStopping `json:"early_stopping"`
	NoRepeatNgramSize   int           `json:"no_repeat_ngram_size,omitempty"`
	DecoderStartTokenID int64         `json:"decoder_start_token_id"`
	BOSTokenID          int64         `json:"bos_token_id"`
	EOSTokenID          int64         `json:"eos_token_id"`
	PadTokenID          int64         `json:"pad_token_id"`
	ForcedBOSTokenID    *int64        `json:"forced_bos_token_id,omitempty"`
	ForcedEOSTokenID    *int64        `json:"forced_eos_token_id,omitempty"`
}

// DefaultGenerationConfig is generate()'s defaults for a model config:
// max_length 20, greedy, length_penalty 1, the config's special tokens.
func DefaultGenerationConfig(cfg *Config) *GenerationConfig {
	return &GenerationConfig{
		MaxLength: 20, NumBeams: 1, NumReturnSequences: 1, LengthPenalty: 1,
		DecoderStartTokenID: cfg.DecoderStartTokenID, BOSTokenID: cfg.BOSTokenID, EOSTokenID: cfg.EOSTokenID,
		PadTokenID: cfg.PadTokenID, ForcedBOSTokenID: cfg.ForcedBOSTokenID, ForcedEOSTokenID: cfg.ForcedEOSTokenID,
	}
}

// ReadGenerationConfig reads dir/generation_config.json over the defaults of
// cfg; a directory without one gets the defaults.
func ReadGenerationConfig(dir string, cfg *Config) (*GenerationConfig, error) {
	g := DefaultGenerationConfig(cfg)
	p := filepath.Join(dir, "generation_config.json")
	if _, err := os.Stat(p); err != nil {
		return g, nil
	}
	if err := model.ReadJSON(dir, "generation_config.json", g); err != nil {
		return nil, err
	}
	// eos_token_id may be a list in newer files; re2g uses its first entry.
	var raw map[string]json.RawMessage
	if err := model.ReadJSON(dir, "generation_config.json", &raw); err == nil {
		if b, ok := raw["eos_token_id"]; ok && len(b) > 0 && b[0] == '[' {
			var ids []int64
			if json.Unmarshal(b, &ids) == nil && len(ids) > 0 {
				g.EOSTokenID = ids[0]
			}
		}
	}
	return g, g.Check()
}

// Check validates the settings.
func (g *GenerationConfig) Check() error {
	switch {
	case g.NumBeams < 1:
		return fmt.Errorf("num_beams must be at least 1, got %d", g.NumBeams)
	case g.NumReturnSequences < 1 || g.NumReturnSequences > g.NumBeams:
		return fmt.Errorf("num_return_sequences %d must be between 1 and num_beams %d", g.NumReturnSequences, g.NumBeams)
	case g.MaxLength < 1 && g.MaxNewTokens < 1:
		return fmt.Errorf("max_length or max_new_tokens must be positive")
	}
	return nil
}

// maxLength is the decoder length limit, decoder start token included.
func (g *GenerationConfig) maxLength() int {
	if g.MaxNewTokens > 0 {
		return g.MaxNewTokens + 1
	}
	return g.MaxLength
}

// Sequence is one generated output: token ids (decoder start token
// included, as generate() returns them, trailing padding removed) and its
// score — for beam search transformers' sequences_scores (sum of token
// log-probabilities divided by length^length_penalty); for greedy search the
// sum of the chosen tokens' log-probabilities.
type Sequence struct {
	IDs   []int64
	Score float64
	// Length is what the beam search divided the summed log-probabilities
	// by (raised to length_penalty): the hypothesis' tokens, decoder start
	// included, end token excluded. 0 for greedy search, whose Score is the
	// plain sum.
	Length int
}

// Generate runs generate() for a batch of encoder inputs ids [B, S] and mask
// [B, S] and returns, per input, NumReturnSequences sequences best first.
//
// The decode loop makes two host transfers per step whatever the batch and
// beam sizes: one upload of the step's inputs (last tokens, beam scores, the
// cache's beam order, banned n-gram tokens) and one read-back of what the
// host decides on (the top candidates, or the chosen tokens); masks and
// processor constants are made once per call.
func (m *Model) Generate(ctx context.Context, ids, mask *torch.Tensor, g *GenerationConfig) ([][]Sequence, error) {
	if err := g.Check(); err != nil {
		return nil, err
	}
	root := torch.NewScope().NoGrad()
	defer root.Close()
	am := m.AttentionMask(root, mask)
	enc := m.EncodeMasked(root, ids, am, false)
	if err := root.Err(); err != nil {
		return nil, fmt.Errorf("bart encode: %w", err)
	}
	p := newProcessors(root, g, enc.Device())
	if g.NumBeams == 1 {
		return m.greedy(ctx, root, enc, am, g, p)
	}
	return m.beam(ctx, root, enc, am, g, p)
}

// bannedTokens lists, for each hypothesis, the tokens that would repeat an
// n-gram of size n already in it (transformers' NoRepeatNGramLogitsProcessor).
func bannedTokens(seq []int64, n int) []int64 {
	cur := len(seq)
	if n <= 0 || cur+1 < n {
		return nil
	}
	var out []int64
	prefix := seq[cur-(n-1):]
	for st := 0; st+n <= cur; st++ {
		match := true
		for j := 0; j < n-1; j++ {
			if seq[st+j] != prefix[j] {
				match = false
				break
			}
		}
		if match {
			out = append(out, seq[st+n-1])
		}
	}
	return out
}

// processors holds generate()'s logits processors for one call, with their
// token indices already on the device.
type processors struct {
	g                    *GenerationConfig
	maxLen               int
	eos                  *torch.Tensor // [1] EOS, for min_length
	forcedBOS, forcedEOS *torch.Tensor // [1] the forced token, or nil
}

func newProcessors(s *torch.Scope, g *GenerationConfig, dev torch.Device) *processors {
	p := &processors{g: g, maxLen: g.maxLength()}
	// One upload for the three indices; the processors slice it.
	all := s.To(s.FromInt64([]int64{g.EOSTokenID, deref(g.ForcedBOSTokenID), deref(g.ForcedEOSTokenID)}, 3), dev)
	p.eos = s.Slice(all, 0, 0, 1, 1)
	if g.ForcedBOSTokenID != nil {
		p.forcedBOS = s.Slice(all, 0, 1, 2, 1)
	}
	if g.ForcedEOSTokenID != nil {
		p.forcedEOS = s.Slice(all, 0, 2, 3, 1)
	}
	return p
}

func deref(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}

// banned gathers the flat indices (row·V + token) that no_repeat_ngram_size
// forbids for hypotheses seqs, as float64 for the step's upload.
func (p *processors) banned(seqs [][]int64, v int) []float64 {
	var out []float64
	for i, seq := range seqs {
		for _, t := range bannedTokens(seq, p.g.NoRepeatNgramSize) {
			out = append(out, float64(int64(i)*int64(v)+t))
		}
	}
	return out
}

// apply runs the processors, in transformers' order (no-repeat n-gram, min
// length, forced BOS, forced EOS), on scores [N, V] of hypotheses of length
// cur; banned holds the flat indices to forbid (int64 on the device) or nil.
func (p *processors) apply(s *torch.Scope, scores, banned *torch.Tensor, cur int) *torch.Tensor {
	n, v := scores.Size(0), scores.Size(1)
	negInf := math.Inf(-1)
	if banned != nil {
		scores = s.View(s.IndexFill(s.Reshape(scores, n*v), 0, banned, negInf), n, v)
	}
	only := func(tok *torch.Tensor) *torch.Tensor {
		return s.IndexFill(s.Full(negInf, scores.DType(), scores.Device(), n, v), 1, tok, 0)
	}
	if cur < p.g.MinLength {
		scores = s.IndexFill(scores, 1, p.eos, negInf)
	}
	if p.forcedBOS != nil && cur == 1 {
		scores = only(p.forcedBOS)
	}
	if p.forcedEOS != nil && cur == p.maxLen-1 {
		scores = only(p.forcedEOS)
	}
	return scores
}

// upload is a step's host-to-device transfer: float64 sections of given
// lengths, sent as one tensor and sliced on the device.
type upload struct {
	data []float64
	ends []int
}

func (u *upload) add(xs ...float64) int {
	u.data = append(u.data, xs...)
	u.ends = append(u.ends, len(u.data))
	return len(u.ends) - 1
}

// send makes the device tensor; part(i) is then section i.
func (u *upload) send(s *torch.Scope, dev torch.Device) func(i int, dt torch.DType) *torch.Tensor {
	t := s.To(s.FromFloat64(u.data, int64(len(u.data))), dev)
	return func(i int, dt torch.DType) *torch.Tensor {
		start := 0
		if i > 0 {
			start = u.ends[i-1]
		}
		if start == u.ends[i] {
			return nil
		}
		return s.ToDType(s.Slice(t, 0, int64(start), int64(u.ends[i]), 1), dt)
	}
}

// readBack copies ts (any dtypes, each flattened) to the host as float64 in
// one transfer.
func readBack(s *torch.Scope, ts ...*torch.Tensor) ([]float64, error) {
	parts := make([]*torch.Tensor, len(ts))
	for i, t := range ts {
		parts[i] = s.Reshape(s.ToDType(t, torch.Float64), t.Numel())
	}
	out := s.Cat(0, parts...)
	if err := s.Err(); err != nil {
		return nil, err
	}
	return out.Float64s()
}

// step runs one decoder step for tokens in [N, 1] (int64, on the device) and
// returns the last position's log-softmax [N, V] (float32) in s. The cache's
// new tensors are moved into keep; the previous step's are freed.
func (m *Model) step(s, keep *torch.Scope, enc, cm *torch.Tensor, cache *Cache, in *torch.Tensor) (*torch.Tensor, error) {
	old := cache.Tensors()
	// the tokens are the decoder start token and the search's own choices
	logits := m.decode(s, in, enc, cm, cache, false, true)
	lp := s.LogSoftmax(s.ToDType(s.Select(logits, 1, 0), torch.Float32), -1)
	if err := s.Err(); err != nil {
		return nil, fmt.Errorf("bart decode: %w", err)
	}
	keepSet := map[*torch.Tensor]bool{}
	for _, t := range cache.Tensors() {
		keepSet[t] = true
	}
	for _, t := range old {
		if !keepSet[t] {
			t.Free()
		}
	}
	for _, t := range cache.Tensors() {
		if s != keep {
			s.Keep(t)
		}
	}
	return lp, nil
}

func lastTokens(seqs [][]int64) []float64 {
	out := make([]float64, len(seqs))
	for i, seq := range seqs {
		out[i] = float64(seq[len(seq)-1])
	}
	return out
}

func (m *Model) greedy(ctx context.Context, root *torch.Scope, enc, cm *torch.Tensor, g *GenerationConfig, p *processors) ([][]Sequence, error) {
	b := int(enc.Size(0))
	v := int(m.Cfg.VocabSize)
	maxLen := g.maxLength()
	seqs := make([][]int64, b)
	scores := make([]float64, b)
	done := make([]bool, b)
	for i := range seqs {
		seqs[i] = []int64{g.DecoderStartTokenID}
	}
	cache := m.NewCache()
	for len(seqs[0]) < maxLen {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		s := root.Child()
		var u upload
		tokPart, banPart := u.add(lastTokens(seqs)...), u.add(p.banned(seqs, v)...)
		part := u.send(s, enc.Device())
		lp, err := m.step(s, root, enc, cm, cache, s.View(part(tokPart, torch.Int64), int64(b), 1))
		if err != nil {
			s.Close()
			return nil, err
		}
		// transformers processes raw logits for greedy search; log-softmax
		// is monotonic per row, so the argmax is the same token.
		next := s.Argmax(p.apply(s, lp, part(banPart, torch.Int64), len(seqs[0])), 1, true)
		res, err := readBack(s, next, s.Gather(lp, 1, next))
		s.Close()
		if err != nil {
			return nil, fmt.Errorf("bart greedy search: %w", err)
		}
		all := true
		for i := range seqs {
			if done[i] {
				seqs[i] = append(seqs[i], g.PadTokenID)
				continue
			}
			tok := int64(res[i])
			seqs[i] = append(seqs[i], tok)
			scores[i] += res[b+i]
			if tok == g.EOSTokenID {
				done[i] = true
			}
			all = all && done[i]
		}
		if all {
			break
		}
	}
	out := make([][]Sequence, b)
	for i := range seqs {
		out[i] = []Sequence{{IDs: trimPad(seqs[i], g), Score: scores[i]}}
	}
	return out, nil
}

// trimPad drops the padding that follows the end of a sequence.
func trimPad(seq []int64, g *GenerationConfig) []int64 {
	end := len(seq)
	for end > 1 && seq[end-1] == g.PadTokenID && seq[end-1] != g.EOSTokenID {
		end--
	}
	return append([]int64(nil), seq[:end]...)
}

// hypotheses holds one input's n best finished beams, as transformers 5's
// beam search keeps them (its beam_scores / sequences for finished beams).
type hypotheses struct {
	n      int
	lp     float64
	early  EarlyStopping
	maxLen int
	beams  []scored
	// done is transformers' satisfied early-stop heuristic (or, with
	// early_stopping true, a full set): sticky, and no further hypothesis
	// is accepted once it holds.
	done bool
}

type scored struct {
	score float64
	ids   []int64 // decoder start token and the finishing token included
	len   int     // the length the score was normalised by
}

// add offers a hypothesis: ids (its finishing token included) with summed
// log-probabilities sum, normalised by length^length_penalty where length
// is the hypothesis' length before its finishing token, as transformers 5
// does for both an end token and the length limit.
func (h *hypotheses) add(ids []int64, sum float64, length int) {
	score := sum / math.Pow(float64(length), h.lp)
	if len(h.beams) == h.n && score <= h.worst() {
		return
	}
	h.beams = append(h.beams, scored{score, append([]int64(nil), ids...), length})
	// best first; among equals the earlier stays ahead
	sort.SliceStable(h.beams, func(a, c int) bool { return h.beams[a].score > h.beams[c].score })
	if len(h.beams) > h.n {
		h.beams = h.beams[:h.n]
	}
}

func (h *hypotheses) worst() float64 { return h.beams[len(h.beams)-1].score }

// update applies transformers 5's early-stop heuristic after a step whose
// best running beam has summed log-probabilities best and length curLen
// (before the step's token): the search of this input is over when every
// slot holds a finished hypothesis and, unless early_stopping is true, the
// best running beam cannot beat the worst of them even at its best
// hypothetical length (max_length − 1 for "never" with a positive
// length_penalty, its current length otherwise).
func (h *hypotheses) update(best float64, curLen int) {
	if h.done || len(h.beams) < h.n {
		return
	}
	if h.early == EarlyStopTrue {
		h.done = true
		return
	}
	l := curLen
	if h.early == EarlyStopNever && h.lp > 0 {
		l = h.maxLen - 1
	}
	h.done = best/math.Pow(float64(l), h.lp) <= h.worst()
}

// beam is transformers 5's beam search (GenerationMixin._beam_search): per
// step the top 2·num_beams (beam, token) candidates of each input; among the
// top num_beams of them, those that meet a stopping criterion (the end
// token, or the length limit on the last step) become finished hypotheses;
// the best num_beams others run on.
func (m *Model) beam(ctx context.Context, root *torch.Scope, enc, cm *torch.Tensor, g *GenerationConfig, p *processors) ([][]Sequence, error) {
	b := int(enc.Size(0))
	nb := g.NumBeams
	maxLen := g.maxLength()
	v := int(m.Cfg.VocabSize)
	if 2*nb > v {
		return nil, fmt.Errorf("bart beam search: num_beams %d needs a vocabulary of at least %d tokens, the model has %d", nb, 2*nb, v)
	}
	// expand the encoder output and mask to one row per beam
	enc = root.RepeatInterleave(enc, int64(nb), 0)
	if cm != nil {
		cm = root.RepeatInterleave(cm, int64(nb), 0)
	}
	if err := root.Err(); err != nil {
		return nil, err
	}
	n := b * nb
	seqs := make([][]int64, n)
	beamScores := make([]float64, n)
	for i := range seqs {
		seqs[i] = []int64{g.DecoderStartTokenID}
		if i%nb != 0 {
			beamScores[i] = -1e9
		}
	}
	var beamIdx []float64 // the cache rows the current beams continue; nil at first
	hyps := make([]*hypotheses, b)
	for i := range hyps {
		hyps[i] = &hypotheses{n: nb, lp: g.LengthPenalty, early: g.EarlyStopping, maxLen: maxLen}
	}
	cache := m.NewCache()
	k := 2 * nb
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		curLen := len(seqs[0])
		s := root.Child()
		var u upload
		tokPart, scorePart, idxPart, banPart := u.add(lastTokens(seqs)...), u.add(beamScores...), u.add(beamIdx...), u.add(p.banned(seqs, v)...)
		part := u.send(s, enc.Device())
		if beamIdx != nil {
			// reorder the self-attention cache to follow the surviving beams
			if err := reorderCache(root, cache, part(idxPart, torch.Int64)); err != nil {
				s.Close()
				return nil, err
			}
		}
		lp, err := m.step(s, root, enc, cm, cache, s.View(part(tokPart, torch.Int64), int64(n), 1))
		if err != nil {
			s.Close()
			return nil, err
		}
		// as transformers: processed log-probabilities plus the beam scores,
		// the top 2·num_beams over (beam, token) of each input, on the device
		sc := s.Add(p.apply(s, lp, part(banPart, torch.Int64), curLen), s.View(part(scorePart, torch.Float32), int64(n), 1))
		vals, idx := s.TopK(s.View(sc, int64(b), int64(nb*v)), int64(k), 1)
		res, err := readBack(s, vals, idx)
		s.Close()
		if err != nil {
			return nil, fmt.Errorf("bart beam search: %w", err)
		}
		topScores, topIdx := res[:b*k], res[b*k:]
		// the length limit is a stopping criterion for every candidate of
		// the last step
		final := curLen+1 >= maxLen
		nextSeqs := make([][]int64, 0, n)
		nextScores := make([]float64, 0, n)
		beamIdx = make([]float64, 0, n)
		allDone := true
		for bi := 0; bi < b; bi++ {
			h := hyps[bi]
			best := math.Inf(-1) // the best running beam's score
			for r := 0; r < k; r++ {
				flat := int64(topIdx[bi*k+r])
				tok, src := flat%int64(v), bi*nb+int(flat/int64(v))
				score := topScores[bi*k+r]
				if final || tok == g.EOSTokenID {
					// only the top num_beams finish; none once the input is done
					if r < nb && !h.done {
						h.add(append(append([]int64(nil), seqs[src]...), tok), score, curLen)
					}
					continue
				}
				if len(nextSeqs) < (bi+1)*nb {
					if len(nextSeqs) == bi*nb {
						best = score
					}
					nextSeqs = append(nextSeqs, append(append([]int64(nil), seqs[src]...), tok))
					nextScores = append(nextScores, score)
					beamIdx = append(beamIdx, float64(src))
				}
			}
			if !final && len(nextSeqs) < (bi+1)*nb {
				// at most num_beams of the 2·num_beams candidates end
				return nil, fmt.Errorf("bart beam search: only %d of %d beams continue", len(nextSeqs)-bi*nb, nb)
			}
			h.update(best, curLen)
			allDone = allDone && h.done
		}
		if final || allDone {
			break
		}
		seqs, beamScores = nextSeqs, nextScores
	}
	out := make([][]Sequence, b)
	for bi, h := range hyps {
		if len(h.beams) < g.NumReturnSequences {
			return nil, fmt.Errorf("bart beam search: input %d has %d finished hypotheses, fewer than num_return_sequences %d", bi, len(h.beams), g.NumReturnSequences)
		}
		for _, hy := range h.beams[:g.NumReturnSequences] {
			out[bi] = append(out[bi], Sequence{IDs: hy.ids, Score: hy.score, Length: hy.len})
		}
	}
	return out, nil
}

// reorderCache makes row i of the self-attention cache the old row idx[i]
// (idx int64 on the device).
func reorderCache(root *torch.Scope, cache *Cache, idx *torch.Tensor) error {
	s := root.Child()
	defer s.Close()
	for i := range cache.self {
		c := &cache.self[i]
		if c.k == nil {
			continue
		}
		k, v := s.IndexSelect(c.k, 0, idx), s.IndexSelect(c.v, 0, idx)
		if err := s.Err(); err != nil {
			return fmt.Errorf("bart beam search: reorder cache: %w", err)
		}
		c.k.Free()
		c.v.Free()
		c.k, c.v = k, v
		s.Keep(k, v)
	}
	return s.Err()
}
