"""local_personalize: an offline, wire-compatible Amazon Personalize with real recommenders.

Run it with `python -m local_personalize --data DIR`; point boto3/aiobotocore clients for `personalize`,
`personalize-events` and `personalize-runtime` at it with `endpoint_url`.
"""
