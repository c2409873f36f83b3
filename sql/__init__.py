"""The DuckDB SQL models, shipped inside the package as `journey_mining.sql`.

One model per file, layered: staging/ -> intermediate/ -> marts/, plus the
templates the library binds parameters into (mining/, analysis/). Each .yml
beside a model gives its grain and its data tests.
"""
