"""DuckDB warehouse: one file holding the catalog, users, interactions, model versions and
batch results. Polars frames go in and come out; nothing here knows about TensorFlow."""
