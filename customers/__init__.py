"""Customer records: the person or company behind accounts, and its verification."""
