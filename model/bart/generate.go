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
func (m *Model) Generate(ctx context.Context, ids, mask *torch.Tensor, g *GenerationConfig) ([][]Sequence, error) {
	if err := g.Check(); err != nil {
		return nil, err
	}
	root := torch.NewScope().NoGrad()
	defer root.Close()
	enc := m.Encode(root, ids, mask, false)
	if err := root.Err(); err != nil {
		return nil, fmt.Errorf("bart encode: %w", err)
	}
	if g.NumBeams == 1 {
		return m.greedy(ctx, root, enc, mask, g)
	}
	return m.beam(ctx, root, enc, mask, g)
}

// processScores applies generate()'s logits processors, in transformers'
// order, to scores [N, V] (as float64 on the host) for hypotheses seqs.
func processScores(scores [][]float64, seqs [][]int64, g *GenerationConfig, maxLen int) {
	negInf := math.Inf(-1)
	for i, row := range scores {
		seq := seqs[i]
		cur := len(seq)
		if n := g.NoRepeatNgramSize; n > 0 && cur+1 >= n {
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
					row[seq[st+n-1]] = negInf
				}
			}
		}
		if cur < g.MinLength {
			row[g.EOSTokenID] = negInf
		}
		if g.ForcedBOSTokenID != nil && cur == 1 {
			for j := range row {
				row[j] = negInf
			}
			row[*g.ForcedBOSTokenID] = 0
		}
		if g.ForcedEOSTokenID != nil && cur == maxLen-1 {
			for j := range row {
				row[j] = negInf
			}
			row[*g.ForcedEOSTokenID] = 0
		}
	}
}

// step runs one decoder step for the last tokens of seqs and returns the
// last position's log-softmax [N][V] (on the host, float64). The cache's
// tensors are moved into keep; the previous step's are freed.
func (m *Model) step(keep *torch.Scope, enc, encMask *torch.Tensor, cache *Cache, last []int64) ([][]float64, error) {
	s := keep.Child()
	defer s.Close()
	old := cache.Tensors()
	n := int64(len(last))
	in := s.To(s.FromInt64(last, n, 1), enc.Device())
	logits := m.Decode(s, in, enc, encMask, cache, false)
	lp := s.ToDType(s.LogSoftmax(s.Select(logits, 1, 0), -1), torch.Float64)
	if err := s.Err(); err != nil {
		return nil, fmt.Errorf("bart decode: %w", err)
	}
	flat, err := lp.Float64s()
	if err != nil {
		return nil, err
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
	s.Keep(cache.Tensors()...)
	v := int(m.Cfg.VocabSize)
	out := make([][]float64, n)
	for i := range out {
		out[i] = flat[i*v : (i+1)*v]
	}
	return out, nil
}

func (m *Model) greedy(ctx context.Context, root *torch.Scope, enc, mask *torch.Tensor, g *GenerationConfig) ([][]Sequence, error) {
	b := int(enc.Size(0))
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
		last := make([]int64, b)
		for i := range seqs {
			last[i] = seqs[i][len(seqs[i])-1]
		}
		lp, err := m.step(root, enc, mask, cache, last)
		if err != nil {
			return nil, err
		}
		// Greedy search processes raw logits; the argmax of processed
		// log-probabilities is the same token (log-softmax is monotonic per row).
		proc := make([][]float64, b)
		for i := range lp {
			proc[i] = append([]float64(nil), lp[i]...)
		}
		processScores(proc, seqs, g, maxLen)
		all := true
		for i := range seqs {
			if done[i] {
				seqs[i] = append(seqs[i], g.PadTokenID)
				continue
			}
			best := argmax(proc[i])
			seqs[i] = append(seqs[i], int64(best))
			scores[i] += lp[i][best]
			if int64(best) == g.EOSTokenID {
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

func argmax(v []float64) int {
	best := 0
	for j := range v {
		if v[j] > v[best] {
			best = j
		}
	}
	return best
}

// trimPad drops the padding that follows the end of a sequence.
func trimPad(seq []int64, g *GenerationConfig) []int64 {
	end := len(seq)
	for end > 1 && seq[end-1] == g.PadTokenID && seq[end-1] != g.EOSTokenID {
		end--
	}
	return append([]int64(nil), seq[:end]...)
}

// hypotheses is transformers' BeamHypotheses: the n best finished sequences.
type hypotheses struct {
	n          int
	lp         float64
	early      EarlyStopping
	maxLen     int
	beams      []scored
	worstScore float64
}

type scored struct {
	score float64
	ids   []int64
}

func (h *hypotheses) add(ids []int64, sumLogprobs float64) {
	score := sumLogprobs / math.Pow(float64(len(ids)), h.lp)
	if len(h.beams) < h.n || score > h.worstScore {
		h.beams = append(h.beams, scored{score, append([]int64(nil), ids...)})
		if len(h.beams) > h.n {
			// drop the worst (the earliest added among equals), as transformers does
			worst := 0
			for i, b := range h.beams {
				if b.score < h.beams[worst].score {
					worst = i
				}
			}
			h.beams = append(h.beams[:worst], h.beams[worst+1:]...)
			h.worstScore = h.beams[0].score
			for _, b := range h.beams {
				h.worstScore = math.Min(h.worstScore, b.score)
			}
		} else {
			h.worstScore = math.Min(score, h.worstScore)
		}
	}
}

func (h *hypotheses) isDone(bestSumLogprobs float64, curLen int) bool {
	if len(h.beams) < h.n {
		return false
	}
	switch h.early {
	case EarlyStopTrue:
		return true
	case EarlyStopFalse:
		return h.worstScore >= bestSumLogprobs/math.Pow(float64(curLen), h.lp)
	default:
		var cur float64
		if h.lp > 0 {
			cur = bestSumLogprobs / math.Pow(float64(h.maxLen), h.lp)
		} else {
			cur = bestSumLogprobs / math.Pow(float64(curLen), h.lp)
		}
		return h.worstScore >= cur
	}
}

func (m *Model) beam(ctx context.Context, root *torch.Scope, enc, mask *torch.Tensor, g *GenerationConfig) ([][]Sequence, error) {
	b := int(enc.Size(0))
	nb := g.NumBeams
	maxLen := g.maxLength()
	v := int(m.Cfg.VocabSize)
	// expand the encoder output and mask to one row per beam
	enc = root.RepeatInterleave(enc, int64(nb), 0)
	if mask != nil {
		mask = root.RepeatInterleave(mask, int64(nb), 0)
	}
	if err := root.Err(); err != nil {
		return nil, err
	}
	seqs := make([][]int64, b*nb)
	beamScores := make([]float64, b*nb)
	for i := range seqs {
		seqs[i] = []int64{g.DecoderStartTokenID}
		if i%nb != 0 {
			beamScores[i] = -1e9
		}
	}
	hyps := make([]*hypotheses, b)
	done := make([]bool, b)
	for i := range hyps {
		hyps[i] = &hypotheses{n: nb, lp: g.LengthPenalty, early: g.EarlyStopping, maxLen: maxLen, worstScore: 1e9}
	}
	cache := m.NewCache()
	type cand struct {
		score float64
		tok   int
		beam  int
	}
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		last := make([]int64, len(seqs))
		for i := range seqs {
			last[i] = seqs[i][len(seqs[i])-1]
		}
		lp, err := m.step(root, enc, mask, cache, last)
		if err != nil {
			return nil, err
		}
		processScores(lp, seqs, g, maxLen)
		curLen := len(seqs[0])
		nextSeqs := make([][]int64, 0, len(seqs))
		nextScores := make([]float64, 0, len(seqs))
		beamIdx := make([]int64, 0, len(seqs))
		for bi := 0; bi < b; bi++ {
			if done[bi] {
				for j := 0; j < nb; j++ {
					nextSeqs = append(nextSeqs, append(append([]int64(nil), seqs[0]...), g.PadTokenID))
					nextScores = append(nextScores, 0)
					beamIdx = append(beamIdx, 0)
				}
				continue
			}
			// top 2·num_beams over (beam, token), as torch.topk (ties: lower index first).
			k := 2 * nb
			cands := make([]cand, 0, k)
			for j := 0; j < nb; j++ {
				row := lp[bi*nb+j]
				base := beamScores[bi*nb+j]
				for t := 0; t < v; t++ {
					sc := row[t] + base
					if len(cands) < k || sc > cands[len(cands)-1].score {
						c := cand{sc, t, j}
						pos := sort.Search(len(cands), func(x int) bool { return cands[x].score < sc })
						cands = append(cands, cand{})
						copy(cands[pos+1:], cands[pos:])
						cands[pos] = c
						if len(cands) > k {
							cands = cands[:k]
						}
					}
				}
			}
			added := 0
			for rank, c := range cands {
				src := bi*nb + c.beam
				if int64(c.tok) == g.EOSTokenID {
					if rank >= nb {
						continue
					}
					hyps[bi].add(seqs[src], c.score)
				} else {
					nextSeqs = append(nextSeqs, append(append([]int64(nil), seqs[src]...), int64(c.tok)))
					nextScores = append(nextScores, c.score)
					beamIdx = append(beamIdx, int64(src))
					added++
				}
				if added == nb {
					break
				}
			}
			if added < nb {
				return nil, fmt.Errorf("bart beam search: only %d of %d beams continue (vocabulary too small for num_beams?)", added, nb)
			}
			done[bi] = done[bi] || hyps[bi].isDone(cands[0].score, curLen)
		}
		// reorder the self-attention cache to follow the surviving beams
		if err := reorderCache(root, cache, beamIdx); err != nil {
			return nil, err
		}
		seqs, beamScores = nextSeqs, nextScores
		allDone := true
		for _, d := range done {
			allDone = allDone && d
		}
		if allDone || len(seqs[0]) >= maxLen {
			break
		}
	}
	// finalize: every unfinished batch adds its live beams
	for bi := 0; bi < b; bi++ {
		if done[bi] {
			continue
		}
		for j := 0; j < nb; j++ {
			hyps[bi].add(seqs[bi*nb+j], beamScores[bi*nb+j])
		}
	}
	out := make([][]Sequence, b)
	for bi, h := range hyps {
		sorted := append([]scored(nil), h.beams...)
		sort.SliceStable(sorted, func(a, c int) bool { return sorted[a].score < sorted[c].score })
		for j := 0; j < g.NumReturnSequences; j++ {
			// transformers pops from the end of the ascending sort; sequences
			// shorter than max_length get the end-of-sequence token appended.
			best := sorted[len(sorted)-1-j]
			ids := best.ids
			if len(ids) < maxLen {
				ids = append(append([]int64(nil), ids...), g.EOSTokenID)
			}
			out[bi] = append(out[bi], Sequence{IDs: ids, Score: best.score, Length: len(best.ids)})
		}
	}
	return out, nil
}

func reorderCache(root *torch.Scope, cache *Cache, beamIdx []int64) error {
	s := root.Child()
	defer s.Close()
	idx := s.FromInt64(beamIdx, int64(len(beamIdx)))
	for i := range cache.self {
		c := &cache.self[i]
		if c.k == nil {
			continue
		}
		ix := s.To(idx, c.k.Device())
		k, v := s.IndexSelect(c.k, 0, ix), s.IndexSelect(c.v, 0, ix)
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
