package torch

/*
#include "re2g_torch.h"
*/
import "C"

// autocastState is the calling OS thread's autocast state, for tests (which
// lock their goroutine to its thread): whether autocast is on for CPU and
// CUDA tensors, whether its cache is on, and the target types.
func autocastState() (cpu, cuda, cache bool, cpuDT, cudaDT DType) {
	var c, g C.int
	r := C.re2g_autocast_state(&c, &g)
	return r&1 != 0, r&2 != 0, r&4 != 0, DType(c), DType(g)
}

// autocastKeepCache makes autocast calls keep libtorch's weight-cast cache
// on, the unsafe setting the shim avoids, for tests that show it is caught;
// turning it off clears the calling thread's cache.
func autocastKeepCache(keep bool) {
	k := C.int(0)
	if keep {
		k = 1
	}
	C.re2g_autocast_keep_cache(k)
}
