package model

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
)

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
