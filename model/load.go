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

	"github.com/re2g/re2g/internal/bom"
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
	// source is the weight file opened, or the index of the shards.
	source string
	// accounted holds the tensors some Fill used or was told to ignore.
	accounted map[string]bool
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
	if err := CheckDir(dir); err != nil {
		return nil, err
	}
	ck := &Checkpoint{Dir: dir, files: map[string]tensorFile{}, where: map[string]string{}, accounted: map[string]bool{}}
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
	ck.source = name
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
	ck.source = index
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
//
// Loading is strict: every tensor of the checkpoint must be used by the
// model its config describes, except the known-harmless extras each loader
// allows (old position_ids buffers, a pooler where the model has none, tied
// copies of an embedding, pretraining heads; see the loaders), so that a
// config.json that does not describe its weights (fewer layers, say) is an
// error rather than a model that silently computes something else.
type Options struct {
	Device torch.Device
	DType  torch.DType // floating-point weights are converted to it (zero value: float32); -1 keeps the stored type
	// Ignore lists further tensor name prefixes (absolute, not relative to
	// the model's prefix) that are never unexpected.
	Ignore []string
}

// LoadError lists every problem found while loading, by tensor name.
type LoadError struct {
	Dir        string
	File       string // the weight file, or the index of the shards ("" if unknown)
	Missing    []string
	Mismatched []string // "name: checkpoint [a b], model wants [c d]"
	Unexpected []string // in the checkpoint, used by no part of the model
}

// shown is how many names of each kind an error lists.
const shown = 5

func (e *LoadError) Error() string {
	var parts []string
	add := func(what string, names []string, why string) {
		if len(names) == 0 {
			return
		}
		show := names
		if len(show) > shown {
			show = append(append([]string{}, show[:shown]...), fmt.Sprintf("... (%d more)", len(names)-shown))
		}
		parts = append(parts, fmt.Sprintf("%s %d: %s%s", what, len(names), strings.Join(show, ", "), why))
	}
	add("missing", e.Missing, "")
	add("wrong shape", e.Mismatched, "")
	add("unexpected", e.Unexpected, " (in the weights, but used by no part of the model that config.json describes)")
	where := e.Dir
	if e.File != "" {
		where = filepath.Join(e.Dir, e.File)
	}
	return fmt.Sprintf("checkpoint %s: %s", where, strings.Join(parts, "; "))
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
// LoadError naming every missing or mis-shaped tensor. The tensors it uses,
// and those under opt.Ignore, are accounted for: CheckUnexpected, once the
// model is filled, reports the rest.
func Fill(s *torch.Scope, ck *Checkpoint, prefix string, dst any, opt Options) error {
	if err := torch.CheckDevice(opt.Device); err != nil {
		return fmt.Errorf("checkpoint %s: %w", ck.Dir, err)
	}
	var fields []field
	if err := walk(reflect.ValueOf(dst), prefix, &fields); err != nil {
		return err
	}
	lerr := &LoadError{Dir: ck.Dir, File: ck.source}
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
		ck.accounted[name] = true
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
			return err
		}
		loaded[key] = t
		*f.ptr = t
	}
	for _, n := range ck.Names() {
		if hasPrefix(n, opt.Ignore) {
			ck.accounted[n] = true
		}
	}
	if len(lerr.Missing)+len(lerr.Mismatched) > 0 {
		return lerr
	}
	return nil
}

func hasPrefix(name string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// Unexpected lists, sorted, the checkpoint's tensors that no Fill used or
// ignored and that are under none of the prefixes in allow.
func (c *Checkpoint) Unexpected(allow ...string) []string {
	var out []string
	for _, n := range c.Names() {
		if !c.accounted[n] && !hasPrefix(n, allow) {
			out = append(out, n)
		}
	}
	return out
}

// CheckUnexpected is a *LoadError naming the Unexpected(allow...) tensors,
// or nil when there are none. Loaders call it once the whole model is
// filled.
func (c *Checkpoint) CheckUnexpected(allow ...string) error {
	if u := c.Unexpected(allow...); len(u) > 0 {
		return &LoadError{Dir: c.Dir, File: c.source, Unexpected: u}
	}
	return nil
}

// Layers counts the layers stored under prefix (e.g. "encoder.layer."):
// one more than the largest N of the tensors named prefix+"N.*"; 0 if none.
func (c *Checkpoint) Layers(prefix string) int {
	n := 0
	for name := range c.where {
		rest, ok := strings.CutPrefix(name, prefix)
		if !ok {
			continue
		}
		num, _, ok := strings.Cut(rest, ".")
		if i, err := strconv.Atoi(num); ok && err == nil && i >= 0 {
			n = max(n, i+1)
		}
	}
	return n
}

// CheckLayers refuses a config whose layer count (field, e.g.
// "num_hidden_layers", = want) differs from the layers the checkpoint holds
// under prefix. A checkpoint with no layers there is left to Fill, which
// names the missing tensors.
func (c *Checkpoint) CheckLayers(prefix string, want int, field string) error {
	got := c.Layers(prefix)
	if got == 0 || got == want {
		return nil
	}
	where := c.Dir
	if c.source != "" {
		where = filepath.Join(c.Dir, c.source)
	}
	return fmt.Errorf("checkpoint %s: the config has %s %d, but the checkpoint holds %d layers (%s0 to %s%d): config.json does not describe these weights",
		where, field, want, got, prefix, prefix, got-1)
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

// CheckDir says clearly when dir is not a model directory at all: it does
// not exist, or is a file.
func CheckDir(dir string) error {
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("model directory %s does not exist", dir)
	case err != nil:
		return fmt.Errorf("model directory %s: %w", dir, err)
	case !st.IsDir():
		return fmt.Errorf("model %s is a file, not a model directory", dir)
	}
	return nil
}

// readFile reads dir/name (a leading byte order mark dropped); a missing
// config.json is ErrNoConfig.
func readFile(dir, name string) ([]byte, error) {
	if err := CheckDir(dir); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		if os.IsNotExist(err) && name == "config.json" {
			return nil, fmt.Errorf("model %s: %w", dir, ErrNoConfig)
		}
		return nil, fmt.Errorf("model %s: %w", dir, err)
	}
	if b, err = bom.Bytes(b); err != nil {
		return nil, fmt.Errorf("model %s: %s: %w", dir, name, err)
	}
	return b, nil
}

// ReadConfig reads dir/config.json once, refuses it unless its model_type
// and architectures fit role (see Role.Check), and parses it with parse (a
// model's ParseConfig); errors name the file.
func ReadConfig[T any](dir string, role Role, parse func([]byte) (T, error)) (T, error) {
	var zero T
	b, err := readFile(dir, "config.json")
	if err != nil {
		return zero, err
	}
	var k Kind
	if err := json.Unmarshal(b, &k); err != nil {
		return zero, fmt.Errorf("model %s: config.json: %w", dir, err)
	}
	if err := CheckRole(dir, k, role.Name, role); err != nil {
		return zero, err
	}
	c, err := parse(b)
	if err != nil {
		return c, fmt.Errorf("model %s: config.json: %w", dir, err)
	}
	return c, nil
}

// ReadKind reads the model_type and architectures of dir/config.json.
func ReadKind(dir string) (Kind, error) {
	var k Kind
	err := ReadJSON(dir, "config.json", &k)
	return k, err
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
// free them. Every tensor of the checkpoint must be used (or ignored, see
// Options).
func Load(dir string, dst any, prefix string, opt Options) (*torch.Scope, error) {
	ck, err := OpenCheckpoint(dir)
	if err != nil {
		return nil, err
	}
	defer ck.Close()
	s, err := LoadFrom(ck, dst, prefix, opt)
	if err != nil {
		return nil, err
	}
	if err := ck.CheckUnexpected(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// LoadFrom fills dst from a checkpoint already open (for loaders that first
// look at its names to tell which layout it is, or fill several models from
// one checkpoint) into a new scope that owns the weights. It does not check
// for unexpected tensors: the caller does, with ck.CheckUnexpected, once
// every part is filled.
func LoadFrom(ck *Checkpoint, dst any, prefix string, opt Options) (*torch.Scope, error) {
	s := torch.NewScope()
	if err := Fill(s, ck, prefix, dst, opt); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}
