"""Change sources: yield batches of changed Salesforce records and the cursor to save next."""
