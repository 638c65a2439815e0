// Package pipeline answers queries as Re2G does: retrieve (DPR and BM25)
// → merge → rerank → generate → weight, over an index directory (package
// indexdir builds, opens and merges them).
package pipeline

import "github.com/re2g/re2g/indexdir"

// Index is an opened index directory.
//
// Deprecated: use indexdir.Index (this alias eases the move).
type Index = indexdir.Index
