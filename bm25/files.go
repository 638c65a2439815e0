package bm25

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// requiredFiles are the files of a bleve scorch index that every index made
// by Create has: without them bleve would fail with an unrelated message,
// or, for store/root.bolt, create an empty one in their place.
var requiredFiles = []string{"index_meta.json", "store", filepath.Join("store", "root.bolt")}

// checkFiles says which required file of the index in dir is missing.
func checkFiles(dir string) error {
	for _, f := range requiredFiles {
		if _, err := os.Stat(filepath.Join(dir, f)); errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("bm25: index at %s is incomplete: %s is missing", dir, f)
		}
	}
	return nil
}

// openError explains bleve's error opening the index in dir: without a
// loadable snapshot (its segment files gone) bleve reports that its mapping
// does not parse, followed by the (empty) mapping over several lines.
func openError(dir string, err error) error {
	msg, _, _ := strings.Cut(err.Error(), "\n")
	if strings.Contains(msg, "mapping") {
		return fmt.Errorf("bm25: index at %s is incomplete: no snapshot of it loads (its segment files %s are missing or unreadable): %s",
			dir, filepath.Join(dir, "store", "*.zap"), msg)
	}
	if msg != err.Error() {
		return fmt.Errorf("bm25: open %s: %s", dir, msg)
	}
	return fmt.Errorf("bm25: open %s: %w", dir, err)
}
