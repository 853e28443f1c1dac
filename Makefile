# The two commands. Each sets itself up on a fresh machine (into .venv/).
PYTEST_ARGS ?=
# Exported, not interpolated, so quotes inside PYTEST_ARGS survive to pytest.
export PYTEST_ARGS

.PHONY: demo test messages

## make demo: seed the demo district and serve the portal on http://127.0.0.1:8000/
demo:
	bash scripts/bootstrap.sh
	.venv/bin/python manage.py demo

## make test: PostgreSQL + Redis + Celery + Chromium; PYTEST_ARGS='-m ledger' goes to pytest
test:
	bash scripts/bootstrap.sh --test
	bash scripts/test.sh

## make messages: rebuild the compiled translations after editing platform/locale/*/django.po
messages:
	bash scripts/bootstrap.sh --test
	.venv/bin/python scripts/compile_messages.py
