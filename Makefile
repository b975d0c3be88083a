# Two commands on a fresh machine: `make demo` and `make test`. Both install what is missing
# (a virtualenv with the pinned packages, Kafka and connector jars from Maven Central,
# redis-server from Debian) and start local services on 127.0.0.1 only.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat setup.py 2>/dev/null | cksum | cut -d' ' -f1)

.PHONY: demo test unit integration install services-up services-down bench bench-scoring profile eval experiment chaos soak clean

$(STAMP): setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,bench,report]'
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)
	$(PY) -m notify_engine.cli services fetch

demo: install
	$(PY) -m notify_engine.cli demo

test: install
	$(PY) -m pytest tests

unit: $(STAMP)
	$(PY) -m pytest tests/unit

integration: install
	$(PY) -m pytest tests/integration

services-up: install
	$(PY) -m notify_engine.cli services up

services-down: $(STAMP)
	$(PY) -m notify_engine.cli services down

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache

bench: install
	$(PY) bench/run.py

bench-scoring: $(STAMP)
	$(PY) bench/scoring.py

profile: install
	$(PY) bench/profile_job.py

# Kills, hostile input and inbox checks on a standalone cluster (about half an hour; not part of `make test`).
chaos: install
	$(PY) chaos/run.py

# Twenty minutes at half of peak throughput with churning shoppers: memory and state size over time.
soak: install
	$(PY) chaos/soak.py

# The job's core on simulated shoppers who answer what they get: the holdout's estimate against the true lift,
# the volume controller against dropping messages at random.
experiment: $(STAMP)
	$(PY) evaluation/experiment.py

eval: $(STAMP)
	$(PY) evaluation/prequential.py
	$(PY) evaluation/policy_replay.py
