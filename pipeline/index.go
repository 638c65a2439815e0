package pipeline

import "github.com/re2g/re2g/indexdir"

// Index is an opened index directory; building, opening and merging them
// is package indexdir's.
//
// Deprecated: use indexdir.Index (this alias eases the move).
type Index = indexdir.Index
