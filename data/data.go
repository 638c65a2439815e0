// Package data loads and converts retrieval test collections: BEIR jsonl and
// qrels, TREC topics and qrels, SQuAD v1.1 JSON, the SciFact CSV export, the
// CACM HTML tarball and the KILT knowledge-source and task formats, into the
// common Passage, Query and Qrels types. kiltsplit.go splits the pages of a
// KILT knowledge source into 50-100-word passages exactly as IBM's Re2G
// reference does (ids "<wikipedia_id>::[first,last]").
//
// Every loader takes a *Report. With a nil report a malformed record is an
// error naming the file and line; with a report, the record is skipped and
// the skip (file, line, reason) is recorded, so that nothing is dropped
// silently: callers print Report.Summary. A corpus record without a "text"
// field is an error either way: the file is not in the format assumed.
//
// A byte order mark at the start of a file is dropped (package bom), by
// every loader.
package data

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/re2g/re2g/internal/bom"
)

// Passage is one retrievable unit of text.
type Passage struct {
	ID    string `json:"_id"`
	Title string `json:"title"`
	Text  string `json:"text"`
}

// Query is one information need.
type Query struct {
	ID   string `json:"_id"`
	Text string `json:"text"`
}

// Qrels maps query id → document id → graded relevance (> 0 relevant).
type Qrels map[string]map[string]int

// Add records a judgement.
func (q Qrels) Add(qid, docid string, rel int) {
	m := q[qid]
	if m == nil {
		m = map[string]int{}
		q[qid] = m
	}
	m[docid] = rel
}

// Len is the number of judgements.
func (q Qrels) Len() int {
	n := 0
	for _, m := range q {
		n += len(m)
	}
	return n
}

// Skip is one record a loader left out.
type Skip struct {
	File   string
	Line   int
	Reason string
}

func (s Skip) String() string { return fmt.Sprintf("%s:%d: %s", s.File, s.Line, s.Reason) }

// Report collects skipped records.
type Report struct {
	Skips []Skip
}

// Summary is a count of skips by reason, most common first, plus the first
// few locations of each, one line per reason; "" when nothing was skipped.
func (r *Report) Summary() string {
	if r == nil || len(r.Skips) == 0 {
		return ""
	}
	count := map[string]int{}
	first := map[string][]string{}
	for _, s := range r.Skips {
		count[s.Reason]++
		if len(first[s.Reason]) < 3 {
			first[s.Reason] = append(first[s.Reason], fmt.Sprintf("%s:%d", s.File, s.Line))
		}
	}
	reasons := make([]string, 0, len(count))
	for k := range count {
		reasons = append(reasons, k)
	}
	sort.Slice(reasons, func(i, j int) bool {
		if count[reasons[i]] != count[reasons[j]] {
			return count[reasons[i]] > count[reasons[j]]
		}
		return reasons[i] < reasons[j]
	})
	var b strings.Builder
	fmt.Fprintf(&b, "skipped %d records:", len(r.Skips))
	for _, k := range reasons {
		fmt.Fprintf(&b, "\n  %d × %s (e.g. %s)", count[k], k, strings.Join(first[k], ", "))
	}
	return b.String()
}

// skip records a malformed record, or returns it as an error when r is nil.
func (r *Report) skip(file string, line int, format string, args ...any) error {
	reason := fmt.Sprintf(format, args...)
	if r == nil {
		return fmt.Errorf("%s:%d: %s", file, line, reason)
	}
	r.Skips = append(r.Skips, Skip{File: file, Line: line, Reason: reason})
	return nil
}

// Open opens path for reading, decompressing gzip transparently (detected by
// its magic bytes, whatever the file name), a leading byte order mark
// dropped (see package bom).
func Open(path string) (io.ReadCloser, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(f, 1<<16)
	magic, _ := br.Peek(2)
	if len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return struct {
			io.Reader
			io.Closer
		}{bom.Reader(zr), f}, nil
	}
	return struct {
		io.Reader
		io.Closer
	}{bom.Reader(br), f}, nil
}

// maxLine bounds one line of a jsonl or TSV file.
const maxLine = 256 << 20

// missingText is the error for a corpus record without a "text" field (or
// with null): not a malformed record to skip but a sign that the file is not
// in the format it was read as (Pyserini's {"id", "contents"}, say), so an
// error even with a report, rather than passages without text.
func missingText(file string, line int, format string) error {
	return fmt.Errorf("%s:%d: record has no \"text\" field (passages here are %s)", file, line, format)
}

// eachLine calls fn with every line of r (without its newline, a leading
// byte order mark dropped) and its 1-based number; the bytes are only valid
// during the call.
func eachLine(r io.Reader, name string, fn func(line []byte, n int) error) error {
	sc := bufio.NewScanner(bom.Reader(r))
	sc.Buffer(make([]byte, 0, 1<<20), maxLine)
	n := 0
	for sc.Scan() {
		n++
		if err := fn(bytes.TrimRight(sc.Bytes(), "\r"), n); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: after line %d: %w", name, n, err)
	}
	return nil
}

// flexString decodes a JSON string or number as a string (ids are either).
type flexString string

func (f *flexString) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*f = flexString(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("id must be a string or a number, got %s", b)
	}
	*f = flexString(n.String())
	return nil
}

// validID reports why id cannot be used in a TREC run file, or "".
func validID(id string) string {
	if id == "" {
		return "empty id"
	}
	if strings.ContainsAny(id, " \t\r\n") {
		return fmt.Sprintf("id %q contains white space", id)
	}
	return ""
}
