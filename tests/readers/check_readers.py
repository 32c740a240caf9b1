"""Reads a barsmith data root with DuckDB, Polars and pyarrow and prints one JSON
object with what each reader saw, for tests/readers.rs to compare.

Usage: check_readers.py ROOT FILTER_TICKER FILTER_YEAR

Each reader uses exactly the call the README documents:
  DuckDB : read_parquet('ROOT/**/*.parquet', hive_partitioning = true)
  Polars : pl.scan_parquet(ROOT, hive_partitioning=True)          (the folder, not a glob)
  pyarrow: pyarrow.dataset.dataset(ROOT, format="parquet", partitioning="hive")
           pyarrow.parquet.read_table(ROOT, partitioning=ds.partitioning(flavor="hive"))
A reader that fails reports {"error": "..."} instead of aborting the others.
"""

import json
import sys
import traceback


def summary(rows, min_ms, max_ms, ts_type, ts_is_utc, by_ticker, years, filtered):
    return {
        "rows": int(rows),
        "min_ms": int(min_ms),
        "max_ms": int(max_ms),
        "timestamp_type": str(ts_type),
        "timestamp_utc": bool(ts_is_utc),
        "rows_by_ticker": {str(k): int(v) for k, v in sorted(by_ticker.items())},
        "years": sorted(int(y) for y in years),
        "filtered_rows": int(filtered),
    }


def check_duckdb(root, ticker, year):
    import duckdb

    con = duckdb.connect()
    src = f"read_parquet('{root}/**/*.parquet', hive_partitioning = true)"
    rows, min_ms, max_ms = con.execute(
        f"SELECT count(*), epoch_ms(min(timestamp)), epoch_ms(max(timestamp)) FROM {src}"
    ).fetchone()
    ts_type = con.execute(f"SELECT typeof(timestamp) FROM {src} LIMIT 1").fetchone()[0]
    by_ticker = dict(con.execute(f"SELECT ticker, count(*) FROM {src} GROUP BY ticker").fetchall())
    years = [r[0] for r in con.execute(f"SELECT DISTINCT year FROM {src}").fetchall()]
    filtered = con.execute(
        f"SELECT count(*) FROM {src} WHERE ticker = ? AND year = ?", [ticker, year]
    ).fetchone()[0]
    return summary(rows, min_ms, max_ms, ts_type, ts_type == "TIMESTAMP WITH TIME ZONE",
                   by_ticker, years, filtered)


def check_polars(root, ticker, year):
    import polars as pl

    lf = pl.scan_parquet(root, hive_partitioning=True)
    schema = lf.collect_schema()
    ts_type = schema["timestamp"]
    df = lf.select(
        pl.len().alias("rows"),
        pl.col("timestamp").min().dt.epoch("ms").alias("min_ms"),
        pl.col("timestamp").max().dt.epoch("ms").alias("max_ms"),
    ).collect()
    by_ticker = dict(lf.group_by("ticker").agg(pl.len()).collect().iter_rows())
    years = lf.select(pl.col("year").unique()).collect()["year"].to_list()
    filtered = (
        lf.filter((pl.col("ticker") == ticker) & (pl.col("year") == year))
        .select(pl.len())
        .collect()
        .item()
    )
    is_utc = isinstance(ts_type, pl.Datetime) and ts_type.time_zone == "UTC"
    return summary(df["rows"][0], df["min_ms"][0], df["max_ms"][0], ts_type, is_utc,
                   by_ticker, years, filtered)


def check_pyarrow(root, ticker, year):
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    dataset = ds.dataset(root, format="parquet", partitioning="hive")
    ts_type = dataset.schema.field("timestamp").type
    table = dataset.to_table(columns=["ticker", "timestamp", "year"])
    mm = pc.min_max(table["timestamp"]).as_py()
    by_ticker = {
        r["ticker"]: r["ticker_count"]
        for r in table.group_by("ticker").aggregate([("ticker", "count")]).to_pylist()
    }
    years = pc.unique(table["year"]).to_pylist()
    filtered = dataset.count_rows(
        filter=(ds.field("ticker") == ticker) & (ds.field("year") == year)
    )
    to_ms = lambda t: int(t.timestamp() * 1000)
    is_utc = pa.types.is_timestamp(ts_type) and ts_type.tz == "UTC" and ts_type.unit == "ms"
    return summary(table.num_rows, to_ms(mm["min"]), to_ms(mm["max"]), ts_type, is_utc,
                   by_ticker, years, filtered)


def check_pyarrow_read_table(root, ticker, year):
    # pq.read_table(root) alone fails: it infers the `ticker=` folder as a dictionary,
    # which cannot merge with the file's plain string `ticker`. Plain hive partitioning
    # (no dictionary inference) works; pandas.read_parquet forwards the same argument.
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    table = pq.read_table(root, partitioning=ds.partitioning(flavor="hive"))
    ts_type = table.schema.field("timestamp").type
    mm = pc.min_max(table["timestamp"]).as_py()
    by_ticker = {
        r["ticker"]: r["ticker_count"]
        for r in table.group_by("ticker").aggregate([("ticker", "count")]).to_pylist()
    }
    years = pc.unique(table["year"]).to_pylist()
    filtered = pq.read_table(
        root,
        partitioning=ds.partitioning(flavor="hive"),
        filters=[("ticker", "=", ticker), ("year", "=", year)],
    ).num_rows
    to_ms = lambda t: int(t.timestamp() * 1000)
    is_utc = pa.types.is_timestamp(ts_type) and ts_type.tz == "UTC" and ts_type.unit == "ms"
    return summary(table.num_rows, to_ms(mm["min"]), to_ms(mm["max"]), ts_type, is_utc,
                   by_ticker, years, filtered)


def version(module):
    try:
        return __import__(module).__version__
    except Exception as e:  # noqa: BLE001
        return f"missing: {e}"


def main():
    root, ticker, year = sys.argv[1], sys.argv[2], int(sys.argv[3])
    out = {"versions": {m: version(m) for m in ("duckdb", "polars", "pyarrow")}}
    for name, check in (("duckdb", check_duckdb), ("polars", check_polars),
                        ("pyarrow", check_pyarrow),
                        ("pyarrow_read_table", check_pyarrow_read_table)):
        try:
            out[name] = check(root, ticker, year)
        except Exception as e:  # noqa: BLE001
            out[name] = {"error": f"{type(e).__name__}: {e}",
                         "traceback": traceback.format_exc()}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
