package model

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
)

// Kind is what a config.json says its directory holds.
type Kind struct {
	ModelType     string   `json:"model_type"`
	Architectures []string `json:"architectures"`
}

func (k Kind) String() string {
	s := "no model_type"
	if k.ModelType != "" {
		s = fmt.Sprintf("model_type %q", k.ModelType)
	}
	if len(k.Architectures) > 0 {
		s += " (" + strings.Join(k.Architectures, ", ") + ")"
	}
	return s
}

// Role is what one loader reads: the model types and architectures it
// accepts.
type Role struct {
	Name          string   // what the loader makes, e.g. "a DPR encoder"
	ModelTypes    []string // accepted model_type values
	Architectures []string // accepted architectures
}

func (r Role) String() string {
	types := make([]string, len(r.ModelTypes))
	for i, t := range r.ModelTypes {
		types[i] = fmt.Sprintf("%q", t)
	}
	return fmt.Sprintf("model_type %s (%s)", strings.Join(types, " or "), strings.Join(r.Architectures, " or "))
}

// Fits reports whether k can be r's: its model_type is one of r's and its
// architectures, if it names any, include one of r's. An old config without
// model_type or architectures fits: its tensors decide.
func (r Role) Fits(k Kind) bool {
	if k.ModelType != "" && !slices.Contains(r.ModelTypes, k.ModelType) {
		return false
	}
	if len(k.Architectures) == 0 {
		return true
	}
	for _, a := range k.Architectures {
		if slices.Contains(r.Architectures, a) {
			return true
		}
	}
	return false
}

// CheckRole refuses the config of model dir, of kind k, unless it fits one
// of roles; the error says what was found and what what (e.g. "an
// encoder") needs.
func CheckRole(dir string, k Kind, what string, roles ...Role) error {
	var want []string
	for _, r := range roles {
		if r.Fits(k) {
			return nil
		}
		if len(roles) == 1 {
			want = append(want, r.String())
		} else {
			want = append(want, r.Name+", "+r.String())
		}
	}
	list := want[0]
	if n := len(want); n > 1 {
		list = strings.Join(want[:n-1], "; ") + "; or " + want[n-1]
	}
	return fmt.Errorf("model %s: config.json has %s, but %s needs %s", dir, k, what, list)
}

// DecodeConfig decodes a config.json into a map that keeps numbers as written
// (json.Number), so that saving writes 0.0 back as 0.0: transformers 5
// validates its configs' float fields strictly and rejects an int there.
func DecodeConfig(b []byte) (map[string]any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		return nil, err
	}
	return m, nil
}

// MarshalConfig writes a config: raw (the file as read by DecodeConfig, so
// that unknown fields and numbers survive as written) overlaid with typed's
// JSON fields, its float fields written as floats (0.0, not 0).
func MarshalConfig(typed any, raw map[string]any) ([]byte, error) {
	b, err := overlay(typed, raw)
	if err != nil {
		return nil, err
	}
	m, err := DecodeConfig(b)
	if err != nil {
		return nil, err
	}
	t := reflect.TypeOf(typed)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		k := f.Type.Kind()
		if k == reflect.Pointer {
			k = f.Type.Elem().Kind()
		}
		if k != reflect.Float64 && k != reflect.Float32 {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if n, ok := m[name].(json.Number); ok && !strings.ContainsAny(string(n), ".eE") {
			m[name] = json.Number(string(n) + ".0")
		}
	}
	return json.Marshal(m)
}
