# SPDX-License-Identifier: BSD-3-Clause
# A part of libvfdma: the directory Makefile sets LIBPART (a name) and C_SRCS,
# then includes this file.  Objects are built position-independent and
# collected in $(BUILD)/obj/lib/libvfdma_$(LIBPART).a, which lib/Makefile
# merges into libvfdma.a and libvfdma.so.  What the shared library exports is
# decided by lib/libvfdma.map (vfdma_* only); -fno-semantic-interposition keeps
# calls inside the library direct.

include $(dir $(lastword $(MAKEFILE_LIST)))common.mk

CFLAGS += -fPIC -fno-semantic-interposition
OBJS := $(addprefix $(OBJDIR)/,$(C_SRCS:.c=.o))
PART := $(BUILD)/obj/lib/libvfdma_$(LIBPART).a

.PHONY: all clean
all: $(PART)

$(PART): $(OBJS)
	@mkdir -p $(dir $@)
	@echo "  AR    $(REL) -> $(notdir $@)"
	$(Q)rm -f $@ && $(AR) crs $@ $(OBJS)

clean:
	$(Q)rm -rf $(OBJDIR) $(PART)

-include $(OBJS:.o=.d)
