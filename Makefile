# HAKMEM build.  `make` builds the library and benchmarks, `make test` runs the
# suite, `make sanitize` runs it under ASan+UBSan and TSan, `make DEBUG=1`
# builds the checked library (assertions on), `make test-debug` runs the suite
# against a DEBUG=1 build of its own in build/debug.

CC      ?= cc
CXX     ?= c++
BUILD   := build
DEBUG   ?= 0

WARN    := -Wall -Wextra -Wshadow -Wno-unused-parameter
COMMON  := -std=gnu11 -pthread -fPIC -fvisibility=hidden -fno-plt \
           -fno-semantic-interposition -Iinclude -Isrc $(WARN)
ifeq ($(DEBUG),1)
OPT     := -O1 -g -DHAK_DEBUG=1
else
OPT     := -O2 -g
endif
CFLAGS_LIB := $(COMMON) $(OPT)

# The version, from include/hakmem.h (its one home).
version_part = $(shell sed -n 's/^\#define HAKMEM_VERSION_$(1) \([0-9]*\)$$/\1/p' include/hakmem.h)
MAJOR   := $(call version_part,MAJOR)
VERSION := $(MAJOR).$(call version_part,MINOR).$(call version_part,PATCH)

LIB_SRCS := $(wildcard src/*.c)
LIB_OBJS := $(LIB_SRCS:src/%.c=$(BUILD)/obj/%.o)
HDRS     := $(wildcard src/*.h) include/hakmem.h

# Rebuild everything when the flags change (DEBUG=1 versus release).
FLAGS_STAMP := $(BUILD)/.flags
$(shell mkdir -p $(BUILD) && echo '$(CC) $(CFLAGS_LIB)' | cmp -s - $(FLAGS_STAMP) || echo '$(CC) $(CFLAGS_LIB)' > $(FLAGS_STAMP))

BENCH_SRCS := $(wildcard bench/*.c)
BENCH_BINS := $(BENCH_SRCS:bench/%.c=$(BUILD)/bench/%)

TEST_C     := $(wildcard tests/*.c)
TEST_CXX   := $(wildcard tests/*.cpp)
TEST_BINS  := $(TEST_C:tests/%.c=$(BUILD)/tests/%) $(TEST_CXX:tests/%.cpp=$(BUILD)/tests/%)
TEST_LINK  := -L$(BUILD) -Wl,-rpath,'$$ORIGIN/..' -lhakmem -pthread -rdynamic

.PHONY: all lib benches tests test test-debug sanitize clean
all: lib benches $(BUILD)/hakmem

lib: $(BUILD)/libhakmem.so $(BUILD)/libhakmem.a

$(BUILD)/obj/%.o: src/%.c $(HDRS) $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_LIB) -c $< -o $@

$(BUILD)/libhakmem.so: $(LIB_OBJS)
	$(CC) -shared -pthread -Wl,-z,now -Wl,-soname,libhakmem.so.$(MAJOR) -o $@ $(LIB_OBJS)
	ln -sf libhakmem.so $(BUILD)/libhakmem.so.$(MAJOR)   # what programs linked here load

# The static library leaves out the checked memcpy/memmove/memset (src/copy.c):
# with a static C library they would be called back by glibc's own; and
# operator new and delete (src/cxx.c), whose failure path needs libstdc++'s
# after them.
STATIC_OBJS := $(filter-out $(BUILD)/obj/copy.o $(BUILD)/obj/cxx.o,$(LIB_OBJS))
$(BUILD)/libhakmem.a: $(STATIC_OBJS)
	rm -f $@ && ar rcs $@ $(STATIC_OBJS)

# The hakmem command (tools/hakmem.c): runs a program under the library next
# to it, or else the one installed in LIBDIR.
$(BUILD)/hakmem: tools/hakmem.c include/hakmem.h $(BUILD)/libhakmem.so
	$(CC) -std=gnu11 -O2 -g -Iinclude $(WARN) -DHAKMEM_LIBDIR='"$(LIBDIR)"' $< -o $@ \
	    -L$(BUILD) -Wl,-rpath,'$$ORIGIN:$$ORIGIN/../lib' -lhakmem -pthread

# Benchmarks use only the standard malloc API: the same binary runs under any
# allocator through LD_PRELOAD.
benches: $(BENCH_BINS)
$(BUILD)/bench/%: bench/%.c bench/common.h $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -O2 -g -pthread $(WARN) $< -o $@ -lm

tests: lib benches $(BUILD)/hakmem $(TEST_BINS) $(BUILD)/testlib/liballoc_plugin.so
# A library that allocates, for test_background's dlopen/dlclose loop (kept
# out of build/tests, whose every executable is a test).
$(BUILD)/testlib/liballoc_plugin.so: tests/plugin/alloc_plugin.c
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -O1 -g -shared -fPIC $(WARN) $< -o $@
$(BUILD)/tests/%: tests/%.c tests/testutil.h include/hakmem.h $(BUILD)/libhakmem.so
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -O1 -g -pthread -Iinclude $(WARN) $< -o $@ $(TEST_LINK)
$(BUILD)/tests/%: tests/%.cpp include/hakmem.h $(BUILD)/libhakmem.so
	@mkdir -p $(dir $@)
	$(CXX) -std=c++17 -O1 -g -pthread -Iinclude -Wall -Wextra $< -o $@ $(TEST_LINK)

test: tests
	@HAKTEST_BUILD=$(BUILD) HAKTEST_DEBUG=$(DEBUG) tests/run.sh

# The same suite against the checked library (DEBUG=1, hak_assert on), built
# with its benchmarks and tests in a directory of its own, so that the release
# build in $(BUILD) stays as it is; test binaries find it through their rpath.
DEBUG_BUILD := $(BUILD)/debug
test-debug:
	@echo "test-debug: DEBUG=1 build in $(DEBUG_BUILD)"
	@$(MAKE) --no-print-directory BUILD=$(DEBUG_BUILD) DEBUG=1 test

# Sanitizers: the library without its malloc overrides, so that the
# sanitizer's own allocator stays in charge of malloc and HAKMEM is reached
# through the hak_* API.  Unit tests under ASan+UBSan, threaded tests under TSan.
SAN_SRCS  := $(filter-out src/override.c src/copy.c src/cxx.c,$(LIB_SRCS))
SAN_TESTS := test_api test_threads test_remote
sanitize:
	@HAKTEST_BUILD=$(BUILD) tests/sanitize.sh "$(CC)" "$(SAN_SRCS)" "$(SAN_TESTS)"

# For programs built with -fsanitize=address that use the hak_* API:
# build/asan/libhakmem.a, without the malloc overrides (ASan keeps malloc),
# telling ASan which bytes of each block the program may touch (src/api.c).
# Link: cc -fsanitize=address app.c -Iinclude build/asan/libhakmem.a -pthread
ASAN_BUILD := $(BUILD)/asan
ASAN_OBJS  := $(SAN_SRCS:src/%.c=$(ASAN_BUILD)/obj/%.o)
.PHONY: asan
asan: $(ASAN_BUILD)/libhakmem.a
$(ASAN_BUILD)/obj/%.o: src/%.c $(HDRS) $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_LIB) -DHAK_ASAN -c $< -o $@
$(ASAN_BUILD)/libhakmem.a: $(ASAN_OBJS)
	rm -f $@ && ar rcs $@ $(ASAN_OBJS)

clean:
	rm -rf $(BUILD) $(DEBUG_BUILD)

# Larson under the system allocator and under HAKMEM, side by side.
.PHONY: demo
demo:
	@scripts/demo.sh

# HAKMEM side by side with glibc, mimalloc, jemalloc and tcmalloc: writes
# docs/BENCHMARKS.md and docs/benchmarks.svg (~15 min; QUICK=1: under 2 min).
.PHONY: bench
bench:
	@python3 scripts/bench.py $(if $(filter-out 0,$(QUICK)),--quick) $(BENCH_ARGS)

# The standard mimalloc-bench programs (larson, xmalloc-test, cache-scratch,
# rptest, cfrac, espresso, ...) under HAKMEM and the same peers: built from
# MIMALLOC_BENCH into build/mimalloc-bench/, writes docs/BENCHMARKS_SUITE.md
# (~45 min; QUICK=1: ~4 min; BENCH_ARGS="--rows larson --only HAKMEM,mimalloc").
MIMALLOC_BENCH ?= ../shared/mimalloc-bench
.PHONY: bench-suite
bench-suite:
	@python3 scripts/bench_suite.py --folder "$(MIMALLOC_BENCH)" \
		$(if $(filter-out 0,$(QUICK)),--quick) $(BENCH_ARGS)

# Issue 10's proof: bench/phases under the adaptive layer, a grid of fixed
# settings (HAKMEM_RETAIN_MS x HAKMEM_HUGE_CACHE_MB, background thread off) and
# the peers, 3 interleaved rounds; prints the table, draws docs/phases.svg (~5 min;
# BENCH_ARGS="--seed 45 --rounds 5").
.PHONY: phases-grid
phases-grid: lib benches
	@python3 scripts/phases_grid.py --svg docs/phases.svg $(BENCH_ARGS)

# The standard security set (MIMALLOC_BENCH/bench/security): 37 programs at
# three block sizes, each committing one memory error, under HAKMEM,
# HAKMEM_CHECK=1 and glibc; prints how many each catches (~10 s).
.PHONY: security
security: lib
	@python3 scripts/security.py --folder "$(MIMALLOC_BENCH)" $(SECURITY_ARGS)

# libFuzzer harness over the hak_* API (clang, ASan+UBSan): builds
# build/fuzz/fuzz_alloc and fuzzes FUZZ_SECONDS (default 60) from a copy of
# tests/fuzz/corpus in build/fuzz/; fails on any crash.
.PHONY: fuzz
fuzz:
	@FUZZ_SECONDS=$(or $(FUZZ_SECONDS),60) tests/fuzz/fuzz.sh

# Instructions per malloc(64)+free pair under callgrind (PAIR_SIZE=N for
# another size), HAKMEM beside glibc and the peers that are installed; the
# split into malloc, free and the loop itself (a few seconds).
.PHONY: callgrind
callgrind: lib $(BUILD)/bench/pair
	@scripts/callgrind_pair.sh

# Real programs (python3, gcc/make, git, redis, sqlite3) with and without
# LD_PRELOAD=build/libhakmem.so: outputs must be identical.
.PHONY: real
real: lib
	@scripts/real_programs.sh

# The long stress run (~10 min): test_stress for 3 minutes, the seeds' Larson
# commands 20 times each, test_threads and test_fork several times.
.PHONY: stress
stress:
	@scripts/stress.sh

# RSS over time under a steady mixed workload (SOAK_SECONDS, default 300):
# fails if RSS grows more than 10% after the warm-up.
.PHONY: soak
soak:
	@scripts/soak.sh

# Install like a system library: PREFIX (default /usr/local) and DESTDIR.
# The shared library as libhakmem.so.VERSION with the SONAME libhakmem.so.MAJOR
# and the usual links, the static library, the header, hakmem.pc for
# pkg-config, a CMake package (find_package(hakmem): targets hakmem::hakmem
# and hakmem::hakmem_static), the hakmem command, the man pages and the
# licence.  tests/test_install.sh checks it, and uninstall.
PREFIX     ?= /usr/local
LIBDIR     ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
DOCDIR     ?= $(PREFIX)/share/doc/hakmem
MANDIR     ?= $(PREFIX)/share/man
.PHONY: install uninstall
install: lib $(BUILD)/hakmem
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(LIBDIR)/cmake/hakmem \
	    $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(DOCDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man3
	install -m 755 $(BUILD)/libhakmem.so $(DESTDIR)$(LIBDIR)/libhakmem.so.$(VERSION)
	ln -sf libhakmem.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libhakmem.so.$(MAJOR)
	ln -sf libhakmem.so.$(MAJOR) $(DESTDIR)$(LIBDIR)/libhakmem.so
	install -m 644 $(BUILD)/libhakmem.a $(DESTDIR)$(LIBDIR)/libhakmem.a
	install -m 644 include/hakmem.h $(DESTDIR)$(INCLUDEDIR)/hakmem.h
	install -m 755 $(BUILD)/hakmem $(DESTDIR)$(PREFIX)/bin/hakmem
	install -m 644 LICENSE $(DESTDIR)$(DOCDIR)/LICENSE
	install -m 644 docs/man/hakmem.1 $(DESTDIR)$(MANDIR)/man1/hakmem.1
	install -m 644 docs/man/hakmem.3 $(DESTDIR)$(MANDIR)/man3/hakmem.3
	printf '%s\n' 'prefix=$(PREFIX)' 'libdir=$(LIBDIR)' 'includedir=$(INCLUDEDIR)' '' \
	    'Name: hakmem' 'Description: HAKMEM general-purpose memory allocator' \
	    'Version: $(VERSION)' 'Cflags: -I$${includedir}' 'Libs: -L$${libdir} -lhakmem' \
	    'Libs.private: -pthread' > $(DESTDIR)$(LIBDIR)/pkgconfig/hakmem.pc
	printf '%s\n' \
	    '# HAKMEM $(VERSION): hakmem::hakmem (shared), hakmem::hakmem_static.' \
	    'get_filename_component(_hak_prefix "$${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)' \
	    'find_package(Threads REQUIRED)' \
	    'if(NOT TARGET hakmem::hakmem)' \
	    '  add_library(hakmem::hakmem SHARED IMPORTED)' \
	    '  set_target_properties(hakmem::hakmem PROPERTIES' \
	    '    IMPORTED_LOCATION "$${_hak_prefix}/lib/libhakmem.so.$(VERSION)"' \
	    '    IMPORTED_SONAME "libhakmem.so.$(MAJOR)"' \
	    '    INTERFACE_INCLUDE_DIRECTORIES "$${_hak_prefix}/include")' \
	    '  add_library(hakmem::hakmem_static STATIC IMPORTED)' \
	    '  set_target_properties(hakmem::hakmem_static PROPERTIES' \
	    '    IMPORTED_LOCATION "$${_hak_prefix}/lib/libhakmem.a"' \
	    '    INTERFACE_INCLUDE_DIRECTORIES "$${_hak_prefix}/include"' \
	    '    INTERFACE_LINK_LIBRARIES Threads::Threads)' \
	    'endif()' > $(DESTDIR)$(LIBDIR)/cmake/hakmem/hakmem-config.cmake
	printf '%s\n' 'set(PACKAGE_VERSION "$(VERSION)")' \
	    'if(PACKAGE_FIND_VERSION VERSION_GREATER PACKAGE_VERSION OR' \
	    '   NOT PACKAGE_FIND_VERSION_MAJOR STREQUAL "$(MAJOR)" AND DEFINED PACKAGE_FIND_VERSION_MAJOR)' \
	    '  set(PACKAGE_VERSION_COMPATIBLE FALSE)' 'else()' \
	    '  set(PACKAGE_VERSION_COMPATIBLE TRUE)' \
	    '  if(PACKAGE_FIND_VERSION STREQUAL PACKAGE_VERSION)' \
	    '    set(PACKAGE_VERSION_EXACT TRUE)' '  endif()' 'endif()' \
	    > $(DESTDIR)$(LIBDIR)/cmake/hakmem/hakmem-config-version.cmake

uninstall:
	rm -f $(DESTDIR)$(LIBDIR)/libhakmem.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libhakmem.so.$(MAJOR) \
	    $(DESTDIR)$(LIBDIR)/libhakmem.so $(DESTDIR)$(LIBDIR)/libhakmem.a \
	    $(DESTDIR)$(INCLUDEDIR)/hakmem.h $(DESTDIR)$(LIBDIR)/pkgconfig/hakmem.pc \
	    $(DESTDIR)$(DOCDIR)/LICENSE $(DESTDIR)$(PREFIX)/bin/hakmem \
	    $(DESTDIR)$(MANDIR)/man1/hakmem.1 $(DESTDIR)$(MANDIR)/man3/hakmem.3
	rm -rf $(DESTDIR)$(LIBDIR)/cmake/hakmem
