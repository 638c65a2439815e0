# The libtorch shim: a C ABI over libtorch, built as its own shared library so
# that the same Go binary runs with Debian's CPU libtorch or with a shim built
# against a CUDA libtorch placed earlier on the library path.
#
# TORCH_PREFIX selects another libtorch (e.g. the one inside a PyTorch wheel):
#   make torch-shim TORCH_PREFIX=/path/to/site-packages/torch TORCH_ABI=1
TORCH_PREFIX ?=
TORCH_ABI ?=
ifeq ($(TORCH_PREFIX),)
TORCH_INC := -isystem /usr/include/torch/csrc/api/include
TORCH_LIB :=
else
TORCH_INC := -isystem $(TORCH_PREFIX)/include -isystem $(TORCH_PREFIX)/include/torch/csrc/api/include
TORCH_LIB := -L$(TORCH_PREFIX)/lib -Wl,-rpath,$(TORCH_PREFIX)/lib
# A CUDA libtorch registers its CUDA kernels from libtorch_cuda: link it so it loads.
TORCH_CUDA_LIB := -Wl,--no-as-needed -ltorch_cuda
TORCH_LIB += $(if $(wildcard $(TORCH_PREFIX)/lib/libtorch_cuda.so),$(TORCH_CUDA_LIB))
endif
# libtorch 2.10 and later need C++20 in their headers; earlier ones C++17.
TORCH_ATEN_H := $(if $(TORCH_PREFIX),$(TORCH_PREFIX)/include,/usr/include)/ATen/ATen.h
TORCH_STD ?= $(if $(shell grep -s 'C++20 or later' $(TORCH_ATEN_H)),c++20,c++17)
ifneq ($(TORCH_ABI),)
TORCH_ABI_FLAG := -D_GLIBCXX_USE_CXX11_ABI=$(TORCH_ABI)
endif
# Distributed collectives (torch/csrc/dist.cpp). Gloo, for CPU tensors: c10d's
# Gloo header needs USE_C10D_GLOO and gloo's own headers, which Debian ships
# (libgloo-dev, linked as -lgloo) and PyTorch wheels do not (gloo is linked
# into their libtorch_cpu, its headers left out): a wheel's shim has Gloo only
# with GLOO_INCLUDE=DIR naming gloo headers of the wheel's gloo commit. NCCL,
# for CUDA tensors: a CUDA libtorch (libtorch_cuda.so, ProcessGroupNCCL.hpp)
# with nccl.h and the CUDA runtime headers, found beside a wheel (the
# nvidia-nccl-cu* and nvidia-cuda-runtime-cu* wheels it depends on) or set
# with NCCL_INCLUDE / CUDA_INCLUDE. `make torch-dist-info` prints the choice.
TORCH_INCDIR := $(if $(TORCH_PREFIX),$(TORCH_PREFIX)/include,/usr/include)
C10D_DIR := $(TORCH_INCDIR)/torch/csrc/distributed/c10d
GLOO_INCLUDE ?= $(firstword $(patsubst %/gloo/algorithm.h,%,$(wildcard $(TORCH_INCDIR)/gloo/algorithm.h $(if $(TORCH_PREFIX),,/usr/include/gloo/algorithm.h))))
NVIDIA_WHEELS := $(if $(TORCH_PREFIX),$(abspath $(TORCH_PREFIX)/../nvidia))
NCCL_INCLUDE ?= $(firstword $(patsubst %/nccl.h,%,$(wildcard $(NVIDIA_WHEELS)/nccl/include/nccl.h $(CUDA_HOME)/include/nccl.h /usr/local/cuda/include/nccl.h /usr/include/nccl.h)))
CUDA_INCLUDE ?= $(firstword $(patsubst %/cuda_runtime_api.h,%,$(wildcard $(NVIDIA_WHEELS)/cuda_runtime/include/cuda_runtime_api.h $(CUDA_HOME)/include/cuda_runtime_api.h /usr/local/cuda/include/cuda_runtime_api.h /usr/include/cuda_runtime_api.h)))
DIST_GLOO := $(if $(and $(wildcard $(C10D_DIR)/ProcessGroupGloo.hpp),$(GLOO_INCLUDE)),1)
DIST_NCCL := $(if $(and $(TORCH_PREFIX),$(wildcard $(TORCH_PREFIX)/lib/libtorch_cuda.so),$(wildcard $(C10D_DIR)/ProcessGroupNCCL.hpp),$(NCCL_INCLUDE),$(CUDA_INCLUDE)),1)
DIST_FLAGS := $(if $(DIST_GLOO),-DUSE_C10D_GLOO -DRE2G_WITH_GLOO $(if $(filter /usr/include,$(GLOO_INCLUDE)),,-isystem $(GLOO_INCLUDE))) \
  $(if $(DIST_NCCL),-DUSE_C10D_NCCL -DRE2G_WITH_NCCL -isystem $(NCCL_INCLUDE) $(if $(filter $(NCCL_INCLUDE),$(CUDA_INCLUDE)),,-isystem $(CUDA_INCLUDE)))
# Debian's libtorch links gloo as a shared library of its own (a CUDA libtorch
# of Debian's too: DIST_EXTRA_LIB=-lgloo, as scripts/cuda_shim_check.sh does).
DIST_LIB := $(if $(and $(DIST_GLOO),$(if $(TORCH_PREFIX),,1)),-lgloo) $(if $(DIST_NCCL),-lc10_cuda) $(DIST_EXTRA_LIB)

TORCH_OUT ?= $(BUILD)/lib
TORCH_OBJDIR := $(BUILD)/torch-obj$(if $(TORCH_PREFIX),-ext)
TORCH_SRCS := $(wildcard torch/csrc/*.cpp)
TORCH_OBJS := $(patsubst torch/csrc/%.cpp,$(TORCH_OBJDIR)/%.o,$(TORCH_SRCS))
TORCH_SHIM := $(TORCH_OUT)/libre2gtorch.so
CXXFLAGS_TORCH := -std=$(TORCH_STD) -O2 -fPIC -Wall -Wno-unused-parameter $(TORCH_ABI_FLAG) $(TORCH_INC)

NATIVE += $(TORCH_SHIM)

.PHONY: torch-shim
torch-shim: $(TORCH_SHIM)

$(TORCH_OBJDIR)/%.o: torch/csrc/%.cpp torch/csrc/re2g_torch.h torch/csrc/internal.h
	@mkdir -p $(@D)
	$(CXX) $(CXXFLAGS_TORCH) -c $< -o $@

# The dist flags change what dist.o holds: rebuild it when they change.
TORCH_DIST_STAMP := $(TORCH_OBJDIR)/dist.flags
$(TORCH_DIST_STAMP): FORCE
	@mkdir -p $(@D)
	@echo '$(DIST_FLAGS)' | cmp -s - $@ || echo '$(DIST_FLAGS)' > $@
$(TORCH_OBJDIR)/dist.o: CXXFLAGS_TORCH += $(DIST_FLAGS)
$(TORCH_OBJDIR)/dist.o: $(TORCH_DIST_STAMP)

.PHONY: torch-dist-info FORCE
FORCE:
torch-dist-info:
	@echo "libtorch headers: $(TORCH_INCDIR)"
	@echo "gloo:  $(if $(DIST_GLOO),yes (gloo headers $(GLOO_INCLUDE)),no$(if $(GLOO_INCLUDE),, (no gloo headers: set GLOO_INCLUDE)))"
	@echo "nccl:  $(if $(DIST_NCCL),yes (nccl.h in $(NCCL_INCLUDE), CUDA headers $(CUDA_INCLUDE)),no)"

$(TORCH_SHIM): $(TORCH_OBJS)
	@mkdir -p $(@D)
	$(CXX) -shared -o $@.tmp $^ $(TORCH_LIB) -Wl,--no-as-needed -ltorch -ltorch_cpu -lc10 -Wl,--as-needed $(DIST_LIB)
	mv $@.tmp $@
