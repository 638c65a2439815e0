package procstat

import (
	"os"
	"testing"
)

func TestRead(t *testing.T) {
	before, err := Read(0)
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	buf := make([]byte, 64<<20)
	for i := range buf {
		buf[i] = byte(i)
	}
	after, err := Read(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if after.Peak < before.Peak+60<<10 || after.Anon < before.Anon+60<<10 || after.RSS > after.Peak || after.Anon+after.FileRSS > after.RSS {
		t.Fatalf("64 MiB touched: before %+v, after %+v", before, after)
	}
	_ = buf[len(buf)-1]
	if _, err := Read(1 << 30); err == nil {
		t.Fatal("a process that does not exist")
	}
}
