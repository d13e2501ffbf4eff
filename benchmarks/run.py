"""Run every benchmark script `benchmarks/bench_*.py`; each prints one JSON document."""

import pathlib
import subprocess
import sys

here = pathlib.Path(__file__).parent
failed = []
for script in sorted(here.glob("bench_*.py")):
    print(f"# {script.name}", flush=True)
    if subprocess.run([sys.executable, str(script), *sys.argv[1:]]).returncode:
        failed.append(script.name)
if failed:
    sys.exit(f"benchmarks failed: {failed}")
