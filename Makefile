# Two commands for a fresh machine: `make demo` (set up, compile and run ResNet-18) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test test-fast test-zoo bench install clean

$(STAMP): pyproject.toml setup.py
	@test -x $(PY) || python3 -m venv $(VENV)
	@# torch and torchvision first, a pinned pair from the local disk (unpinned, they would pull GBs of
	@# CUDA packages); torchvision's zoo is what tests/models/test_torchvision_zoo.py imports
	@$(PY) -c "import torchvision" 2>/dev/null || $(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e ".[dev,plot,onnx]"
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/convc summary resnet18
	$(VENV)/bin/convc run resnet18 --summary --repeat 3

# Two pytest workers on two cores: one BLAS / OpenMP thread each, or they oversubscribe the machine.
TEST_ENV := OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
# One whole-suite run at a time per machine (checkouts side by side): two at once on 2 cores and 24 GiB
# run out of memory (the zoo tests hold several full-size models), and the kernel kills a worker.
TEST_LOCK ?= /tmp/convc-make-test.lock
LOCKED := flock -n $(TEST_LOCK) true || echo "make: another suite runs on this machine; waiting for $(TEST_LOCK)"; \
	flock $(TEST_LOCK)

test: $(STAMP)
	@$(LOCKED) env $(TEST_ENV) $(PY) -m pytest -q -n 2 --dist loadfile

test-fast: $(STAMP)
	@$(LOCKED) env $(TEST_ENV) $(PY) -m pytest -q -n 2 --dist loadfile -m "not slow"

# Every torchvision CNN on every path (from_torch, ONNX float64, torch.compile, Triton interpreted): long.
test-zoo: $(STAMP)
	@$(LOCKED) env $(TEST_ENV) $(PY) -m pytest -q -n 2 --dist load --zoo=all tests/models/test_torchvision_zoo.py

bench: $(STAMP)
	$(VENV)/bin/convc bench resnet50 --backends numpy,torch --batch 1

clean:
	rm -rf $(VENV) build *.egg-info .hypothesis
