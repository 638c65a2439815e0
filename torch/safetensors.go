package torch

/*
#include "re2g_torch.h"
*/
import "C"

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"syscall"
	"unsafe"

	"github.com/re2g/re2g/internal/atomicfile"
)

// maxHeader bounds the JSON header of a safetensors file (as the reference
// implementation does), so that a corrupt length cannot ask for gigabytes.
const maxHeader = 100 << 20

var stDTypes = map[string]DType{
	"F32": Float32, "F16": Float16, "BF16": BFloat16, "I64": Int64, "BOOL": Bool, "F64": Float64, "I32": Int32,
}

func stName(d DType) string {
	for k, v := range stDTypes {
		if v == d {
			return k
		}
	}
	return ""
}

// TensorInfo describes one tensor of a safetensors file.
type TensorInfo struct {
	DType DType
	Shape []int64
	begin int64
	end   int64
}

// SafetensorsFile is a memory-mapped safetensors file: tensors are copied
// straight from the mapping into libtorch, never through the Go heap.
type SafetensorsFile struct {
	Path     string
	Metadata map[string]string
	infos    map[string]TensorInfo
	names    []string
	data     []byte // the whole mapping
	base     int64  // offset of the data section
}

// OpenSafetensors maps path and validates its header: every tensor's dtype,
// shape and byte range.
func OpenSafetensors(path string) (*SafetensorsFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("safetensors %s: %w", path, err)
	}
	size := st.Size()
	if size < 8 {
		return nil, fmt.Errorf("safetensors %s: file of %d bytes is too short for a header", path, size)
	}
	var lenbuf [8]byte
	if _, err := io.ReadFull(f, lenbuf[:]); err != nil {
		return nil, fmt.Errorf("safetensors %s: reading header length: %w", path, err)
	}
	n := binary.LittleEndian.Uint64(lenbuf[:])
	if n > maxHeader || int64(n) > size-8 {
		return nil, fmt.Errorf("safetensors %s: header length %d does not fit a file of %d bytes (corrupt or truncated)", path, n, size)
	}
	hdr := make([]byte, n)
	if _, err := io.ReadFull(f, hdr); err != nil {
		return nil, fmt.Errorf("safetensors %s: reading header: %w", path, err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(hdr, &raw); err != nil {
		return nil, fmt.Errorf("safetensors %s: header is not JSON: %w", path, err)
	}
	sf := &SafetensorsFile{Path: path, infos: map[string]TensorInfo{}, base: 8 + int64(n)}
	dataLen := size - sf.base
	type entry struct {
		DType       string  `json:"dtype"`
		Shape       []int64 `json:"shape"`
		DataOffsets []int64 `json:"data_offsets"`
	}
	for name, msg := range raw {
		if name == "__metadata__" {
			if err := json.Unmarshal(msg, &sf.Metadata); err != nil {
				return nil, fmt.Errorf("safetensors %s: __metadata__: %w", path, err)
			}
			continue
		}
		var e entry
		if err := json.Unmarshal(msg, &e); err != nil {
			return nil, fmt.Errorf("safetensors %s: tensor %q: %w", path, name, err)
		}
		dt, ok := stDTypes[e.DType]
		if !ok {
			return nil, fmt.Errorf("safetensors %s: tensor %q has unsupported dtype %q", path, name, e.DType)
		}
		if len(e.DataOffsets) != 2 || e.DataOffsets[0] < 0 || e.DataOffsets[1] < e.DataOffsets[0] || e.DataOffsets[1] > dataLen {
			return nil, fmt.Errorf("safetensors %s: tensor %q has byte range %v outside the %d-byte data section (truncated file?)", path, name, e.DataOffsets, dataLen)
		}
		cnt, err := numel(e.Shape)
		if err != nil {
			return nil, fmt.Errorf("safetensors %s: tensor %q: %w", path, name, err)
		}
		if cnt*int64(dt.Size()) != e.DataOffsets[1]-e.DataOffsets[0] {
			return nil, fmt.Errorf("safetensors %s: tensor %q: shape %v of %s needs %d bytes, range holds %d", path, name, e.Shape, e.DType, cnt*int64(dt.Size()), e.DataOffsets[1]-e.DataOffsets[0])
		}
		sf.infos[name] = TensorInfo{DType: dt, Shape: e.Shape, begin: e.DataOffsets[0], end: e.DataOffsets[1]}
		sf.names = append(sf.names, name)
	}
	sort.Strings(sf.names)
	if size > 0 {
		sf.data, err = syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_PRIVATE)
		if err != nil {
			return nil, fmt.Errorf("safetensors %s: mmap: %w", path, err)
		}
	}
	return sf, nil
}

// Names lists the tensors, sorted.
func (f *SafetensorsFile) Names() []string { return f.names }

// Info describes tensor name.
func (f *SafetensorsFile) Info(name string) (TensorInfo, bool) {
	i, ok := f.infos[name]
	return i, ok
}

// Load copies tensor name to a new tensor owned by s on device dev,
// converted to dt (pass the tensor's own dtype, or -1, to keep it).
func (f *SafetensorsFile) Load(s *Scope, name string, dev Device, dt DType) (*Tensor, error) {
	if f.data == nil {
		return nil, fmt.Errorf("safetensors %s: file is closed", f.Path)
	}
	info, ok := f.infos[name]
	if !ok {
		return nil, fmt.Errorf("safetensors %s: no tensor %q", f.Path, name)
	}
	if dt < 0 {
		dt = info.DType
	}
	if err := s.Err(); err != nil {
		return nil, err
	}
	var p unsafe.Pointer
	if info.end > info.begin {
		p = unsafe.Pointer(&f.data[f.base+info.begin])
	} else {
		// An empty tensor still needs a non-null pointer for from_blob.
		var zero [8]byte
		p = unsafe.Pointer(&zero[0])
	}
	var h C.re2g_t
	if e := C.re2g_from_blob_to(p, C.int(info.DType), shapePtr(info.Shape), C.int(len(info.Shape)), C.int(dt),
		C.int(dev.Type), C.int(dev.Index), &h); e != nil {
		return nil, fmt.Errorf("safetensors %s: tensor %q: %w", f.Path, name, cErr("load", e))
	}
	return s.wrap(h), nil
}

// Close unmaps the file; tensors already loaded stay valid.
func (f *SafetensorsFile) Close() error {
	if f.data == nil {
		return nil
	}
	err := syscall.Munmap(f.data)
	f.data = nil
	return err
}

// SaveSafetensors writes tensors (moved to CPU, each in its own dtype) and
// metadata to path atomically, in the safetensors format: names sorted, the
// header padded with spaces to a multiple of 8 bytes.
func SaveSafetensors(path string, tensors map[string]*Tensor, metadata map[string]string) error {
	names := make([]string, 0, len(tensors))
	for n := range tensors {
		names = append(names, n)
	}
	sort.Strings(names)
	hdr := map[string]any{}
	if len(metadata) > 0 {
		hdr["__metadata__"] = metadata
	}
	var off int64
	for _, n := range names {
		t := tensors[n]
		if !t.Valid() {
			return fmt.Errorf("safetensors %s: tensor %q: %w", path, n, ErrFreed)
		}
		st := stName(t.DType())
		if st == "" {
			return fmt.Errorf("safetensors %s: tensor %q: unsupported dtype %v", path, n, t.DType())
		}
		nb := t.Numel() * int64(t.DType().Size())
		shape := t.Shape()
		if shape == nil {
			shape = []int64{}
		}
		hdr[n] = map[string]any{"dtype": st, "shape": shape, "data_offsets": []int64{off, off + nb}}
		off += nb
	}
	js, err := json.Marshal(hdr)
	if err != nil {
		return fmt.Errorf("safetensors %s: header: %w", path, err)
	}
	for len(js)%8 != 0 {
		js = append(js, ' ')
	}
	return atomicfile.Write(path, 0o644, func(w io.Writer) error {
		bw := bufio.NewWriterSize(w, 1<<20)
		var lenbuf [8]byte
		binary.LittleEndian.PutUint64(lenbuf[:], uint64(len(js)))
		bw.Write(lenbuf[:])
		bw.Write(js)
		for _, n := range names {
			b, err := tensors[n].Bytes()
			if err != nil {
				return fmt.Errorf("tensor %q: %w", n, err)
			}
			if _, err := bw.Write(b); err != nil {
				return err
			}
		}
		return bw.Flush()
	})
}
