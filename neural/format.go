package neural

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/re2g/re2g/internal/atomicfile"
)

// Source layouts of a generator's input.
const (
	// QueryFirst is "query // title / text": re2g's own layout (question
	// first, so that truncation cuts the passage).
	QueryFirst = "query-first"
	// PassageFirst is RAG's layout, "title / text // query"
	// (RagRetriever.postprocess_docs), which facebook/rag-* and IBM's
	// ibm/re2g-generation-* were trained on.
	PassageFirst = "passage-first"
)

// SourceFile is the file in a generator directory that records the source
// layout the generator was trained with (transformers ignores it).
const SourceFile = "re2g_source.json"

// SourceFormat lays out a generator's input from a query and a passage, and
// a reranker's (query, passage) pair. It is the one place where training and
// the pipeline format their inputs.
type SourceFormat struct {
	Layout   string `json:"layout"`    // QueryFirst or PassageFirst
	TitleSep string `json:"title_sep"` // between title and text (" / ")
	DocSep   string `json:"doc_sep"`   // between query and passage (" // ")
}

// DefaultSourceFormat is re2g's layout, for BART directories without a
// SourceFile.
func DefaultSourceFormat() SourceFormat {
	return SourceFormat{Layout: QueryFirst, TitleSep: " / ", DocSep: " // "}
}

// RAGSourceFormat is RAG's layout with its default separators.
func RAGSourceFormat() SourceFormat {
	return SourceFormat{Layout: PassageFirst, TitleSep: " / ", DocSep: " // "}
}

// Check reports an unknown layout.
func (f SourceFormat) Check() error {
	switch f.Layout {
	case QueryFirst, PassageFirst:
		return nil
	}
	return fmt.Errorf("source layout %q: want %s or %s", f.Layout, QueryFirst, PassageFirst)
}

// Source is the generator's input for a query and a passage. PassageFirst
// follows RAG exactly: quotes around the title are stripped and double
// spaces collapsed once.
func (f SourceFormat) Source(query, title, text string) string {
	if f.Layout == PassageFirst {
		title = strings.TrimSuffix(strings.TrimPrefix(title, `"`), `"`)
		return strings.ReplaceAll(title+f.TitleSep+text+f.DocSep+query, "  ", " ")
	}
	return query + f.DocSep + title + f.TitleSep + text
}

// Passage is a passage as the reranker reads it, paired with the query:
// "title / text" (just the text without a title).
func (f SourceFormat) Passage(title, text string) string {
	if title == "" {
		return text
	}
	return title + f.TitleSep + text
}

// ReadSourceFormat reads dir's SourceFile; without one, def.
func ReadSourceFormat(dir string, def SourceFormat) (SourceFormat, error) {
	b, err := os.ReadFile(filepath.Join(dir, SourceFile))
	if errors.Is(err, os.ErrNotExist) {
		return def, nil
	}
	if err != nil {
		return def, fmt.Errorf("model %s: %w", dir, err)
	}
	f := def
	if err := json.Unmarshal(b, &f); err != nil {
		return def, fmt.Errorf("model %s: %s: %w", dir, SourceFile, err)
	}
	if err := f.Check(); err != nil {
		return def, fmt.Errorf("model %s: %s: %w", dir, SourceFile, err)
	}
	return f, nil
}

// WriteSourceFormat records f in dir.
func WriteSourceFormat(dir string, f SourceFormat) error {
	if err := f.Check(); err != nil {
		return err
	}
	b, _ := json.MarshalIndent(f, "", "  ")
	return atomicfile.WriteFile(filepath.Join(dir, SourceFile), append(b, '\n'), 0o644)
}
