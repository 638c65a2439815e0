package bert

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"

	"github.com/re2g/re2g/model"
)

// decodeRaw decodes a config.json into a map that keeps numbers as written
// (json.Number), so that saving writes 0.0 back as 0.0: transformers 5
// validates its configs' float fields strictly and rejects an int there.
func decodeRaw(b []byte) (map[string]any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		return nil, err
	}
	return m, nil
}

// marshalConfig is model.MarshalConfig with typed's float fields written
// as floats (0.0, not 0) and Raw's numbers as they were read.
func marshalConfig(typed any, raw map[string]any) ([]byte, error) {
	b, err := model.MarshalConfig(typed, raw)
	if err != nil {
		return nil, err
	}
	m, err := decodeRaw(b)
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
