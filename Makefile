# Both targets bootstrap .venv themselves (scripts/bootstrap.sh), so they work on a fresh machine.
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: drill test lint types pytest services bench clean

$(STAMP): pyproject.toml scripts/bootstrap.sh
	scripts/bootstrap.sh
	touch $(STAMP)

## drill: run the Game Day drill (today: the payment-provider pre-flight against the emulator)
drill: $(STAMP)
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

# Two workers, one test file each at a time: most tests wait on real servers, and files
# share their module fixtures (a stack, an emulator), so they stay on one worker.
pytest: $(STAMP) services
	$(BIN)/pytest -n 2 --dist loadfile

## bench: the performance figures quoted in closing notes
bench: $(STAMP) services
	$(BIN)/python bench/stripe_emulator.py
	$(BIN)/python bench/booking_throughput.py
	$(BIN)/python bench/proxy_overhead.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache gameday-report
