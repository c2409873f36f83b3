"""The build on Apache Spark (`engine.kind: spark`): the same SQL models, run by Spark,
stored as Parquet; DuckDB stays the catalog the other steps read.

What runs where, and why:

* **Ingest** stays on DuckDB (`catalog_path`: `<warehouse>/journeys.duckdb`): a load is
  all or nothing there, rejected rows kept, as with the default engine.
* **The SQL models** run on Spark. Each build writes its tables under
  `<warehouse>/journeys.tables/<build id>/<table>/` (Parquet): the loaded and
  configuration tables it reads first, then every model in dependency order, each
  transpiled by `spark_sql.to_spark`. A model materialized as a view stays a view on
  both engines (nothing written).
* **The Python models** (the stays) read their inputs from the build's tables through
  DuckDB and write their frames back as Parquet, which Spark reads for the next models.
* **The switch.** DuckDB holds one view per table over the build's Parquet, created in
  the build's transaction: readers see the previous build until it commits, and a
  failed build changes nothing they see (its folder is removed). Older builds' folders
  are removed once a newer one is committed.
* **The steps after the build** (mining, churn, drivers, data tests, report, exports)
  read those views like tables, on DuckDB, unchanged.

Spark needs the Parquet folder on a file system both it and this process read: a local
folder with `master: local[N]`, or a shared mount with a cluster.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
import sys
import uuid
from pathlib import Path

import duckdb

from journey_mining.errors import ConfigError, ModelError
from journey_mining.spark_sql import to_spark
from journey_mining.warehouse import drop_tables

__all__ = ["SparkBuild", "catalog_path", "check_available", "session", "tables_root"]

CATALOG_FILE = "journeys.duckdb"

# Settings the equivalence with DuckDB depends on: a user's conf cannot change them.
_FIXED_CONF = {
    "spark.sql.session.timeZone": "UTC",  # timestamps are naive UTC, as in DuckDB
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
}
# Defaults a user's conf may change.
_DEFAULT_CONF = {
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.shuffle.partitions": "8",
    "spark.log.structuredLogging.enabled": "false",
}


def catalog_path(warehouse: str | Path) -> Path:
    """The DuckDB file of a Spark warehouse: `--warehouse` itself when it names a .duckdb
    file, else `journeys.duckdb` in that folder. It holds the loads, the views over the
    current build and the tables of the steps after the build. A URI is refused: the
    steps after the build read the Parquet through DuckDB, on a file system."""
    text = str(warehouse)
    # A command-line Path has folded "s3a://b/x" into "s3a:/b/x": a scheme either way.
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:/", text):
        raise ConfigError(f"--warehouse {text}: a URI is not supported yet with engine.kind "
                          "spark; give a folder on a file system Spark and this machine "
                          "share (a local folder with master local[N], or a shared mount)")
    path = Path(warehouse)
    return path if path.suffix == ".duckdb" else path / CATALOG_FILE


def tables_root(catalog: str | Path) -> Path:
    """The folder of the builds' Parquet tables, beside the catalog and named after it
    (`journeys.duckdb` -> `journeys.tables/`), so two warehouses in one folder never
    share one."""
    return Path(catalog).with_suffix(".tables")


def check_available() -> None:
    """A ConfigError in one sentence when Spark cannot start here: pyspark missing, or no
    Java runtime (checked before a run starts, not half-way through a build)."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise ConfigError("engine.kind is spark but pyspark is not installed: pip install "
                          "'journey-mining[spark]' (pyspark 4.3, and a Java 17+ runtime)"
                          ) from None
    home = os.environ.get("JAVA_HOME")
    if home and not (Path(home) / "bin" / "java").is_file():
        raise ConfigError(f"engine.kind is spark but JAVA_HOME ({home}) holds no bin/java: "
                          "point it at a Java 17+ runtime, or unset it to use java on the "
                          "PATH")
    if not (home or shutil.which("java")):
        raise ConfigError("engine.kind is spark but no Java runtime was found (java on the "
                          "PATH or JAVA_HOME): install Java 17 or later, e.g. Debian's "
                          "openjdk-17-jre-headless")


@functools.cache
def session(master: str, conf: tuple[tuple[str, str], ...] = ()):
    """The process's Spark session for this master and conf (started once: ~8 s)."""
    check_available()
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.master(master).appName("journey-mining")
    for key, value in {**_DEFAULT_CONF, **dict(conf), **_FIXED_CONF}.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


class SparkBuild:
    """One build's tables on Spark: what `sql_models.run_models` calls for each table.

    Inputs and Python models' tables are written by DuckDB as Parquet and read by
    Spark; SQL models are run by Spark and written as Parquet; every table gets a DuckDB
    view over its Parquet in the build's transaction (`publish`).
    """

    def __init__(self, spark, catalog: str | Path):
        self.spark = spark
        self.root = tables_root(catalog).resolve()  # views read it from any folder
        self.build_id = uuid.uuid4().hex[:12]
        self.folder = self.root / self.build_id

    def share(self, con: duckdb.DuckDBPyConnection, name: str) -> None:
        """A table DuckDB holds (loaded, configuration, a Python model's), given to Spark:
        written as Parquet into this build and read there under its name."""
        path = self.folder / name
        path.mkdir(parents=True, exist_ok=True)
        con.table(name).to_parquet(str(path / "part-0.parquet"))
        self.spark.read.parquet(str(path)).createOrReplaceTempView(name)

    def run_sql_model(self, con: duckdb.DuckDBPyConnection, model, parameters: dict) -> None:
        """A SQL model run by Spark into this build, then published to DuckDB."""
        path = self.folder / model.name
        with _named(model):
            frame = self.spark.sql(to_spark(model.sql), args=parameters)
            frame.write.mode("overwrite").parquet(str(path))
        self.spark.read.parquet(str(path)).createOrReplaceTempView(model.name)
        self.publish(con, model.name)

    def run_sql_view(self, model, parameters: dict) -> None:
        """A model materialized as a view (`-- materialized: view`) becomes a Spark view:
        computed where the models after it read it, never written."""
        with _named(model):
            self.spark.sql(to_spark(model.sql), args=parameters).createOrReplaceTempView(
                model.name)

    def publish(self, con: duckdb.DuckDBPyConnection, name: str) -> None:
        """The DuckDB view of one table of this build (replacing the table or view of that
        name), in the caller's transaction. Timestamps with a time zone (Spark's
        current_timestamp) are read back as DuckDB's naive UTC timestamps."""
        files = str(self.folder / name / "*.parquet")
        stored = con.read_parquet(files)
        columns = ", ".join(
            f'"{column}"::TIMESTAMP AS "{column}"' if str(kind) == "TIMESTAMP WITH TIME ZONE"
            else f'"{column}"' for column, kind in zip(stored.columns, stored.types,
                                                       strict=True))
        drop_tables(con, [name])
        con.execute(f"CREATE VIEW \"{name}\" AS SELECT {columns} FROM read_parquet('{files}')")

    def discard(self) -> None:
        """A failed build leaves nothing: its folder goes (readers never saw it)."""
        shutil.rmtree(self.folder, ignore_errors=True)

    def keep_only_this(self) -> None:
        """After the commit: the folders of earlier builds go (no view reads them now)."""
        for folder in self.root.iterdir() if self.root.is_dir() else ():
            if folder.is_dir() and folder.name != self.build_id:
                shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def _named(model):
    """A model's failure on Spark as one ModelError naming its file, like a failing
    DuckDB model: outside the portable subset (sql/README.md), or Spark's own error."""
    try:
        yield
    except ValueError as exc:
        raise ModelError(f"model {model.layer}/{model.path.name} cannot run on Spark: "
                         f"{exc}") from None
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        raise ModelError(f"model {model.layer}/{model.path.name} failed on Spark: "
                         f"{first}") from exc
