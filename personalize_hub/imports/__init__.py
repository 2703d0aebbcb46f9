"""`hub import`: history from a file into a Personalize dataset, validated like the streaming path first.

`source` streams the input's lines (path, file://, s3://), `rows` turns them into dataset rows through the
streaming path's mapping and validation, `tally` counts them for the readiness report with bounded memory,
`run` writes the clean CSV, uploads it and runs the dataset import job.
"""
