package neural

import (
	"context"
	"fmt"

	"github.com/re2g/re2g/model"
	"github.com/re2g/re2g/model/bart"
	"github.com/re2g/re2g/tokenizer"
	"github.com/re2g/re2g/torch"
)

// Generator generates text with BART.
type Generator struct {
	m   *bart.Model
	tok *tokenizer.Tokenizer
	opt Options
	// Config is the model's generation_config.json (or generate()'s defaults).
	Config *bart.GenerationConfig
	// Format lays out the generator's sources (the directory's SourceFile,
	// else DefaultSourceFormat).
	Format SourceFormat
}

// LoadGenerator loads a BartForConditionalGeneration directory.
func LoadGenerator(dir string, opt Options) (*Generator, error) {
	tok, err := loadTokenizer(dir, opt)
	if err != nil {
		return nil, err
	}
	m, err := bart.Load(dir, model.Options{Device: opt.Device, DType: opt.DType})
	if err != nil {
		return nil, err
	}
	g, err := bart.ReadGenerationConfig(dir, m.Cfg)
	if err != nil {
		m.Close()
		return nil, err
	}
	f, err := ReadSourceFormat(dir, DefaultSourceFormat())
	if err != nil {
		m.Close()
		return nil, err
	}
	gen := NewGenerator(m, tok, g, opt)
	gen.Format = f
	return gen, nil
}

// NewGenerator wraps a model already in memory.
func NewGenerator(m *bart.Model, tok *tokenizer.Tokenizer, g *bart.GenerationConfig, opt Options) *Generator {
	if opt.MaxLength <= 0 || int64(opt.MaxLength) > m.Cfg.MaxPositionEmbeddings {
		opt.MaxLength = int(m.Cfg.MaxPositionEmbeddings)
	}
	if opt.BatchSize <= 0 {
		opt.BatchSize = 8
	}
	return &Generator{m: m, tok: tok, opt: opt, Config: g, Format: DefaultSourceFormat()}
}

// Close frees the weights.
func (g *Generator) Close() { g.m.Close() }

// Model is the BART model.
func (g *Generator) Model() *bart.Model { return g.m }

// Tokenizer is the generator's tokenizer.
func (g *Generator) Tokenizer() *tokenizer.Tokenizer { return g.tok }

// Output is one generated sequence.
type Output struct {
	Text  string  `json:"text"`
	IDs   []int64 `json:"ids"`
	Score float64 `json:"score"`
	// Length is the beam search's normalising length (0: Score is a plain sum).
	Length int `json:"-"`
}

// Tokenize encodes sources into device tensors (ids, mask) in s.
func (g *Generator) Tokenize(ctx context.Context, s *torch.Scope, sources []string) (ids, mask *torch.Tensor, err error) {
	in := make([]tokenizer.Input, len(sources))
	for i, src := range sources {
		in[i] = tokenizer.Input{A: src}
	}
	encs, err := g.tok.EncodeBatch(ctx, in, tokenizer.Options{MaxLength: g.opt.MaxLength})
	if err != nil {
		return nil, nil, err
	}
	ids, _, mask = batchTensors(s, encs, g.m.Cfg.PadTokenID, g.opt.Device)
	return ids, mask, s.Err()
}

// Generate generates for each source with cfg (nil: the model's generation
// config) and returns, per source, the sequences best first.
func (g *Generator) Generate(ctx context.Context, sources []string, cfg *bart.GenerationConfig) ([][]Output, error) {
	if cfg == nil {
		cfg = g.Config
	}
	out := make([][]Output, 0, len(sources))
	err := inBatches(ctx, len(sources), g.opt.batch(), func(lo, hi int) error {
		s := torch.NewScope().NoGrad()
		defer s.Close()
		ids, mask, err := g.Tokenize(ctx, s, sources[lo:hi])
		if err != nil {
			return err
		}
		seqs, err := g.m.Generate(ctx, ids, mask, cfg)
		if err != nil {
			return fmt.Errorf("generate: %w", err)
		}
		for _, per := range seqs {
			outs := make([]Output, len(per))
			for i, sq := range per {
				ints := make([]int, len(sq.IDs))
				for j, id := range sq.IDs {
					ints[j] = int(id)
				}
				text, err := g.tok.Decode(ints, true)
				if err != nil {
					return fmt.Errorf("generate: decode: %w", err)
				}
				outs[i] = Output{Text: text, IDs: sq.IDs, Score: sq.Score, Length: sq.Length}
			}
			out = append(out, outs)
		}
		return nil
	})
	return out, err
}
