# Both targets bootstrap .venv themselves (scripts/bootstrap.sh), so they work on a fresh machine.
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: drill test lint types pytest services browser bench clean

$(STAMP): pyproject.toml scripts/bootstrap.sh
	scripts/bootstrap.sh
	touch $(STAMP)

## drill: the Game Day drill: the eight scenarios on the embedded stack (report in gameday-report/)
drill: $(STAMP) services
	$(BIN)/gameday drill

## test: lint + types + the whole test suite against real servers
test: lint types pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

types: $(STAMP)
	$(BIN)/mypy

## services: PostgreSQL, MariaDB and Redis on loopback (installed from Debian if missing)
services:
	scripts/services.sh

## browser: Debian's Chromium, for the report's browser test
browser:
	scripts/browser.sh

# Two workers, one test file each at a time: most tests wait on real servers, and files
# share their module fixtures (a stack, an emulator), so they stay on one worker. Whole
# drills then run apart, two at a time (scripts/drill_tests.sh says why).
pytest: $(STAMP) services browser
	$(BIN)/pytest -n 2 --dist loadfile -m "not drill" --durations=8
	scripts/drill_tests.sh

## bench: the performance figures quoted in closing notes
bench: $(STAMP) services
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,bench]'
	$(BIN)/python bench/stripe_emulator.py
	$(BIN)/python bench/booking_throughput.py
	$(BIN)/python bench/proxy_overhead.py
	$(BIN)/python bench/load_driver.py
	$(BIN)/python bench/checkers.py
	$(BIN)/python bench/drill_walltime.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache gameday-report gameday-runbooks
