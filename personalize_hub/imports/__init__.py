"""`hub import`: history from a file into a Personalize dataset, validated like the streaming path first.

`source` streams the input in blocks of lines (path, file://, s3://), `rows` turns them into dataset rows
through the streaming path's mapping and validation, `columnar` proves CSV and Parquet rows clean a column at a
time by those same rules (every other row goes to `rows`), `tally` counts them for the readiness report with
bounded memory, `run` writes the clean CSV, uploads it and runs the dataset import job.
"""
