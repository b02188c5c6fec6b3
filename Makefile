# FuseKit. `make demo` runs a real job on the real models; `make test` installs what is missing,
# builds and runs every test. Both work on a fresh Debian machine (root installs packages itself).
SWIFT ?= swift
MODELS_DIR ?= models
DEMO_OUT ?= demo-out

.PHONY: all deps build release test demo fuzz clean

all: build

deps:
	@if ! pkg-config --exists openblas 2>/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing libopenblas-dev pkg-config"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libopenblas-dev pkg-config >/dev/null; \
	  else echo "error: OpenBLAS is missing; run: sudo apt-get install -y libopenblas-dev pkg-config"; exit 1; fi; \
	fi
	@# headless Chromium renders the report page in its test (skipped when it cannot be installed)
	@if ! command -v chromium-headless-shell >/dev/null 2>&1 && ! command -v chromium >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  echo "installing chromium-headless-shell (report page test)"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium-headless-shell >/dev/null) \
	    || echo "warning: chromium-headless-shell could not be installed; the report rendering test will be skipped"; \
	fi

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release --product fusekit

test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build
	# the portable (no F16C/AVX-512) conversion paths against the same torch fixtures
	FUSEKIT_PORTABLE=1 $(SWIFT) test --skip-build --filter ConversionTests

demo: release
	Tools/fetch-models.sh $(MODELS_DIR)
	Tools/demo.sh $(MODELS_DIR) $(DEMO_OUT)

fuzz: deps
	Tools/fuzz.sh

clean:
	rm -rf .build
