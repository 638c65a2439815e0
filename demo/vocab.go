package demo

import (
	"encoding/json"
	"sort"
	"strings"
	"unicode"

	"github.com/re2g/re2g/internal/atomicfile"
)

// WriteTokenizer writes a BERT WordPiece tokenizer.json (lower-casing, the
// same normalizer, pre-tokenizer and [CLS]/[SEP] template as
// bert-base-uncased) whose vocabulary is learnt from texts: the special
// tokens, every character seen (alone and as a "##" continuation, so that
// nothing is unknown), then the most frequent words. The demo trains its
// models from scratch, so it needs no pretrained vocabulary, only one that
// fits its corpus.
func WriteTokenizer(path string, texts []string, words int) (int, error) {
	counts := map[string]int{}
	chars := map[rune]bool{}
	for _, t := range texts {
		for _, w := range basicTokens(t) {
			counts[w]++
			for _, r := range w {
				chars[r] = true
			}
		}
	}
	vocab := []string{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}
	var cs []string
	for r := range chars {
		cs = append(cs, string(r))
	}
	sort.Strings(cs)
	vocab = append(vocab, cs...)
	for _, c := range cs {
		vocab = append(vocab, "##"+c)
	}
	type wc struct {
		w string
		n int
	}
	var ws []wc
	for w, n := range counts {
		if len([]rune(w)) > 1 {
			ws = append(ws, wc{w, n})
		}
	}
	sort.Slice(ws, func(i, j int) bool {
		if ws[i].n != ws[j].n {
			return ws[i].n > ws[j].n
		}
		return ws[i].w < ws[j].w
	})
	for i := 0; i < len(ws) && i < words; i++ {
		vocab = append(vocab, ws[i].w)
	}
	ids := make(map[string]int, len(vocab))
	for i, v := range vocab {
		ids[v] = i
	}
	special := func(tok string) map[string]any {
		return map[string]any{"id": ids[tok], "content": tok, "single_word": false, "lstrip": false, "rstrip": false,
			"normalized": false, "special": true}
	}
	tj := map[string]any{
		"version":      "1.0",
		"truncation":   nil,
		"padding":      nil,
		"added_tokens": []any{special("[PAD]"), special("[UNK]"), special("[CLS]"), special("[SEP]"), special("[MASK]")},
		"normalizer": map[string]any{"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true,
			"strip_accents": nil, "lowercase": true},
		"pre_tokenizer": map[string]any{"type": "BertPreTokenizer"},
		"post_processor": map[string]any{
			"type":   "TemplateProcessing",
			"single": []any{spec("[CLS]", 0), seq("A", 0), spec("[SEP]", 0)},
			"pair":   []any{spec("[CLS]", 0), seq("A", 0), spec("[SEP]", 0), seq("B", 1), spec("[SEP]", 1)},
			"special_tokens": map[string]any{
				"[CLS]": map[string]any{"id": "[CLS]", "ids": []int{ids["[CLS]"]}, "tokens": []string{"[CLS]"}},
				"[SEP]": map[string]any{"id": "[SEP]", "ids": []int{ids["[SEP]"]}, "tokens": []string{"[SEP]"}},
			},
		},
		"decoder": map[string]any{"type": "WordPiece", "prefix": "##", "cleanup": true},
		"model": map[string]any{"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
			"max_input_chars_per_word": 100, "vocab": ids},
	}
	b, err := json.Marshal(tj)
	if err != nil {
		return 0, err
	}
	return len(vocab), atomicfile.WriteFile(path, b, 0o644)
}

func spec(tok string, typeID int) map[string]any {
	return map[string]any{"SpecialToken": map[string]any{"id": tok, "type_id": typeID}}
}

func seq(id string, typeID int) map[string]any {
	return map[string]any{"Sequence": map[string]any{"id": id, "type_id": typeID}}
}

// basicTokens splits lower-cased text on white space and punctuation, as
// BERT's basic tokenizer does (accents are kept: they are rare here).
func basicTokens(s string) []string {
	var out []string
	var cur strings.Builder
	flush := func() {
		if cur.Len() > 0 {
			out = append(out, cur.String())
			cur.Reset()
		}
	}
	for _, r := range strings.ToLower(s) {
		switch {
		case unicode.IsSpace(r) || unicode.IsControl(r):
			flush()
		case unicode.IsPunct(r) || unicode.IsSymbol(r) || (r >= 33 && r <= 47) || (r >= 58 && r <= 64) || (r >= 91 && r <= 96) || (r >= 123 && r <= 126):
			flush()
			out = append(out, string(r))
		default:
			cur.WriteRune(r)
		}
	}
	flush()
	return out
}
