package bart

import (
	"context"
	"encoding/json"
	"errors"
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

// process applies generate()'s logits processors, in transformers' order
// (no-repeat n-gram, min length, forced BOS, forced EOS), to scores [N, V]
// on the device, for hypotheses seqs (all of one length).
func process(s *torch.Scope, scores *torch.Tensor, seqs [][]int64, g *GenerationConfig, maxLen int) *torch.Tensor {
	n, v := scores.Size(0), scores.Size(1)
	dev := scores.Device()
	negInf := math.Inf(-1)
	cur := len(seqs[0])
	var banned []int64
	for i, seq := range seqs {
		for _, t := range bannedTokens(seq, g.NoRepeatNgramSize) {
			banned = append(banned, int64(i)*v+t)
		}
	}
	if len(banned) > 0 {
		idx := s.To(s.FromInt64(banned, int64(len(banned))), dev)
		scores = s.View(s.IndexFill(s.Reshape(scores, n*v), 0, idx, negInf), n, v)
	}
	only := func(tok int64) *torch.Tensor {
		return s.IndexFill(s.Full(negInf, scores.DType(), dev, n, v), 1, s.To(s.FromInt64([]int64{tok}, 1), dev), 0)
	}
	if cur < g.MinLength {
		scores = s.IndexFill(scores, 1, s.To(s.FromInt64([]int64{g.EOSTokenID}, 1), dev), negInf)
	}
	if g.ForcedBOSTokenID != nil && cur == 1 {
		scores = only(*g.ForcedBOSTokenID)
	}
	if g.ForcedEOSTokenID != nil && cur == maxLen-1 {
		scores = only(*g.ForcedEOSTokenID)
	}
	return scores
}

// step runs one decoder step for the last tokens of seqs and returns the
// last position's log-softmax [N, V] (float32, on the model's device) in s.
// The cache's new tensors are moved into keep; the previous step's are freed.
func (m *Model) step(s, keep *torch.Scope, enc, encMask *torch.Tensor, cache *Cache, last []int64) (*torch.Tensor, error) {
	old := cache.Tensors()
	n := int64(len(last))
	in := s.To(s.FromInt64(last, n, 1), enc.Device())
	logits := m.Decode(s, in, enc, encMask, cache, false)
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
		s := root.Child()
		lp, err := m.step(s, root, enc, mask, cache, last)
		if err != nil {
			s.Close()
			return nil, err
		}
		// transformers processes raw logits for greedy search; log-softmax
		// is monotonic per row, so the argmax is the same token.
		next := s.Argmax(process(s, lp, seqs, g, maxLen), 1, true)
		chosen := s.Gather(lp, 1, next)
		ids, err1 := next.Int64s()
		lps, err2 := chosen.Float64s()
		s.Close()
		if err := errors.Join(s.Err(), err1, err2); err != nil {
			return nil, fmt.Errorf("bart greedy search: %w", err)
		}
		all := true
		for i := range seqs {
			if done[i] {
				seqs[i] = append(seqs[i], g.PadTokenID)
				continue
			}
			seqs[i] = append(seqs[i], ids[i])
			scores[i] += lps[i]
			if ids[i] == g.EOSTokenID {
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
		s := root.Child()
		lp, err := m.step(s, root, enc, mask, cache, last)
		if err != nil {
			s.Close()
			return nil, err
		}
		// as transformers: processed log-probabilities plus the beam scores,
		// the top 2·num_beams over (beam, token) of each input, on the device
		bs := make([]float32, len(beamScores))
		for i, x := range beamScores {
			bs[i] = float32(x)
		}
		sc := s.Add(process(s, lp, seqs, g, maxLen), s.To(s.FromFloat32(bs, int64(len(bs)), 1), lp.Device()))
		vals, idx := s.TopK(s.View(sc, int64(b), int64(nb*v)), int64(2*nb), 1)
		topScores, err1 := vals.Float64s()
		topIdx, err2 := idx.Int64s()
		s.Close()
		if err := errors.Join(s.Err(), err1, err2); err != nil {
			return nil, fmt.Errorf("bart beam search: %w", err)
		}
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
			k := 2 * nb
			cands := make([]cand, k)
			for r := 0; r < k; r++ {
				flat := topIdx[bi*k+r]
				cands[r] = cand{score: topScores[bi*k+r], tok: int(flat % int64(v)), beam: int(flat / int64(v))}
			}
			added := 0
			bestRunning := math.Inf(-1) // the best continuing beam's score
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
					if added == 0 {
						bestRunning = c.score
					}
					added++
				}
				if added == nb {
					break
				}
			}
			if added < nb {
				return nil, fmt.Errorf("bart beam search: only %d of %d beams continue (vocabulary too small for num_beams?)", added, nb)
			}
			// As transformers' beam search (v4.50+): whether the best beam still
			// running could beat the worst finished hypothesis.
			done[bi] = done[bi] || hyps[bi].isDone(bestRunning, curLen)
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
