"""stocksync: durable batch sync of tushare daily bars into PostgreSQL."""
