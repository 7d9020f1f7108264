# stocksync: `make demo` runs the main job, `make test` runs the suite.
# Both create the virtual environment first; nothing else needs installing.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: venv demo serve test bench clean

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt cli/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip<26.3"  # chalice 1.34 requires pip<26.3
	$(PY) -m pip install --quiet -r requirements-dev.txt
	# The `stocksync` command (cli/, never deployed): editable, so .venv/bin/stocksync runs this tree.
	$(PY) -m pip install --quiet --no-build-isolation --editable ./cli
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m devstack.demo

serve: $(STAMP)
	$(PY) -m devstack.serve

test: $(STAMP) browser
	$(PY) -m pytest $(PYTEST_ARGS)

# Debian's chromium for the page's browser tests (tests/test_page.py, Playwright drives it;
# never `playwright install`), and a CJK font so the page's Chinese is drawn, not boxes, in
# screenshots. Needs root or password-less sudo; without it those tests skip.
CJK_FONT := fonts-wqy-zenhei
CJK_FONT_FILE := /usr/share/fonts/truetype/wqy/wqy-zenhei.ttc
.PHONY: browser
browser:
	@missing=""; test -x /usr/bin/chromium || missing="chromium"; \
	  { fc-list :lang=zh 2>/dev/null | grep -q . || test -e $(CJK_FONT_FILE); } || missing="$$missing $(CJK_FONT)"; \
	  test -n "$$missing" || exit 0; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; \
	  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO="sudo -n"; \
	  else echo "make browser: not root and no sudo, cannot install$$missing: tests/test_page.py may skip"; exit 0; fi; \
	  command -v apt-get >/dev/null || { echo "make browser: no apt-get, cannot install$$missing: tests/test_page.py may skip"; exit 0; }; \
	  $$SUDO apt-get update && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing \
	    || echo "make browser: could not install$$missing: tests/test_page.py may skip"

# make bench SCALE=13e6: also with 13 M rows of history preloaded (bench/README.md; ~40 s more).
bench: $(STAMP)
	$(PY) -m bench.run $(if $(SCALE),--scale $(SCALE))

clean:
	rm -rf $(VENV) .stocksync .pytest_cache .hypothesis .chalice/deployments

# --- AWS (issue 5; docs/deploy.md) ------------------------------------------
# make package STAGE=prod [FORMAT="sam terraform"] [OUT=dir]  build (default .stocksync/package/STAGE)
# make deploy  STAGE=prod                            package, deploy stack stocksync-STAGE, migrate
# make migrate STAGE=prod                            run the migrations in AWS
STAGE  ?= dev
FORMAT ?= sam

.PHONY: package deploy migrate

package: $(STAMP)
	$(PY) deploy/package.py --stage $(STAGE) $(foreach f,$(FORMAT),--format $(f)) $(if $(OUT),--out $(OUT))

deploy: $(STAMP)
	deploy/deploy.sh deploy $(STAGE)

migrate: $(STAMP)
	deploy/deploy.sh migrate $(STAGE)
