// Package kilt reads and writes KILT task files (gold datapoints and
// predictions) and computes KILT's metrics exactly as its official scripts
// eval_retrieval.py and eval_downstream.py do: R-Precision, precision, recall
// and success rate at k, exact match, token F1, accuracy, ROUGE-L, and the
// KILT variants that count the downstream score only where R-Precision is 1.
//
// A KILT line is {"id", "input", "output": [{"answer", "provenance":
// [{"wikipedia_id", "title", ...}]}], "meta"}; a gold datapoint may hold
// several outputs (alternative answers, alternative evidence sets), a
// prediction holds exactly one.
//
// The scripts are Python; the Python string operations they depend on
// (lower-casing with the final-sigma rule, white space, the \w of regular
// expressions, str() of ids) are reproduced here, and ROUGE-L follows the
// rouge package (1.0.1) that KILT calls. scripts/kilt_crosscheck.py compares
// the results with the official scripts on generated files. The one known
// source of difference is the Unicode version: characters added after
// Python's tables (Unicode 14 in Python 3.11) may count as letters here.
//
// Training data: PassageMap (positives.go) finds the positive passages of an
// example from its provenance (page and paragraph range) as IBM's Re2G
// reference does (kilt2positive_pids.py), over a corpus split with
// data.SplitKILTSource.
package kilt

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/re2g/re2g/internal/atomicfile"
	"github.com/re2g/re2g/internal/bom"
)

// MaxLineBytes bounds one line of a KILT file.
const MaxLineBytes = 64 << 20

// Record is one line of a KILT file.
type Record struct {
	ID     string   // the id as Python's str() renders it (ids may be numbers)
	Input  string   // the request: question, claim, dialogue history
	Output []Output // gold: one or more; prediction: exactly one
	// Extra holds the other top-level keys (such as "meta") as read, so that a
	// file survives a round trip.
	Extra map[string]json.RawMessage
	// Line is the 1-based line the record was read from (0 if built in code).
	Line int

	rawID    json.RawMessage
	hasInput bool
}

// Output is one output of a record: an answer, its provenance, or both.
type Output struct {
	Answer        string
	HasAnswer     bool // whether the "answer" key is present
	Provenance    []Provenance
	HasProvenance bool // whether the "provenance" key is present (even if empty)
	Extra         map[string]json.RawMessage
}

// Provenance is one piece of evidence as read: every key with its value
// (numbers as json.Number), so that the metrics see exactly what KILT's
// scripts see. Page-level evidence has "wikipedia_id" and "title";
// passage-level adds "start_paragraph_id", "end_paragraph_id" and offsets.
// Predictions may add "score" and "text".
type Provenance map[string]any

// Page returns the provenance entry of a prediction: the page (or passage)
// id, its title and the score the system gave it.
func Page(id, title string, score float64) Provenance {
	return Provenance{"wikipedia_id": id, "title": title, "score": score}
}

// Value returns the provenance's value for key as Python's str() renders it,
// and whether the key is present.
func (p Provenance) Value(key string) (string, bool, error) {
	v, ok := p[key]
	if !ok {
		return "", false, nil
	}
	s, err := pyStr(v)
	if err != nil {
		return "", true, fmt.Errorf("provenance %q: %w", key, err)
	}
	return s, true, nil
}

// Title returns the "title" key when it is a string, else "".
func (p Provenance) Title() string {
	s, _ := p["title"].(string)
	return s
}

// NewPrediction builds a prediction record with one output.
func NewPrediction(id, input, answer string, hasAnswer bool, prov []Provenance) Record {
	if prov == nil {
		prov = []Provenance{}
	}
	return Record{ID: id, Input: input, hasInput: true, Output: []Output{{
		Answer: answer, HasAnswer: hasAnswer, Provenance: prov, HasProvenance: true,
	}}}
}

// UnmarshalJSON reads one KILT line.
func (r *Record) UnmarshalJSON(data []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return err
	}
	if m == nil {
		return errors.New("not a JSON object")
	}
	raw, ok := m["id"]
	if !ok {
		return errors.New(`no "id"`)
	}
	var idv any
	if err := decodeNumber(raw, &idv); err != nil {
		return fmt.Errorf("id: %w", err)
	}
	id, err := pyStr(idv)
	if err != nil {
		return fmt.Errorf("id: %w", err)
	}
	*r = Record{ID: id, rawID: raw}
	if in, ok := m["input"]; ok {
		if err := json.Unmarshal(in, &r.Input); err != nil || bytes.Equal(bytes.TrimSpace(in), []byte("null")) {
			return fmt.Errorf("input must be a string, got %.40s", in)
		}
		r.hasInput = true
	}
	if out, ok := m["output"]; ok {
		if err := json.Unmarshal(out, &r.Output); err != nil {
			return fmt.Errorf("output: %w", err)
		}
	}
	for k, v := range m {
		switch k {
		case "id", "input", "output":
		default:
			if r.Extra == nil {
				r.Extra = map[string]json.RawMessage{}
			}
			r.Extra[k] = v
		}
	}
	return nil
}

// MarshalJSON writes the record with keys id, input, output, then the extras.
func (r Record) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(`{"id":`)
	var idv any
	if r.rawID != nil && decodeNumber(r.rawID, &idv) == nil {
		if s, err := pyStr(idv); err == nil && s == r.ID {
			b.Write(r.rawID)
		} else {
			writeJSON(&b, r.ID)
		}
	} else {
		writeJSON(&b, r.ID)
	}
	if r.hasInput || r.Input != "" {
		b.WriteString(`,"input":`)
		writeJSON(&b, r.Input)
	}
	b.WriteString(`,"output":`)
	out := r.Output
	if out == nil {
		out = []Output{}
	}
	o, err := json.Marshal(out)
	if err != nil {
		return nil, err
	}
	b.Write(o)
	if err := writeExtra(&b, r.Extra, true); err != nil {
		return nil, err
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// UnmarshalJSON reads one output.
func (o *Output) UnmarshalJSON(data []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return err
	}
	if m == nil {
		return errors.New("an output must be a JSON object")
	}
	*o = Output{}
	for k, v := range m {
		switch k {
		case "answer":
			if err := json.Unmarshal(v, &o.Answer); err != nil || bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
				return fmt.Errorf("answer must be a string, got %.40s", v)
			}
			o.HasAnswer = true
		case "provenance":
			var ps []json.RawMessage
			if err := json.Unmarshal(v, &ps); err != nil {
				return fmt.Errorf("provenance must be a list: %w", err)
			}
			o.HasProvenance = true
			o.Provenance = make([]Provenance, 0, len(ps))
			for i, p := range ps {
				var pm map[string]any
				if err := decodeNumber(p, &pm); err != nil || pm == nil {
					return fmt.Errorf("provenance %d must be a JSON object, got %.40s", i, p)
				}
				o.Provenance = append(o.Provenance, Provenance(pm))
			}
		default:
			if o.Extra == nil {
				o.Extra = map[string]json.RawMessage{}
			}
			o.Extra[k] = v
		}
	}
	return nil
}

// MarshalJSON writes the keys that are present: answer, provenance, extras.
func (o Output) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	sep := ""
	if o.HasAnswer {
		b.WriteString(`"answer":`)
		writeJSON(&b, o.Answer)
		sep = ","
	}
	if o.HasProvenance || len(o.Provenance) > 0 {
		b.WriteString(sep + `"provenance":`)
		ps := o.Provenance
		if ps == nil {
			ps = []Provenance{}
		}
		p, err := json.Marshal(ps)
		if err != nil {
			return nil, err
		}
		b.Write(p)
		sep = ","
	}
	if err := writeExtra(&b, o.Extra, sep != ""); err != nil {
		return nil, err
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// writeExtra writes the extra keys in sorted order, each preceded by a comma
// unless it is the first and comma is false.
func writeExtra(b *bytes.Buffer, extra map[string]json.RawMessage, comma bool) error {
	for _, k := range sortedKeys(extra) {
		if !json.Valid(extra[k]) {
			return fmt.Errorf("extra key %q: invalid JSON", k)
		}
		if comma {
			b.WriteByte(',')
		}
		comma = true
		writeJSON(b, k)
		b.WriteByte(':')
		b.Write(extra[k])
	}
	return nil
}

func sortedKeys(m map[string]json.RawMessage) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func writeJSON(b *bytes.Buffer, s string) {
	enc, _ := json.Marshal(s) // marshalling a string cannot fail
	b.Write(enc)
}

func decodeNumber(data []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	return d.Decode(v)
}

// Read reads a KILT JSON-lines stream; name labels errors. Blank lines are
// skipped, a leading byte order mark dropped.
func Read(r io.Reader, name string) ([]Record, error) {
	sc := bufio.NewScanner(bom.Reader(r))
	sc.Buffer(make([]byte, 0, 64<<10), MaxLineBytes)
	var recs []Record
	line := 0
	for sc.Scan() {
		line++
		text := bytes.TrimSpace(sc.Bytes())
		if len(text) == 0 {
			continue
		}
		var rec Record
		if err := json.Unmarshal(text, &rec); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, line, err)
		}
		rec.Line = line
		recs = append(recs, rec)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("%s:%d: line longer than %d bytes", name, line+1, MaxLineBytes)
		}
		return nil, fmt.Errorf("%s:%d: %w", name, line+1, err)
	}
	return recs, nil
}

// ReadFile reads a KILT JSON-lines file.
func ReadFile(path string) ([]Record, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read KILT file: %w", err)
	}
	defer f.Close()
	return Read(f, path)
}

// Write writes records as JSON lines.
func Write(w io.Writer, recs []Record) error {
	bw := bufio.NewWriter(w)
	for i, rec := range recs {
		b, err := json.Marshal(rec)
		if err != nil {
			return fmt.Errorf("record %d (id %q): %w", i, rec.ID, err)
		}
		bw.Write(b)
		bw.WriteByte('\n')
	}
	return bw.Flush()
}

// WriteFile atomically writes records to path as JSON lines.
func WriteFile(path string, recs []Record) error {
	return atomicfile.Write(path, 0o644, func(w io.Writer) error { return Write(w, recs) })
}

// NewGold builds a gold record: one output per answer, then one output
// holding the provenance (as KILT's task files list them).
func NewGold(id, input string, answers []string, prov []Provenance) Record {
	r := Record{ID: id, Input: input, hasInput: true}
	for _, a := range answers {
		r.Output = append(r.Output, Output{Answer: a, HasAnswer: true})
	}
	if prov != nil {
		r.Output = append(r.Output, Output{Provenance: prov, HasProvenance: true})
	}
	return r
}
