"""revsync: keeps a Salesforce org and a revenue engine in step."""
