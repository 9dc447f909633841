# slipway: plain GNU make, pkg-config for every library, everything under build/.
#
#   make              build build/slipwayd and build/slipway
#   make test         install missing packages, build, run unit and end-to-end tests
#   make check        the same tests built with AddressSanitizer + UBSan
#   make demo         install missing packages, build, run the end-to-end demo
#   make install      PREFIX=/usr/local DESTDIR=
#   make fuzz         build the libFuzzer targets (clang) and run each for FUZZ_SECONDS
#   make fuzz-build   only build them, into build/fuzz/NAME (docs/fuzzing.md)
#
# Sources are found by folder: every .c in a subsystem folder goes into
# build/libslipway.a; daemon/slipwayd.c and cli/slipway.c are the two mains;
# tests/unit/test_X.c becomes build/tests/test_X; tests/kubeapi/*.c becomes
# build/tests/kubeapi (the test Kubernetes API server).

PREFIX  ?= /usr/local
BINDIR  ?= $(PREFIX)/bin
UNITDIR ?= $(PREFIX)/lib/systemd/system
DESTDIR ?=
BUILD   ?= build

# A git checkout is a developer's: warnings are fatal there.
DEVELOPER ?= $(if $(wildcard .git),1,0)

PKGS     := libevent libevent_pthreads libevent_openssl libgit2 libcurl openssl jansson yaml-0.1 sqlite3
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CMOCKA_LIBS := $(shell pkg-config --libs cmocka 2>/dev/null)

WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
        -Wpointer-arith -Wformat=2 -Wno-unused-parameter -Wno-format-nonliteral -Wno-format-truncation
ifeq ($(DEVELOPER),1)
WARN += -Werror
endif

OPT ?= -O2 -g
ifeq ($(SAN),1)
OPT := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
endif

CFLAGS  ?=
LDFLAGS ?=
ALL_CFLAGS  = -std=c11 -D_GNU_SOURCE -I. $(OPT) $(WARN) $(PKG_CFLAGS) -MMD -MP $(CFLAGS)
ALL_LDFLAGS = $(OPT) $(LDFLAGS)
LIBS_ALL    = $(PKG_LIBS) -lpthread -lm

SUBSYS  := lib config storage runners webhooks git kube httpd aws github manifests deploy infra report pipeline daemon
MAINS   := daemon/slipwayd.c cli/slipway.c
LIB_SRC := $(filter-out $(MAINS),$(foreach d,$(SUBSYS),$(wildcard $(d)/*.c)))
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)

UNIT_SRC  := $(wildcard tests/unit/test_*.c)
UNIT_BIN  := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
TESTLIB_SRC := $(filter-out $(UNIT_SRC),$(wildcard tests/unit/*.c))
TESTLIB_OBJ := $(TESTLIB_SRC:%.c=$(BUILD)/obj/%.o)
KUBEAPI_SRC := $(wildcard tests/kubeapi/*.c)
KUBEAPI_OBJ := $(KUBEAPI_SRC:%.c=$(BUILD)/obj/%.o)
KUBEAPI_BIN := $(if $(KUBEAPI_SRC),$(BUILD)/tests/kubeapi)

BINS := $(BUILD)/slipwayd $(BUILD)/slipway

# `make V=1` shows the full commands.
ifneq ($(V),1)
Q_CC = @echo "  CC      $<";
Q_LD = @echo "  LINK    $@";
Q_AR = @echo "  AR      $@";
endif

.SECONDARY:
.PHONY: all deps test unit e2e check demo install clean bench fuzz fuzz-build fuzz-regress
all: $(BINS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(Q_CC)$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/libslipway.a: $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(Q_AR)rm -f $@ && $(AR) rcs $@ $^

$(BUILD)/slipwayd: $(BUILD)/obj/daemon/slipwayd.o $(BUILD)/libslipway.a
	$(Q_LD)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS_ALL)

$(BUILD)/slipway: $(BUILD)/obj/cli/slipway.o $(BUILD)/libslipway.a
	$(Q_LD)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS_ALL)

$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(TESTLIB_OBJ) $(BUILD)/libslipway.a
	@mkdir -p $(dir $@)
	$(Q_LD)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(CMOCKA_LIBS) $(LIBS_ALL)

$(BUILD)/tests/kubeapi: $(KUBEAPI_OBJ)
	@mkdir -p $(dir $@)
	$(Q_LD)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS_ALL)

deps:
	@contrib/install-deps.sh

# Fuzz targets (tests/fuzz/NAME.c, one LLVMFuzzerTestOneInput each). The same
# sources linked with tests/fuzz/driver.c by $(CC) make build/tests/fuzz-NAME,
# which replays the seeds and regression inputs in `make unit` (and, built with
# the sanitizers, in `make check`) on machines without clang.
FUZZ_SRC   := $(filter-out tests/fuzz/driver.c,$(wildcard tests/fuzz/*.c))
FUZZ_NAMES := $(FUZZ_SRC:tests/fuzz/%.c=%)
FUZZ_REGRESS_BIN := $(FUZZ_NAMES:%=$(BUILD)/tests/fuzz-%)

$(BUILD)/tests/fuzz-%: $(BUILD)/obj/tests/fuzz/%.o $(BUILD)/obj/tests/fuzz/driver.o $(BUILD)/libslipway.a
	@mkdir -p $(dir $@)
	$(Q_LD)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS_ALL)

fuzz-regress: $(FUZZ_REGRESS_BIN)
	@tests/fuzz/regress.sh $(BUILD)/tests $(FUZZ_NAMES)

# The libFuzzer build: clang, its own objects under build/fuzz/obj.
FUZZ_CC     ?= $(shell command -v clang-14 2>/dev/null || command -v clang 2>/dev/null || echo clang)
FUZZ_SAN    := -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_CFLAGS  = -std=c11 -D_GNU_SOURCE -I. -O1 -g -fno-omit-frame-pointer $(FUZZ_SAN) \
	       $(filter-out -Werror,$(WARN)) -Wno-unknown-warning-option -Wno-string-concatenation $(PKG_CFLAGS) -MMD -MP
FUZZ_SECONDS ?= 60
FUZZ_OBJ    := $(LIB_SRC:%.c=$(BUILD)/fuzz/obj/%.o)
FUZZ_BIN    := $(FUZZ_NAMES:%=$(BUILD)/fuzz/%)

$(BUILD)/fuzz/obj/tests/fuzz/%.o: tests/fuzz/%.c
	@mkdir -p $(dir $@)
	$(Q_CC)$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(BUILD)/fuzz/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(Q_CC)$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(BUILD)/fuzz/libslipway.a: $(FUZZ_OBJ)
	$(Q_AR)rm -f $@ && $(AR) rcs $@ $^

$(BUILD)/fuzz/%: $(BUILD)/fuzz/obj/tests/fuzz/%.o $(BUILD)/fuzz/libslipway.a
	$(Q_LD)$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $^ $(LIBS_ALL)

fuzz-build: $(FUZZ_BIN)

# Each target for FUZZ_SECONDS on tests/fuzz/corpus/NAME (kept out of git),
# seeded from the fixtures; a crash stops `make fuzz` with the input saved.
# `make -j2 fuzz` runs two at a time.
fuzz: $(FUZZ_NAMES:%=fuzz-run-%)

fuzz-run-%: $(BUILD)/fuzz/%
	@FUZZ_SECONDS=$(FUZZ_SECONDS) tests/fuzz/run.sh $< $*

# Unit tests, then the end-to-end scripts (tests/e2e/*.sh), each against the
# real binaries in $(BUILD).
unit: $(UNIT_BIN) $(KUBEAPI_BIN) $(FUZZ_REGRESS_BIN)
	@contrib/layers.sh --check
	@tests/run-unit.sh $(UNIT_BIN)
	@tests/fuzz/regress.sh $(BUILD)/tests $(FUZZ_NAMES)

e2e: $(BINS) $(KUBEAPI_BIN)
	@BUILD=$(abspath $(BUILD)) tests/run-e2e.sh

test: deps
	@$(MAKE) --no-print-directory all unit e2e

# sanitizers slow everything down: every test deadline is 3 times as long
check: deps
	@SW_TEST_SLOW=$${SW_TEST_SLOW:-3} $(MAKE) --no-print-directory BUILD=$(BUILD)/san SAN=1 all unit e2e

demo: deps
	@$(MAKE) --no-print-directory all $(KUBEAPI_BIN)
	@BUILD=$(abspath $(BUILD)) contrib/demo.sh

bench: all $(KUBEAPI_BIN)
	@contrib/install-deps.sh --bench
	@BUILD=$(abspath $(BUILD)) bench/run.sh

install: $(BINS)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(UNITDIR)
	install -m 0755 $(BINS) $(DESTDIR)$(BINDIR)/
	sed 's|/usr/local/bin/slipwayd|$(BINDIR)/slipwayd|' contrib/systemd/slipwayd.service \
		> $(DESTDIR)$(UNITDIR)/slipwayd.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/slipwayd.service

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD)/obj $(BUILD)/fuzz/obj -name '*.d' 2>/dev/null)
