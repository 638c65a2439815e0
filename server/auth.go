package server

import (
	"github.com/re2g/re2g/internal/bom"

	"bytes"
	"fmt"
	"io"
	"log/slog"
	"os"
)

// maxTokenFile bounds a token file: a token is one short line.
const maxTokenFile = 4096

// minTokenLen is the length below which a token draws a warning.
const minTokenLen = 16

// LoadToken reads a bearer token from path: one line, surrounding
// whitespace trimmed. It refuses an empty file or one of several lines, and
// warns on log when the file is open to group or others, or the token is
// shorter than 16 bytes.
func LoadToken(path string, log *slog.Logger) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("token file %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("token file %s: not a regular file", path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxTokenFile+1))
	if err != nil {
		return "", fmt.Errorf("token file %s: %w", path, err)
	}
	if len(b) > maxTokenFile {
		return "", fmt.Errorf("token file %s: over %d bytes: a token is one line", path, maxTokenFile)
	}
	if b, err = bom.Bytes(b); err != nil {
		return "", fmt.Errorf("token file %s: %w", path, err)
	}
	tok := bytes.TrimSpace(b)
	if len(tok) == 0 {
		return "", fmt.Errorf("token file %s is empty", path)
	}
	if n := bytes.Count(tok, []byte("\n")) + 1; n > 1 || bytes.ContainsRune(tok, '\r') {
		return "", fmt.Errorf("token file %s holds %d lines: a token is one line", path, max(n, 2))
	}
	if log == nil {
		log = slog.Default()
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		log.Warn("the token file is open to group or others: chmod 600 it", "file", path, "mode", fmt.Sprintf("%04o", perm))
	}
	if len(tok) < minTokenLen {
		log.Warn("the token is short: use 16 bytes or more (head -c 32 /dev/urandom | base64)", "file", path, "bytes", len(tok))
	}
	return string(tok), nil
}
