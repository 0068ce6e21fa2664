# The two commands of the README. Everything installs into .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO := demo-output

.PHONY: run test test-fast install check clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip setuptools >/dev/null

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -e ".[full-test]"  # what every test needs: see pyproject.toml
	touch $@

install: $(VENV)/.installed

run: install
	rm -rf $(DEMO)
	$(BIN)/python -m lookalike.demo $(DEMO)
	$(BIN)/lookalike models
	$(BIN)/lookalike index $(DEMO)/photos
	@echo "--- second run: only changes are embedded ---"
	$(BIN)/lookalike index $(DEMO)/photos
	$(BIN)/lookalike search $(DEMO)/queries/coffee-crop-flip.jpg --db $(DEMO)/photos/.lookalike -k 5 --grid $(DEMO)/coffee-matches.png
	$(BIN)/lookalike search $(DEMO)/queries --db $(DEMO)/photos/.lookalike -k 3 --grid $(DEMO)/grids
	$(BIN)/lookalike info $(DEMO)/photos
	$(BIN)/lookalike duplicates --db $(DEMO)/photos --grid $(DEMO)/duplicates
	$(BIN)/lookalike cluster --db $(DEMO)/photos -k 4
	$(BIN)/lookalike outliers --db $(DEMO)/photos --fraction 0.1
	$(BIN)/lookalike report --db $(DEMO)/photos --out $(DEMO)/report
	@echo "contact sheets: $(DEMO)/coffee-matches.png, $(DEMO)/grids/, $(DEMO)/duplicates/"
	@echo "report: $(DEMO)/report/index.html (opens from disk)"

test: check
	command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium) \
		|| echo "chromium could not be installed: the browser tests will be skipped"
	$(BIN)/python -m pytest -q

# The development loop: every test but the slow ones (index training, killed processes,
# concurrency, the browser); make test runs them all.
test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

check: install
	$(BIN)/ruff check lookalike tests benchmarks
	$(BIN)/mypy lookalike

clean:
	rm -rf $(VENV) $(DEMO) *.egg-info
