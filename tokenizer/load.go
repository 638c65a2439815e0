package tokenizer

import (
	"bufio"
	"bytes"
	"encoding/json"

	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/text/unicode/norm"

	"github.com/re2g/re2g/internal/bom"
)

// Load reads a tokenizer from a tokenizer.json file, a vocab.txt file, or a
// folder holding one of: tokenizer.json; vocab.txt (BERT WordPiece);
// vocab.json + merges.txt (RoBERTa/BART when the vocabulary has <s> and
// </s>, GPT-2 otherwise); encoder.json + vocab.bpe (OpenAI's GPT-2 names).
func Load(path string) (*Tokenizer, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	t, err := load(path, st.IsDir())
	if err != nil {
		return nil, err
	}
	dir := path
	if !st.IsDir() {
		dir = filepath.Dir(path)
	}
	if n := readTokenizerConfig(dir).ModelMaxLength; n > 0 && n < 1<<30 {
		t.ModelMaxLength = int(n)
	}
	return t, nil
}

func load(path string, isDir bool) (*Tokenizer, error) {
	if !isDir {
		if filepath.Base(path) == "vocab.txt" || strings.HasSuffix(path, ".txt") {
			return loadVocabTxt(path, readTokenizerConfig(filepath.Dir(path)))
		}
		return LoadJSONFile(path)
	}
	exists := func(name string) bool {
		_, err := os.Stat(filepath.Join(path, name))
		return err == nil
	}
	cfg := readTokenizerConfig(path)
	switch {
	case exists("tokenizer.json"):
		t, err := LoadJSONFile(filepath.Join(path, "tokenizer.json"))
		if err != nil {
			return nil, err
		}
		// transformers' BERT tokenizer classes rebuild the normalizer from
		// tokenizer_config.json (do_lower_case defaulting to true) over
		// tokenizer.json's own.
		if _, ok := t.normalizer.(*bertNormalizer); ok && cfg.bertFamily() {
			t.normalizer = cfg.bertNormalizer()
		}
		return t, nil
	case exists("vocab.txt"):
		return loadVocabTxt(filepath.Join(path, "vocab.txt"), cfg)
	case exists("vocab.json") && exists("merges.txt"):
		return loadBPEFiles(filepath.Join(path, "vocab.json"), filepath.Join(path, "merges.txt"), cfg)
	case exists("encoder.json") && exists("vocab.bpe"):
		return loadBPEFiles(filepath.Join(path, "encoder.json"), filepath.Join(path, "vocab.bpe"), cfg)
	}
	return nil, errorf("%s: no tokenizer.json, vocab.txt, vocab.json+merges.txt or encoder.json+vocab.bpe", path)
}

// tokenizerConfig holds the tokenizer_config.json (and
// special_tokens_map.json) fields used when building a tokenizer from
// vocabulary files, as transformers' tokenizer classes build theirs.
type tokenizerConfig struct {
	DoLowerCase          *bool   `json:"do_lower_case"`
	StripAccents         *bool   `json:"strip_accents"`
	TokenizeChineseChars *bool   `json:"tokenize_chinese_chars"`
	AddPrefixSpace       *bool   `json:"add_prefix_space"`
	TokenizerClass       string  `json:"tokenizer_class"`
	ModelMaxLength       float64 `json:"model_max_length"`
	// AddedTokensDecoder is transformers' added_tokens_decoder: id → token.
	AddedTokensDecoder map[string]tokenSpec `json:"added_tokens_decoder"`

	// named are the named special tokens (unk_token, cls_token, ...):
	// tokenizer_config.json's, overridden by special_tokens_map.json's.
	named map[string]tokenSpec
	// extra are additional_special_tokens / extra_special_tokens.
	extra []tokenSpec
	// addedJSON is added_tokens.json (content → id), the legacy file.
	addedJSON map[string]int
	// modelType is config.json's model_type (to tell the tokenizer class
	// when tokenizer_config.json names none).
	modelType string
}

// tokenSpec is a special token as transformers writes it: a string, or an
// AddedToken dict with its matching options.
type tokenSpec struct {
	Content    string `json:"content"`
	LStrip     bool   `json:"lstrip"`
	RStrip     bool   `json:"rstrip"`
	Normalized *bool  `json:"normalized"`
	SingleWord bool   `json:"single_word"`
	Special    *bool  `json:"special"`
	dict       bool   // given as a dict (its options count), not a plain string
}

func (t *tokenSpec) UnmarshalJSON(b []byte) error {
	var str string
	if json.Unmarshal(b, &str) == nil {
		*t = tokenSpec{Content: str}
		return nil
	}
	type plain tokenSpec
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*t = tokenSpec(p)
	t.dict = true
	return nil
}

// readText reads a tokenizer file, a leading byte order mark dropped.
func readText(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return bom.Bytes(b)
}

var namedTokens = []string{"bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"}

func readTokenizerConfig(dir string) tokenizerConfig {
	var c tokenizerConfig
	c.named = map[string]tokenSpec{}
	// Best effort: these are optional hints, read as transformers reads them.
	for _, f := range []string{"tokenizer_config.json", "special_tokens_map.json"} {
		b, err := readText(filepath.Join(dir, f))
		if err != nil {
			continue
		}
		if f == "tokenizer_config.json" {
			_ = json.Unmarshal(b, &c)
		}
		var raw map[string]json.RawMessage
		if json.Unmarshal(b, &raw) != nil {
			continue
		}
		for _, k := range namedTokens {
			var t tokenSpec
			if v, ok := raw[k]; ok && json.Unmarshal(v, &t) == nil && t.Content != "" {
				c.named[k] = t
			}
		}
		for _, k := range []string{"additional_special_tokens", "extra_special_tokens"} {
			var ts []tokenSpec
			if v, ok := raw[k]; ok && json.Unmarshal(v, &ts) == nil {
				c.extra = append(c.extra, ts...)
			}
		}
	}
	if b, err := readText(filepath.Join(dir, "added_tokens.json")); err == nil {
		_ = json.Unmarshal(b, &c.addedJSON)
	}
	var mc struct {
		ModelType string `json:"model_type"`
	}
	if b, err := readText(filepath.Join(dir, "config.json")); err == nil && json.Unmarshal(b, &mc) == nil {
		c.modelType = mc.ModelType
	}
	return c
}

// token is the content of named special token name (default def).
func (c *tokenizerConfig) token(name, def string) string {
	if t, ok := c.named[name]; ok {
		return t.Content
	}
	return def
}

// specialTokens builds the added tokens transformers' tokenizer classes add
// for vocabulary files: the named special tokens (defaults given in
// defaults, name → content), additional special tokens,
// added_tokens_decoder's and added_tokens.json's. A token keeps the options
// of the first dict that describes it (special_tokens_map.json,
// tokenizer_config.json, added_tokens_decoder); a plain string has none.
// Contents not in the vocabulary get the next free ids.
func (c *tokenizerConfig) specialTokens(vocab map[string]int, defaults map[string]string) []*AddedToken {
	byContent := map[string]*AddedToken{}
	var out []*AddedToken
	next := 0
	for _, id := range vocab {
		next = max(next, id+1)
	}
	decoderIDs := map[string]int{}
	decoderSpec := map[string]tokenSpec{}
	for k, t := range c.AddedTokensDecoder {
		if id, err := strconv.Atoi(k); err == nil && t.Content != "" {
			decoderIDs[t.Content], decoderSpec[t.Content] = id, t
			next = max(next, id+1)
		}
	}
	add := func(t tokenSpec, special bool) {
		if t.Content == "" {
			return
		}
		if !t.dict {
			if d, ok := decoderSpec[t.Content]; ok {
				t = d
			}
		}
		if a, ok := byContent[t.Content]; ok {
			a.Special = a.Special || special
			return
		}
		id, ok := decoderIDs[t.Content]
		if !ok {
			if id, ok = vocab[t.Content]; !ok {
				id, next = next, next+1
			}
		}
		if t.Special != nil {
			special = *t.Special
		}
		a := &AddedToken{ID: id, Content: t.Content, LStrip: t.LStrip, RStrip: t.RStrip, SingleWord: t.SingleWord,
			Normalized: !special, Special: special}
		if t.Normalized != nil {
			a.Normalized = *t.Normalized
		}
		byContent[t.Content] = a
		out = append(out, a)
	}
	for _, name := range namedTokens {
		if t, ok := c.named[name]; ok {
			add(t, true)
		} else if d, ok := defaults[name]; ok {
			add(tokenSpec{Content: d}, true)
		}
	}
	for _, t := range c.extra {
		add(t, true)
	}
	ids := make([]int, 0, len(decoderIDs))
	for _, id := range decoderIDs {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	for _, id := range ids {
		for content, did := range decoderIDs {
			if did == id {
				t := decoderSpec[content]
				add(t, t.Special != nil && *t.Special)
			}
		}
	}
	for content, id := range c.addedJSON {
		if _, ok := byContent[content]; !ok {
			decoderIDs[content] = id
			add(tokenSpec{Content: content}, false)
		}
	}
	return out
}

// bertFamily are the tokenizer classes (and model types) that transformers
// builds with a BertNormalizer from do_lower_case, strip_accents and
// tokenize_chinese_chars (BertTokenizer and those derived from it), also
// over a tokenizer.json's own normalizer.
func (c *tokenizerConfig) bertFamily() bool {
	switch strings.TrimSuffix(c.TokenizerClass, "Fast") {
	case "BertTokenizer", "DistilBertTokenizer", "DPRQuestionEncoderTokenizer", "DPRContextEncoderTokenizer",
		"DPRReaderTokenizer", "ElectraTokenizer", "MobileBertTokenizer", "SqueezeBertTokenizer", "ConvBertTokenizer",
		"LayoutLMTokenizer", "RetriBertTokenizer", "LxmertTokenizer", "FunnelTokenizer":
		return true
	case "":
		switch c.modelType {
		case "bert", "distilbert", "dpr", "electra", "mobilebert", "squeezebert", "convbert", "layoutlm", "retribert", "lxmert":
			return true
		}
	}
	return false
}

// bertNormalizer is the normalizer transformers' BERT tokenizers build from
// the config (do_lower_case true, tokenize_chinese_chars true and
// strip_accents following the lower-casing unless set).
func (c *tokenizerConfig) bertNormalizer() *bertNormalizer {
	lower := boolOr(c.DoLowerCase, true)
	return &bertNormalizer{cleanText: true, chinese: boolOr(c.TokenizeChineseChars, true),
		stripAccents: boolOr(c.StripAccents, lower), lowercase: lower}
}

func boolOr(p *bool, d bool) bool {
	if p != nil {
		return *p
	}
	return d
}

func loadVocabTxt(path string, cfg tokenizerConfig) (*Tokenizer, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	defer f.Close()
	vocab := map[string]int{}
	sc := bufio.NewScanner(bom.Reader(f))
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		tok := strings.TrimRight(sc.Text(), "\r\n")
		if _, dup := vocab[tok]; !dup {
			vocab[tok] = len(vocab)
		} else {
			vocab[tok+"\x00dup"+fmt.Sprint(len(vocab))] = len(vocab)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("tokenizer: %s: %w", path, err)
	}
	unk := cfg.token("unk_token", "[UNK]")
	wp, err := newWordPiece(vocab, unk, "##", 100)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	t := &Tokenizer{
		normalizer:   cfg.bertNormalizer(),
		preTokenizer: bertPreTokenizer{},
		model:        wp,
		decoder:      wordPieceDecoder{prefix: "##", cleanup: true},
	}
	added := cfg.specialTokens(vocab, map[string]string{"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]",
		"cls_token": "[CLS]", "mask_token": "[MASK]"})
	t.setAdded(added)
	cls, okC := t.TokenToID(cfg.token("cls_token", "[CLS]"))
	sep, okS := t.TokenToID(cfg.token("sep_token", "[SEP]"))
	if !okC || !okS {
		return nil, errorf("%s: vocabulary lacks [CLS] or [SEP]", path)
	}
	t.template = &template{
		single: []tplPiece{{seq: -1, ids: []int{cls}}, {seq: 0}, {seq: -1, ids: []int{sep}}},
		pair: []tplPiece{{seq: -1, ids: []int{cls}}, {seq: 0}, {seq: -1, ids: []int{sep}},
			{seq: 1, typeID: 1}, {seq: -1, ids: []int{sep}, typeID: 1}},
	}
	t.setPad(cfg.token("pad_token", "[PAD]"))
	return t, nil
}

func readMerges(path string) ([][2]string, error) {
	b, err := readText(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	var merges [][2]string
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimRight(line, "\r")
		if line == "" || (i == 0 && strings.HasPrefix(line, "#version")) {
			continue
		}
		a, c, ok := strings.Cut(line, " ")
		if !ok || a == "" || c == "" || strings.Contains(c, " ") {
			return nil, errorf("%s:%d: bad merge line %q", path, i+1, line)
		}
		merges = append(merges, [2]string{a, c})
	}
	return merges, nil
}

func loadBPEFiles(vocabPath, mergesPath string, cfg tokenizerConfig) (*Tokenizer, error) {
	b, err := readText(vocabPath)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	var vocab map[string]int
	if err := json.Unmarshal(b, &vocab); err != nil {
		return nil, errorf("%s: %v", vocabPath, err)
	}
	merges, err := readMerges(mergesPath)
	if err != nil {
		return nil, err
	}
	m, err := newBPE(vocab, merges, "")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", vocabPath, err)
	}
	prefix := boolOr(cfg.AddPrefixSpace, false)
	t := &Tokenizer{
		preTokenizer: byteLevelPreTokenizer{addPrefixSpace: prefix, useRegex: true},
		model:        m,
		decoder:      byteLevelDecoder{},
		byteLevelPre: true,
	}
	_, okB := vocab["<s>"]
	_, okE := vocab["</s>"]
	if okB && okE {
		// RoBERTa / BART (transformers' RobertaTokenizer): cls A sep and
		// cls A sep sep B sep, special tokens as the config gives them.
		t.setAdded(cfg.specialTokens(vocab, map[string]string{"bos_token": "<s>", "eos_token": "</s>", "sep_token": "</s>",
			"cls_token": "<s>", "unk_token": "<unk>", "pad_token": "<pad>", "mask_token": "<mask>"}))
		cls, okC := t.TokenToID(cfg.token("cls_token", "<s>"))
		sep, okS := t.TokenToID(cfg.token("sep_token", "</s>"))
		if !okC || !okS {
			return nil, errorf("%s: vocabulary lacks the cls or sep token", vocabPath)
		}
		t.template = &template{
			single: []tplPiece{{seq: -1, ids: []int{cls}}, {seq: 0}, {seq: -1, ids: []int{sep}}},
			pair: []tplPiece{{seq: -1, ids: []int{cls}}, {seq: 0}, {seq: -1, ids: []int{sep, sep}},
				{seq: 1}, {seq: -1, ids: []int{sep}}},
		}
		t.setPad(cfg.token("pad_token", "<pad>"))
		return t, nil
	}
	var added []*AddedToken
	if id, ok := vocab["<|endoftext|>"]; ok {
		added = append(added, &AddedToken{ID: id, Content: "<|endoftext|>", Special: true, Normalized: true})
	}
	t.setAdded(added)
	return t, nil
}

func (t *Tokenizer) setAdded(added []*AddedToken) {
	t.added = added
	t.addedByID = map[int]*AddedToken{}
	t.addedByText = map[string]*AddedToken{}
	var raw, normed []*AddedToken
	for _, a := range added {
		t.addedByID[a.ID] = a
		t.addedByText[a.Content] = a
		if a.Normalized && t.normalizer != nil {
			normed = append(normed, a)
		} else {
			raw = append(raw, a)
		}
	}
	t.rawMatcher = newMatcher(raw)
	t.normMatcher = newMatcher(normed)
}

func (t *Tokenizer) setPad(tok string) {
	if id, ok := t.TokenToID(tok); ok {
		t.padID, t.padToken, t.hasPad = id, tok, true
	}
}

// --- tokenizer.json ---

type jsonTokenizer struct {
	Truncation *struct {
		MaxLength int    `json:"max_length"`
		Strategy  string `json:"strategy"`
	} `json:"truncation"`
	Padding *struct {
		PadID    int    `json:"pad_id"`
		PadToken string `json:"pad_token"`
	} `json:"padding"`
	AddedTokens   []*AddedToken   `json:"added_tokens"`
	Normalizer    json.RawMessage `json:"normalizer"`
	PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
	PostProcessor json.RawMessage `json:"post_processor"`
	Decoder       json.RawMessage `json:"decoder"`
	Model         json.RawMessage `json:"model"`
}

// LoadJSONFile reads an HF tokenizer.json file.
func LoadJSONFile(path string) (*Tokenizer, error) {
	b, err := readText(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	t, err := LoadJSON(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

func isNull(m json.RawMessage) bool {
	m = bytes.TrimSpace(m)
	return len(m) == 0 || string(m) == "null"
}

// LoadJSON parses the contents of an HF tokenizer.json.
func LoadJSON(data []byte) (*Tokenizer, error) {
	var j jsonTokenizer
	if err := json.Unmarshal(data, &j); err != nil {
		return nil, errorf("parse tokenizer.json: %v", err)
	}
	t := &Tokenizer{}
	var err error
	if !isNull(j.Normalizer) {
		if t.normalizer, err = parseNormalizer(j.Normalizer); err != nil {
			return nil, err
		}
	}
	if isNull(j.PreTokenizer) {
		t.preTokenizer = wholePreTokenizer{}
	} else if t.preTokenizer, t.byteLevelPre, err = parsePreTokenizer(j.PreTokenizer); err != nil {
		return nil, err
	}
	if isNull(j.Model) {
		return nil, errorf("tokenizer.json has no model")
	}
	if t.model, err = parseModel(j.Model); err != nil {
		return nil, err
	}
	if !isNull(j.Decoder) {
		if t.decoder, err = parseDecoder(j.Decoder); err != nil {
			return nil, err
		}
	}
	t.setAdded(j.AddedTokens)
	if !isNull(j.PostProcessor) {
		if t.template, err = parsePostProcessor(j.PostProcessor, t); err != nil {
			return nil, err
		}
	}
	if j.Padding != nil {
		t.padID, t.padToken, t.hasPad = j.Padding.PadID, j.Padding.PadToken, true
	} else {
		for _, s := range []string{"[PAD]", "<pad>"} {
			if !t.hasPad {
				t.setPad(s)
			}
		}
	}
	if j.Truncation != nil {
		o := &Options{MaxLength: j.Truncation.MaxLength, Truncation: LongestFirst}
		switch j.Truncation.Strategy {
		case "OnlyFirst":
			o.Truncation = OnlyFirst
		case "OnlySecond":
			o.Truncation = OnlySecond
		}
		t.DefaultTruncation = o
	}
	return t, nil
}

type typed struct {
	Type string `json:"type"`
}

func typeOf(m json.RawMessage) (string, error) {
	var x typed
	if err := json.Unmarshal(m, &x); err != nil {
		return "", errorf("parse component: %v", err)
	}
	return x.Type, nil
}

type seqNormalizer []normalizer

func (s seqNormalizer) normalize(x string) string {
	for _, n := range s {
		x = n.normalize(x)
	}
	return x
}

type funcNormalizer func(string) string

func (f funcNormalizer) normalize(s string) string { return f(s) }

func parseNormalizer(m json.RawMessage) (normalizer, error) {
	typ, err := typeOf(m)
	if err != nil {
		return nil, err
	}
	switch typ {
	case "BertNormalizer":
		var c struct {
			CleanText          bool  `json:"clean_text"`
			HandleChineseChars bool  `json:"handle_chinese_chars"`
			StripAccents       *bool `json:"strip_accents"`
			Lowercase          bool  `json:"lowercase"`
		}
		if err := json.Unmarshal(m, &c); err != nil {
			return nil, errorf("BertNormalizer: %v", err)
		}
		return &bertNormalizer{cleanText: c.CleanText, chinese: c.HandleChineseChars,
			stripAccents: boolOr(c.StripAccents, c.Lowercase), lowercase: c.Lowercase}, nil
	case "Lowercase":
		return funcNormalizer(lowerRunes), nil
	case "StripAccents":
		return funcNormalizer(func(s string) string { return dropMn(s) }), nil
	case "NFD":
		return funcNormalizer(norm.NFD.String), nil
	case "NFC":
		return funcNormalizer(norm.NFC.String), nil
	case "NFKD":
		return funcNormalizer(norm.NFKD.String), nil
	case "NFKC":
		return funcNormalizer(norm.NFKC.String), nil
	case "Sequence":
		var c struct {
			Normalizers []json.RawMessage `json:"normalizers"`
		}
		if err := json.Unmarshal(m, &c); err != nil {
			return nil, errorf("Sequence normalizer: %v", err)
		}
		var s seqNormalizer
		for _, x := range c.Normalizers {
			n, err := parseNormalizer(x)
			if err != nil {
				return nil, err
			}
			s = append(s, n)
		}
		return s, nil
	}
	return nil, errorf("unsupported normalizer %q", typ)
}

type wholePreTokenizer struct{}

func (wholePreTokenizer) split(s string, emit func(string)) { emit(s) }

func parsePreTokenizer(m json.RawMessage) (preTokenizer, bool, error) {
	typ, err := typeOf(m)
	if err != nil {
		return nil, false, err
	}
	switch typ {
	case "BertPreTokenizer":
		return bertPreTokenizer{}, false, nil
	case "ByteLevel":
		var c struct {
			AddPrefixSpace bool  `json:"add_prefix_space"`
			UseRegex       *bool `json:"use_regex"`
		}
		if err := json.Unmarshal(m, &c); err != nil {
			return nil, false, errorf("ByteLevel pre-tokenizer: %v", err)
		}
		return byteLevelPreTokenizer{addPrefixSpace: c.AddPrefixSpace, useRegex: boolOr(c.UseRegex, true)}, true, nil
	case "Sequence":
		var c struct {
			PreTokenizers []json.RawMessage `json:"pretokenizers"`
		}
		if err := json.Unmarshal(m, &c); err != nil {
			return nil, false, errorf("Sequence pre-tokenizer: %v", err)
		}
		if len(c.PreTokenizers) == 1 {
			return parsePreTokenizer(c.PreTokenizers[0])
		}
	}
	return nil, false, errorf("unsupported pre-tokenizer %q", typ)
}

func parseModel(m json.RawMessage) (model, error) {
	typ, err := typeOf(m)
	if err != nil {
		return nil, err
	}
	switch typ {
	case "WordPiece":
		var c struct {
			UnkToken                string         `json:"unk_token"`
			ContinuingSubwordPrefix string         `json:"continuing_subword_prefix"`
			MaxInputCharsPerWord    int            `json:"max_input_chars_per_word"`
			Vocab                   map[string]int `json:"vocab"`
		}
		if err := json.Unmarshal(m, &c); err != nil {
			return nil, errorf("WordPiece model: %v", err)
		}
		if c.MaxInputCharsPerWord == 0 {
			c.MaxInputCharsPerWord = 100
		}
		return newWordPiece(c.Vocab, c.UnkToken, c.ContinuingSubwordPrefix, c.MaxInputCharsPerWord)
	case "BPE", "":
		var c struct {
			UnkToken *string           `json:"unk_token"`
			Dropout  *float64          `json:"dropout"`
			Prefix   string            `json:"continuing_subword_prefix"`
			Suffix   string            `json:"end_of_word_suffix"`
			Vocab    map[string]int    `json:"vocab"`
			Merges   []json.RawMessage `json:"merges"`
		}
		if err := json.Unmarshal(m, &c); err != nil {
			return nil, errorf("BPE model: %v", err)
		}
		if c.Vocab == nil {
			return nil, errorf("unsupported model %q", typ)
		}
		if c.Prefix != "" || c.Suffix != "" || (c.Dropout != nil && *c.Dropout > 0) {
			return nil, errorf("BPE with subword prefix/suffix or dropout is not supported")
		}
		merges := make([][2]string, 0, len(c.Merges))
		for i, raw := range c.Merges {
			var s string
			var pair [2]string
			if json.Unmarshal(raw, &s) == nil {
				a, b, ok := strings.Cut(s, " ")
				if !ok {
					return nil, errorf("BPE merge %d: %q", i, s)
				}
				pair = [2]string{a, b}
			} else if err := json.Unmarshal(raw, &pair); err != nil {
				return nil, errorf("BPE merge %d: %v", i, err)
			}
			merges = append(merges, pair)
		}
		unk := ""
		if c.UnkToken != nil {
			unk = *c.UnkToken
		}
		return newBPE(c.Vocab, merges, unk)
	}
	return nil, errorf("unsupported model %q", typ)
}

func parseDecoder(m json.RawMessage) (decoder, error) {
	typ, err := typeOf(m)
	if err != nil {
		return nil, err
	}
	switch typ {
	case "WordPiece":
		var c struct {
			Prefix  string `json:"prefix"`
			Cleanup *bool  `json:"cleanup"`
		}
		if err := json.Unmarshal(m, &c); err != nil {
			return nil, errorf("WordPiece decoder: %v", err)
		}
		return wordPieceDecoder{prefix: c.Prefix, cleanup: boolOr(c.Cleanup, true)}, nil
	case "ByteLevel":
		return byteLevelDecoder{}, nil
	}
	return nil, errorf("unsupported decoder %q", typ)
}

func parsePostProcessor(m json.RawMessage, t *Tokenizer) (*template, error) {
	typ, err := typeOf(m)
	if err != nil {
		return nil, err
	}
	type tok2 [2]json.RawMessage
	pairOf := func(x tok2) (int, error) {
		var id int
		if err := json.Unmarshal(x[1], &id); err != nil {
			return 0, errorf("%s: bad special token: %v", typ, err)
		}
		return id, nil
	}
	switch typ {
	case "ByteLevel":
		return nil, nil
	case "BertProcessing", "RobertaProcessing":
		var c struct {
			Sep tok2 `json:"sep"`
			Cls tok2 `json:"cls"`
		}
		if err := json.Unmarshal(m, &c); err != nil {
			return nil, errorf("%s: %v", typ, err)
		}
		sep, err := pairOf(c.Sep)
		if err != nil {
			return nil, err
		}
		cls, err := pairOf(c.Cls)
		if err != nil {
			return nil, err
		}
		if typ == "BertProcessing" {
			return &template{
				single: []tplPiece{{seq: -1, ids: []int{cls}}, {seq: 0}, {seq: -1, ids: []int{sep}}},
				pair: []tplPiece{{seq: -1, ids: []int{cls}}, {seq: 0}, {seq: -1, ids: []int{sep}},
					{seq: 1, typeID: 1}, {seq: -1, ids: []int{sep}, typeID: 1}},
			}, nil
		}
		return &template{
			single: []tplPiece{{seq: -1, ids: []int{cls}}, {seq: 0}, {seq: -1, ids: []int{sep}}},
			pair: []tplPiece{{seq: -1, ids: []int{cls}}, {seq: 0}, {seq: -1, ids: []int{sep, sep}},
				{seq: 1}, {seq: -1, ids: []int{sep}}},
		}, nil
	case "TemplateProcessing":
		type piece struct {
			SpecialToken *struct {
				ID     string `json:"id"`
				TypeID int    `json:"type_id"`
			} `json:"SpecialToken"`
			Sequence *struct {
				ID     string `json:"id"`
				TypeID int    `json:"type_id"`
			} `json:"Sequence"`
		}
		var c struct {
			Single        []piece `json:"single"`
			Pair          []piece `json:"pair"`
			SpecialTokens map[string]struct {
				IDs []int `json:"ids"`
			} `json:"special_tokens"`
		}
		if err := json.Unmarshal(m, &c); err != nil {
			return nil, errorf("TemplateProcessing: %v", err)
		}
		conv := func(ps []piece) ([]tplPiece, error) {
			var out []tplPiece
			for _, p := range ps {
				switch {
				case p.SpecialToken != nil:
					st, ok := c.SpecialTokens[p.SpecialToken.ID]
					if !ok {
						return nil, errorf("TemplateProcessing: special token %q not defined", p.SpecialToken.ID)
					}
					out = append(out, tplPiece{seq: -1, ids: st.IDs, typeID: p.SpecialToken.TypeID})
				case p.Sequence != nil:
					seq := 0
					if p.Sequence.ID == "B" {
						seq = 1
					}
					out = append(out, tplPiece{seq: seq, typeID: p.Sequence.TypeID})
				default:
					return nil, errorf("TemplateProcessing: empty piece")
				}
			}
			return out, nil
		}
		var tp template
		if tp.single, err = conv(c.Single); err != nil {
			return nil, err
		}
		if tp.pair, err = conv(c.Pair); err != nil {
			return nil, err
		}
		return &tp, nil
	}
	return nil, errorf("unsupported post-processor %q", typ)
}

func dropMn(s string) string {
	var b strings.Builder
	for _, r := range s {
		if !isMn(r) {
			b.WriteRune(r)
		}
	}
	return b.String()
}
