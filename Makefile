# Shortcuts; the README's commands are `python3 dev.py run` and `python3 dev.py test`.
PY := .venv/bin/python

.PHONY: run test lint bench schemas

run:
	python3 dev.py run $(ARGS)

test:
	python3 dev.py test $(ARGS)

lint: $(PY)
	$(PY) -m ruff check .
	$(PY) -m mypy

bench: $(PY)
	@for script in bench/*.py; do echo "== $$script"; $(PY) $$script || exit 1; done

schemas: $(PY)
	.venv/bin/aftersales schemas var/schemas

$(PY): pyproject.toml
	python3 dev.py install
