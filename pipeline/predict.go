package pipeline

import (
	"context"
	"fmt"
	"strings"

	"github.com/re2g/re2g/internal/progress"
	"github.com/re2g/re2g/kilt"
)

// Predict answers every record of a KILT task (its input) and returns KILT
// predictions: the answer (when there is a generator) and the kept passages
// as provenance, best first, each with its probability as score and its
// passage id. The provenance's wikipedia_id is the passage's page, or the
// passage id itself when byPassage is set (passage-level evaluation).
func (p *Pipeline) Predict(ctx context.Context, recs []kilt.Record, byPassage bool, batch int, showProgress bool) (_ []kilt.Record, err error) {
	if batch < 0 || batch > MaxBatch {
		return nil, fmt.Errorf("pipeline: predict batch %d: want 0 (16) to %d", batch, MaxBatch)
	}
	if batch == 0 {
		batch = 16
	}
	ctx, span := startSpan(ctx, "re2g.predict", attrRecords.Int(len(recs)), attrBatchSize.Int(batch))
	defer func() { endSpan(span, err) }()
	var bar interface{ Add(int) error }
	if showProgress {
		b := progress.New(len(recs), "answer", "queries")
		defer b.Finish()
		bar = b
	}
	hasGen := p.gen != nil
	preds := make([]kilt.Record, 0, len(recs))
	for lo := 0; lo < len(recs); lo += batch {
		hi := min(len(recs), lo+batch)
		qs := make([]string, hi-lo)
		for i, r := range recs[lo:hi] {
			if strings.TrimSpace(r.Input) == "" {
				return nil, fmt.Errorf("record %q (line %d) has an empty input", r.ID, r.Line)
			}
			qs[i] = r.Input
		}
		res, err := p.AnswerBatch(ctx, qs)
		if err != nil {
			return nil, fmt.Errorf("records %d-%d: %w", lo+1, hi, err)
		}
		for i, r := range res {
			prov := make([]kilt.Provenance, 0, len(r.Provenance))
			for _, pv := range r.Provenance {
				id := pv.Page
				if byPassage {
					id = pv.ID
				}
				pr := kilt.Page(id, pv.Title, pv.Prob)
				pr["passage_id"] = pv.ID
				prov = append(prov, pr)
			}
			preds = append(preds, kilt.NewPrediction(recs[lo+i].ID, recs[lo+i].Input, r.Answer, hasGen, prov))
		}
		if bar != nil {
			bar.Add(hi - lo)
		}
	}
	return preds, nil
}
