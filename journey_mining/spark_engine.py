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

Where the tables are (`locate`):

* **A folder** (`--warehouse wh/`, or a `.duckdb` path): the catalog is `wh/journeys.duckdb`
  and the builds are under `wh/journeys.tables/`; Spark and this process read the same
  files (a local folder with `master: local[N]`, or a mount both share).
* **A URI** (`--warehouse s3a://bucket/journeys`, `hdfs://...`, `abfss://...`,
  `file:///...`): Spark writes the builds under `<uri>/journeys.tables/`, where other
  Spark jobs read them; the catalog is a local DuckDB file (`engine.catalog`). Files move
  between the two through Hadoop's FileSystem on the driver, with Spark's own
  credentials: the tables DuckDB gives Spark are uploaded as the Parquet DuckDB wrote,
  and each table Spark writes is downloaded, as the Parquet Spark wrote, into the
  catalog's local copy of the build (`journeys.tables/<build id>/`, the same layout as a
  folder warehouse), which the views read. Files, not Arrow batches through the driver:
  the bytes and so the types are exactly those of a folder warehouse (Arrow would turn
  DuckDB's HUGEINT into a decimal where Parquet gives a double, and refuses unsigned
  types), and a table is never held whole in the driver's memory.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
import sys
import uuid
import warnings
from pathlib import Path

import duckdb

from journey_mining.errors import ConfigError, ModelError
from journey_mining.spark_sql import to_spark
from journey_mining.sql_models import SPARK_SUFFIX, SQL_DIR, used_parameters
from journey_mining.warehouse import drop_tables

__all__ = ["SparkBuild", "catalog_path", "check_available", "check_runs", "engine_session",
           "is_uri", "locate", "session", "spark_sql_of", "spark_versions", "tables_place",
           "tables_root"]

CATALOG_FILE = "journeys.duckdb"

# Settings the equivalence with DuckDB depends on: a user's conf cannot change them.
_FIXED_CONF = {
    "spark.sql.session.timeZone": "UTC",  # timestamps are naive UTC, as in DuckDB
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
}
# Spark's JVM logs errors only, a line each (its warnings about the host name or Hadoop's
# native library, and stack traces, are not for a marketing analyst's terminal).
_LOG_SETTINGS = Path(__file__).parent / "config" / "spark_log4j2.properties"
# Defaults a user's conf may change.
_DEFAULT_CONF = {
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.shuffle.partitions": "8",
    "spark.log.structuredLogging.enabled": "false",
    "spark.driver.extraJavaOptions": f"-Dlog4j2.configurationFile=file:{_LOG_SETTINGS}",
}


# A URI as a user writes it (s3a://bucket/x, file:///tmp/x); one letter is a drive (C:/).
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+://")
# A URI a pathlib.Path has folded ("s3a://b/x" -> "s3a:/b/x"): its authority is lost.
_FOLDED_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:/(?!/)")
# The name of a build's folder (SparkBuild.build_id): nothing else under a root is removed.
_BUILD_ID = re.compile(r"^[0-9a-f]{12}$")


def is_uri(warehouse: str | Path) -> bool:
    """Whether `--warehouse` names a URI (tables written by Spark there) or a folder."""
    return bool(_URI.match(str(warehouse)))


def catalog_path(warehouse: str | Path) -> Path:
    """The DuckDB file of a folder warehouse: `--warehouse` itself when it names a .duckdb
    file, else `journeys.duckdb` in that folder. It holds the loads, the views over the
    current build and the tables of the steps after the build."""
    if _FOLDED_URI.match(str(warehouse)):
        raise ConfigError(f"--warehouse {warehouse}: a URI that lost its '//' (a file "
                          "path cannot hold one); pass it as text, e.g. s3a://bucket/path")
    path = Path(warehouse)
    return path if path.suffix == ".duckdb" else path / CATALOG_FILE


def locate(warehouse: str | Path, catalog: str | None) -> tuple[Path, str | None]:
    """A Spark warehouse's (catalog, tables URI): for a folder, the catalog inside it
    and no URI; for a URI, the local catalog the config names (`engine.catalog`)."""
    text = str(warehouse)
    if not is_uri(text):
        if catalog:
            raise ConfigError(f"engine.catalog ({catalog}) is for a URI --warehouse; the "
                              f"folder {text} keeps its own catalog (journeys.duckdb): "
                              "remove engine.catalog, or give --warehouse as a URI")
        return catalog_path(text), None
    if not catalog:
        raise ConfigError(f"--warehouse {text} is a URI: set engine.catalog in the config to "
                          "the local DuckDB file that holds the loads and what the steps "
                          "after the build read (e.g. engine.catalog: journeys.duckdb)")
    if Path(catalog).suffix != ".duckdb":
        raise ConfigError(f"engine.catalog ({catalog}) names a DuckDB file: end it in "
                          ".duckdb")
    return Path(catalog), text.rstrip("/")


def tables_place(kind: str, catalog: str | Path, tables_uri: str | None = None) -> str:
    """Where a build's model tables are, as recorded with it (build_state.tables_at):
    `duckdb` (inside the warehouse file, wherever it is moved), else `spark <folder or
    URI of its tables>`. A build somewhere else is another warehouse: a run there is a
    full rebuild the user asks for, and an export from there is refused
    (`operations.check_tables_place`)."""
    if kind != "spark":
        return "duckdb"
    if tables_uri:
        return f"spark {tables_uri}/{tables_root(catalog).name}"
    return f"spark {tables_root(catalog).resolve()}"


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


def check_runs(engine, tables_uri: str | None = None) -> None:
    """A ConfigError in one sentence when Spark, started as the build starts it
    (`engine`: master and conf), cannot run a job (the master unreachable, a setting it
    refuses) or, with a URI warehouse, cannot write there (no file system for its scheme
    here, or the URI refused). Checked before the load, not half-way through a build;
    the session started here is the one the build uses."""
    try:
        spark = engine_session(engine)
        spark.range(1).count()
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(f"engine.master {engine.master}: Spark could not run a job there "
                          f"({_first_line(exc)}); check the master is up and reachable "
                          "from this machine, and engine.conf") from exc
    if tables_uri:
        _RemoteFolder(spark, tables_uri).check_reachable()


def _first_line(exc: BaseException) -> str:
    """The first line of an error's text (Spark's carry a JVM stack trace after it); of
    the Java exception for an error raised in the JVM (py4j's own first line only says
    which call failed)."""
    java = getattr(exc, "java_exception", None)
    text = str(java.toString() if java is not None else exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@functools.cache
def session(master: str, conf: tuple[tuple[str, str], ...] = ()):
    """The process's Spark session for this master and conf (started once: ~8 s)."""
    check_available()
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    # pandas 3 with pyspark 4.3 (constraints.txt): no step converts through pyspark's
    # pandas, the tables move as Parquet files.
    warnings.filterwarnings("ignore", "PySpark does not yet fully support pandas",
                            FutureWarning)
    builder = SparkSession.builder.master(master).appName("journey-mining")
    for key, value in {**_DEFAULT_CONF, **dict(conf), **_FIXED_CONF}.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def engine_session(engine):
    """The session for the config's engine settings (`EngineConfig`: master and conf)."""
    return session(engine.master, tuple(sorted(engine.conf.items())))


def spark_versions(sql_dir: Path = SQL_DIR) -> list[str]:
    """The models' own Spark versions (`<layer>/<name>.spark.sql`), as the log names them."""
    return [path.relative_to(sql_dir).as_posix()
            for path in sorted(sql_dir.rglob(f"*{SPARK_SUFFIX}"))]


def spark_sql_of(model) -> str:
    """What Spark runs for a SQL model: its own `<name>.spark.sql` where it has one, else
    its file transpiled by the project's rules (`spark_sql.to_spark`)."""
    return model.spark_sql if model.spark_sql is not None else to_spark(model.sql)


class SparkBuild:
    """One build's tables on Spark: what `sql_models.run_models` calls for each table.

    Inputs and Python models' tables are written by DuckDB as Parquet and read by
    Spark; SQL models are run by Spark and written as Parquet; every table gets a DuckDB
    view over its Parquet in the build's transaction (`publish`). With a tables URI,
    Spark's copy of the build is there and the views read a local copy of its files.
    """

    def __init__(self, spark, catalog: str | Path, tables_uri: str | None = None):
        self.spark = spark
        self.build_id = uuid.uuid4().hex[:12]
        self.root = tables_root(catalog).resolve()  # views read it from any folder
        self.folder = self.root / self.build_id
        self.remote = None
        if tables_uri:
            self.remote = _RemoteFolder(spark, f"{tables_uri}/{tables_root(catalog).name}")

    def _spark_path(self, name: str) -> str:
        """Where Spark reads and writes one table of this build."""
        if self.remote is None:
            return str(self.folder / name)
        return f"{self.remote.uri}/{self.build_id}/{name}"

    def share(self, con: duckdb.DuckDBPyConnection, name: str) -> None:
        """A table DuckDB holds (loaded, configuration, a Python model's), given to Spark:
        written as Parquet into this build and read there under its name."""
        path = self.folder / name
        path.mkdir(parents=True, exist_ok=True)
        con.table(name).to_parquet(str(path / "part-0.parquet"))
        if self.remote is not None:  # DuckDB reads its own table: no local copy kept
            self.remote.upload(path / "part-0.parquet", f"{self._spark_path(name)}/part-0.parquet")
            shutil.rmtree(path)
        self.spark.read.parquet(self._spark_path(name)).createOrReplaceTempView(name)

    def run_sql_model(self, con: duckdb.DuckDBPyConnection, model, parameters: dict) -> None:
        """A SQL model run by Spark into this build, then published to DuckDB."""
        target = self._spark_path(model.name)
        with _named(model):
            sql = spark_sql_of(model)
            frame = self.spark.sql(sql, args=used_parameters(parameters, sql, ":"))
            frame.write.mode("overwrite").parquet(target)
        self.spark.read.parquet(target).createOrReplaceTempView(model.name)
        if self.remote is not None:
            self.remote.download_parquet(target, self.folder / model.name)
        self.publish(con, model.name)

    def run_sql_view(self, model, parameters: dict) -> None:
        """A model materialized as a view (`-- materialized: view`) becomes a Spark view:
        computed where the models after it read it, never written."""
        with _named(model):
            sql = spark_sql_of(model)
            view = self.spark.sql(sql, args=used_parameters(parameters, sql, ":"))
            view.createOrReplaceTempView(model.name)

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
        """A failed build leaves nothing: its folders go (readers never saw them)."""
        shutil.rmtree(self.folder, ignore_errors=True)
        if self.remote is not None:
            self.remote.remove(self.build_id)

    def keep_only_this(self) -> None:
        """After the commit: the folders of earlier builds go (no view reads them now).
        Only folders named like a build are removed: nothing else a user keeps there."""
        for folder in self.root.iterdir() if self.root.is_dir() else ():
            if folder.is_dir() and _BUILD_ID.match(folder.name) and folder != self.folder:
                shutil.rmtree(folder, ignore_errors=True)
        if self.remote is not None:
            for name in self.remote.folders():
                if _BUILD_ID.match(name) and name != self.build_id:
                    self.remote.remove(name)


class _RemoteFolder:
    """A folder at a URI, through Hadoop's FileSystem on the driver: the file system and
    the credentials Spark itself uses for that scheme (engine.conf, the cluster's)."""

    def __init__(self, spark, uri: str):
        self.uri = uri
        jvm = spark.sparkContext._jvm
        self._path = jvm.org.apache.hadoop.fs.Path
        self._hadoop_conf = spark.sparkContext._jsc.hadoopConfiguration()
        self._fs = None

    def _filesystem(self):
        if self._fs is None:
            self._fs = self._path(self.uri).getFileSystem(self._hadoop_conf)
        return self._fs

    def check_reachable(self) -> None:
        """A ConfigError in one sentence when Spark has no file system for the scheme here
        (s3a:// needs hadoop-aws on Spark's class path) or cannot create the folder."""
        scheme = self.uri.split(":", 1)[0]
        try:
            created = self._filesystem().mkdirs(self._path(self.uri))
        except Exception as exc:  # noqa: BLE001 - Py4J and Spark wrap every Java error
            java = getattr(exc, "java_exception", None)
            text = java.toString() if java is not None else str(exc)
            if "No FileSystem for scheme" in text or "ClassNotFoundException" in text:
                raise ConfigError(f"--warehouse {self.uri}: Spark has no file system for "
                                  f"{scheme}:// here; add its connector to Spark's class "
                                  "path (for s3a, hadoop-aws and the AWS SDK jars, e.g. "
                                  "engine.conf spark.jars), or run on a cluster that has "
                                  "it") from None
            first = next((line for line in text.splitlines() if line.strip()), repr(exc))
            raise ConfigError(f"--warehouse {self.uri}: Spark cannot write there: "
                              f"{first.strip()}") from None
        if not created:
            raise ConfigError(f"--warehouse {self.uri}: Spark cannot create that folder")

    def upload(self, local: Path, uri: str) -> None:
        """One local file to the URI (replacing what is there)."""
        self._filesystem().copyFromLocalFile(False, True, self._path(str(local)),
                                             self._path(uri))

    def download_parquet(self, uri: str, local: Path) -> None:
        """The Parquet files of one table Spark wrote, into a local folder, in name order
        (the order of Spark's tasks, which DuckDB's glob keeps)."""
        local.mkdir(parents=True, exist_ok=True)
        statuses = self._filesystem().listStatus(self._path(uri))
        names = sorted(str(status.getPath().getName()) for status in statuses
                       if status.isFile())
        for name in (name for name in names if name.endswith(".parquet")):
            self._filesystem().copyToLocalFile(False, self._path(f"{uri}/{name}"),
                                               self._path(str(local / name)), True)

    def folders(self) -> list[str]:
        """The names of the folders at the URI (the builds there)."""
        root = self._path(self.uri)
        if not self._filesystem().exists(root):
            return []
        return [str(status.getPath().getName())
                for status in self._filesystem().listStatus(root) if status.isDirectory()]

    def remove(self, name: str) -> None:
        """One folder at the URI, with everything in it (absent: nothing to do)."""
        self._filesystem().delete(self._path(f"{self.uri}/{name}"), True)


@contextlib.contextmanager
def _named(model):
    """A model's failure on Spark as one ModelError naming its file, like a failing
    DuckDB model: outside the portable subset (sql/README.md), or Spark's own error."""
    try:
        yield
    except ValueError as exc:
        raise ModelError(f"model {_spark_file(model)} cannot run on Spark: "
                         f"{exc}") from None
    except Exception as exc:
        raise ModelError(f"model {_spark_file(model)} failed on Spark: "
                         f"{_first_line(exc)}") from exc


def _spark_file(model) -> str:
    """The file Spark ran for a model, as errors name it: its own Spark version where it
    has one (the file to edit), else the model's file."""
    name = f"{model.name}{SPARK_SUFFIX}" if model.spark_sql is not None else model.path.name
    return f"{model.layer}/{name}"
