"""Write the project's sample (topology.csv, incidents.csv) from whatif.synthetic.sample.

The sample is synthetic but drawn from an explicit causal process with a known truth
(include/data/README.md); the process is whatif/synthetic/sample.py, its catalogue and wording
plugins/whatif/resources/synthetic/*.yaml. The same seed always writes the same bytes
(tests/unit/test_synthetic.py checks the committed files). exercises.csv is written by hand.

Usage::

    .venv/bin/python include/data/generate_sample.py [--seed 20261126] [--out-dir DIR]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "plugins"))  # whatif from this checkout

from whatif.synthetic import sample  # noqa: E402


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=sample.DEFAULT_SEED)
    parser.add_argument("--out-dir", type=Path, default=HERE)
    args = parser.parse_args(argv)
    generated = sample.generate(args.seed)
    sample.write(args.out_dir, generated)
    print(sample.summarize(generated))


if __name__ == "__main__":
    main()
