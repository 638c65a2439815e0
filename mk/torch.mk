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

$(TORCH_SHIM): $(TORCH_OBJS)
	@mkdir -p $(@D)
	$(CXX) -shared -o $@.tmp $^ $(TORCH_LIB) -Wl,--no-as-needed -ltorch -ltorch_cpu -lc10 -Wl,--as-needed
	mv $@.tmp $@
