# SPDX-License-Identifier: BSD-3-Clause
# Common make settings: every directory Makefile includes one of lib.mk,
# app.mk or test.mk, which include this file.

VFDMA_ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))/..)

ifeq ($(wildcard $(VFDMA_ROOT)/mk/config.mk),)
$(error mk/config.mk is missing: run ./configure first)
endif
include $(VFDMA_ROOT)/mk/config.mk

BUILD := $(if $(filter /%,$(CONFIG_BUILDDIR)),$(CONFIG_BUILDDIR),$(VFDMA_ROOT)/$(CONFIG_BUILDDIR))
REL := $(patsubst $(VFDMA_ROOT)/%,%,$(CURDIR))
OBJDIR := $(BUILD)/obj/$(REL)

CC := $(CONFIG_CC)
CXX := $(CONFIG_CXX)
AR := ar

ifeq ($(V),1)
Q :=
else
Q := @
endif

COMMON_FLAGS := -g -pthread -fno-strict-aliasing
ifeq ($(CONFIG_DEBUG),y)
COMMON_FLAGS += -O0 -g3 -DDEBUG
else
COMMON_FLAGS += -O2 -DNDEBUG
endif

SAN_FLAGS :=
ifeq ($(CONFIG_ASAN),y)
SAN_FLAGS += -fsanitize=address -fno-omit-frame-pointer
endif
ifeq ($(CONFIG_UBSAN),y)
SAN_FLAGS += -fsanitize=undefined -fno-sanitize-recover=all
endif
ifeq ($(CONFIG_TSAN),y)
SAN_FLAGS += -fsanitize=thread
endif
COMMON_FLAGS += $(SAN_FLAGS)

WARN_FLAGS := -Wall -Wextra -Werror -Wshadow -Wpointer-arith -Wformat=2 \
	-Wno-unused-parameter -Wno-missing-field-initializers

CPPFLAGS := -I$(VFDMA_ROOT)/include -I$(VFDMA_ROOT)/lib -D_GNU_SOURCE \
	-DVFDMA_VERSION_STRING=\"$(CONFIG_VERSION)\"
ifeq ($(CONFIG_NUMA),y)
CPPFLAGS += -DVFDMA_HAVE_NUMA $(CONFIG_NUMA_CFLAGS)
endif
ifeq ($(CONFIG_DPDK),y)
CPPFLAGS += -DVFDMA_HAVE_DPDK
endif

CFLAGS := -std=gnu11 $(COMMON_FLAGS) $(WARN_FLAGS) -Wstrict-prototypes \
	-Wmissing-prototypes $(EXTRA_CFLAGS)
CXXFLAGS := -std=c++17 $(COMMON_FLAGS) $(WARN_FLAGS) $(EXTRA_CXXFLAGS)
LDFLAGS := -pthread $(SAN_FLAGS) $(EXTRA_LDFLAGS)

# Libraries every program linking libvfdma needs.
VFDMA_DEP_LIBS := $(CONFIG_NUMA_LIBS) -lpthread

LIBVFDMA_A := $(BUILD)/lib/libvfdma.a

$(OBJDIR)/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC    $(REL)/$<"
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) $(LOCAL_CFLAGS) -MMD -MP -c $< -o $@

$(OBJDIR)/%.o: %.cc
	@mkdir -p $(dir $@)
	@echo "  CXX   $(REL)/$<"
	$(Q)$(CXX) $(CPPFLAGS) $(CXXFLAGS) $(LOCAL_CXXFLAGS) -MMD -MP -c $< -o $@
