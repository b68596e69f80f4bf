# SPDX-License-Identifier: BSD-3-Clause
# Programs linked against libvfdma.a.  The directory Makefile either sets
#   APP and C_SRCS              one program, or
#   PROGS, <prog>_SRCS and      several programs, each from its own sources
#   COMMON_SRCS                 plus sources they all share,
# then includes this file.  Programs land in $(BUILD)/bin/.

include $(dir $(lastword $(MAKEFILE_LIST)))common.mk

ifdef APP
PROGS := $(APP)
$(APP)_SRCS := $(C_SRCS)
endif

objs_of = $(addprefix $(OBJDIR)/,$(1:.c=.o))
COMMON_OBJS := $(call objs_of,$(COMMON_SRCS))
ALL_OBJS := $(COMMON_OBJS) $(foreach p,$(PROGS),$(call objs_of,$($(p)_SRCS)))
BINS := $(addprefix $(BUILD)/bin/,$(PROGS))

.PHONY: all clean
all: $(BINS)

define prog_rule
$(BUILD)/bin/$(1): $(call objs_of,$($(1)_SRCS)) $(COMMON_OBJS) $(LIBVFDMA_A)
	@mkdir -p $$(dir $$@)
	@echo "  LINK  $$(notdir $$@)"
	$$(Q)$$(CC) $$(LDFLAGS) $$(filter %.o,$$^) $$(LIBVFDMA_A) $$(VFDMA_DEP_LIBS) $$(APP_LIBS) -o $$@
endef
$(foreach p,$(PROGS),$(eval $(call prog_rule,$(p))))

clean:
	$(Q)rm -rf $(OBJDIR) $(BINS)

-include $(ALL_OBJS:.o=.d)
