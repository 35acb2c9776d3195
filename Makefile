# luaproxy - non-recursive Makefile.
#
#   make                 build build/luaproxy
#   make run             install missing packages, build, start on 127.0.0.1:8080
#   make test            install missing packages, build, run unit tests + specs
#   make SANITIZE=address,undefined test    the same under ASan/UBSan (build/sanitize)
#   make deps            install missing Debian packages (or print the command)
#   make fuzz            build the libFuzzer targets (build/fuzz) and run them

CC       ?= cc
PKGS     := lua5.4 libcares zlib libbrotlidec libzstd hiredis libcrypt libssl libcrypto libpcre2-8
SANITIZE ?=

ifneq ($(FUZZ),)
# The libFuzzer build (tests/fuzz/run.sh): every module compiled by clang
# with coverage for the fuzzer, ASan and UBSan, so a fuzz target links
# against the proxy's own objects and never lists the sources it needs.
CC       := clang
BUILD    := build/fuzz
OPT      := -O1 -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all
LDFLAGS  += -fsanitize=fuzzer,address,undefined
else ifeq ($(SANITIZE),)
BUILD    := build
OPT      := -O2
else
BUILD    := build/sanitize
OPT      := -O1 -fno-omit-frame-pointer -fsanitize=$(SANITIZE) -fno-sanitize-recover=all
# A debug build: checks that normally only log (session_set_state) abort.
OPT      += -DLUAPROXY_DEBUG
endif

WARN     := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 \
            -Wpointer-arith -Wcast-qual -Wvla -Werror
# clang finds casts dropping const inside OpenSSL's macros, which gcc does not.
ifneq ($(FUZZ),)
WARN     += -Wno-cast-qual
endif
CPPFLAGS += -Iinclude -I$(BUILD)/gen -D_GNU_SOURCE -MMD -MP
CFLAGS   += -std=c11 -pthread -g $(OPT) $(WARN) $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDFLAGS  += $(if $(SANITIZE),-fsanitize=$(SANITIZE))
LDLIBS   += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lev -lm -pthread

SRCS     := $(wildcard src/*.c)
OBJS     := $(SRCS:src/%.c=$(BUILD)/obj/%.o)
LIB_OBJS := $(filter-out $(BUILD)/obj/main.o,$(OBJS))
BIN      := $(BUILD)/luaproxy

UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
SPECS     := $(sort $(wildcard tests/spec/*_spec.lua))
FUZZ_BINS := $(patsubst tests/fuzz/%.c,$(BUILD)/%,$(wildcard tests/fuzz/fuzz_*.c))

DEB_PKGS := gcc make pkg-config liblua5.4-dev lua5.4 libev-dev libc-ares-dev \
            lua-busted lua-socket curl perl lua-cjson zlib1g-dev libbrotli-dev libzstd-dev zstd \
            libhiredis-dev redis-server libcrypt-dev libssl-dev libpcre2-dev prometheus apache2-utils openssl \
            chromium libnss3-tools \
            python3-jsonschema nodejs tinyproxy python3

.PHONY: all deps run test unit-bins fuzz-bins clean fuzz soak bench
all: $(BIN)

$(BIN): $(OBJS)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/obj/%.o: src/%.c | $(BUILD)/obj
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(BUILD)/tests/%: tests/unit/%.c tests/unit/tap.h $(LIB_OBJS) | $(BUILD)/tests
	$(CC) $(CPPFLAGS) -Itests/unit $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB_OBJS) $(LDLIBS)

# The decoder's tests make their input with the encoders.
$(BUILD)/tests/test_decode $(BUILD)/tests/test_body_decode: LDLIBS += -lbrotlienc

$(BUILD)/obj $(BUILD)/tests $(BUILD)/gen:
	mkdir -p $@

# The Lua half of the hook API is compiled in as a byte array, so the binary
# needs no files at run time.
$(BUILD)/gen/hooks_api.h: src/hooks_api.lua | $(BUILD)/gen
	{ echo 'static const char hooks_api_lua[] = {'; \
	  od -An -v -tx1 $< | sed 's/\([0-9a-f][0-9a-f]\)/0x\1,/g'; \
	  echo '0x00};'; } > $@
# Only hooks.c includes it (setup_state loads the API).
$(BUILD)/obj/hooks.o: $(BUILD)/gen/hooks_api.h

# The flow viewer's page, style and script, compiled in the same way.
FLOWS_ASSETS := src/flows.html src/flows.css src/flows.js
$(BUILD)/gen/flows_assets.h: $(FLOWS_ASSETS) | $(BUILD)/gen
	{ for f in $(FLOWS_ASSETS); do \
	    n=$$(basename $$f | tr . _); \
	    echo "static const char $$n[] = {"; \
	    od -An -v -tx1 $$f | sed 's/\([0-9a-f][0-9a-f]\)/0x\1,/g'; \
	    echo '0x00};'; \
	  done; } > $@
$(BUILD)/obj/flows_api.o: $(BUILD)/gen/flows_assets.h

# Installs what is missing with apt-get when run as root; otherwise prints
# the one command that would.
deps:
	@missing=""; for p in $(DEB_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	else \
	  echo "missing packages; run: sudo apt-get install$$missing"; exit 1; \
	fi

run: deps
	$(MAKE) --no-print-directory all
	$(BIN) --listen 127.0.0.1:8080 --access-log - $(if $(wildcard scripts/demo.lua),--script scripts/demo.lua)

# One prove run over the C unit tests and the busted specs, so the suite ends
# with prove's summary line. --failures and --comments print a failing
# test's "not ok" line and the message busted writes under it (a passing
# run prints nothing more), so a failure in CI says what failed.
# Under SANITIZE, every report goes to a file in $(SAN_LOGS); any file there
# fails the run, even when the exchanges themselves looked right.
SAN_LOGS := $(abspath $(BUILD))/sanitizer-logs
SAN_ENV  := $(if $(SANITIZE),ASAN_OPTIONS=detect_leaks=1:log_path=$(SAN_LOGS)/asan \
            UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:log_path=$(SAN_LOGS)/ubsan)

test: deps
	$(MAKE) --no-print-directory all unit-bins
	@rm -rf $(SAN_LOGS) && mkdir -p $(SAN_LOGS)
	LUAPROXY_BIN=$(abspath $(BIN)) $(SAN_ENV) prove --failures --comments --exec tests/run-one \
	  $(UNIT_BINS) $(SPECS)
	@if [ -n "$$(ls -A $(SAN_LOGS))" ]; then cat $(SAN_LOGS)/*; \
	  echo "sanitizer reports found (above)"; exit 1; fi

unit-bins: $(UNIT_BINS)

# The libFuzzer targets (tests/fuzz/run.sh), only ever in the FUZZ=1 tree,
# where libFuzzer supplies main().
ifneq ($(FUZZ),)
$(BUILD)/fuzz_%: tests/fuzz/fuzz_%.c $(LIB_OBJS)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB_OBJS) $(LDLIBS)
fuzz-bins: $(FUZZ_BINS)
else
fuzz-bins:
	$(MAKE) --no-print-directory FUZZ=1 fuzz-bins
endif

# Fuzzing (libFuzzer via clang), the fault soak and the benchmark are
# scripts under tests/; each installs what it needs and is bounded in time.
FUZZ_SECONDS ?= 60
SOAK_SECONDS ?= 60

fuzz: deps
	tests/fuzz/run.sh $(FUZZ_SECONDS)

soak: deps
	$(MAKE) --no-print-directory SANITIZE=address,undefined all
	tests/soak/run.sh $(SOAK_SECONDS) $(abspath build/sanitize/luaproxy)

bench: deps
	$(MAKE) --no-print-directory all
	tests/bench/run.sh $(abspath build/luaproxy)

clean:
	rm -rf build

-include $(OBJS:.o=.d) $(UNIT_BINS:=.d) $(FUZZ_BINS:=.d)
