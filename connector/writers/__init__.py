"""Write-back to Salesforce: outbox entries, written in the engine's transactions, sent by one writer."""
