"""Builds the `barsmith status` benchmark tree (BENCHMARKS.md, "barsmith status on
3,000 tickers x 20 years"): 60,000 bar files, hard links to one real ticker-year, and
one coverage record per ticker with the per-year file facts barsmith records.

Usage (from an empty folder):
  barsmith sandbox --port 18960 &
  POLYGON_API_KEY=sandbox barsmith ingest --tickers AAPL --from 2024-01-01 \\
      --to 2024-12-31 --outdir src --base-url http://127.0.0.1:18960
  python3 status_tree.py            # writes big/ and big.barsmith/
  time barsmith status big --format json > /dev/null
"""

import json
import os
import shutil

SRC = "src/ticker=AAPL/year=2024/AAPL_2024.parquet"


def main():
    size = os.path.getsize(SRC)
    facts = json.load(open("src.barsmith/coverage/AAPL.json"))["files"]["2024"]
    assert facts["bytes"] == size
    os.makedirs("big.barsmith/coverage", exist_ok=True)
    shutil.copy("src.barsmith/dataset.json", "big.barsmith/dataset.json")
    for i in range(3000):
        t = f"T{i:04d}"
        files = {}
        for y in range(2006, 2026):
            d = f"big/ticker={t}/year={y}"
            os.makedirs(d, exist_ok=True)
            os.link(SRC, f"{d}/{t}_{y}.parquet")
            files[str(y)] = facts
        record = {"ticker": t, "complete": [["2006-01-01", "2025-12-31"]], "files": files}
        with open(f"big.barsmith/coverage/{t}.json", "w") as f:
            json.dump(record, f)


if __name__ == "__main__":
    main()
