# Postern - top-level build.
#
#   make                  build every program into bin/
#   make check            install missing deps, build, run every test (prove)
#   make check SANITIZE=1 the same with AddressSanitizer + UBSan
#   make run              start Postern in the foreground on 127.0.0.1:2525
#   make deps             install missing Debian packages (prints the line if not root)
#   make install DESTDIR=... PREFIX=...
#   make deb              the Debian package postern_VERSION_ARCH.deb (docs/debian.md)
#   make fuzz             build the libFuzzer targets (clang)
#   make bench            run the benchmarks in bench/
#   make interop          the interop matrix against Postfix, Exim, OpenSMTPD (root; docs/interop.md)
#   make format           clang-format the tree; make format-check checks it
#
# Sources are found by folder: PROG/main.c holds main(), every other .c of
# PROG/ goes into build/PROG/lib.a so unit tests can link it; common/'s
# three layers (base, mail, delivery: common/README.md) are
# build/libcommon.a. t/unit/X.c becomes build/t/unit/X, linked with the
# TAP emitter t/lib/tap.c; when X starts with "PROG_" it also links
# PROG's lib.a. `make layers` (part of every build) fails when a file
# includes a layer above its own.

ifeq ($(origin CC),default)
CC := gcc
endif
PREFIX ?= /usr/local
DESTDIR ?=
SANITIZE ?=
FUZZ_CC ?= clang
FUZZ_SECONDS ?= 15

WARN := -Wall -Wextra -Werror -Wshadow -Wpointer-arith -Wstrict-prototypes \
	-Wmissing-prototypes -Wformat=2 -Wno-unused-parameter -Wno-format-nonliteral \
	-Wcast-qual -Wundef -Wwrite-strings
CFLAGS ?= -O2 -g
ALL_CFLAGS := -std=c11 -D_GNU_SOURCE -pthread -Icommon $(WARN) $(CFLAGS) -MMD -MP
LIBS := -levent_openssl -levent -lldns -ldb-5.3 -lssl -lcrypto -lcrypt -pthread
ifeq ($(SANITIZE),1)
ALL_CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
endif

PROGS := master smtpd qmgr dnsd deliver relay local signer smtpctl sendmail postdrop
# A program is built once its folder has a main.c; its modules (lib.a)
# as soon as the folder has any source, so unit tests can link them.
ALL_PROGS := $(foreach p,$(PROGS),$(if $(wildcard $(p)/main.c),$(p)))
LIB_PROGS := $(foreach p,$(PROGS),$(if $(wildcard $(p)/*.c),$(p)))
BINS := $(addprefix bin/,$(ALL_PROGS))

COMMON_SRC := $(wildcard common/*/*.c)
COMMON_OBJ := $(COMMON_SRC:%.c=build/%.o)
LIBCOMMON := build/libcommon.a

UNIT_SRC := $(wildcard t/unit/*.c)
UNIT_BINS := $(UNIT_SRC:t/unit/%.c=build/t/unit/%)

# docs/man/NAME.N.in becomes build/man/manN/NAME.N, laid out as it is
# installed (so that mandoc -Tlint and man find the pages it refers to).
MAN_NAMES := $(patsubst docs/man/%.in,%,$(wildcard docs/man/*.in))
man_out = build/man/man$(subst .,,$(suffix $(1)))/$(1)
MAN_PAGES := $(foreach m,$(MAN_NAMES),$(call man_out,$(m)))
GENERATED := $(MAN_PAGES) build/completion/smtpctl

FUZZ_SRC := $(wildcard t/fuzz/*.c)
FUZZ_BINS := $(FUZZ_SRC:t/fuzz/%.c=build/fuzz/%)

.SECONDEXPANSION:
# Keep intermediate objects (fuzzer builds) between runs.
.SECONDARY:
.PHONY: all check unit deps run install clean fuzz bench interop format format-check docs layers
all: layers $(BINS) $(UNIT_BINS) bin/mailq bin/newaliases $(GENERATED)

# mailq is sendmail by another name (it lists the queue), as on any MTA;
# so is newaliases (it compiles alias_maps)
bin/mailq: bin/sendmail
	ln -sf sendmail $@
bin/newaliases: bin/sendmail
	ln -sf sendmail $@

layers:
	@sh tools/layers.sh

build/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(LIBCOMMON): $(COMMON_OBJ)
	@rm -f $@
	ar rcs $@ $^

# Per-program rules: bin/PROG from PROG/main.c + build/PROG/lib.a + libcommon.
define lib_rules
$(1)_SRC := $$(filter-out $(1)/main.c,$$(wildcard $(1)/*.c))
$(1)_OBJ := $$($(1)_SRC:%.c=build/%.o)
build/$(1)/lib.a: $$($(1)_OBJ)
	@mkdir -p build/$(1)
	@rm -f $$@
	ar rcs $$@ $$($(1)_OBJ) $$(if $$($(1)_OBJ),,build/empty.o)
endef
define prog_rules
bin/$(1): build/$(1)/main.o build/$(1)/lib.a $(LIBCOMMON)
	@mkdir -p bin
	$$(CC) $$(LDFLAGS) -o $$@ build/$(1)/main.o build/$(1)/lib.a $(LIBCOMMON) $(LIBS)
endef
$(foreach p,$(LIB_PROGS),$(eval $(call lib_rules,$(p))))
$(foreach p,$(ALL_PROGS),$(eval $(call prog_rules,$(p))))

build/empty.o:
	@mkdir -p build
	echo 'extern int postern_empty_unit; int postern_empty_unit;' | $(CC) -x c -c -o $@ -
$(foreach p,$(LIB_PROGS),build/$(p)/lib.a): | build/empty.o

TAP_OBJ := build/t/lib/tap.o
build/t/%.o: ALL_CFLAGS += -It/lib

unit_prog = $(firstword $(filter $(LIB_PROGS),$(firstword $(subst _, ,$(1)))))
build/t/unit/%: build/t/unit/%.o $(TAP_OBJ) $(LIBCOMMON) $$(if $$(call unit_prog,$$*),build/$$(call unit_prog,$$*)/lib.a)
	$(CC) $(LDFLAGS) -o $@ $< $(TAP_OBJ) $(if $(call unit_prog,$*),build/$(call unit_prog,$*)/lib.a) $(LIBCOMMON) $(LIBS)

unit: $(UNIT_BINS)

# Man pages and the bash completion, made by tools/docgen from the
# parameter table and smtpctl's command table (docs/man/*.in hold the
# prose): build/man/NAME.SECTION, build/completion/smtpctl.
DOCGEN := build/tools/docgen
build/tools/docgen: build/tools/docgen.o $(LIBCOMMON)
	$(CC) $(LDFLAGS) -o $@ $< $(LIBCOMMON) $(LIBS)
define man_rule
$(call man_out,$(1)): docs/man/$(1).in $(DOCGEN)
	@mkdir -p $$(dir $$@)
	$(DOCGEN) man $$< >$$@.tmp && mv $$@.tmp $$@
endef
$(foreach m,$(MAN_NAMES),$(eval $(call man_rule,$(m))))
build/completion/smtpctl: $(DOCGEN)
	@mkdir -p build/completion
	$(DOCGEN) bash >$@.tmp && mv $@.tmp $@

deps:
	@sh tools/deps.sh

check: deps
	$(MAKE) all
	$(MAKE) fuzz
	sh tools/check.sh

run: deps
	$(MAKE) all
	sh tools/run.sh

# Fuzzers: sources compiled again with clang's fuzzer instrumentation.
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -pthread -Icommon -g -O1 -fsanitize=fuzzer-no-link,address,undefined
build/fz/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c -o $@ $<
FZ_COMMON_OBJ := $(COMMON_SRC:%.c=build/fz/%.o)
fuzz_prog = $(firstword $(filter $(LIB_PROGS),$(firstword $(subst _, ,$(1)))))
build/fuzz/%: t/fuzz/%.c $(FZ_COMMON_OBJ) $$(patsubst %.c,build/fz/%.o,$$(filter-out $$(call fuzz_prog,$$*)/main.c,$$(if $$(call fuzz_prog,$$*),$$(wildcard $$(call fuzz_prog,$$*)/*.c))))
	@mkdir -p build/fuzz
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $^ $(LIBS)
fuzz:
	@if command -v $(FUZZ_CC) >/dev/null 2>&1; then $(MAKE) $(FUZZ_BINS); \
	else echo "fuzz: $(FUZZ_CC) not found, fuzzers not built"; fi

bench: all
	sh bench/run

# Postfix, Exim and OpenSMTPD unpacked from Debian's packages by
# bench/setup (once, cached in bench/work), then one prove file per peer;
# the table is printed whatever the verdict, which is prove's.
interop: all
	sh bench/setup
	rm -rf build/interop
	prove -j3 t/interop/; rc=$$?; perl t/interop/summary.pl; exit $$rc

install: all
	sh tools/install.sh "$(DESTDIR)" "$(PREFIX)"

.PHONY: deb
deb:
	sh tools/deb.sh

docs: bin/smtpctl
	bin/smtpctl params >docs/parameters.md

format:
	clang-format -i $$(git ls-files '*.c' '*.h')
format-check:
	clang-format --dry-run --Werror $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build bin

-include $(shell find build -name '*.d' 2>/dev/null)
