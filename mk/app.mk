# SPDX-License-Identifier: BSD-3-Clause
# A program linked against libvfdma.a: the directory Makefile sets APP and
# C_SRCS, then includes this file.  The program lands in $(BUILD)/bin/$(APP).

include $(dir $(lastword $(MAKEFILE_LIST)))common.mk

OBJS := $(addprefix $(OBJDIR)/,$(C_SRCS:.c=.o))
BIN := $(BUILD)/bin/$(APP)

.PHONY: all clean
all: $(BIN)

$(BIN): $(OBJS) $(LIBVFDMA_A)
	@mkdir -p $(dir $@)
	@echo "  LINK  $(notdir $@)"
	$(Q)$(CC) $(LDFLAGS) $(OBJS) $(LIBVFDMA_A) $(VFDMA_DEP_LIBS) $(APP_LIBS) -o $@

clean:
	$(Q)rm -rf $(OBJDIR) $(BIN)

-include $(OBJS:.o=.d)
