package server

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A setting out of range is refused, naming the field, instead of being
// quietly replaced by the default.
func TestConfigValidate(t *testing.T) {
	bad := []struct {
		field string
		cfg   Config
	}{
		{"MaxBatch", Config{MaxBatch: -1}},
		{"MaxBatch", Config{MaxBatch: 1 << 20}},
		{"Queue", Config{Queue: -5}},
		{"Queue", Config{Queue: 1 << 30}},
		{"Workers", Config{Workers: -1}},
		{"Workers", Config{Workers: 100000}},
		{"MaxBody", Config{MaxBody: -1}},
		{"MaxBody", Config{MaxBody: 2 << 30}},
		{"MaxQueryLen", Config{MaxQueryLen: -1}},
		{"MaxPassages", Config{MaxPassages: -2}},
		{"MaxPassageLen", Config{MaxPassageLen: -1}},
		{"MaxItems", Config{MaxItems: -1}},
		{"Timeout", Config{Timeout: -time.Second}},
		{"Timeout", Config{Timeout: 1000 * time.Hour}},
		{"ReadHeaderTimeout", Config{ReadHeaderTimeout: -1}},
		{"ReadTimeout", Config{ReadTimeout: -time.Second}},
		{"IdleTimeout", Config{IdleTimeout: -time.Second}},
		{"ShutdownTimeout", Config{ShutdownTimeout: -time.Second}},
		{"MaxWait", Config{MaxWait: 48 * time.Hour}},
		{"MaxWait", Config{MaxWait: 2 * time.Second, Timeout: time.Second}},
		{"MaxWait", Config{MaxWait: 2 * time.Minute}}, // the default Timeout is 60 s
	}
	for _, c := range bad {
		s, err := New(c.cfg)
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Field != c.field || s != nil {
			t.Errorf("%+v: got %v, want a ConfigError on %s", c.cfg, err, c.field)
			continue
		}
		if !strings.Contains(err.Error(), c.field) {
			t.Errorf("%v does not name %s", err, c.field)
		}
	}
	for _, cfg := range []Config{{}, {MaxWait: -1}, {MaxBatch: 1, Queue: 1, Workers: 1, MaxBody: 1, Timeout: time.Millisecond, MaxWait: -1},
		{MaxBatch: 1 << 16, Queue: 1 << 20, MaxBody: 1 << 30, Timeout: 24 * time.Hour, MaxWait: time.Hour}} {
		if err := cfg.Validate(); err != nil {
			t.Errorf("%+v: %v", cfg, err)
		}
	}
	// zero takes the default
	s, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if s.cfg.MaxBody != 1<<20 || s.cfg.Timeout != 60*time.Second || s.cfg.MaxQueryLen != 2000 || s.cfg.MaxWait != 5*time.Millisecond {
		t.Errorf("defaults: %+v", s.cfg)
	}
}

func TestLoadToken(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // past the umask
			t.Fatal(err)
		}
		return p
	}
	cases := []struct {
		name, content string
		mode          os.FileMode
		want          string   // the token; "" for an error
		errHas        string   // in the error
		warns         []string // in the log
	}{
		{"good", "0123456789abcdef0123\n", 0o600, "0123456789abcdef0123", "", nil},
		{"padded", "  0123456789abcdef0123 \r\n", 0o400, "0123456789abcdef0123", "", nil},
		{"byte order mark", "\xef\xbb\xbf0123456789abcdef0123\n", 0o600, "0123456789abcdef0123", "", nil},
		{"open to others", "0123456789abcdef0123\n", 0o644, "0123456789abcdef0123", "", []string{"open to group or others", "mode=0644"}},
		{"open to group", "0123456789abcdef0123\n", 0o640, "0123456789abcdef0123", "", []string{"open to group or others"}},
		{"short", "abc123\n", 0o600, "abc123", "", []string{"short", "bytes=6"}},
		{"two lines", "0123456789abcdef0123\nsecond-line-token\n", 0o600, "", "2 lines", nil},
		{"three lines", "a\nb\nc", 0o600, "", "3 lines", nil},
		{"CR inside", "0123456789abcdef\r0123", 0o600, "", "lines", nil},
		{"empty", " \n", 0o600, "", "empty", nil},
		{"huge", strings.Repeat("x", 5000), 0o600, "", "over 4096 bytes", nil},
	}
	for _, c := range cases {
		p := write(strings.ReplaceAll(c.name, " ", "_"), c.content, c.mode)
		var logs bytes.Buffer
		tok, err := LoadToken(p, slog.New(slog.NewTextHandler(&logs, nil)))
		switch {
		case c.want == "" && err == nil:
			t.Errorf("%s: accepted as %q", c.name, tok)
		case c.want == "" && (!strings.Contains(err.Error(), c.errHas) || !strings.Contains(err.Error(), p)):
			t.Errorf("%s: error %v, want one naming %s with %q", c.name, err, p, c.errHas)
		case c.want != "" && (err != nil || tok != c.want):
			t.Errorf("%s: %q, %v; want %q", c.name, tok, err, c.want)
		}
		for _, w := range c.warns {
			if !strings.Contains(logs.String(), w) || !strings.Contains(logs.String(), "level=WARN") {
				t.Errorf("%s: no warning with %q: %s", c.name, w, logs.String())
			}
		}
		if len(c.warns) == 0 && logs.Len() > 0 {
			t.Errorf("%s: unexpected log: %s", c.name, logs.String())
		}
	}
	if _, err := LoadToken(filepath.Join(dir, "missing"), nil); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing file: %v", err)
	}
	if _, err := LoadToken(dir, nil); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("a directory: %v", err)
	}
}
