package faiss

/*
#include <stdlib.h>
#include <string.h>
#include <faiss/c_api/error_c.h>
#include <faiss/c_api/index_io_c.h>
#include "re2g_faiss.h"

// capi_err turns a C API return code into an owned error string, in the same
// C call (FAISS keeps its last error per OS thread, and a goroutine may
// change threads between two calls).
static char* capi_err(int rc) {
	if (rc == 0) return NULL;
	const char* m = faiss_get_last_error();
	return strdup(m ? m : "unknown FAISS error");
}

static char* capi_read(const char* fname, FaissIndex** out) {
	return capi_err(faiss_read_index_fname(fname, 0, out));
}

static char* capi_write(const FaissIndex* idx, const char* fname) {
	return capi_err(faiss_write_index_fname(idx, fname));
}
*/
import "C"

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"unsafe"

	"github.com/re2g/re2g/internal/atomicfile"
)

// meta is the sidecar (<index>.json): what the index was saved as, checked
// against the file when it is loaded.
type meta struct {
	Format string `json:"format"`
	Dim    int    `json:"dim"`
	Metric string `json:"metric"`
	Ntotal int64  `json:"ntotal"`
	Kind   string `json:"kind"`
}

const metaFormat = "re2g-faiss/1"

// MetaPath is the sidecar file saved beside an index file.
func MetaPath(path string) string { return path + ".json" }

// Save writes the index to path atomically (a temporary file in the same
// directory, synced, then renamed), with its sidecar MetaPath(path).
func (ix *Index) Save(path string) error {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	if ix.ptr == nil {
		return ErrClosed
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("faiss: save %s: %w", path, err)
	}
	tmp := f.Name()
	f.Close()
	ok := false
	defer func() {
		if !ok {
			os.Remove(tmp)
		}
	}()
	if ix.gate != nil { // the file keeps the default efSearch
		if err := ix.gate.acquire(ix.ptr, ix.defaultEf); err != nil {
			return fmt.Errorf("faiss: save %s: %w", path, err)
		}
		defer ix.gate.release()
	}
	ctmp := C.CString(tmp)
	defer C.free(unsafe.Pointer(ctmp))
	if err := cErr(C.capi_write(ix.ptr, ctmp)); err != nil {
		return fmt.Errorf("faiss: save %s: %w", path, err)
	}
	if err := syncFile(tmp); err != nil {
		return fmt.Errorf("faiss: save %s: %w", path, err)
	}
	var buf [64]C.char
	kind := "unknown"
	if C.re2g_index_description(ix.ptr, &buf[0], C.int(len(buf))) == nil {
		kind = C.GoString(&buf[0])
	}
	m := meta{Format: metaFormat, Dim: ix.dim, Metric: ix.metric.String(),
		Ntotal: int64(C.faiss_Index_ntotal(ix.ptr)), Kind: kind}
	b, _ := json.MarshalIndent(m, "", "  ")
	if err := atomicfile.WriteFile(MetaPath(path), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("faiss: save %s: %w", path, err)
	}
	if err := atomicfile.Rename(tmp, path); err != nil {
		return fmt.Errorf("faiss: save %s: %w", path, err)
	}
	ok = true
	return nil
}

func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// Load reads an index saved by Save (or by FAISS itself: without a sidecar,
// the metric is FAISS's own, inner product or L2).
func Load(path string) (*Index, error) {
	st, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("faiss: load %s: index file not found: %w", path, err)
		}
		return nil, fmt.Errorf("faiss: load %s: %w", path, err)
	}
	if st.IsDir() {
		return nil, fmt.Errorf("faiss: load %s: is a directory", path)
	}
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	var p *C.FaissIndex
	if err := cErr(C.capi_read(cpath, &p)); err != nil {
		return nil, fmt.Errorf("faiss: load %s: %w: %v", path, ErrCorrupt, err)
	}
	nd := int(C.faiss_Index_d(p))
	metric := InnerProduct
	if C.faiss_Index_metric_type(p) != C.METRIC_INNER_PRODUCT {
		metric = L2
	}
	ix, err := newIndex(p, nd, metric)
	if err != nil {
		return nil, fmt.Errorf("faiss: load %s: %w", path, err)
	}
	b, err := os.ReadFile(MetaPath(path))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return ix, nil
	case err != nil:
		ix.Close()
		return nil, fmt.Errorf("faiss: load %s: %w", MetaPath(path), err)
	}
	var m meta
	if err := json.Unmarshal(b, &m); err != nil || m.Format != metaFormat {
		ix.Close()
		return nil, fmt.Errorf("faiss: load %s: %w: bad sidecar (format %q): %v", MetaPath(path), ErrCorrupt, m.Format, err)
	}
	mm, err := ParseMetric(m.Metric)
	if err != nil {
		ix.Close()
		return nil, fmt.Errorf("faiss: load %s: %w", MetaPath(path), err)
	}
	if m.Dim != nd || mm != metric {
		ix.Close()
		return nil, fmt.Errorf("faiss: load %s: %w: sidecar says %s d=%d but the index file holds %s d=%d",
			path, ErrCorrupt, mm, m.Dim, metric, nd)
	}
	if n := ix.Ntotal(); n != m.Ntotal {
		ix.Close()
		return nil, fmt.Errorf("faiss: load %s: %w: the index file holds %d vectors, its sidecar says %d", path, ErrCorrupt, n, m.Ntotal)
	}
	return ix, nil
}
