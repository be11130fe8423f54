"""The revenue engine: pure functions from engine records and a fiscal calendar to engine records.

Nothing here does I/O, reads the clock, touches the store or knows about Salesforce;
``tests/engine/test_purity.py`` keeps it that way.
"""
