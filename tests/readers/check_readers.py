"""Reads a barsmith data root with DuckDB, Polars, pyarrow and pandas and prints one
JSON object with what each reader saw, for tests/readers.rs to compare.

Usage: check_readers.py ROOT FILTER_TICKER FILTER_YEAR [numeric]

Each reader uses the call an analyst types first, with no options (README, "Reading
the data"):
  duckdb            : FROM 'ROOT/**/*.parquet'
  polars_read       : pl.read_parquet(ROOT)
  polars_scan       : pl.scan_parquet(ROOT)
  pyarrow_dataset   : pyarrow.dataset.dataset(ROOT, partitioning="hive")
  pyarrow_read_table: pyarrow.parquet.read_table(ROOT)
  pandas            : pandas.read_parquet(ROOT), and with filters=[...]
With `numeric`, every reader instead uses the one-line explicit partition schema the
README gives for numeric symbols (0700 must stay "0700", not 700).
A reader that fails reports {"error": "..."} instead of aborting the others.
"""

import json
import sys
import traceback


def summary(rows, min_ms, max_ms, ts_type, ts_is_utc, by_ticker, years, filtered, volume):
    return {
        "rows": int(rows),
        "min_ms": int(min_ms),
        "max_ms": int(max_ms),
        "timestamp_type": str(ts_type),
        "timestamp_utc": bool(ts_is_utc),
        "rows_by_ticker": {str(k): int(v) for k, v in sorted(by_ticker.items())},
        "years": sorted(int(y) for y in years),
        "filtered_rows": int(filtered),
        # Decodes a whole value column (volume is written BYTE_STREAM_SPLIT).
        "volume_sum": float(volume),
    }


def check_duckdb(root, ticker, year, numeric):
    import duckdb

    con = duckdb.connect()
    src = f"'{root}/**/*.parquet'"
    if numeric:
        src = f"read_parquet('{root}/**/*.parquet', hive_types = {{'ticker': VARCHAR}})"
    rows, min_ms, max_ms, volume = con.execute(
        "SELECT count(*), epoch_ms(min(timestamp)), epoch_ms(max(timestamp)), sum(volume) "
        f"FROM {src}"
    ).fetchone()
    ts_type = con.execute(f"SELECT typeof(timestamp) FROM {src} LIMIT 1").fetchone()[0]
    by_ticker = dict(con.execute(f"SELECT ticker, count(*) FROM {src} GROUP BY ticker").fetchall())
    years = [r[0] for r in con.execute(f"SELECT DISTINCT year FROM {src}").fetchall()]
    filtered = con.execute(
        f"SELECT count(*) FROM {src} WHERE ticker = ? AND year = ?", [ticker, year]
    ).fetchone()[0]
    return summary(rows, min_ms, max_ms, ts_type, ts_type == "TIMESTAMP WITH TIME ZONE",
                   by_ticker, years, filtered, volume)


def polars_summary(lf, ticker, year):
    import polars as pl

    ts_type = lf.collect_schema()["timestamp"]
    df = lf.select(
        pl.len().alias("rows"),
        pl.col("timestamp").min().dt.epoch("ms").alias("min_ms"),
        pl.col("timestamp").max().dt.epoch("ms").alias("max_ms"),
        pl.col("volume").sum().alias("volume"),
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
                   by_ticker, years, filtered, df["volume"][0])


def check_polars_read(root, ticker, year, numeric):
    import polars as pl

    if numeric:
        df = pl.read_parquet(root, hive_schema={"ticker": pl.String, "year": pl.Int32})
    else:
        df = pl.read_parquet(root)
    return polars_summary(df.lazy(), ticker, year)


def check_polars_scan(root, ticker, year, numeric):
    import polars as pl

    if numeric:
        lf = pl.scan_parquet(root, hive_schema={"ticker": pl.String, "year": pl.Int32})
    else:
        lf = pl.scan_parquet(root)
    return polars_summary(lf, ticker, year)


def partitioning(numeric):
    """The explicit schema the README gives for numeric symbols, else nothing."""
    if not numeric:
        return {}
    import pyarrow as pa
    import pyarrow.dataset as ds

    schema = pa.schema([("ticker", pa.string()), ("year", pa.int32())])
    return {"partitioning": ds.partitioning(schema, flavor="hive")}


def arrow_summary(table, filtered):
    import pyarrow as pa
    import pyarrow.compute as pc

    ts_type = table.schema.field("timestamp").type
    mm = pc.min_max(table["timestamp"]).as_py()
    tickers = pc.cast(table["ticker"], pa.string())
    by_ticker = {
        r["t"]: r["t_count"]
        for r in pa.table({"t": tickers}).group_by("t").aggregate([("t", "count")]).to_pylist()
    }
    years = pc.unique(pc.cast(table["year"], pa.int32())).to_pylist()
    to_ms = lambda t: int(t.timestamp() * 1000)
    is_utc = pa.types.is_timestamp(ts_type) and ts_type.tz == "UTC" and ts_type.unit == "ms"
    return summary(table.num_rows, to_ms(mm["min"]), to_ms(mm["max"]), ts_type, is_utc,
                   by_ticker, years, filtered, pc.sum(table["volume"]).as_py())


def check_pyarrow_dataset(root, ticker, year, numeric):
    import pyarrow.dataset as ds

    kw = partitioning(numeric) or {"partitioning": "hive"}
    dataset = ds.dataset(root, **kw)
    filtered = dataset.count_rows(
        filter=(ds.field("ticker") == ticker) & (ds.field("year") == year)
    )
    return arrow_summary(dataset.to_table(), filtered)


def check_pyarrow_read_table(root, ticker, year, numeric):
    import pyarrow.parquet as pq

    kw = partitioning(numeric)
    table = pq.read_table(root, **kw)
    filtered = pq.read_table(
        root, filters=[("ticker", "=", ticker), ("year", "=", year)], **kw
    ).num_rows
    return arrow_summary(table, filtered)


def check_pandas(root, ticker, year, numeric):
    import pandas as pd
    import pyarrow as pa

    kw = partitioning(numeric)
    df = pd.read_parquet(root, **kw)
    filtered = len(pd.read_parquet(root, filters=[("ticker", "=", ticker)], **kw)
                   .query("year == @year"))
    table = pa.Table.from_pandas(df, preserve_index=False)
    return arrow_summary(table, filtered)


def version(module):
    try:
        return __import__(module).__version__
    except Exception as e:  # noqa: BLE001
        return f"missing: {e}"


CHECKS = (
    ("duckdb", check_duckdb),
    ("polars_read", check_polars_read),
    ("polars_scan", check_polars_scan),
    ("pyarrow_dataset", check_pyarrow_dataset),
    ("pyarrow_read_table", check_pyarrow_read_table),
    ("pandas", check_pandas),
)


def main():
    root, ticker, year = sys.argv[1], sys.argv[2], int(sys.argv[3])
    numeric = sys.argv[4:] == ["numeric"]
    out = {"versions": {m: version(m) for m in ("duckdb", "polars", "pyarrow", "pandas")}}
    for name, check in CHECKS:
        try:
            out[name] = check(root, ticker, year, numeric)
        except Exception as e:  # noqa: BLE001
            out[name] = {"error": f"{type(e).__name__}: {e}",
                         "traceback": traceback.format_exc()}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
