// Package model loads and saves Hugging Face model directories for re2g's Go
// models: config.json, model.safetensors or sharded safetensors with
// model.safetensors.index.json, f32/f16/bf16 weights.
//
// Directories that ship only PyTorch weights load too: pytorch_model.bin, or
// shards listed in pytorch_model.bin.index.json (e.g. IBM's ibm/re2g-*
// models). They are read without Python by torch.OpenPyTorch, whose
// restricted unpickler accepts tensors only (like torch.load with
// weights_only=True) and copies them from a memory mapping; safetensors is
// preferred when a directory has both. Tied weights that such a file keeps
// under several names are loaded once and shared. Saving always writes
// safetensors.
//
// Models are structs whose fields are layers, tagged with their checkpoint
// names (`st:"encoder.layer"`); one reflective loader fills them. Tags:
//
//	*torch.Tensor field  `st:"weight"`                the tensor at prefix+"weight"
//	                     `st:"bias,optional"`          may be absent (stays nil)
//	                     `st:"x.weight,alt=y.weight"`  falls back to y (tied weights)
//	struct field         `st:"embeddings"`            recurse with prefix+"embeddings."
//	slice of structs     `st:"layer"`                 element i at prefix+"layer.i.";
//	                                                  the caller sizes the slice first
//
// Alternative names are absolute (not prefixed). A tensor found once is shared
// by every field that names it, so tied weights stay tied in training.
package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"github.com/re2g/re2g/torch"
)

// tensorFile is one file of a checkpoint: *torch.SafetensorsFile or
// *torch.PyTorchFile.
type tensorFile interface {
	Names() []string
	Info(name string) (torch.TensorInfo, bool)
	Load(s *torch.Scope, name string, dev torch.Device, dt torch.DType) (*torch.Tensor, error)
	Close() error
}

// aliaser is implemented by files that keep tied weights under several
// names (pytorch_model.bin): Alias gives the one name they are loaded under.
type aliaser interface {
	Alias(name string) string
}

// Checkpoint is the set of weight files of one model directory.
type Checkpoint struct {
	Dir   string
	files map[string]tensorFile // by file name
	where map[string]string     // tensor name -> file name
}

// The weight files OpenCheckpoint looks for, in order of preference.
const (
	safetensorsFile  = "model.safetensors"
	safetensorsIndex = "model.safetensors.index.json"
	pytorchFile      = "pytorch_model.bin"
	pytorchIndex     = "pytorch_model.bin.index.json"
)

// OpenCheckpoint opens dir's weights, the first found of: model.safetensors;
// the shards listed in model.safetensors.index.json; pytorch_model.bin
// (torch.save, read without Python, tensors only: see torch.OpenPyTorch);
// the shards listed in pytorch_model.bin.index.json.
func OpenCheckpoint(dir string) (*Checkpoint, error) {
	ck := &Checkpoint{Dir: dir, files: map[string]tensorFile{}, where: map[string]string{}}
	openST := func(p string) (tensorFile, error) { return torch.OpenSafetensors(p) }
	openPT := func(p string) (tensorFile, error) { return torch.OpenPyTorch(p) }
	var err error
	switch {
	case exists(filepath.Join(dir, safetensorsFile)):
		err = ck.openSingle(safetensorsFile, openST)
	case exists(filepath.Join(dir, safetensorsIndex)):
		err = ck.openSharded(safetensorsIndex, openST)
	case exists(filepath.Join(dir, pytorchFile)):
		err = ck.openSingle(pytorchFile, openPT)
	case exists(filepath.Join(dir, pytorchIndex)):
		err = ck.openSharded(pytorchIndex, openPT)
	default:
		return nil, fmt.Errorf("checkpoint %s: no model.safetensors, model.safetensors.index.json, pytorch_model.bin or pytorch_model.bin.index.json", dir)
	}
	if err != nil {
		ck.Close()
		return nil, err
	}
	return ck, nil
}

func (ck *Checkpoint) openSingle(name string, open func(string) (tensorFile, error)) error {
	f, err := open(filepath.Join(ck.Dir, name))
	if err != nil {
		return err
	}
	ck.files[name] = f
	for _, n := range f.Names() {
		ck.where[n] = name
	}
	return nil
}

func (ck *Checkpoint) openSharded(index string, open func(string) (tensorFile, error)) error {
	dir := ck.Dir
	idx := filepath.Join(dir, index)
	b, err := os.ReadFile(idx)
	if err != nil {
		return fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	var ix struct {
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(b, &ix); err != nil {
		return fmt.Errorf("checkpoint %s: %s is not valid JSON: %w", dir, idx, err)
	}
	if len(ix.WeightMap) == 0 {
		return fmt.Errorf("checkpoint %s: %s has an empty weight_map", dir, idx)
	}
	// in a stable order, so that the first error is always the same one
	names := make([]string, 0, len(ix.WeightMap))
	for name := range ix.WeightMap {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		file := ix.WeightMap[name]
		if strings.Contains(file, "/") || strings.Contains(file, "..") || strings.Contains(file, string(filepath.Separator)) {
			return fmt.Errorf("checkpoint %s: shard name %q is not a plain file name", dir, file)
		}
		if _, ok := ck.files[file]; !ok {
			f, err := open(filepath.Join(dir, file))
			if err != nil {
				return err
			}
			ck.files[file] = f
		}
		if _, ok := ck.files[file].Info(name); !ok {
			return fmt.Errorf("checkpoint %s: index says %q is in %s, which lacks it", dir, name, file)
		}
		ck.where[name] = file
	}
	return nil
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// Names lists every tensor in the checkpoint, sorted.
func (c *Checkpoint) Names() []string {
	ns := make([]string, 0, len(c.where))
	for n := range c.where {
		ns = append(ns, n)
	}
	sort.Strings(ns)
	return ns
}

// Has reports whether the checkpoint holds name.
func (c *Checkpoint) Has(name string) bool { _, ok := c.where[name]; return ok }

// Info describes tensor name.
func (c *Checkpoint) Info(name string) (torch.TensorInfo, bool) {
	f, ok := c.where[name]
	if !ok {
		return torch.TensorInfo{}, false
	}
	return c.files[f].Info(name)
}

// Load reads tensor name onto dev; floating-point tensors are converted to
// dt (pass -1 to keep the stored type), others keep theirs.
func (c *Checkpoint) Load(s *torch.Scope, name string, dev torch.Device, dt torch.DType) (*torch.Tensor, error) {
	f, ok := c.where[name]
	if !ok {
		return nil, fmt.Errorf("checkpoint %s: no tensor %q", c.Dir, name)
	}
	info, _ := c.files[f].Info(name)
	if !info.DType.IsFloat() {
		dt = -1
	}
	return c.files[f].Load(s, name, dev, dt)
}

// tensorKey names the tensor that name is loaded as: tied weights that a
// pytorch_model.bin keeps under several names give one key, so that Fill
// loads them once and every field naming them shares the tensor.
func (c *Checkpoint) tensorKey(name string) string {
	f, ok := c.where[name]
	if !ok {
		return name
	}
	if a, ok := c.files[f].(aliaser); ok {
		return f + "\x00" + a.Alias(name)
	}
	return f + "\x00" + name
}

// Close unmaps every file.
func (c *Checkpoint) Close() {
	for _, f := range c.files {
		f.Close()
	}
}

// Options controls loading.
type Options struct {
	Device torch.Device
	DType  torch.DType // floating-point weights are converted to it (zero value: float32); -1 keeps the stored type
	// Strict turns unexpected tensors (present in the file, used by no field)
	// into an error instead of a report.
	Strict bool
	// Ignore lists name prefixes that are never reported as unexpected.
	Ignore []string
}

// Report says what loading found besides the tensors it used.
type Report struct {
	Unexpected []string // in the checkpoint, used by no field
}

// LoadError lists every problem found while loading, by tensor name.
type LoadError struct {
	Dir        string
	Missing    []string
	Mismatched []string // "name: checkpoint [a b], model wants [c d]"
	Unexpected []string // only in strict mode
}

func (e *LoadError) Error() string {
	var parts []string
	add := func(what string, names []string) {
		if len(names) == 0 {
			return
		}
		show := names
		if len(show) > 8 {
			show = append(append([]string{}, show[:8]...), fmt.Sprintf("... (%d more)", len(names)-8))
		}
		parts = append(parts, fmt.Sprintf("%s %d: %s", what, len(names), strings.Join(show, ", ")))
	}
	add("missing", e.Missing)
	add("wrong shape", e.Mismatched)
	add("unexpected", e.Unexpected)
	return fmt.Sprintf("checkpoint %s: %s", e.Dir, strings.Join(parts, "; "))
}

// Shaper is implemented by layers that know the shapes their tensors must have.
type Shaper interface {
	// Shapes maps a field's tag name (relative to the layer) to its shape.
	Shapes() map[string][]int64
}

// field is one tensor field found by walking a model struct.
type field struct {
	name     string   // full checkpoint name
	alts     []string // absolute alternative names
	optional bool
	shape    []int64 // expected, when the layer says
	ptr      **torch.Tensor
}

// walk lists the tensor fields of v (a pointer to a struct) with their full names.
func walk(v reflect.Value, prefix string, out *[]field) error {
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return fmt.Errorf("nil %s at %q", v.Type(), prefix)
		}
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return fmt.Errorf("model: %s at %q is not a struct", v.Type(), prefix)
	}
	var shapes map[string][]int64
	if v.CanAddr() {
		if sh, ok := v.Addr().Interface().(Shaper); ok {
			shapes = sh.Shapes()
		}
	}
	tensorType := reflect.TypeOf((*torch.Tensor)(nil))
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		tag, ok := sf.Tag.Lookup("st")
		if !ok || tag == "-" || !sf.IsExported() {
			continue
		}
		parts := strings.Split(tag, ",")
		name := parts[0]
		f := field{name: prefix + name}
		for _, p := range parts[1:] {
			switch {
			case p == "optional":
				f.optional = true
			case strings.HasPrefix(p, "alt="):
				f.alts = append(f.alts, strings.TrimPrefix(p, "alt="))
			default:
				return fmt.Errorf("model: field %s: unknown tag option %q", sf.Name, p)
			}
		}
		fv := v.Field(i)
		switch {
		case sf.Type == tensorType:
			f.ptr = fv.Addr().Interface().(**torch.Tensor)
			f.shape = shapes[name]
			*out = append(*out, f)
		case sf.Type.Kind() == reflect.Struct:
			if err := walk(fv.Addr(), prefix+name+".", out); err != nil {
				return err
			}
		case sf.Type.Kind() == reflect.Pointer && sf.Type.Elem().Kind() == reflect.Struct:
			if fv.IsNil() {
				if f.optional {
					continue
				}
				fv.Set(reflect.New(sf.Type.Elem()))
			}
			if err := walk(fv, prefix+name+".", out); err != nil {
				return err
			}
		case sf.Type.Kind() == reflect.Slice:
			for j := 0; j < fv.Len(); j++ {
				ev := fv.Index(j)
				if ev.Kind() != reflect.Pointer {
					ev = ev.Addr()
				} else if ev.IsNil() {
					ev.Set(reflect.New(ev.Type().Elem()))
				}
				if err := walk(ev, prefix+name+"."+strconv.Itoa(j)+".", out); err != nil {
					return err
				}
			}
		default:
			return fmt.Errorf("model: field %s (%s) cannot hold a tensor", sf.Name, sf.Type)
		}
	}
	return nil
}

// Fill loads every tagged tensor of dst (a pointer to a model struct) from
// ck, names prefixed with prefix, into tensors owned by s. It returns a
// LoadError naming every missing or mis-shaped tensor.
func Fill(s *torch.Scope, ck *Checkpoint, prefix string, dst any, opt Options) (*Report, error) {
	var fields []field
	if err := walk(reflect.ValueOf(dst), prefix, &fields); err != nil {
		return nil, err
	}
	lerr := &LoadError{Dir: ck.Dir}
	used := map[string]bool{}
	loaded := map[string]*torch.Tensor{}
	for _, f := range fields {
		name := f.name
		if !ck.Has(name) {
			name = ""
			for _, a := range f.alts {
				if ck.Has(a) {
					name = a
					break
				}
			}
		}
		if name == "" {
			if !f.optional {
				lerr.Missing = append(lerr.Missing, f.name)
			}
			continue
		}
		used[name] = true
		info, _ := ck.Info(name)
		if f.shape != nil && !EqualShape(info.Shape, f.shape) {
			lerr.Mismatched = append(lerr.Mismatched, fmt.Sprintf("%s: checkpoint %v, model wants %v", name, info.Shape, f.shape))
			continue
		}
		key := ck.tensorKey(name)
		if t, ok := loaded[key]; ok {
			*f.ptr = t
			continue
		}
		t, err := ck.Load(s, name, opt.Device, opt.DType)
		if err != nil {
			return nil, err
		}
		loaded[key] = t
		*f.ptr = t
	}
	rep := &Report{}
	for _, n := range ck.Names() {
		if used[n] || !strings.HasPrefix(n, prefix) {
			continue
		}
		ignored := false
		for _, ig := range opt.Ignore {
			if strings.HasPrefix(n, ig) {
				ignored = true
			}
		}
		if !ignored {
			rep.Unexpected = append(rep.Unexpected, n)
		}
	}
	if opt.Strict {
		lerr.Unexpected = rep.Unexpected
	}
	if len(lerr.Missing)+len(lerr.Mismatched)+len(lerr.Unexpected) > 0 {
		return rep, lerr
	}
	return rep, nil
}

// EqualShape reports whether two shapes are the same.
func EqualShape(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Tensors lists the tensors of src (a pointer to a model struct) by
// checkpoint name, each tensor once (under the first name that holds it, so
// tied weights are saved once, as save_pretrained does).
func Tensors(src any, prefix string) (map[string]*torch.Tensor, error) {
	var fields []field
	if err := walk(reflect.ValueOf(src), prefix, &fields); err != nil {
		return nil, err
	}
	out := map[string]*torch.Tensor{}
	seen := map[*torch.Tensor]bool{}
	for _, f := range fields {
		t := *f.ptr
		if t == nil || seen[t] {
			continue
		}
		seen[t] = true
		out[f.name] = t
	}
	return out, nil
}

// ErrNoConfig is returned when a model directory has no config.json.
var ErrNoConfig = errors.New("no config.json")

// readFile reads dir/name; a missing config.json is ErrNoConfig.
func readFile(dir, name string) ([]byte, error) {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		if os.IsNotExist(err) && name == "config.json" {
			return nil, fmt.Errorf("model %s: %w", dir, ErrNoConfig)
		}
		return nil, fmt.Errorf("model %s: %w", dir, err)
	}
	return b, nil
}

// ReadConfig reads dir/config.json once and parses it with parse (a
// model's ParseConfig), errors naming the file.
func ReadConfig[T any](dir string, parse func([]byte) (T, error)) (T, error) {
	b, err := readFile(dir, "config.json")
	if err != nil {
		var zero T
		return zero, err
	}
	c, err := parse(b)
	if err != nil {
		return c, fmt.Errorf("model %s: config.json: %w", dir, err)
	}
	return c, nil
}

// ReadJSON reads dir/name into v, with errors naming the file.
func ReadJSON(dir, name string, v any) error {
	b, err := readFile(dir, name)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("model %s: %s: %w", dir, name, err)
	}
	return nil
}

func sortStrings(s []string) { sort.Strings(s) }

// Init fills every tensor field of dst (whose layers declare their shapes)
// with fresh weights as Hugging Face's _init_weights does: normal(0, std) for
// weights and embeddings, zeros for biases, ones for LayerNorm weights.
func Init(s *torch.Scope, dst any, std float64, dev torch.Device, dt torch.DType) error {
	var fields []field
	if err := walk(reflect.ValueOf(dst), "", &fields); err != nil {
		return err
	}
	for _, f := range fields {
		if f.shape == nil {
			if f.optional || len(f.alts) > 0 { // tied weights are set by the model
				continue
			}
			return fmt.Errorf("model: init %s: layer does not declare its shape", f.name)
		}
		var t *torch.Tensor
		switch {
		case strings.HasSuffix(f.name, "bias"):
			t = s.Zeros(dt, dev, f.shape...)
		case isNormWeight(f.name):
			t = s.Ones(dt, dev, f.shape...)
		default:
			t = s.MulScalar(s.Randn(dt, dev, f.shape...), std)
		}
		*f.ptr = t
	}
	return s.Err()
}

func isNormWeight(name string) bool {
	n := strings.ToLower(name)
	return strings.HasSuffix(n, ".weight") && (strings.Contains(n, "layernorm") || strings.Contains(n, "layer_norm"))
}

// Load opens dir's checkpoint and fills dst (names prefixed with prefix)
// into a new scope that owns the weights; the caller closes the scope to
// free them.
func Load(dir string, dst any, prefix string, opt Options) (*torch.Scope, *Report, error) {
	ck, err := OpenCheckpoint(dir)
	if err != nil {
		return nil, nil, err
	}
	defer ck.Close()
	return LoadFrom(ck, dst, prefix, opt)
}

// LoadFrom is Load from a checkpoint already open (for loaders that first
// look at its names to tell which layout it is).
func LoadFrom(ck *Checkpoint, dst any, prefix string, opt Options) (*torch.Scope, *Report, error) {
	s := torch.NewScope()
	rep, err := Fill(s, ck, prefix, dst, opt)
	if err != nil {
		s.Close()
		return nil, nil, err
	}
	return s, rep, nil
}
