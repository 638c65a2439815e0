package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/re2g/re2g/indexdir"
)

// vectorFlags are re2g index's flags for precomputed passage vectors.
func vectorFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "vectors", Usage: "precomputed passage vectors, one a passage in corpus order, instead of --ctx-encoder: " +
			"a NumPy .npy file (2-D float32, float16 or float64, C order) with --vector-ids, or JSON lines {\"id\",\"vector\"} (re2g encode's output, .jsonl[.gz])"},
		&cli.StringFlag{Name: "vector-ids", Usage: "with a .npy --vectors: the passage id of each row, one a line"},
	}
}

// vectorOptions reads vectorFlags into o.
func vectorOptions(c *cli.Context, o *indexdir.Options) error {
	o.Vectors, o.VectorIDs = c.String("vectors"), c.String("vector-ids")
	switch {
	case o.Vectors == "" && o.VectorIDs != "":
		return fmt.Errorf("--vector-ids needs --vectors")
	case o.Vectors != "" && c.String("ctx-encoder") != "":
		return fmt.Errorf("--vectors and --ctx-encoder: give one or the other")
	case o.Vectors != "" && c.String("shard") != "":
		return fmt.Errorf("--vectors and --shard: shards split the encoding, precomputed vectors need none")
	}
	return nil
}
