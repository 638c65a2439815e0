package faiss

import "errors"

var (
	// ErrDimension reports vectors whose length does not match the index.
	ErrDimension = errors.New("faiss: dimension mismatch")
	// ErrEmpty reports a search on an index with no vectors.
	ErrEmpty = errors.New("faiss: index is empty (search before add)")
	// ErrClosed reports use of an index after Close.
	ErrClosed = errors.New("faiss: index is closed")
	// ErrNotTrained reports an add to a quantised index before Train.
	ErrNotTrained = errors.New("faiss: index is not trained")
	// ErrCorrupt reports an index file FAISS cannot read.
	ErrCorrupt = errors.New("faiss: corrupt or unreadable index file")
	// ErrMismatch reports an index whose structure is not the one its
	// configuration (an index manifest) records.
	ErrMismatch = errors.New("faiss: index does not match its configuration")
)
