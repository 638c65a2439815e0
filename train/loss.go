// Package train holds re2g's training: the losses of the four Re2G phases
// (RE2G.md), and the loop around them (AdamW with warm-up and decay,
// clipping, accumulation, checkpoints that resume, progress and plots).
package train

import (
	"fmt"

	"github.com/re2g/re2g/torch"
)

// DPRLoss is DPR's in-batch loss: questions q [B, D] against contexts c
// [N, D] (every question's positive and hard negatives, N >= B), scored by
// inner product; question i's positive is context positives[i]; the loss is
// the mean cross-entropy of each question over all N contexts.
func DPRLoss(s *torch.Scope, q, c *torch.Tensor, positives []int64) *torch.Tensor {
	if int64(len(positives)) != q.Size(0) {
		s.SetErr(fmt.Errorf("dpr loss: %d positives for %d questions", len(positives), q.Size(0)))
		return q
	}
	scores := s.Matmul(q, s.Transpose(c, 0, 1))
	target := s.To(s.FromInt64(positives, int64(len(positives))), q.Device())
	return s.CrossEntropy(scores, target, -100, torch.ReduceMean, 0)
}

// RerankLoss is Re2G's reranker loss for one query's candidate list:
// −Σ_{i∈Prov} log softmax(z)_i, with z the reranker logits [N] and gold the
// indices of the candidates that are gold provenance. A list without a gold
// candidate contributes nothing (nil is returned: skip it).
func RerankLoss(s *torch.Scope, logits *torch.Tensor, gold []int64) *torch.Tensor {
	if len(gold) == 0 {
		return nil
	}
	lp := s.LogSoftmax(logits, 0)
	idx := s.To(s.FromInt64(gold, int64(len(gold))), logits.Device())
	return s.Neg(s.Sum(s.IndexSelect(lp, 0, idx), false))
}

// SequenceLogLik returns each sequence's log-likelihood Σ_t log p(y_t) [N]
// from decoder logits [N, T, V] and labels [N, T], where label -100 (padding)
// counts for nothing.
func SequenceLogLik(s *torch.Scope, logits, labels *torch.Tensor) *torch.Tensor {
	lp := s.LogSoftmax(logits, -1)
	mask := s.EqScalar(labels, -100)
	safe := s.MaskedFill(labels, mask, 0)
	tok := s.Squeeze(s.Gather(lp, 2, s.Unsqueeze(safe, 2)), 2)
	tok = s.MaskedFill(tok, mask, 0)
	return s.Sum(tok, false, 1)
}

// RAGSequenceLoss is RAG-Sequence's negative marginal log-likelihood for B
// questions with K passages each: docScores [B, K] are the retrieval (or
// reranker) logits, seqLogLik [B, K] each answer's log-likelihood given each
// passage: mean over questions of −log Σ_z softmax(docScores)_z · p(y|x,z).
func RAGSequenceLoss(s *torch.Scope, docScores, seqLogLik *torch.Tensor) *torch.Tensor {
	joint := s.Add(s.LogSoftmax(docScores, 1), seqLogLik)
	return s.Neg(s.Mean(s.LogSumExp(joint, false, 1), false))
}

// RAGTokenLoss is RAG-Token's negative marginal log-likelihood: the passage
// is marginalised at every token, −Σ_t log Σ_z p(z|x) p(y_t|x,z,y<t). logits
// are [B·K, T, V] (passage-major within a question), labels [B, T] (-100 is
// padding), docScores [B, K]. The mean is over questions.
func RAGTokenLoss(s *torch.Scope, docScores, logits, labels *torch.Tensor) *torch.Tensor {
	b, k := docScores.Size(0), docScores.Size(1)
	t, v := logits.Size(1), logits.Size(2)
	lp := s.View(s.LogSoftmax(logits, -1), b, k, t, v)
	doc := s.Unsqueeze(s.Unsqueeze(s.LogSoftmax(docScores, 1), 2), 3) // [B, K, 1, 1]
	marg := s.LogSumExp(s.Add(lp, doc), false, 1)                     // [B, T, V]
	mask := s.EqScalar(labels, -100)
	safe := s.MaskedFill(labels, mask, 0)
	tok := s.Squeeze(s.Gather(marg, 2, s.Unsqueeze(safe, 2)), 2) // [B, T]
	tok = s.MaskedFill(tok, mask, 0)
	return s.Neg(s.Mean(s.Sum(tok, false, 1), false))
}

// DistillLoss is the online knowledge distillation of Re2G's end-to-end
// phase: KL(reranker ‖ DPR) over each query's candidates, both
// distributions softened by temperature T, teacher (reranker) logits
// detached: mean over queries of Σ p_r log(p_r / p_dpr), scaled by T² so
// that gradients keep their size across temperatures. Shapes [B, K].
func DistillLoss(s *torch.Scope, dprScores, rerankLogits *torch.Tensor, temperature float64) *torch.Tensor {
	student := s.LogSoftmax(s.DivScalar(dprScores, temperature), 1)
	teacher := s.LogSoftmax(s.DivScalar(s.Detach(rerankLogits), temperature), 1)
	kl := s.KLDiv(student, teacher, torch.ReduceBatchMean, true)
	return s.MulScalar(kl, temperature*temperature)
}
