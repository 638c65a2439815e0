package bm25

import (
	"github.com/blevesearch/bleve/v2/analysis"
	"github.com/blevesearch/bleve/v2/analysis/analyzer/custom"
	"github.com/blevesearch/bleve/v2/analysis/lang/en"
	"github.com/blevesearch/bleve/v2/analysis/token/lowercase"
	"github.com/blevesearch/bleve/v2/analysis/token/porter"
	"github.com/blevesearch/bleve/v2/analysis/token/stop"
	"github.com/blevesearch/bleve/v2/analysis/tokenizer/unicode"
	"github.com/blevesearch/bleve/v2/analysis/tokenmap"
	"github.com/blevesearch/bleve/v2/mapping"
)

// AnalyzerName is the English analyzer every re2g BM25 index uses: Unicode
// word segmentation, English possessive removal, lower-casing, Lucene's 33
// English stop words and the Porter stemmer — the chain of Anserini's
// default English analyzer, so that published BM25 figures carry over.
const AnalyzerName = "re2g_en"

const stopMapName = "re2g_stop_lucene_en"

// luceneStopWords is Lucene's EnglishAnalyzer.ENGLISH_STOP_WORDS_SET.
var luceneStopWords = []any{
	"a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into",
	"is", "it", "no", "not", "of", "on", "or", "such", "that", "the", "their", "then",
	"there", "these", "they", "this", "to", "was", "will", "with",
}

// addAnalyzer registers the analyzer (and its stop list) on m.
func addAnalyzer(m *mapping.IndexMappingImpl) error {
	if err := m.AddCustomTokenMap(stopMapName, map[string]any{
		"type":   tokenmap.Name,
		"tokens": luceneStopWords,
	}); err != nil {
		return err
	}
	if err := m.AddCustomTokenFilter("re2g_stop_en", map[string]any{
		"type":           stop.Name,
		"stop_token_map": stopMapName,
	}); err != nil {
		return err
	}
	return m.AddCustomAnalyzer(AnalyzerName, map[string]any{
		"type":      custom.Name,
		"tokenizer": unicode.Name,
		"token_filters": []any{
			en.PossessiveName,
			lowercase.Name,
			"re2g_stop_en",
			porter.Name,
		},
	})
}

// terms analyses text and counts each distinct term.
func terms(a analysis.Analyzer, text string) map[string]int {
	out := map[string]int{}
	for _, t := range a.Analyze([]byte(text)) {
		out[string(t.Term)]++
	}
	return out
}
