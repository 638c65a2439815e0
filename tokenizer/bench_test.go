package tokenizer

import (
	"context"
	"path/filepath"
	"runtime"
	"testing"
)

// BenchmarkEncode measures Go tokenizer throughput on SQuADShifts texts
// (scripts/bench_tokenizer compares it with HF tokenizers).
func BenchmarkEncode(b *testing.B) {
	src := loadSources(b)
	var inputs []Input
	bytes := 0
	for _, k := range []string{"squad.p", "squad.q"} {
		for _, s := range src[k] {
			inputs = append(inputs, Input{A: s})
			bytes += len(s)
		}
	}
	for _, c := range []struct{ name, path string }{
		{"bert", filepath.Join(dataDir, "tokenizers/bert-base-uncased/tokenizer.json")},
		{"gpt2", filepath.Join(dataDir, "tokenizers/gpt2-bpe")},
	} {
		tok := loadOrSkip(b, c.path)
		for _, threads := range []int{1, runtime.NumCPU()} {
			b.Run(c.name+"/threads="+itoa(threads), func(b *testing.B) {
				prev := runtime.GOMAXPROCS(threads)
				defer runtime.GOMAXPROCS(prev)
				b.SetBytes(int64(bytes))
				for i := 0; i < b.N; i++ {
					if _, err := tok.EncodeBatch(context.Background(), inputs, Options{}); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func itoa(n int) string {
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + string(rune('0'+n%10))
}
