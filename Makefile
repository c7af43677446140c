# make install  - create .venv (unless a virtualenv is active), install pinned torch (an active
#                 virtualenv keeps a supported torch/torchvision pair it has: tools/torch_pair.py) and the
#                 dependencies, and build vidpool._C in place (pip install -e).
# make test     - install if needed, then run the test suite.
# make demo     - install if needed, generate the synthetic demo data once (data/demo), train and test
#                 the SoftPool demo model and print its video top-1; make demo-max: the max-pool baseline.
# make bench    - run the pooling, model and data benchmarks; make bench-multigrid: the multigrid experiment;
#                 make bench-robustness: the chaos benchmark (broken files, DDP, interruptions).
# make paper-mini - the paper's pooling comparison in miniature (configs/experiments/paper_mini.yaml,
#                 vidpool experiments): 18 training runs of r3d-10 and r(2+1)d-10 on the demo data
#                 (docs/experiments.md has the measured time).
PYTHON ?= python3
ifdef VIRTUAL_ENV
VENV := $(VIRTUAL_ENV)
else
VENV := .venv
endif
PY := $(VENV)/bin/python
STAMP := $(VENV)/.vidpool-installed
FFMPEG_LIBS := $(VENV)/ffmpeg-libs
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
BUILD_INPUTS := setup.py requirements.txt $(wildcard csrc/*.h csrc/*.cpp csrc/*.cu csrc/*.cuh csrc/emulation/*)
DEMO_DATA := data/demo
DEMO_STAMP := $(DEMO_DATA)/.complete
DEMO_DATA_ARGS := --videos 3000 --frames 32 --size 48x64 --clutter 0.3
BENCH_MG_DATA := data/bench_mg
BENCH_MG_STAMP := $(BENCH_MG_DATA)/.complete
BENCH_MG_DATA_ARGS := --videos 3000 --frames 32 --size 96x128 --clutter 0.3

.PHONY: install test demo demo-max bench bench-multigrid bench-robustness paper-mini clean

install: $(STAMP)

$(STAMP): $(BUILD_INPUTS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip setuptools wheel
	@if [ -n "$(VIRTUAL_ENV)" ] && $(PY) tools/torch_pair.py; then :; else \
		echo "$(PY) -m pip install --quiet $(TORCH_PINS)"; $(PY) -m pip install --quiet $(TORCH_PINS); fi
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --no-build-isolation -e .
	$(PY) -m vidpool.data.ffmpeg_libs $(FFMPEG_LIBS)
	$(PY) -c "import vidpool._C as c; i = c.build_info(); print('vidpool installed; SoftPool kernels:', i['backends'], 'CPU variant', i['cpu_isa'], '| CUDA:', i['cuda_build']['reason'])"
	touch $(STAMP)

# torchcodec (DATA.DECODER torchcodec) finds FFmpeg's libraries through LD_LIBRARY_PATH: the tests use
# PyAV's copy, linked into $(FFMPEG_LIBS) by make install (vidpool/data/ffmpeg_libs.py)
test: install
	LD_LIBRARY_PATH="$(abspath $(FFMPEG_LIBS))$${LD_LIBRARY_PATH:+:$$LD_LIBRARY_PATH}" VIDPOOL_REQUIRE_TORCHCODEC=1 \
		$(PY) -m pytest tests

# Regenerated from scratch when the generator changes; the stamp is written only after a complete run.
$(DEMO_STAMP): tools/make_demo_data.py vidpool/data/datasets/synthetic.py | $(STAMP)
	rm -rf $(DEMO_DATA)
	$(PY) tools/make_demo_data.py --out $(DEMO_DATA) $(DEMO_DATA_ARGS)
	touch $@

# A finished run resumes at its last epoch and only tests again: rm -rf output/demo_* to retrain.
demo: install $(DEMO_STAMP)
	$(PY) -m vidpool train --cfg configs/demo/r3d10_softpool.yaml

demo-max: install $(DEMO_STAMP)
	$(PY) -m vidpool train --cfg configs/demo/r3d10_max.yaml

# The multigrid benchmark's data: the demo recipe at 96 x 128 (configs/bench/r3d10_softpool_plain.yaml says why).
$(BENCH_MG_STAMP): tools/make_demo_data.py vidpool/data/datasets/synthetic.py | $(STAMP)
	rm -rf $(BENCH_MG_DATA)
	$(PY) tools/make_demo_data.py --out $(BENCH_MG_DATA) $(BENCH_MG_DATA_ARGS)
	touch $@

# r3d-10 plainly, with multigrid and plainly at multigrid's wall time, held-out seeds 10-14: wall time,
# video top-1 and the comparisons with their intervals; frames from data/bench_mg/frame_cache (filled
# first, 3.6 GiB); about an hour on 2 cores (11-12 minutes per seed).
bench-multigrid: install $(BENCH_MG_STAMP)
	$(PY) tools/benchmark_multigrid.py

# r3d-10 and r(2+1)d-10 x {max, avg, softpool} x 3 seeds, two runs at a time; rerunning continues
# an interrupted grid. Results: output/experiments/paper_mini/results.{md,csv,json,png}.
# The demo videos are decoded once into $(DEMO_DATA)/frame_cache (removed with the demo data).
paper-mini: install $(DEMO_STAMP)
	$(PY) -m vidpool cache-frames --cfg configs/demo/r3d10_softpool.yaml --workers 2 DATA.FRAME_CACHE $(DEMO_DATA)/frame_cache
	$(PY) -m vidpool experiments --grid configs/experiments/paper_mini.yaml --jobs 2

# Broken files, 2-process DDP and a SIGTERM mid-epoch in every dataset layout (about 5 minutes).
bench-robustness: install $(DEMO_STAMP)
	$(PY) tools/benchmark_robustness.py

bench: install
	$(PY) tools/benchmark_pooling.py
	$(PY) tools/benchmark_models.py
	$(PY) tools/benchmark_data.py

clean:
	rm -rf build *.egg-info vidpool/_C*.so vidpool/_kernels_*.so vidpool/_cuda_emulated*.so vidpool/_build_info.json $(STAMP)
