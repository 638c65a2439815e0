package bert

import (
	"fmt"

	"github.com/re2g/re2g/model"
	"github.com/re2g/re2g/torch"
)

// Embeddings sums word, position and token-type embeddings, then normalises.
type Embeddings struct {
	Word      model.Embedding `st:"word_embeddings"`
	Position  model.Embedding `st:"position_embeddings"`
	TokenType model.Embedding `st:"token_type_embeddings"`
	Norm      model.LayerNorm `st:"LayerNorm"`
}

// Layer is one transformer block (post-LN, as BERT).
type Layer struct {
	Query    model.Linear    `st:"attention.self.query"`
	Key      model.Linear    `st:"attention.self.key"`
	Value    model.Linear    `st:"attention.self.value"`
	AttnOut  model.Linear    `st:"attention.output.dense"`
	AttnNorm model.LayerNorm `st:"attention.output.LayerNorm"`
	Inter    model.Linear    `st:"intermediate.dense"`
	Out      model.Linear    `st:"output.dense"`
	OutNorm  model.LayerNorm `st:"output.LayerNorm"`
}

// Model is BertModel: embeddings, encoder layers and an optional pooler.
type Model struct {
	Cfg        *Config
	Embeddings Embeddings    `st:"embeddings"`
	Layers     []Layer       `st:"encoder.layer"`
	Pooler     *model.Linear `st:"pooler.dense,optional"`
}

// newModel sizes the structure from cfg, so that the loader checks shapes.
func newModel(cfg *Config, pooler bool) *Model {
	h, v := cfg.HiddenSize, cfg.VocabSize
	ln := func() model.LayerNorm { return model.LayerNorm{Eps: cfg.LayerNormEps, Dim: h} }
	lin := func(in, out int64) model.Linear { return model.Linear{In: in, Out: out} }
	m := &Model{Cfg: cfg}
	m.Embeddings = Embeddings{
		Word:      model.Embedding{Rows: v, Dim: h},
		Position:  model.Embedding{Rows: cfg.MaxPositionEmbeddings, Dim: h},
		TokenType: model.Embedding{Rows: cfg.TypeVocabSize, Dim: h},
		Norm:      ln(),
	}
	m.Layers = make([]Layer, cfg.NumHiddenLayers)
	for i := range m.Layers {
		m.Layers[i] = Layer{
			Query: lin(h, h), Key: lin(h, h), Value: lin(h, h), AttnOut: lin(h, h), AttnNorm: ln(),
			Inter: lin(h, cfg.IntermediateSize), Out: lin(cfg.IntermediateSize, h), OutNorm: ln(),
		}
	}
	if pooler {
		p := lin(h, h)
		m.Pooler = &p
	}
	return m
}

// Inputs is a padded batch of token ids.
type Inputs struct {
	IDs     *torch.Tensor // [B, L] int64
	TypeIDs *torch.Tensor // [B, L] int64, or nil for all zeros
	Mask    *torch.Tensor // [B, L] 1 for tokens, 0 for padding; nil for none
}

// Forward returns the last hidden states [B, L, H]. Dropout applies only when train is set.
func (m *Model) Forward(s *torch.Scope, in Inputs, train bool) *torch.Tensor {
	cfg := m.Cfg
	b, l := in.IDs.Size(0), in.IDs.Size(1)
	if l > cfg.MaxPositionEmbeddings {
		s.SetErr(&torch.Error{Op: "bert", Msg: fmt.Sprintf("sequence of %d tokens exceeds max_position_embeddings %d", l, cfg.MaxPositionEmbeddings)})
		return s.Detach(in.IDs)
	}
	dev := in.IDs.Device()
	pos := s.Arange(0, l, 1, torch.Int64, dev)
	types := in.TypeIDs
	if types == nil {
		types = s.Zeros(torch.Int64, dev, b, l)
	}
	e := m.Embeddings
	x := s.Add(s.Add(e.Word.Forward(s, in.IDs), s.Unsqueeze(e.Position.Forward(s, pos), 0)), e.TokenType.Forward(s, types))
	x = s.Dropout(e.Norm.Forward(s, x), cfg.HiddenDropoutProb, train)
	dt := x.DType()
	mask := model.PaddingMask(s, in.Mask, dt)
	for i := range m.Layers {
		ly, in := &m.Layers[i], x
		x = s.Run(func(c *torch.Scope) *torch.Tensor { return ly.forward(c, cfg, in, mask, train) })
		in.Free() // the previous layer's output (or the embeddings): not needed any more
	}
	return x
}

func (ly *Layer) forward(s *torch.Scope, cfg *Config, x, mask *torch.Tensor, train bool) *torch.Tensor {
	b, l, h := x.Size(0), x.Size(1), cfg.HiddenSize
	nh := cfg.NumAttentionHeads
	p := 0.0
	if train {
		p = cfg.AttentionProbsDropoutProb
	}
	// Each block in its own scope, so that its intermediates (q, k, v; the
	// 4h-wide activations) are freed as soon as it is done, as in eager
	// PyTorch; autograd holds its own references to what backward needs.
	a := s.Run(func(c *torch.Scope) *torch.Tensor {
		split := func(t *torch.Tensor) *torch.Tensor {
			return c.Transpose(c.View(t, b, l, nh, h/nh), 1, 2)
		}
		q, k, v := split(ly.Query.Forward(c, x)), split(ly.Key.Forward(c, x)), split(ly.Value.Forward(c, x))
		ctx := c.Reshape(c.Transpose(c.Attention(q, k, v, mask, p, false, 0), 1, 2), b, l, h)
		return c.Dropout(ly.AttnOut.Forward(c, ctx), cfg.HiddenDropoutProb, train)
	})
	x = ly.AttnNorm.Forward(s, s.Add(a, x))
	f := s.Run(func(c *torch.Scope) *torch.Tensor {
		f := model.Activation(c, cfg.HiddenAct, ly.Inter.Forward(c, x))
		return c.Dropout(ly.Out.Forward(c, f), cfg.HiddenDropoutProb, train)
	})
	return ly.OutNorm.Forward(s, s.Add(f, x))
}

// Pool is BERT's pooler: tanh(dense(h[:, 0])).
func (m *Model) Pool(s *torch.Scope, hidden *torch.Tensor) *torch.Tensor {
	if m.Pooler == nil {
		s.SetErr(&torch.Error{Op: "bert.pool", Msg: "this model has no pooler"})
		return s.Detach(hidden)
	}
	return s.Tanh(m.Pooler.Forward(s, s.Select(hidden, 1, 0)))
}
