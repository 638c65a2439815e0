package neural

import (
	"context"
	"fmt"

	"github.com/re2g/re2g/model"
	"github.com/re2g/re2g/model/bart"
	"github.com/re2g/re2g/model/rag"
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
	// Format lays out the generator's sources (the directory's SourceFile;
	// RAGFormat for a RAG directory; else DefaultSourceFormat).
	Format SourceFormat
	// queryTok, for a RAG generator, is the question encoder's tokenizer:
	// RAG's sources hold the query as it decodes the question's ids.
	queryTok *tokenizer.Tokenizer
}

// LoadGenerator loads a BartForConditionalGeneration directory, or a RAG
// directory, whose generator it loads: tokenizer from its
// generator_tokenizer/, generation settings from its generation_config.json
// or RagConfig, sources laid out as RAG does (RAGFormat), at most the
// RagConfig's max_combined_length tokens each. Any other model (an
// encoder, a reranker) is refused, saying what it is.
func LoadGenerator(dir string, opt Options) (*Generator, error) {
	k, err := checkModel(dir, "a generator", opt, bart.Role, rag.Role)
	if err != nil {
		return nil, err
	}
	if k.ModelType == "rag" {
		return loadRAGGenerator(dir, opt)
	}
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

func loadRAGGenerator(dir string, opt Options) (*Generator, error) {
	_, gdir := rag.TokenizerDirs(dir)
	tok, err := loadTokenizerIn(dir, gdir, opt)
	if err != nil {
		return nil, err
	}
	m, cfg, err := rag.LoadGenerator(dir, model.Options{Device: opt.Device, DType: opt.DType})
	if err != nil {
		return nil, err
	}
	g, err := rag.ReadGenerationConfig(dir, cfg)
	if err != nil {
		m.Close()
		return nil, err
	}
	f, err := ReadSourceFormat(dir, RAGFormat(cfg))
	if err != nil {
		m.Close()
		return nil, err
	}
	if opt.MaxLength <= 0 && cfg.MaxCombinedLength > 0 {
		opt.MaxLength = cfg.MaxCombinedLength
	}
	gen := NewGenerator(m, tok, g, opt)
	gen.Format = f
	if qdir, _ := rag.TokenizerDirs(dir); hasTokenizerFiles(qdir) {
		if gen.queryTok, err = tokenizer.Load(qdir); err != nil {
			m.Close()
			return nil, fmt.Errorf("question tokenizer for %s: %w", dir, err)
		}
	}
	return gen, nil
}

// SourceQuery is the query as the generator's sources hold it. For a RAG
// generator that is the question encoder tokenizer's decoding of the query's
// ids (RagRetriever builds its sources from the decoded question ids: an
// uncased question encoder lower-cases the query, strips accents,
// normalises spaces around punctuation); for others the query itself.
func (g *Generator) SourceQuery(query string) string {
	if g.queryTok == nil {
		return query
	}
	return DecodedQuery(g.queryTok, query)
}

// DecodedQuery is query as tok decodes its ids (special tokens skipped), as
// RagRetriever puts the question into a RAG generator's sources.
func DecodedQuery(tok *tokenizer.Tokenizer, query string) string {
	text, err := tok.Decode(tok.Encode(query).IDs, true)
	if err != nil {
		return query
	}
	return text
}

// Source is the generator's input for a query and a passage: Format's
// layout of SourceQuery(query), title and text.
func (g *Generator) Source(query, title, text string) string {
	return g.Format.Source(g.SourceQuery(query), title, text)
}

// RAGFormat is the source layout of a RAG model: passage first, with its
// RagConfig's title_sep and doc_sep (RagRetriever.postprocess_docs).
func RAGFormat(cfg *rag.Config) SourceFormat {
	f := RAGSourceFormat()
	f.TitleSep, f.DocSep = cfg.TitleSep, cfg.DocSep
	return f
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
