"""The Salesforce adapter: the only package that imports simple_salesforce.

settings.py (the [salesforce] table and secrets), auth.py (tokens), client.py (SalesforceClient),
bulk.py (Bulk API 2.0 jobs), soql.py (safe query building), retry.py, budget.py, errors.py,
records.py (payload encoding and per-record results).
"""
