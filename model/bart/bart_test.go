package bart

import (
	"context"
	"math"
	"testing"

	"github.com/re2g/re2g/model"
	"github.com/re2g/re2g/torch"
)

func tinyConfig() *Config {
	return &Config{
		ModelType: "bart", VocabSize: 40, DModel: 16, EncoderLayers: 2, DecoderLayers: 2,
		EncoderAttentionHeads: 4, DecoderAttentionHeads: 4, EncoderFFNDim: 32, DecoderFFNDim: 32,
		ActivationFunction: "gelu", MaxPositionEmbeddings: 64, PadTokenID: 1, BOSTokenID: 0, EOSTokenID: 2,
		DecoderStartTokenID: 2, InitStd: 0.3,
	}
}

func TestCachedDecodingEqualsFullDecoding(t *testing.T) {
	torch.ManualSeed(5)
	m, err := New(tinyConfig(), torch.CPUDevice)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	dir := t.TempDir()
	if err := m.Save(dir, DefaultGenerationConfig(m.Cfg)); err != nil {
		t.Fatal(err)
	}
	m2, err := Load(dir, model.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	if m2.LMHead != m2.Shared.Weight || m2.Encoder.EmbedTokens != m2.Shared.Weight {
		t.Fatal("tied embeddings were not tied on load")
	}
	s := torch.NewScope().NoGrad()
	defer s.Close()
	src := s.FromInt64([]int64{0, 5, 6, 7, 2, 0, 9, 2, 1, 1}, 2, 5)
	mask := s.FromInt64([]int64{1, 1, 1, 1, 1, 1, 1, 1, 0, 0}, 2, 5)
	dec := s.FromInt64([]int64{2, 0, 8, 9, 2, 0, 11, 12}, 2, 4)
	enc := m2.Encode(s, src, mask, false)
	full, _ := m2.Decode(s, dec, enc, mask, nil, false).Float32s()
	cache := m2.NewCache()
	var stepped []float32
	for i := int64(0); i < 4; i++ {
		lg, _ := m2.Decode(s, s.Slice(dec, 1, i, i+1, 1), enc, mask, cache, false).Float32s()
		stepped = append(stepped, lg...)
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	v := 40
	for b := 0; b < 2; b++ {
		for i := 0; i < 4; i++ {
			for j := 0; j < v; j++ {
				f := full[(b*4+i)*v+j]
				c := stepped[(i*2+b)*v+j]
				if math.Abs(float64(f-c)) > 1e-4 {
					t.Fatalf("batch %d position %d token %d: full %v cached %v", b, i, j, f, c)
				}
			}
		}
	}
	a, _ := m.Encode(s, src, mask, false).Float32s()
	e, _ := enc.Float32s()
	for i := range a {
		if a[i] != e[i] {
			t.Fatal("reloaded model differs")
		}
	}
}

// tinySources is a random tiny model (seed) and a batch of two sources, the
// second padded; the model and tensors are freed when t ends.
func tinySources(t *testing.T, seed uint64) (m *Model, src, mask *torch.Tensor) {
	t.Helper()
	torch.ManualSeed(seed)
	m, err := New(tinyConfig(), torch.CPUDevice)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	s := torch.NewScope().NoGrad()
	t.Cleanup(s.Close)
	src = s.FromInt64([]int64{0, 5, 6, 7, 2, 0, 9, 2, 1, 1}, 2, 5)
	mask = s.FromInt64([]int64{1, 1, 1, 1, 1, 1, 1, 1, 0, 0}, 2, 5)
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	return m, src, mask
}

func TestGenerateRuns(t *testing.T) {
	m, src, mask := tinySources(t, 6)
	g := DefaultGenerationConfig(m.Cfg)
	g.MaxLength = 8
	base := torch.LiveTensors()
	greedy, err := m.Generate(context.Background(), src, mask, g)
	if err != nil {
		t.Fatal(err)
	}
	g.NumBeams, g.NumReturnSequences, g.NoRepeatNgramSize = 4, 3, 2
	beams, err := m.Generate(context.Background(), src, mask, g)
	if err != nil {
		t.Fatal(err)
	}
	if torch.LiveTensors() != base {
		t.Fatalf("generation leaked %d tensors", torch.LiveTensors()-base)
	}
	if len(greedy) != 2 || len(beams) != 2 || len(beams[0]) != 3 {
		t.Fatalf("shapes: greedy %d, beams %d x %d", len(greedy), len(beams), len(beams[0]))
	}
	for _, bs := range beams {
		for i := 1; i < len(bs); i++ {
			if bs[i].Score > bs[i-1].Score {
				t.Fatalf("beams not sorted: %v", bs)
			}
		}
		for _, b := range bs {
			if b.IDs[0] != 2 || len(b.IDs) > 8 {
				t.Fatalf("bad sequence %v", b.IDs)
			}
		}
	}
	t.Logf("greedy %v; beams %v", greedy[0][0].IDs, beams[0])
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := m.Generate(ctx, src, mask, g); err == nil {
		t.Fatal("cancelled generation succeeded")
	}
}

// TestDecodeStepHostTransfers holds the decode loop to one upload and one
// read-back per step, greedy and beam, with no_repeat_ngram_size, min_length
// and forced tokens on: on a GPU every other host transfer would wait for the
// device. It counts the shim's transfers for two lengths; the difference per
// extra step must be exactly one of each (the shim's own checks, such as
// an embedding's range check, count too), and the per-call overhead (the
// padding mask, the source ids' range, the processors' constants) small
// and fixed.
func TestDecodeStepHostTransfers(t *testing.T) {
	m, src, mask := tinySources(t, 7)
	bos, eos := int64(0), int64(2)
	count := func(beams, newTokens int) (reads, writes int64) {
		g := DefaultGenerationConfig(m.Cfg)
		g.NumBeams, g.NumReturnSequences, g.MaxNewTokens = beams, 1, newTokens
		// min_length at the limit keeps every hypothesis running to it
		g.MinLength, g.NoRepeatNgramSize = newTokens, 2
		g.ForcedBOSTokenID, g.ForcedEOSTokenID = &bos, &eos
		r0, w0 := torch.HostTransfers()
		out, err := m.Generate(context.Background(), src, mask, g)
		if err != nil {
			t.Fatal(err)
		}
		r1, w1 := torch.HostTransfers()
		if n := len(out[0][0].IDs); n != newTokens+1 {
			t.Fatalf("beams %d: %d tokens, want %d (the search must reach the limit)", beams, n, newTokens+1)
		}
		return r1 - r0, w1 - w0
	}
	for _, beams := range []int{1, 4} {
		r6, w6 := count(beams, 6)
		r10, w10 := count(beams, 10)
		perRead, perWrite := float64(r10-r6)/4, float64(w10-w6)/4
		fixedR, fixedW := r6-6*int64(perRead), w6-6*int64(perWrite)
		t.Logf("beams %d: per step %.0f reads, %.0f writes; per call %d reads, %d writes", beams, perRead, perWrite, fixedR, fixedW)
		if perRead != 1 || perWrite != 1 {
			t.Errorf("beams %d: %.2f reads and %.2f writes per decode step, want 1 and 1", beams, perRead, perWrite)
		}
		if fixedR > 2 || fixedW > 1 {
			t.Errorf("beams %d: %d reads and %d writes outside the steps, want at most 2 reads (the padding check, the source ids' range) and 1 write (constants)", beams, fixedR, fixedW)
		}
	}
}
