package tokenizer

import (
	"bufio"
	"compress/gzip"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// dataDir is the shared, read-only data folder (see the project README).
const dataDir = "../../shared/data"

// refLine is one fixture line made by scripts/tokenizer_reference.js.
type refLine struct {
	Src           string `json:"src"`
	I             int    `json:"i"`
	Text          *string
	Pair          []int    `json:"pair"`
	TextPair      []string `json:"text_pair"`
	Error         bool     `json:"error"`
	Truncation    string   `json:"truncation"`
	MaxLength     int      `json:"max_length"`
	IDs           []int    `json:"ids"`
	IDsNoSpecial  []int    `json:"ids_no_special"`
	TypeIDs       []int    `json:"type_ids"`
	Decoded       *string
	DecodedAll    *string `json:"decoded_all"`
	DecodedSHA1   string  `json:"decoded_sha1"`
	DecodedAllSHA string  `json:"decoded_all_sha1"`
}

func readGzipLines(t testing.TB, path string, each func(line []byte)) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(zr)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		if len(sc.Bytes()) > 0 {
			each(sc.Bytes())
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
}

var (
	sourcesOnce sync.Once
	sourcesVal  map[string][]string
	sourcesErr  error
)

// loadSources rebuilds the text lists of the reference script from the data
// sets (keep in sync with sources() in scripts/tokenizer_reference.js).
func loadSources(t testing.TB) map[string][]string {
	t.Helper()
	sourcesOnce.Do(func() { sourcesVal, sourcesErr = readSources() })
	if sourcesErr != nil {
		t.Skipf("shared data not available: %v", sourcesErr)
	}
	return sourcesVal
}

func readSources() (map[string][]string, error) {
	out := map[string][]string{}
	b, err := os.ReadFile(filepath.Join(dataDir, "squadshifts/new_wiki_v1.0.json"))
	if err != nil {
		return nil, err
	}
	var squad struct {
		Data []struct {
			Paragraphs []struct {
				Context string `json:"context"`
				Qas     []struct {
					Question string `json:"question"`
				} `json:"qas"`
			} `json:"paragraphs"`
		} `json:"data"`
	}
	if err := json.Unmarshal(b, &squad); err != nil {
		return nil, err
	}
	for _, a := range squad.Data {
		for _, p := range a.Paragraphs {
			out["squad.p"] = append(out["squad.p"], p.Context)
			for _, q := range p.Qas {
				out["squad.q"] = append(out["squad.q"], q.Question)
			}
		}
	}
	gz := func(name string, each func(string) error) error {
		f, err := os.Open(filepath.Join(dataDir, name))
		if err != nil {
			return err
		}
		defer f.Close()
		zr, err := gzip.NewReader(f)
		if err != nil {
			return err
		}
		sc := bufio.NewScanner(zr)
		sc.Buffer(make([]byte, 1<<20), 64<<20)
		for sc.Scan() {
			if sc.Text() != "" {
				if err := each(sc.Text()); err != nil {
					return err
				}
			}
		}
		return sc.Err()
	}
	if err := gz("scifact/topics.beir-v1.0.0-scifact.test.tsv.gz", func(l string) error {
		_, text, _ := strings.Cut(l, "\t")
		out["scifact.claim"] = append(out["scifact.claim"], text)
		return nil
	}); err != nil {
		return nil, err
	}
	for name, key := range map[string]string{"arguana/queries.jsonl.gz": "arguana.q", "arguana/corpus.jsonl.gz": "arguana.doc"} {
		if err := gz(name, func(l string) error {
			var d struct {
				Text string `json:"text"`
			}
			if err := json.Unmarshal([]byte(l), &d); err != nil {
				return err
			}
			out[key] = append(out[key], d.Text)
			return nil
		}); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func sha16(s string) string {
	h := sha1.Sum([]byte(s))
	return hex.EncodeToString(h[:])[:16]
}

// checkReference compares tok with one fixture file on every line.
func checkReference(t *testing.T, tok *Tokenizer, fixture string) {
	src := loadSources(t)
	var n, bad int
	readGzipLines(t, filepath.Join("../testdata/tokenizer", fixture), func(b []byte) {
		var r refLine
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatal(err)
		}
		n++
		fail := func(format string, args ...any) {
			bad++
			if bad <= 15 {
				t.Errorf(format, args...)
			}
		}
		if r.Pair != nil || r.TextPair != nil {
			var a, b string
			if r.Pair != nil {
				a, b = src["squad.q"][r.Pair[0]], src["squad.p"][r.Pair[1]]
			} else {
				a, b = r.TextPair[0], r.TextPair[1]
			}
			opts := Options{MaxLength: r.MaxLength}
			if r.Truncation != "none" {
				opts.Truncation = Truncation(r.Truncation)
			}
			e, err := tok.EncodeWith(a, b, true, opts)
			if r.Error {
				if err == nil {
					fail("pair %q %q %s %d: want an error, got %v", a, b, r.Truncation, r.MaxLength, e.IDs)
				}
				return
			}
			if err != nil {
				fail("pair %v %s %d: %v", r.Pair, r.Truncation, r.MaxLength, err)
				return
			}
			if !slices.Equal(e.IDs, r.IDs) || !slices.Equal(e.TypeIDs, r.TypeIDs) {
				fail("pair %v %s %d:\n got %v %v\nwant %v %v", r.Pair, r.Truncation, r.MaxLength, e.IDs, e.TypeIDs, r.IDs, r.TypeIDs)
			}
			return
		}
		var text, name string
		if r.Text != nil {
			text, name = *r.Text, fmt.Sprintf("%q", *r.Text)
		} else {
			list := src[r.Src]
			if r.I >= len(list) {
				t.Fatalf("%s[%d]: source too short", r.Src, r.I)
			}
			text, name = list[r.I], fmt.Sprintf("%s[%d]", r.Src, r.I)
		}
		if len(name) > 200 {
			name = name[:200] + "…"
		}
		e := tok.Encode(text)
		if !slices.Equal(e.IDs, r.IDs) {
			fail("%s:\n got %v\nwant %v", name, e.IDs, r.IDs)
			return
		}
		if r.IDsNoSpecial != nil {
			ns, err := tok.EncodeWith(text, "", false, Options{NoSpecialToken: true})
			if err != nil || !slices.Equal(ns.IDs, r.IDsNoSpecial) {
				fail("%s without special tokens:\n got %v (%v)\nwant %v", name, ns.IDs, err, r.IDsNoSpecial)
			}
		}
		wantTypes := r.TypeIDs
		if wantTypes == nil {
			wantTypes = make([]int, len(r.IDs))
		}
		if !slices.Equal(e.TypeIDs, wantTypes) {
			fail("%s: type ids %v, want %v", name, e.TypeIDs, wantTypes)
		}
		dec, err := tok.Decode(e.IDs, true)
		if err != nil {
			fail("%s: decode: %v", name, err)
			return
		}
		decAll, err := tok.Decode(e.IDs, false)
		if err != nil {
			fail("%s: decode: %v", name, err)
			return
		}
		if r.Decoded != nil && (dec != *r.Decoded || decAll != *r.DecodedAll) {
			fail("%s: decoded %q / %q, want %q / %q", name, dec, decAll, *r.Decoded, *r.DecodedAll)
		}
		if r.Decoded == nil && (sha16(dec) != r.DecodedSHA1 || sha16(decAll) != r.DecodedAllSHA) {
			fail("%s: decoded text differs from the reference (%q)", name, dec)
		}
	})
	if bad > 0 {
		t.Errorf("%d of %d fixture lines differ", bad, n)
	}

	if n < 4000 {
		t.Errorf("only %d fixture lines", n)
	}
	t.Logf("%d fixture lines compared", n)
}

func loadOrSkip(t testing.TB, path string) *Tokenizer {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		t.Skipf("shared data not available: %v", err)
	}
	tok, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestReferenceBertTokenizerJSON(t *testing.T) {
	tok := loadOrSkip(t, filepath.Join(dataDir, "tokenizers/bert-base-uncased/tokenizer.json"))
	checkReference(t, tok, "ref_bert-base-uncased.jsonl.gz")
}

func TestReferenceGPT2(t *testing.T) {
	tok := loadOrSkip(t, filepath.Join(dataDir, "tokenizers/gpt2-bpe"))
	checkReference(t, tok, "ref_gpt2.jsonl.gz")
}

// TestReferenceRobertaStyleFolder builds a RoBERTa/BART-style folder
// (vocab.json + merges.txt with <s> <pad> </s> <unk> <mask> appended to the
// GPT-2 vocabulary, as the reference script does) and checks its templates.
func TestReferenceRobertaStyleFolder(t *testing.T) {
	src := filepath.Join(dataDir, "tokenizers/gpt2-bpe")
	if _, err := os.Stat(src); err != nil {
		t.Skipf("shared data not available: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(src, "encoder.json"))
	if err != nil {
		t.Fatal(err)
	}
	var vocab map[string]int
	if err := json.Unmarshal(b, &vocab); err != nil {
		t.Fatal(err)
	}
	n := len(vocab)
	for i, s := range []string{"<s>", "<pad>", "</s>", "<unk>", "<mask>"} {
		vocab[s] = n + i
	}
	dir := t.TempDir()
	vb, _ := json.Marshal(vocab)
	if err := os.WriteFile(filepath.Join(dir, "vocab.json"), vb, 0o644); err != nil {
		t.Fatal(err)
	}
	merges, err := os.ReadFile(filepath.Join(src, "vocab.bpe"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "merges.txt"), merges, 0o644); err != nil {
		t.Fatal(err)
	}
	// The reference's <mask> strips the space before it, as the
	// special_tokens_map.json that transformers 4.x saves for RoBERTa/BART
	// says (a plain "<mask>" string means no lstrip in transformers 5).
	smap := `{"mask_token": {"content": "<mask>", "lstrip": true, "normalized": false, "rstrip": false, "single_word": false}}`
	if err := os.WriteFile(filepath.Join(dir, "special_tokens_map.json"), []byte(smap), 0o644); err != nil {
		t.Fatal(err)
	}
	tok, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	checkReference(t, tok, "ref_roberta-style.jsonl.gz")
}

// TestReferenceBertVocabTxt rebuilds bert-base-uncased from a vocab.txt and
// checks it against the same fixture as its tokenizer.json.
func TestReferenceBertVocabTxt(t *testing.T) {
	path := filepath.Join(dataDir, "tokenizers/bert-base-uncased/tokenizer.json")
	if _, err := os.Stat(path); err != nil {
		t.Skipf("shared data not available: %v", err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var j struct {
		Model struct {
			Vocab map[string]int `json:"vocab"`
		} `json:"model"`
	}
	if err := json.Unmarshal(b, &j); err != nil {
		t.Fatal(err)
	}
	toks := make([]string, len(j.Model.Vocab))
	for s, id := range j.Model.Vocab {
		toks[id] = s
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "vocab.txt"), []byte(strings.Join(toks, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tok, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	checkReference(t, tok, "ref_bert-base-uncased.jsonl.gz")
}

// bpeTokenizerJSON writes the tokenizer.json that the reference script builds
// for GPT-2 (roberta false) or the RoBERTa-style tokenizer (roberta true), so
// that the tokenizer.json loader is checked for BPE too.
func bpeTokenizerJSON(t *testing.T, roberta bool) []byte {
	src := filepath.Join(dataDir, "tokenizers/gpt2-bpe")
	if _, err := os.Stat(src); err != nil {
		t.Skipf("shared data not available: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(src, "encoder.json"))
	if err != nil {
		t.Fatal(err)
	}
	var vocab map[string]int
	if err := json.Unmarshal(b, &vocab); err != nil {
		t.Fatal(err)
	}
	merges, err := readMerges(filepath.Join(src, "vocab.bpe"))
	if err != nil {
		t.Fatal(err)
	}
	mergeAny := make([]any, len(merges)) // both spellings of a merge occur in the wild
	for i, m := range merges {
		if i%2 == 0 {
			mergeAny[i] = m[0] + " " + m[1]
		} else {
			mergeAny[i] = []string{m[0], m[1]}
		}
	}
	byteLevel := map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}
	j := map[string]any{
		"version": "1.0", "truncation": nil, "padding": nil, "normalizer": nil,
		"pre_tokenizer": byteLevel,
		"decoder":       map[string]any{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
		"model": map[string]any{"type": "BPE", "dropout": nil, "unk_token": nil, "continuing_subword_prefix": "",
			"end_of_word_suffix": "", "fuse_unk": false, "byte_fallback": false, "vocab": vocab, "merges": mergeAny},
	}
	if roberta {
		n := len(vocab)
		var added []any
		for i, s := range []string{"<s>", "<pad>", "</s>", "<unk>", "<mask>"} {
			vocab[s] = n + i
			added = append(added, map[string]any{"id": n + i, "content": s, "single_word": false,
				"lstrip": s == "<mask>", "rstrip": false, "normalized": false, "special": true})
		}
		j["added_tokens"] = added
		j["post_processor"] = map[string]any{"type": "RobertaProcessing", "sep": []any{"</s>", vocab["</s>"]},
			"cls": []any{"<s>", vocab["<s>"]}, "trim_offsets": true, "add_prefix_space": false}
	} else {
		j["added_tokens"] = []any{map[string]any{"id": vocab["<|endoftext|>"], "content": "<|endoftext|>",
			"single_word": false, "lstrip": false, "rstrip": false, "normalized": true, "special": true}}
		j["post_processor"] = map[string]any{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true}
	}
	out, err := json.Marshal(j)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestReferenceBPETokenizerJSON(t *testing.T) {
	for _, c := range []struct {
		roberta bool
		fixture string
	}{{false, "ref_gpt2.jsonl.gz"}, {true, "ref_roberta-style.jsonl.gz"}} {
		t.Run(c.fixture, func(t *testing.T) {
			tok, err := LoadJSON(bpeTokenizerJSON(t, c.roberta))
			if err != nil {
				t.Fatal(err)
			}
			checkReference(t, tok, c.fixture)
		})
	}
}
