# SPDX-License-Identifier: BSD-3-Clause
# A GoogleTest program: the directory Makefile sets TEST (the program name)
# and CXX_SRCS (and C_SRCS for C helpers), then includes this file;
# TEST_PRE_LIBS are linked before libvfdma.a, TEST_LIBS after GoogleTest.  Tests
# link the static library, so they can reach internal (hidden) functions
# through the headers under lib/.

include $(dir $(lastword $(MAKEFILE_LIST)))common.mk

OBJS := $(addprefix $(OBJDIR)/,$(CXX_SRCS:.cc=.o) $(C_SRCS:.c=.o))
BIN := $(BUILD)/test/$(TEST)
CPPFLAGS += -I$(VFDMA_ROOT)/test

.PHONY: all clean
all: $(BIN)

$(BIN): $(OBJS) $(TEST_PRE_LIBS) $(LIBVFDMA_A)
	@mkdir -p $(dir $@)
	@echo "  LINK  $(notdir $@)"
	$(Q)$(CXX) $(LDFLAGS) $(OBJS) $(TEST_PRE_LIBS) $(LIBVFDMA_A) $(VFDMA_DEP_LIBS) \
		-lgtest_main -lgtest $(TEST_LIBS) -o $@

clean:
	$(Q)rm -rf $(OBJDIR) $(BIN)

-include $(OBJS:.o=.d)
