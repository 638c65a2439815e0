package bart

import (
	"fmt"
	"strings"

	"github.com/re2g/re2g/model"
	"github.com/re2g/re2g/torch"
)

// Attention is BartAttention: q, k, v and output projections.
type Attention struct {
	Q   model.Linear `st:"q_proj"`
	K   model.Linear `st:"k_proj"`
	V   model.Linear `st:"v_proj"`
	Out model.Linear `st:"out_proj"`
}

// EncoderLayer is a post-LN encoder block.
type EncoderLayer struct {
	SelfAttn     Attention       `st:"self_attn"`
	SelfAttnNorm model.LayerNorm `st:"self_attn_layer_norm"`
	FC1          model.Linear    `st:"fc1"`
	FC2          model.Linear    `st:"fc2"`
	FinalNorm    model.LayerNorm `st:"final_layer_norm"`
}

// DecoderLayer is a post-LN decoder block with cross-attention.
type DecoderLayer struct {
	SelfAttn     Attention       `st:"self_attn"`
	SelfAttnNorm model.LayerNorm `st:"self_attn_layer_norm"`
	CrossAttn    Attention       `st:"encoder_attn"`
	CrossNorm    model.LayerNorm `st:"encoder_attn_layer_norm"`
	FC1          model.Linear    `st:"fc1"`
	FC2          model.Linear    `st:"fc2"`
	FinalNorm    model.LayerNorm `st:"final_layer_norm"`
}

// Stack is the encoder's or decoder's embeddings and layers. EmbedTokens is
// the model's shared embedding (tied, as transformers ties it on load: a
// checkpoint's own embed_tokens.weight, when it has one, is not read).
type Stack[L any] struct {
	EmbedTokens *torch.Tensor   `st:"-"`
	EmbedPos    model.Embedding `st:"embed_positions"`
	Layers      []L             `st:"layers"`
	EmbedNorm   model.LayerNorm `st:"layernorm_embedding"`
}

// Model is BartForConditionalGeneration. The embedding is tied: Shared is
// also both stacks' EmbedTokens and the LMHead, and is saved once, as
// model.shared.weight, as save_pretrained does with safetensors.
type Model struct {
	Cfg             *Config             `st:"-"`
	Shared          model.Embedding     `st:"model.shared"`
	Encoder         Stack[EncoderLayer] `st:"model.encoder"`
	Decoder         Stack[DecoderLayer] `st:"model.decoder"`
	LMHead          *torch.Tensor       `st:"-"`
	FinalLogitsBias *torch.Tensor       `st:"final_logits_bias,optional"`
	weights         *torch.Scope
}

// positionOffset is BartLearnedPositionalEmbedding's offset.
const positionOffset = 2

func newModel(cfg *Config) *Model {
	d, v := cfg.DModel, cfg.VocabSize
	ln := func() model.LayerNorm { return model.LayerNorm{Eps: 1e-5, Dim: d} }
	lin := func(in, out int64) model.Linear { return model.Linear{In: in, Out: out} }
	attn := func() Attention { return Attention{Q: lin(d, d), K: lin(d, d), V: lin(d, d), Out: lin(d, d)} }
	m := &Model{Cfg: cfg, Shared: model.Embedding{Rows: v, Dim: d}}
	pos := model.Embedding{Rows: cfg.MaxPositionEmbeddings + positionOffset, Dim: d}
	m.Encoder = Stack[EncoderLayer]{EmbedPos: pos, EmbedNorm: ln(), Layers: make([]EncoderLayer, cfg.EncoderLayers)}
	for i := range m.Encoder.Layers {
		m.Encoder.Layers[i] = EncoderLayer{SelfAttn: attn(), SelfAttnNorm: ln(), FC1: lin(d, cfg.EncoderFFNDim), FC2: lin(cfg.EncoderFFNDim, d), FinalNorm: ln()}
	}
	m.Decoder = Stack[DecoderLayer]{EmbedPos: pos, EmbedNorm: ln(), Layers: make([]DecoderLayer, cfg.DecoderLayers)}
	for i := range m.Decoder.Layers {
		m.Decoder.Layers[i] = DecoderLayer{SelfAttn: attn(), SelfAttnNorm: ln(), CrossAttn: attn(), CrossNorm: ln(),
			FC1: lin(d, cfg.DecoderFFNDim), FC2: lin(cfg.DecoderFFNDim, d), FinalNorm: ln()}
	}
	return m
}

// Load reads a BartForConditionalGeneration directory (Role). Besides the
// model's tensors the checkpoint may hold only the tied copies of the
// embedding (model.encoder.embed_tokens, model.decoder.embed_tokens,
// lm_head: pytorch_model.bin files keep them).
func Load(dir string, opt model.Options) (*Model, error) {
	cfg, err := ReadConfig(dir)
	if err != nil {
		return nil, err
	}
	ck, err := model.OpenCheckpoint(dir)
	if err != nil {
		return nil, err
	}
	defer ck.Close()
	m, err := LoadFrom(ck, "", cfg, opt)
	if err != nil {
		return nil, err
	}
	if err := ck.CheckUnexpected(); err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}

// tiedNames are the names a checkpoint may hold the tied embedding under,
// relative to the model's prefix, in the order they are looked for: a
// safetensors file keeps one (model.shared.weight), a pytorch_model.bin
// every one.
var tiedNames = []string{"model.shared.weight", "model.encoder.embed_tokens.weight", "model.decoder.embed_tokens.weight", "lm_head.weight"}

// LoadFrom reads a BartForConditionalGeneration whose tensors are named
// prefix+"model.*", prefix+"final_logits_bias" (prefix "" for a BART
// directory, "rag.generator." inside a RAG checkpoint), sized by cfg. The
// embedding is read once and tied, as transformers ties it. The caller
// checks the checkpoint for unexpected tensors once it has loaded
// everything it holds.
func LoadFrom(ck *model.Checkpoint, prefix string, cfg *Config, opt model.Options) (*Model, error) {
	if err := cfg.Check(); err != nil {
		return nil, fmt.Errorf("model %s: %w", ck.Dir, err)
	}
	if err := ck.CheckLayers(prefix+"model.encoder.layers.", cfg.EncoderLayers, "encoder_layers"); err != nil {
		return nil, err
	}
	if err := ck.CheckLayers(prefix+"model.decoder.layers.", cfg.DecoderLayers, "decoder_layers"); err != nil {
		return nil, err
	}
	m := newModel(cfg)
	shared := ""
	for _, n := range tiedNames {
		if ck.Has(prefix + n) {
			shared = prefix + n
			break
		}
	}
	if shared == "" {
		return nil, &model.LoadError{Dir: ck.Dir, Missing: []string{prefix + "model.shared.weight"}}
	}
	// The tied embedding first, under the name the file has; then the rest.
	fo := opt
	s := torch.NewScope()
	ok := false
	defer func() {
		if !ok {
			s.Close()
		}
	}()
	if err := model.Fill(s, ck, strings.TrimSuffix(shared, "weight"), &m.Shared, fo); err != nil {
		return nil, err
	}
	rest := &struct {
		Encoder         *Stack[EncoderLayer] `st:"model.encoder"`
		Decoder         *Stack[DecoderLayer] `st:"model.decoder"`
		FinalLogitsBias *torch.Tensor        `st:"final_logits_bias,optional"`
	}{Encoder: &m.Encoder, Decoder: &m.Decoder}
	fo.Ignore = append(append([]string{}, fo.Ignore...), shared)
	for _, n := range tiedNames {
		fo.Ignore = append(fo.Ignore, prefix+n)
	}
	if err := model.Fill(s, ck, prefix, rest, fo); err != nil {
		return nil, err
	}
	m.FinalLogitsBias = rest.FinalLogitsBias
	if m.FinalLogitsBias != nil && !model.EqualShape(m.FinalLogitsBias.Shape(), []int64{1, cfg.VocabSize}) {
		return nil, fmt.Errorf("model %s: %sfinal_logits_bias has shape %v, want [1 %d]", ck.Dir, prefix, m.FinalLogitsBias.Shape(), cfg.VocabSize)
	}
	m.tie()
	m.weights, ok = s, true
	return m, nil
}

// tie points both stacks' token embeddings and the LM head at Shared.
func (m *Model) tie() {
	m.Encoder.EmbedTokens = m.Shared.Weight
	m.Decoder.EmbedTokens = m.Shared.Weight
	m.LMHead = m.Shared.Weight
}

// New builds a randomly initialised model (normal(0, init_std), as HF) on dev.
func New(cfg *Config, dev torch.Device) (*Model, error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	m := newModel(cfg)
	s := torch.NewScope()
	std := cfg.InitStd
	if std == 0 {
		std = 0.02
	}
	if err := model.Init(s, &struct {
		Shared  *model.Embedding     `st:"model.shared"`
		Encoder *Stack[EncoderLayer] `st:"model.encoder"`
		Decoder *Stack[DecoderLayer] `st:"model.decoder"`
	}{&m.Shared, &m.Encoder, &m.Decoder}, std, dev, torch.Float32); err != nil {
		s.Close()
		return nil, err
	}
	// HF zeroes the padding row of every embedding initialised with a padding_idx.
	for _, e := range []*torch.Tensor{m.Shared.Weight} {
		row := s.Select(e, 0, cfg.PadTokenID)
		row.CopyFrom(s.Zeros(torch.Float32, dev, cfg.DModel))
	}
	m.tie()
	m.FinalLogitsBias = s.Zeros(torch.Float32, dev, 1, cfg.VocabSize)
	if err := s.Err(); err != nil {
		s.Close()
		return nil, err
	}
	m.weights = s
	return m, nil
}

// Close frees the weights.
func (m *Model) Close() {
	if m.weights != nil {
		m.weights.Close()
		m.weights = nil
	}
}

// Save writes a Hugging Face directory (config.json, model.safetensors with
// the tied embedding once, generation_config.json when gen is not nil).
func (m *Model) Save(dir string, gen *GenerationConfig) error {
	cfg := *m.Cfg
	cfg.ModelType = "bart"
	cfg.Architectures = []string{"BartForConditionalGeneration"}
	extra := map[string]any{}
	if gen != nil {
		extra["generation_config.json"] = gen
	}
	return model.Save(dir, &cfg, m, "", extra)
}

// Parameters lists the trainable tensors (marking them as requiring grad).
// final_logits_bias is a buffer in HF and is not trained.
func (m *Model) Parameters() ([]torch.Param, error) {
	ps, err := model.Parameters(m, "")
	if err != nil {
		return nil, err
	}
	out := ps[:0]
	for _, p := range ps {
		if p.Name == "final_logits_bias" {
			p.Tensor.SetRequiresGrad(false)
			continue
		}
		out = append(out, p)
	}
	return out, nil
}

// kv is one attention layer's cached keys and values [B, H, L, D].
type kv struct{ k, v *torch.Tensor }

func (a *Attention) heads(s *torch.Scope, x *torch.Tensor, nh int64) *torch.Tensor {
	b, l, d := x.Size(0), x.Size(1), x.Size(2)
	return s.Transpose(s.View(x, b, l, nh, d/nh), 1, 2)
}

// forward attends from x to kvSrc (x itself for self-attention). With
// cache, keys and values are appended to (self) or taken from (cross) it.
func (a *Attention) forward(s *torch.Scope, x, keys *torch.Tensor, nh int64, mask *torch.Tensor, causal bool, p float64, cache *kv, cross bool) *torch.Tensor {
	b, l, d := x.Size(0), x.Size(1), x.Size(2)
	q := a.heads(s, a.Q.Forward(s, x), nh)
	var k, v *torch.Tensor
	switch {
	case cross && cache != nil && cache.k != nil:
		k, v = cache.k, cache.v
	default:
		k, v = a.heads(s, a.K.Forward(s, keys), nh), a.heads(s, a.V.Forward(s, keys), nh)
		if cache != nil && cache.k == nil {
			// heads are transposed views; a cached one would be copied
			// into contiguous memory by every later step's matmul (the
			// cross-attention cache: [N, H, S, d] each step and layer), so
			// it is made contiguous once, here
			k, v = s.Contiguous(k), s.Contiguous(v)
		}
		if cache != nil && !cross && cache.k != nil {
			k, v = s.Cat(2, cache.k, k), s.Cat(2, cache.v, v)
		}
		if cache != nil {
			cache.k, cache.v = k, v
		}
	}
	o := s.Attention(q, k, v, mask, p, causal, 0)
	return a.Out.Forward(s, s.Reshape(s.Transpose(o, 1, 2), b, l, d))
}

// embed embeds ids [B, L] at positions past…past+L-1. Positions are checked
// here, on the host; token ids are checked against the table (a read-back)
// unless inRange says they are the model's own choices.
func (st *Stack[L]) embed(s *torch.Scope, cfg *Config, ids *torch.Tensor, past int64, train, inRange bool) *torch.Tensor {
	l := ids.Size(1)
	if past+l > cfg.MaxPositionEmbeddings {
		s.SetErr(&torch.Error{Op: "bart", Msg: fmt.Sprintf("position %d exceeds max_position_embeddings %d", past+l, cfg.MaxPositionEmbeddings)})
	}
	pos := s.Arange(past+positionOffset, past+l+positionOffset, 1, torch.Int64, ids.Device())
	var x *torch.Tensor
	if inRange {
		x = s.EmbeddingInRange(st.EmbedTokens, ids, -1)
	} else {
		x = s.Embedding(st.EmbedTokens, ids, -1)
	}
	if sc := cfg.embedScale(); sc != 1 {
		x = s.MulScalar(x, sc)
	}
	x = s.Add(x, s.Unsqueeze(st.EmbedPos.ForwardInRange(s, pos), 0))
	return s.Dropout(st.EmbedNorm.Forward(s, x), cfg.Dropout, train)
}

func dropoutP(p float64, train bool) float64 {
	if train {
		return p
	}
	return 0
}

// Encode runs the encoder over ids [B, L] with mask [B, L] (1 = token).
func (m *Model) Encode(s *torch.Scope, ids, mask *torch.Tensor, train bool) *torch.Tensor {
	return m.EncodeMasked(s, ids, m.AttentionMask(s, mask), train)
}

// AttentionMask is the additive attention mask of a token mask [B, S]
// (model.PaddingMask in the model's dtype): nil when nothing is padded. It
// reads one value back from the device; EncodeMasked and DecodeMasked take
// it so that generation computes it once, not once per step.
func (m *Model) AttentionMask(s *torch.Scope, mask *torch.Tensor) *torch.Tensor {
	return model.PaddingMask(s, mask, m.Encoder.EmbedTokens.DType())
}

// EncodeMasked is Encode with the additive mask am of AttentionMask.
func (m *Model) EncodeMasked(s *torch.Scope, ids, am *torch.Tensor, train bool) *torch.Tensor {
	cfg := m.Cfg
	x := m.Encoder.embed(s, cfg, ids, 0, train, false)
	for i := range m.Encoder.Layers {
		ly, in := &m.Encoder.Layers[i], x
		x = s.Run(func(c *torch.Scope) *torch.Tensor {
			h := ly.SelfAttn.forward(c, in, in, cfg.EncoderAttentionHeads, am, false, dropoutP(cfg.AttentionDropout, train), nil, false)
			x := ly.SelfAttnNorm.Forward(c, c.Add(in, c.Dropout(h, cfg.Dropout, train)))
			f := c.Dropout(model.Activation(c, cfg.ActivationFunction, ly.FC1.Forward(c, x)), cfg.ActivationDropout, train)
			return ly.FinalNorm.Forward(c, c.Add(x, c.Dropout(ly.FC2.Forward(c, f), cfg.Dropout, train)))
		})
		in.Free()
	}
	return x
}

// Cache holds the decoder's keys and values across generation steps.
type Cache struct {
	self, cross []kv
	Len         int64 // decoder positions already cached
}

// NewCache returns an empty cache for m.
func (m *Model) NewCache() *Cache {
	n := len(m.Decoder.Layers)
	return &Cache{self: make([]kv, n), cross: make([]kv, n)}
}

// Tensors lists every cached tensor (to move them between scopes).
func (c *Cache) Tensors() []*torch.Tensor {
	var ts []*torch.Tensor
	for _, x := range append(append([]kv{}, c.self...), c.cross...) {
		if x.k != nil {
			ts = append(ts, x.k, x.v)
		}
	}
	return ts
}

// Decode runs the decoder over decoder ids [B, T] attending to the encoder
// output enc [B, S, D] (encMask [B, S]) and returns the LM logits [B, T, V].
// With a cache, ids are the new positions only and the cache is updated.
func (m *Model) Decode(s *torch.Scope, ids, enc, encMask *torch.Tensor, cache *Cache, train bool) *torch.Tensor {
	return m.DecodeMasked(s, ids, enc, m.AttentionMask(s, encMask), cache, train)
}

// DecodeMasked is Decode with the encoder's additive mask cm of
// AttentionMask; it makes no host transfer of its own.
func (m *Model) DecodeMasked(s *torch.Scope, ids, enc, cm *torch.Tensor, cache *Cache, train bool) *torch.Tensor {
	return m.decode(s, ids, enc, cm, cache, train, false)
}

// decode is DecodeMasked; inRange says the ids are the model's own
// choices (generation), which need no range check.
func (m *Model) decode(s *torch.Scope, ids, enc, cm *torch.Tensor, cache *Cache, train, inRange bool) *torch.Tensor {
	cfg := m.Cfg
	past := int64(0)
	if cache != nil {
		past = cache.Len
	}
	x := m.Decoder.embed(s, cfg, ids, past, train, inRange)
	for i := range m.Decoder.Layers {
		ly, in := &m.Decoder.Layers[i], x
		var sc, cc *kv
		if cache != nil {
			sc, cc = &cache.self[i], &cache.cross[i]
		}
		x = s.Run(func(c *torch.Scope) *torch.Tensor {
			h := ly.SelfAttn.forward(c, in, in, cfg.DecoderAttentionHeads, nil, true, dropoutP(cfg.AttentionDropout, train), sc, false)
			x := ly.SelfAttnNorm.Forward(c, c.Add(in, c.Dropout(h, cfg.Dropout, train)))
			h = ly.CrossAttn.forward(c, x, enc, cfg.DecoderAttentionHeads, cm, false, dropoutP(cfg.AttentionDropout, train), cc, true)
			x = ly.CrossNorm.Forward(c, c.Add(x, c.Dropout(h, cfg.Dropout, train)))
			f := c.Dropout(model.Activation(c, cfg.ActivationFunction, ly.FC1.Forward(c, x)), cfg.ActivationDropout, train)
			if cache != nil { // the cache outlives the layer
				c.Keep(sc.k, sc.v, cc.k, cc.v)
			}
			return ly.FinalNorm.Forward(c, c.Add(x, c.Dropout(ly.FC2.Forward(c, f), cfg.Dropout, train)))
		})
		in.Free()
	}
	if cache != nil {
		cache.Len = past + ids.Size(1)
	}
	logits := s.Linear(x, m.LMHead, nil)
	if m.FinalLogitsBias != nil {
		logits = s.Add(logits, m.FinalLogitsBias)
	}
	return logits
}

// ShiftRight builds decoder inputs from labels as HF's shift_tokens_right:
// decoder_start first, labels shifted by one, -100 replaced by pad.
func ShiftRight(s *torch.Scope, labels *torch.Tensor, pad, start int64) *torch.Tensor {
	b, t := labels.Size(0), labels.Size(1)
	body := s.Slice(labels, 1, 0, t-1, 1)
	body = s.MaskedFill(body, s.EqScalar(body, -100), float64(pad))
	first := s.Full(float64(start), torch.Int64, labels.Device(), b, 1)
	return s.Cat(1, first, body)
}
