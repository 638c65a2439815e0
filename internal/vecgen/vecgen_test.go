package vecgen

import "testing"

func TestDeterministicAndPrefixStable(t *testing.T) {
	g := New(Spec{Dim: 16, Clusters: 4, Noise: 1, NormSpread: 0.2, Seed: 9})
	a := g.Vectors(1, 10)
	b := New(Spec{Dim: 16, Clusters: 4, Noise: 1, NormSpread: 0.2, Seed: 9}).Vectors(1, 25)
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("value %d differs: %g vs %g", i, a[i], b[i])
		}
	}
	c := g.Vectors(2, 10)
	same := 0
	for i := range a {
		if a[i] == c[i] {
			same++
		}
	}
	if same == len(a) {
		t.Fatal("streams 1 and 2 gave identical vectors")
	}
}

func TestRowsArePiecesOfVectors(t *testing.T) {
	g := New(Default(8))
	all := g.Vectors(3, 20)
	piece := g.Rows(3, 7, 13)
	for i := range piece {
		if piece[i] != all[7*8+i] {
			t.Fatalf("value %d of rows 7..12 differs from Vectors'", i)
		}
	}
}
