# Two entry points: `make demo` (the default config, end to end) and `make test`.
# Each creates .venv if it is missing and installs everything into it.
VENV ?= .venv
PY := $(VENV)/bin/python
CORES ?= 2
STAMP := $(VENV)/.installed

.PHONY: demo test slurm-packages lint bench benchmark-mini benchmark-cpu benchmark-cpu-ssl benchmark-cpu-pseudo benchmark-cpu-al benchmark-cpu-pretrain smiles-pool clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# The CPU wheel on disk; a plain `torch` requirement would pull a multi-GB CUDA build.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev,slurm,qc,ani]'
	touch $@

demo: $(STAMP)
	PATH="$(abspath $(VENV))/bin:$$PATH" $(VENV)/bin/snakemake --cores $(CORES) --resources gpu=1 --printshellcmds

# ASGN and every baseline, 3 seeds, on a 3,000-molecule QM9 subset, on the CPU. Each network job
# runs on one thread and $(CORES) of them side by side: at this model size that beats one 2-thread
# job at a time (docs/benchmarks.md has the time it took).
CPU_JOBS := teacher=1 student=1 embed=1 pseudo_label=1 select=1 initial=1
benchmark-mini: $(STAMP)
	PATH="$(abspath $(VENV))/bin:$$PATH" $(VENV)/bin/snakemake --cores $(CORES) --resources gpu=$(CORES) \
		--set-threads $(CPU_JOBS) --configfile config/benchmark-mini.yaml --replace-workflow-config

# Does ASGN save labels? config/benchmark-cpu.yaml, in two parts that run (and resume) on their own:
# ssl (semi-supervised check at 1,000 labels), pseudo (the pseudo-label weight al uses, chosen on
# validation data) and al (active learning, 500 to 2,500 labels).
BENCH_CPU := PATH="$(abspath $(VENV))/bin:$$PATH" $(VENV)/bin/snakemake --cores $(CORES) \
	--resources gpu=$(CORES) --set-threads $(CPU_JOBS) --rerun-incomplete \
	--configfile config/benchmark-cpu.yaml --replace-workflow-config
benchmark-cpu-ssl: $(STAMP)
	$(BENCH_CPU) results/benchmark/ssl/table.md
benchmark-cpu-pseudo: $(STAMP)
	$(BENCH_CPU) results/benchmark/pseudo/table.md
benchmark-cpu-al: $(STAMP)
	$(BENCH_CPU) results/benchmark/al/table.md
# Issue #25's screen of the teacher's pre-training length (one seed, validation): not part of benchmark-cpu.
benchmark-cpu-pretrain: $(STAMP)
	$(BENCH_CPU) results/benchmark/pretrain/table.md
benchmark-cpu: benchmark-cpu-ssl benchmark-cpu-pseudo benchmark-cpu-al

# A SMILES pool without labels, labelled each round by GFN2-xTB (config/smiles-pool.yaml).
smiles-pool: $(STAMP)
	PATH="$(abspath $(VENV))/bin:$$PATH" $(VENV)/bin/snakemake --cores $(CORES) --resources gpu=$(CORES) \
		--set-threads $(CPU_JOBS) --configfile config/smiles-pool.yaml --replace-workflow-config

# tests/test_slurm.py submits config/slurm-smoke.yaml to a one-node SLURM cluster it starts; it
# needs Debian's slurm-wlm and munge, installed here where we are root with apt-get. Elsewhere the
# test skips and says why.
test: $(STAMP) slurm-packages
	$(VENV)/bin/pytest -q -rs

slurm-packages:
	@if command -v slurmctld >/dev/null && command -v munged >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing slurm-wlm and munge (apt-get) for tests/test_slurm.py"; \
		export DEBIAN_FRONTEND=noninteractive; \
		timeout 300 apt-get install -y -qq slurm-wlm munge >/dev/null 2>&1 || \
		{ timeout 300 apt-get update -qq && timeout 300 apt-get install -y -qq slurm-wlm munge >/dev/null; } || \
		echo "could not install slurm-wlm and munge: tests/test_slurm.py will skip"; \
	else echo "not root or no apt-get: SLURM is not installed and tests/test_slurm.py will skip"; fi

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/snakefmt --check workflow
	$(VENV)/bin/snakemake --lint

bench: $(STAMP)
	for b in featurise backbone kcenter sinkhorn; do $(PY) benchmarks/$$b.py || exit 1; done

clean:
	rm -rf results logs .snakemake
