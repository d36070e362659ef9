# The two commands a newcomer runs: `make run` and `make test`. Both install what is missing.
.PHONY: bootstrap run down status test test-unit test-integration lint bench clean

VENV := .venv
BIN := $(VENV)/bin

bootstrap:
	@bash stack/bootstrap.sh

run: bootstrap
	@$(BIN)/boxoffice up

down:
	@$(BIN)/boxoffice down

status:
	@$(BIN)/boxoffice status

test: bootstrap
	$(BIN)/pytest -q -ra

test-unit: bootstrap
	$(BIN)/pytest -q -ra tests/unit

test-integration: bootstrap
	$(BIN)/pytest -q -ra tests/integration tests/e2e

lint: bootstrap
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --strict .

clean:
	-$(BIN)/boxoffice down
	rm -rf var/test
